-- Version 2: key transparency (protocol section 15.3). One row: the directory's keys this
-- device pinned, and the newest epoch head it verified (never replaced by a smaller one).
CREATE TABLE transparency (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    origin        TEXT,               -- the epoch log's origin; NULL while the component offers none
    log_key       TEXT,               -- keydir's C2SP verifier key for heads
    vrf_key       TEXT,               -- akd's VRF public key, base64
    checked_at_ms INTEGER NOT NULL,   -- when the component's disco#info was last read
    head          TEXT,               -- the newest verified signed head (C2SP note text)
    head_size     INTEGER             -- its size
);
