//! keydir's public transparency routes as the auditor calls them: typed answers, base64 decoded, errors typed.

use crate::error::{AuditorError, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_contract::Problem;
use keyward_contract::cosignatures::{CosignatureRequest, CosignatureResponse};
use keyward_contract::transparency::{
    AuditProofResponse, ConsistencyProofResponse, HeadResponse, InclusionProofResponse, LogKeyResponse,
};
use keyward_proto::transparency::heads::LogHash;
use keyward_proto::transparency::heads::proof::proof_from_bytes;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// How long one request may take.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// A keydir's base URL and an HTTP client.
#[derive(Clone, Debug)]
pub struct Keydir {
    base: String,
    http: reqwest::Client,
}

/// Decodes standard padded base64.
pub fn base64(text: &str, what: &str) -> Result<Vec<u8>> {
    STANDARD.decode(text).map_err(|_| AuditorError::Malformed(format!("{what} is not base64")))
}

/// Decodes a base64 32 byte hash.
pub fn hash(text: &str, what: &str) -> Result<[u8; 32]> {
    base64(text, what)?.try_into().map_err(|_| AuditorError::Malformed(format!("{what} is not 32 bytes")))
}

/// Decodes a base64 concatenation of proof hashes.
pub fn proof(text: &str, what: &str) -> Result<Vec<LogHash>> {
    proof_from_bytes(&base64(text, what)?).map_err(|err| AuditorError::Malformed(format!("{what}: {err}")))
}

impl Keydir {
    /// The keydir at `base` (e.g. `https://keydir.example.org`).
    pub fn new(base: &str) -> Result<Self> {
        keyward_service::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|err| AuditorError::Usage(format!("HTTP client: {err}")))?;
        Ok(Self { base: base.trim_end_matches('/').to_owned(), http })
    }

    async fn read<T: DeserializeOwned>(route: &str, response: reqwest::Response) -> Result<T> {
        let status = response.status();
        if !status.is_success() {
            let detail = match response.json::<Problem>().await {
                Ok(problem) => format!("{}: {}", problem.kind, problem.detail),
                Err(_) => String::new(),
            };
            return Err(AuditorError::Http { route: route.to_owned(), status: status.as_u16(), detail });
        }
        response.json::<T>().await.map_err(|err| AuditorError::Malformed(format!("{route}: {err}")))
    }

    async fn get<T: DeserializeOwned>(&self, route: &str) -> Result<T> {
        let response = self.http.get(format!("{}{route}", self.base)).send().await?;
        Self::read(route, response).await
    }

    /// `GET /v0/transparency/key`.
    pub async fn key(&self) -> Result<LogKeyResponse> {
        self.get("/v0/transparency/key").await
    }

    /// `GET /v0/transparency/head`; `None` when no head is signed yet (404).
    pub async fn head(&self) -> Result<Option<HeadResponse>> {
        match self.get("/v0/transparency/head").await {
            Err(AuditorError::Http { status: 404, .. }) => Ok(None),
            other => other.map(Some),
        }
    }

    /// `GET /v0/transparency/consistency`: the proof from size `from` to `to`.
    pub async fn consistency(&self, from: u64, to: u64) -> Result<Vec<LogHash>> {
        let answer: ConsistencyProofResponse =
            self.get(&format!("/v0/transparency/consistency?from={from}&to={to}")).await?;
        if (answer.from, answer.to) != (from, to) {
            return Err(AuditorError::Malformed("a consistency proof of other sizes".into()));
        }
        proof(&answer.proof, "the consistency proof")
    }

    /// `GET /v0/transparency/inclusion`: the proof of leaf `index` in the tree of `size`.
    pub async fn inclusion(&self, index: u64, size: u64) -> Result<Vec<LogHash>> {
        let answer: InclusionProofResponse =
            self.get(&format!("/v0/transparency/inclusion?index={index}&size={size}")).await?;
        if (answer.index, answer.size) != (index, size) {
            return Err(AuditorError::Malformed("an inclusion proof of another leaf or size".into()));
        }
        proof(&answer.proof, "the inclusion proof")
    }

    /// `GET /v0/transparency/audit`: akd's append-only proof from epoch `start` towards `end`.
    pub async fn audit(&self, start: u64, end: u64) -> Result<AuditProofResponse> {
        self.get(&format!("/v0/transparency/audit?start={start}&end={end}")).await
    }

    /// `POST /v0/transparency/cosignatures`.
    pub async fn submit(&self, size: u64, line: &str) -> Result<CosignatureResponse> {
        let route = "/v0/transparency/cosignatures";
        let body = CosignatureRequest { size, signature: line.to_owned() };
        let response = self.http.post(format!("{}{route}", self.base)).json(&body).send().await?;
        Self::read(route, response).await
    }
}
