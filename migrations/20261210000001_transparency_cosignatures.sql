-- keyward key directory, schema version 10: the auditors' cosignatures of the signed heads.
--
-- An auditor (keyward-auditor, run by anyone) follows the heads, verifies the epoch log's
-- consistency and akd's append-only proof of every epoch, then cosigns the head it verified
-- (C2SP tlog-cosignature/v1, a type 0x04 Ed25519 key) and posts the signature line to keydir.
-- keydir keeps a cosignature only if it verifies over the stored head of that size with one of
-- the auditor keys it is configured with (KEYWARD_TRANSPARENCY_AUDITORS), and serves the newest
-- one of each configured auditor appended to the newest head. A cosignature proves what an
-- auditor saw: the table is append-only like transparency_heads. Clients verify every served
-- cosignature themselves; nothing here is trusted by them.

CREATE TABLE transparency_cosignatures (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The head's size: the row of transparency_heads of that size (no foreign key: both tables
    -- are evidence, neither cascades into the other).
    size        bigint      NOT NULL,
    -- The auditor's key name and 4 byte key ID (its line's name and first 4 signature bytes).
    key_name    text        NOT NULL,
    key_id      bytea       NOT NULL,
    -- The time the auditor signed at (seconds since the Unix epoch, from the signature).
    signed_at   bigint      NOT NULL,
    -- The signature line exactly as served: an em dash, a space, the name, a space, base64.
    line        text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT transparency_cosignatures_key_id CHECK (octet_length(key_id) = 4),
    CONSTRAINT transparency_cosignatures_signed_at CHECK (signed_at >= 0),
    CONSTRAINT transparency_cosignatures_line CHECK (octet_length(line) BETWEEN 1 AND 1024),
    -- The same cosignature posted twice (a retry) is one row; the index also finds the newest
    -- cosignature of each auditor for a head.
    CONSTRAINT transparency_cosignatures_once UNIQUE (size, key_name, key_id, signed_at)
);

-- Append-only: a cosignature once stored is evidence; it is never changed or deleted.
CREATE FUNCTION transparency_cosignatures_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'transparency_cosignatures is append-only';
END;
$$;

CREATE TRIGGER transparency_cosignatures_append_only
    BEFORE UPDATE OR DELETE ON transparency_cosignatures
    FOR EACH ROW EXECUTE FUNCTION transparency_cosignatures_append_only();
