//! keyward-transparency against a real Postgres: akd's conformance suite, a directory end to end, damaged rows.

mod conformance;
mod corrupt;
mod directory;
mod helpers;
