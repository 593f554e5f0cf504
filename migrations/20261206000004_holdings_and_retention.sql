-- keyward key directory, schema version 4: the holding cap and notice retention.
--
-- A lookup that would hand a requester keys it does not hold yet is refused once
-- it holds KEYWARD_MAX_HOLDINGS keys (problem `holding-limit`): keydir counts the
-- requester's edges, which needs holders by holder. The primary key (jid, holder)
-- serves only the revocation fan-out (all holders of one jid).
CREATE INDEX holders_by_holder ON holders (holder);

-- Acknowledged notices are deleted once older than KEYWARD_NOTICE_RETENTION_HOURS,
-- oldest first in bounded batches; unacknowledged ones are never deleted (they are
-- in notices_pending). The revocation count that the admin API repeats on an
-- idempotent second call comes from the revocation's audit row, not from these rows.
CREATE INDEX notices_acked ON notices (acked_at) WHERE acked_at IS NOT NULL;
