-- The local state of one account on one device (client/src/store.rs). Version 1.
-- Never a private key in the clear: the own keys are kept only as the passphrase-sealed blob.

-- The account's own bundle and sealed secret, exactly as published and stored on the server.
CREATE TABLE account (
    jid    TEXT PRIMARY KEY,
    bundle TEXT NOT NULL,   -- <bundle/> XML, verified again whenever read
    secret TEXT NOT NULL    -- <secret/> XML, sealed with the passphrase (Argon2id)
);

-- Contacts: the pinned key (trust on first use or verified), a held-back changed key, revocation.
CREATE TABLE contacts (
    jid            TEXT PRIMARY KEY,   -- normalised bare JID
    pinned         TEXT,               -- <bundle/> XML of the pinned key
    pinned_at_ms   INTEGER,            -- when it was pinned (this device's clock); NULL if unknown
    trust          TEXT NOT NULL CHECK (trust IN ('tofu', 'verified')),
    pending        TEXT,               -- <bundle/> XML of a changed key: never used, held for the user
    revoked_at     TEXT,               -- RFC 3339; set once a revocation was applied (final)
    revoked_fp     TEXT,               -- hex fingerprint of the revoked key
    revoked_reason TEXT
);

-- The replay rule (protocol section 7): per sender, the newest signed time and a floor ...
CREATE TABLE replay_senders (
    sender TEXT PRIMARY KEY,
    newest INTEGER NOT NULL,   -- largest ts_ms accepted from the sender
    floor  INTEGER,            -- messages with ts_ms <= floor are refused
    ids    INTEGER NOT NULL    -- how many rows of replay_ids the sender has
);

-- ... and the ids accepted inside the window.
CREATE TABLE replay_ids (
    sender TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    ts_ms  INTEGER NOT NULL,
    PRIMARY KEY (sender, msg_id)
);
CREATE INDEX replay_ids_by_age ON replay_ids (sender, ts_ms);

-- Stanzas refused for a reason the user may need to prove later (e.g. signed by a changed key).
CREATE TABLE evidence (
    id         INTEGER PRIMARY KEY,
    kept_at_ms INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    sender     TEXT NOT NULL,
    xml        TEXT NOT NULL
);
