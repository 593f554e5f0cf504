-- keyward key directory, schema version 3: typed statuses and structured notices.
--
-- An account's status and a notice's kind become Postgres enums, so that no other
-- value can be stored (the CHECKs that did this on text go). The HTTP contract has
-- the same enums (crate keyward-contract), so a status or a kind means the same
-- thing in the database, in keydir and in the component.
--
-- A notice no longer stores the XML that the component sends: everything in it is
-- the notice's subject's data, which the claim reads from the subject's rows (its
-- one bundle, which never changes in version 0; its revocation time and reason,
-- which never change once set). The component renders the XML from that, once.
-- Pending notices of the old form lose nothing: they already name their subject.

CREATE TYPE account_status AS ENUM ('active', 'revoked');
CREATE TYPE notice_kind AS ENUM ('key-relay', 'revoked');

-- Constraints and defaults that compare the column with text must go before its
-- type changes; the revocation-fields rule comes back on the enum.
ALTER TABLE accounts
    DROP CONSTRAINT accounts_status_known,
    DROP CONSTRAINT accounts_revocation_fields,
    ALTER COLUMN status DROP DEFAULT;
ALTER TABLE accounts
    ALTER COLUMN status TYPE account_status USING status::account_status,
    ALTER COLUMN status SET DEFAULT 'active',
    -- A revoked account always says when and why; an active one never does.
    ADD CONSTRAINT accounts_revocation_fields CHECK (
        (status = 'active' AND revoked_at IS NULL AND reason IS NULL)
        OR (status = 'revoked' AND revoked_at IS NOT NULL AND reason IS NOT NULL
            AND octet_length(reason) BETWEEN 1 AND 1024)
    );

-- The partial unique index compares kind with text: rebuilt on the enum.
DROP INDEX notices_one_revocation;
ALTER TABLE notices
    DROP CONSTRAINT notices_kind_known,
    ALTER COLUMN kind TYPE notice_kind USING kind::notice_kind,
    DROP COLUMN payload;
-- A revocation tells each recipient once, even if two revocations race.
CREATE UNIQUE INDEX notices_one_revocation ON notices (subject, recipient) WHERE kind = 'revoked';
