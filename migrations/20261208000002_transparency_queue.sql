-- keyward key directory, schema version 8: the transparency map's queue of pending updates,
-- and the epochs keydir has published.
--
-- Only keydir's epoch publisher writes the map (the akd_* tables). A bundle publish or an
-- admin revocation does not touch them: in the same transaction that writes the store of
-- record (bundles, accounts), it adds its (label, value) here. Every few seconds one
-- replica (the holder of a Postgres advisory lock) publishes what is pending as one akd
-- epoch, records the epoch below and deletes what it published. See
-- docs/protocol.md section 15.1 for the formats and the crash-safety argument.

-- Updates waiting for the next epoch. A label is an account's canonical bare JID (UTF-8);
-- a value a map value of keyward-proto's transparency::value (0x01: the SHA-256 of the
-- bundle as stored, 0x02: the revocation). Several rows of one label: the newest (highest
-- id; a label's rows are written under its account's row lock, so id order is their commit
-- order) is the one published.
CREATE TABLE transparency_pending (
    id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    label     bytea       NOT NULL,
    value     bytea       NOT NULL,
    -- The epoch a publisher claimed the row for before it called akd (NULL: not claimed
    -- yet). If keydir dies after akd committed that epoch but before the row was deleted,
    -- the next publisher finds the epoch in akd and not below, records it and deletes the
    -- rows claimed for it; if it died before akd committed, the claim is simply taken over.
    epoch     bigint,
    queued_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT transparency_pending_value CHECK (octet_length(value) >= 1 AND octet_length(label) >= 1),
    CONSTRAINT transparency_pending_epoch CHECK (epoch IS NULL OR epoch >= 1)
);

-- The serving check (a bundle is served only when the map or the queue commits to it) reads by label.
CREATE INDEX transparency_pending_label ON transparency_pending (label);

-- Every epoch keydir published: the leaves that the signed epoch heads chain. Written in the
-- transaction that deletes the epoch's rows from the queue; the epoch numbers are akd's and
-- follow each other without gaps (the publisher refuses to go on when akd's latest epoch is
-- neither this table's last nor the one after it).
CREATE TABLE transparency_epochs (
    epoch        bigint      PRIMARY KEY,
    -- akd's root hash of the tree at this epoch (32 bytes).
    root_hash    bytea       NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT transparency_epochs_epoch CHECK (epoch >= 1),
    CONSTRAINT transparency_epochs_root CHECK (octet_length(root_hash) = 32)
);

-- The accounts from before the map: each active bundle, and each revocation, queued for the
-- first epoch, in the formats of keyward-proto (transparency::value). revoked_at is whole
-- seconds (int8send: 8 bytes, big-endian).
INSERT INTO transparency_pending (label, value)
SELECT convert_to(a.jid, 'UTF8'),
       CASE WHEN a.status = 'active'
            THEN '\x01'::bytea || sha256(convert_to(b.xml, 'UTF8'))
            ELSE '\x02'::bytea || decode(b.fingerprint, 'hex')
                 || int8send(floor(extract(epoch FROM a.revoked_at))::bigint)
                 || convert_to(COALESCE(a.reason, ''), 'UTF8')
       END
  FROM accounts a JOIN bundles b ON b.jid = a.jid
 ORDER BY a.jid;
