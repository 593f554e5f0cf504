//! A throwaway certificate authority and a server certificate for a test domain, so that
//! clients verify TLS exactly as they would against a real server (no verification turned off).

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

pub use keyward_service::tls::install_crypto_provider;

/// From a day ago to thirty days ahead.
fn validity() -> (time::OffsetDateTime, time::OffsetDateTime) {
    let now = time::OffsetDateTime::now_utc();
    (now - time::Duration::days(1), now + time::Duration::days(30))
}

/// The PEM files a TLS server needs, and the CA certificate its clients must trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain (leaf then CA), PEM.
    pub cert: PathBuf,
    /// The server's private key, PEM (PKCS#8).
    pub key: PathBuf,
    /// The CA certificate, PEM: what a client trusts (e.g. through `SSL_CERT_FILE`).
    pub ca: PathBuf,
}

/// A CA made for one test run and a certificate for `domain` signed by it, in a folder that
/// is removed on drop.
#[derive(Debug)]
pub struct TestCa {
    dir: TempDir,
    files: TlsFiles,
}

impl TestCa {
    /// Makes the CA and a server certificate for `domain` (and `*.domain`).
    pub fn new(domain: &str) -> anyhow::Result<Self> {
        Self::with_names(domain, &[domain.to_owned(), format!("*.{domain}")])
    }

    /// Makes the CA and a server certificate for this machine's loopback: `localhost`,
    /// `127.0.0.1` and `::1` (for Postgres and keydir listening on loopback).
    pub fn loopback() -> anyhow::Result<Self> {
        Self::with_names("localhost", &["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()])
    }

    /// Makes the CA and a server certificate with common name `name` for `alt_names`
    /// (DNS names, or IP addresses written as such).
    pub fn with_names(name: &str, alt_names: &[String]) -> anyhow::Result<Self> {
        let dir = crate::temp_dir("keyward-tls-")?;
        let files = Self::write(dir.path(), name, alt_names)?;
        Ok(Self { dir, files })
    }

    fn write(dir: &Path, domain: &str, alt_names: &[String]) -> anyhow::Result<TlsFiles> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.distinguished_name.push(DnType::CommonName, "keyward test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        // rcgen's default validity (1975 to 4096) makes Erlang's pkix (ejabberd) call the
        // certificates expired: a short validity around now, as a real CA would give.
        let (not_before, not_after) = validity();
        ca_params.not_before = not_before;
        ca_params.not_after = not_after;
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let mut leaf_params = CertificateParams::new(alt_names.to_vec())?;
        leaf_params.distinguished_name.push(DnType::CommonName, domain);
        leaf_params.not_before = not_before;
        leaf_params.not_after = not_after;
        let leaf_key = KeyPair::generate()?;
        let leaf = leaf_params.signed_by(&leaf_key, &issuer)?;

        let files = TlsFiles { cert: dir.join("server.crt"), key: dir.join("server.key"), ca: dir.join("ca.crt") };
        std::fs::write(&files.cert, format!("{}{}", leaf.pem(), ca_cert.pem())).context("writing the certificate")?;
        std::fs::write(&files.key, leaf_key.serialize_pem()).context("writing the key")?;
        std::fs::write(&files.ca, ca_cert.pem()).context("writing the CA certificate")?;
        Ok(files)
    }

    /// The files.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The folder holding them.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
