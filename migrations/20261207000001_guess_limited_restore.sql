-- keyward key directory, schema version 6: the guess-limited restore.
--
-- A version 1 secret blob opens only with an OPRF answer from keydir (docs/protocol.md
-- section 6.2), so every guess at a passphrase needs one evaluation, and keydir counts
-- them here. The OPRF key itself is NOT in this database: keydir derives each account's
-- key from a master seed it reads from its environment or a file (KEYWARD_OPRF_SEED), so
-- a copy of this database alone cannot test a single guess.
--
-- The count and the lock live in Postgres, not in a keydir process: they survive
-- restarts and every replica sees the same ones. An evaluation locks the account's row
-- here (FOR UPDATE) and raises the count in the transaction that records its challenge,
-- committed before the answer leaves; so two replicas cannot both hand out the last
-- allowed evaluation, and a crash after answering loses no count.

-- One row per account that asked for an evaluation.
CREATE TABLE restore_attempts (
    jid             text        PRIMARY KEY REFERENCES accounts (jid) ON DELETE CASCADE,
    -- Evaluations answered since the last valid restore proof or admin unlock: each is a
    -- failed guess until proven otherwise.
    attempts        integer     NOT NULL DEFAULT 0,
    -- When the count reached KEYWARD_RESTORE_MAX_ATTEMPTS: evaluations are refused from then
    -- on (`restore-locked`) until an admin unlocks the account, or, when keydir sets
    -- KEYWARD_RESTORE_LOCK_SECONDS, until that long has passed.
    locked_at       timestamptz,
    last_attempt_at timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT restore_attempts_attempts_range CHECK (attempts >= 0)
);

-- The challenges keydir handed out with its evaluations, each good for one restore proof
-- by the account it was issued to, until it expires. Several may be outstanding (a client
-- that retried, two devices); a proof deletes its own. Expired ones are deleted by the
-- account's next evaluation. A challenge is public (it travels through the component and
-- the XMPP server); it proves nothing without the identity key's signature.
CREATE TABLE restore_challenges (
    challenge  bytea       PRIMARY KEY,
    jid        text        NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
    issued_at  timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    CONSTRAINT restore_challenges_len CHECK (octet_length(challenge) = 32),
    CONSTRAINT restore_challenges_expiry CHECK (expires_at > issued_at)
);

-- An account's challenges (the expiry sweep of its next evaluation).
CREATE INDEX restore_challenges_by_jid ON restore_challenges (jid, expires_at);

-- An admin unlock is an audited action, like a revocation.
ALTER TABLE audit_log
    DROP CONSTRAINT audit_log_action_known,
    ADD CONSTRAINT audit_log_action_known CHECK (action IN ('revoke', 'unlock'));
