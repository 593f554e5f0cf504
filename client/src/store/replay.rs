//! The replay rule of protocol section 7 on the database: one sender's state and ids, an indexed insert per message.

use keyward_proto::{BareJid, Error as ProtoError, ReplayCache, ReplayRule, SenderState};
use rusqlite::{Connection, OptionalExtension, params};

/// The replay state inside one open transaction of the store.
pub(super) struct DbReplay<'t> {
    db: &'t Connection,
    rule: ReplayRule,
    failure: Option<rusqlite::Error>,
}

fn to_sql(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn from_sql(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}

impl<'t> DbReplay<'t> {
    pub(super) fn new(db: &'t Connection) -> Self {
        Self::with_rule(db, ReplayRule::V0)
    }

    /// The replay state applying another rule than the protocol's (tests use a small cap).
    pub(super) fn with_rule(db: &'t Connection, rule: ReplayRule) -> Self {
        Self { db, rule, failure: None }
    }

    /// The database error that made [`ReplayCache::admit`] refuse, if any.
    pub(super) fn failure(&mut self) -> Option<rusqlite::Error> {
        self.failure.take()
    }

    fn try_admit(&self, from: &str, msg_id: &str, ts_ms: u64) -> rusqlite::Result<Result<(), ProtoError>> {
        let row: Option<(i64, Option<i64>, i64)> = self
            .db
            .query_row("SELECT newest, floor, ids FROM replay_senders WHERE sender = ?1", [from], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()?;
        let state = SenderState {
            newest: row.map(|(newest, _, _)| from_sql(newest)),
            floor: row.and_then(|(_, floor, _)| floor).map(from_sql),
        };
        let seen = self
            .db
            .query_row("SELECT 1 FROM replay_ids WHERE sender = ?1 AND msg_id = ?2", params![from, msg_id], |_| Ok(()))
            .optional()?
            .is_some();
        if let Err(refused) = self.rule.check(&state, ts_ms, seen) {
            return Ok(Err(refused));
        }
        self.db.execute(
            "INSERT INTO replay_ids (sender, msg_id, ts_ms) VALUES (?1, ?2, ?3)",
            params![from, msg_id, to_sql(ts_ms)],
        )?;
        let newest = state.newest.map_or(ts_ms, |n| n.max(ts_ms));
        let mut ids = row.map_or(0, |(_, _, ids)| ids) + 1;
        // Ids outside the window are refused by it anyway.
        ids -= i64::try_from(self.db.execute(
            "DELETE FROM replay_ids WHERE sender = ?1 AND ts_ms < ?2",
            params![from, to_sql(self.rule.forget_below(newest))],
        )?)
        .unwrap_or(0);
        // Over the cap: the oldest go, and the floor rises to them.
        let mut floor = state.floor;
        let cap = i64::try_from(self.rule.per_sender.max(1)).unwrap_or(i64::MAX);
        if ids > cap {
            let excess = ids - cap;
            let highest: Option<i64> = self.db.query_row(
                "SELECT MAX(ts_ms) FROM (SELECT ts_ms FROM replay_ids WHERE sender = ?1 ORDER BY ts_ms LIMIT ?2)",
                params![from, excess],
                |row| row.get(0),
            )?;
            self.db.execute(
                "DELETE FROM replay_ids WHERE rowid IN
                     (SELECT rowid FROM replay_ids WHERE sender = ?1 ORDER BY ts_ms LIMIT ?2)",
                params![from, excess],
            )?;
            ids = cap;
            if let Some(highest) = highest.map(from_sql) {
                floor = Some(floor.map_or(highest, |f| f.max(highest)));
            }
        }
        self.db.execute(
            "INSERT INTO replay_senders (sender, newest, floor, ids) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (sender) DO UPDATE SET newest = excluded.newest, floor = excluded.floor, ids = excluded.ids",
            params![from, to_sql(newest), floor.map(to_sql), ids],
        )?;
        Ok(Ok(()))
    }
}

impl ReplayCache for DbReplay<'_> {
    fn admit(&mut self, from: &BareJid, msg_id: &str, ts_ms: u64) -> Result<(), ProtoError> {
        match self.try_admit(from.as_str(), msg_id, ts_ms) {
            Ok(verdict) => verdict,
            Err(failure) => {
                // Fail closed: the caller reports the database error, and nothing is shown.
                self.failure = Some(failure);
                Err(ProtoError::Replay)
            }
        }
    }
}
