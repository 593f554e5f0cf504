-- keyward key directory, schema version 2: signed secret updates.
--
-- A secret blob is an account's only key backup, so replacing it needs the
-- account's identity key (docs/protocol.md section 6.1): every publish carries a
-- secret update, an Ed25519 signature by the identity key over the blob's fields
-- and a sequence number `seq`. keydir verifies it against the stored bundle's
-- identity key and replaces a stored blob only with a greater `seq`, so that an
-- old blob (sealed under an old, perhaps leaked, passphrase) cannot be put back
-- by replaying its old signature.
--
-- Both columns are NULL on rows stored before this rule: such a blob is replaced
-- by any correctly signed update (keydir never replaces a blob without one).
-- These constraints keep the pair consistent; they do not protect the row
-- from whoever can write to this database.
ALTER TABLE secret_blobs
    ADD COLUMN seq bigint,
    ADD COLUMN sig bytea,
    -- A seq and its signature come together, or neither (a row from before).
    ADD CONSTRAINT secret_blobs_update_pair CHECK ((seq IS NULL) = (sig IS NULL)),
    -- seq is 0 to 2^63 - 1 on the wire; bigint holds exactly that range when non-negative.
    ADD CONSTRAINT secret_blobs_seq_range CHECK (seq >= 0),
    ADD CONSTRAINT secret_blobs_sig_len CHECK (octet_length(sig) = 64);
