-- keyward key directory, schema version 9: the signed heads of the epoch log.
--
-- Every epoch in transparency_epochs is a leaf of an RFC 6962 log, in epoch order (epoch e is
-- leaf e - 1: the leaf encodes e and the epoch's akd root, keyward-proto's EpochLeaf). After
-- each epoch the publisher (the holder of the advisory lock) signs a head of the log (a C2SP
-- checkpoint with keyward's epoch line, as a C2SP signed note) and stores it here. If keydir
-- dies between recording an epoch and storing its head, the next round of any replica rebuilds
-- the log from transparency_epochs and signs the head of the latest size; sizes in between may
-- have no head. The signing key is not in the database: it cannot sign anything, only keep
-- what was signed.

CREATE TABLE transparency_heads (
    -- The log's size (leaves, i.e. epochs 1..=size) this head is of.
    size      bigint      PRIMARY KEY,
    -- The newest epoch (the head's epoch line); always equal to size.
    epoch     bigint      NOT NULL,
    -- The signed note, exactly as served: the checkpoint text, a blank line, keydir's signature line.
    note      text        NOT NULL,
    signed_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT transparency_heads_size CHECK (size >= 1 AND epoch = size),
    CONSTRAINT transparency_heads_note CHECK (octet_length(note) BETWEEN 1 AND 65536)
);

-- Append-only: a head once served is evidence; it is never changed or deleted.
CREATE FUNCTION transparency_heads_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'transparency_heads is append-only';
END;
$$;

CREATE TRIGGER transparency_heads_append_only
    BEFORE UPDATE OR DELETE ON transparency_heads
    FOR EACH ROW EXECUTE FUNCTION transparency_heads_append_only();
