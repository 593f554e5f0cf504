//! The auditor against a real keydir on a real Postgres: whole runs verified and cosigned, the cosignature routes, and the directory's database edited under it.

mod alarms;
mod common;
mod routes;
mod runs;
