-- keyward key directory, schema version 5: leases of the components' answer caches.
--
-- A component may answer a `keys` lookup from its own cache, but never `active` once a
-- revocation of that account has committed. So a revocation first records that it is
-- pending (a row here, committed at once, with an increasing `seq`), then waits until
-- every component whose cache lease is still valid has dropped that account (it reports
-- the last `seq` it has acted on), or until the lease ran out; only then does the
-- revocation's own transaction run and commit. Each component renews its lease a few
-- times a second; a component that stops renewing stops answering from its cache when
-- its lease ends, before keydir stops waiting for it.

-- One row per component process with a cache: `holder` is the process's random id.
CREATE TABLE cache_leases (
    holder      text        PRIMARY KEY,
    valid_until timestamptz NOT NULL,
    -- The last revocations_pending.seq whose account this cache has dropped.
    seen_seq    bigint      NOT NULL DEFAULT 0,
    CONSTRAINT cache_leases_holder_length CHECK (length(holder) BETWEEN 1 AND 64),
    CONSTRAINT cache_leases_seen_seq_positive CHECK (seen_seq >= 0)
);

-- Revocations about to commit, in order: what a renewing cache must drop. Pruned once
-- no lease can still need them.
CREATE TABLE revocations_pending (
    seq bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    jid text        NOT NULL,
    at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT revocations_pending_jid_length CHECK (length(jid) BETWEEN 1 AND 3071)
);
