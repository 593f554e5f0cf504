-- keyward key directory, schema version 1.
--
-- keydir is the only service that touches this database. Every row that a
-- client relies on is guarded by a constraint here, so that concurrent
-- requests (two publishes, two revocations, a lookup racing a revocation)
-- cannot leave it inconsistent whatever the application does.

-- One row per account (bare JID) that has published keys.
-- Revocation is terminal: status only ever goes from 'active' to 'revoked'.
CREATE TABLE accounts (
    jid         text        PRIMARY KEY,
    status      text        NOT NULL DEFAULT 'active',
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    reason      text,
    -- JIDs are stored in the normal form keyward-proto produces (lowercase).
    -- Not checked with lower(): its result depends on the database's locale.
    CONSTRAINT accounts_jid_length CHECK (length(jid) BETWEEN 1 AND 3071),
    CONSTRAINT accounts_status_known CHECK (status IN ('active', 'revoked')),
    -- A revoked account always says when and why; an active one never does.
    CONSTRAINT accounts_revocation_fields CHECK (
        (status = 'active' AND revoked_at IS NULL AND reason IS NULL)
        OR (status = 'revoked' AND revoked_at IS NOT NULL AND reason IS NOT NULL
            AND octet_length(reason) BETWEEN 1 AND 1024)
    )
);

-- Listing accounts by status, in JID order (the admin list's keyset pagination).
CREATE INDEX accounts_by_status ON accounts (status, jid);

-- The account's public bundle, exactly one per account: keys never rotate in
-- version 0 (a compromised account is revoked and the user makes a new one).
-- The fields are stored next to the XML so that they can be queried.
CREATE TABLE bundles (
    jid          text        PRIMARY KEY REFERENCES accounts (jid) ON DELETE CASCADE,
    fingerprint  text        NOT NULL,
    ik           bytea       NOT NULL,
    ek           bytea       NOT NULL,
    created_unix bigint      NOT NULL,
    sig          bytea       NOT NULL,
    xml          text        NOT NULL,
    stored_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT bundles_fingerprint_hex CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
    CONSTRAINT bundles_ik_len CHECK (octet_length(ik) = 32),
    CONSTRAINT bundles_ek_len CHECK (octet_length(ek) = 32),
    CONSTRAINT bundles_sig_len CHECK (octet_length(sig) = 64),
    CONSTRAINT bundles_created_positive CHECK (created_unix >= 0),
    CONSTRAINT bundles_xml_size CHECK (octet_length(xml) <= 1024)
);

-- The passphrase-sealed private keys: opaque to the server. Replaced on a
-- passphrase change, so only the latest one is kept.
CREATE TABLE secret_blobs (
    jid        text        PRIMARY KEY REFERENCES accounts (jid) ON DELETE CASCADE,
    kdf_m_kib  integer     NOT NULL,
    kdf_t      integer     NOT NULL,
    kdf_p      integer     NOT NULL,
    xml        text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT secret_blobs_kdf_positive CHECK (kdf_m_kib > 0 AND kdf_t > 0 AND kdf_p > 0),
    CONSTRAINT secret_blobs_xml_size CHECK (octet_length(xml) <= 4096)
);

-- Who holds whose key: `holder` received `jid`'s bundle (through a relay or a
-- lookup) and must hear of its revocation. `holder` may be on any domain and
-- need not have an account here. The primary key serves the revocation
-- fan-out (all holders of one jid).
CREATE TABLE holders (
    jid        text        NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
    holder     text        NOT NULL,
    first_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (jid, holder),
    CONSTRAINT holders_holder_length CHECK (length(holder) BETWEEN 1 AND 3071),
    CONSTRAINT holders_not_self CHECK (holder <> jid)
);

-- The notice outbox: messages the component must deliver, at least once.
-- A claim leases a notice until `lease_until`; an acknowledged notice keeps
-- its row with `acked_at` set. Unacknowledged notices whose lease ran out are
-- handed out again.
CREATE TABLE notices (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recipient   text        NOT NULL,
    kind        text        NOT NULL,
    -- The account the notice is about (the relayed or revoked key's owner).
    subject     text        NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
    payload     text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz,
    attempts    integer     NOT NULL DEFAULT 0,
    acked_at    timestamptz,
    CONSTRAINT notices_kind_known CHECK (kind IN ('key-relay', 'revoked')),
    CONSTRAINT notices_recipient_length CHECK (length(recipient) BETWEEN 1 AND 3071),
    CONSTRAINT notices_attempts_positive CHECK (attempts >= 0)
);

-- The claim scan: unacknowledged notices in id order. Small, because
-- acknowledged rows drop out of it.
CREATE INDEX notices_pending ON notices (id) WHERE acked_at IS NULL;

-- A revocation tells each recipient once, even if two revocations race.
CREATE UNIQUE INDEX notices_one_revocation ON notices (subject, recipient) WHERE kind = 'revoked';

-- Wakes long-polling claimers when notices are queued. NOTIFY is delivered at
-- commit, so a claimer woken by it sees the new rows.
CREATE FUNCTION notices_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('keyward_notices', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER notices_wake AFTER INSERT ON notices
    FOR EACH STATEMENT EXECUTE FUNCTION notices_wake();

-- What admins did, append-only: one row per action that changed something.
CREATE TABLE audit_log (
    id     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     timestamptz NOT NULL DEFAULT now(),
    action text        NOT NULL,
    jid    text        NOT NULL,
    detail jsonb       NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT audit_log_action_known CHECK (action IN ('revoke')),
    CONSTRAINT audit_log_detail_object CHECK (jsonb_typeof(detail) = 'object')
);

-- The audit log is read newest first.
CREATE INDEX audit_log_by_jid ON audit_log (jid, id);
