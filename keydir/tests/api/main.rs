//! keydir's integration tests: a real keydir over a real Postgres, spoken to over real HTTP.

mod admin;
mod auth;
mod component;
mod edges;
mod helpers;
mod leases;
mod migrations;
mod offline;
mod ops;
mod outbox;
mod quotas;
mod replicas;
mod restore;
mod restore_checks;
mod tls;
mod transparency;
