//! The one TLS crypto provider of the process: rustls with ring, everywhere.
//!
//! reqwest is built without a provider of its own (so aws-lc is never compiled in): any
//! process that builds a reqwest client, even for plain HTTP, installs this one first.

/// Installs ring as the process's default rustls provider; later calls do nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
