//! After a chaos or soak run: is every bundle the load published still served, with the same key?

use std::time::Duration;

use anyhow::Result;
use keyward_client::keyward_proto::BareJid;
use keyward_client::{Account, KeyEvent};

/// What the directory answered for the published accounts.
#[derive(Debug, Default)]
pub(crate) struct Audit {
    /// Accounts checked.
    pub(crate) checked: usize,
    /// Accounts whose bundle is gone or has another key: (account, what was found).
    pub(crate) lost: Vec<(BareJid, String)>,
}

/// Looks up every account of `published` (account, fingerprint hex) with a fresh session of
/// `account`; an account must come back with its fingerprint, or as revoked (its bundle kept).
/// A lookup that fails is retried for up to 20 s before it counts as lost.
pub(crate) async fn bundles(account: &Account, published: &[(BareJid, String)]) -> Result<Audit> {
    let mut session = crate::load::create(account).await?;
    let mut audit = Audit::default();
    for (jid, fingerprint) in published {
        audit.checked += 1;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let found = loop {
            match session.refresh_key(jid).await {
                Ok(event) => break Ok(event),
                Err(err) if tokio::time::Instant::now() > deadline => break Err(err),
                Err(keyward_client::Error::Connection(_)) => session = crate::load::connect(account).await?,
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let problem = match found {
            Ok(KeyEvent::Pinned { fingerprint: found, .. }) if found.to_hex() == *fingerprint => None,
            Ok(KeyEvent::Revoked { .. }) => None,
            Ok(other) => Some(format!("{other:?}")),
            Err(err) => Some(format!("lookup failed: {err}")),
        };
        if let Some(problem) = problem {
            audit.lost.push((jid.clone(), problem));
        }
    }
    let _ = session.close().await;
    Ok(audit)
}
