//! Database access: small functions, one transaction each, returning API errors directly.

pub mod accounts;
pub mod admin;
pub mod notices;
