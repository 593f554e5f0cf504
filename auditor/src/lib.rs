//! keyward-auditor: follows a keydir's signed epoch heads over its public routes, verifies the epoch log and akd's append-only proof of every epoch, and cosigns (C2SP tlog-cosignature/v1) the heads it verified.
//!
//! The adversary is the directory: the auditor trusts nothing keydir says that a signature or a
//! proof does not bind to the pinned log key. A fork, a rollback, an inconsistent log or an
//! audit proof that fails is an alarm ([`AuditorError::alarm`]): logged with `alarm = "..."`,
//! its evidence (both signed notes) kept in the state directory, and no head is cosigned after
//! it. `docs/protocol.md` section 15.2.11 lists the checks in order.

pub mod audit;
pub mod cosigner;
pub mod error;
pub mod frontier;
pub mod keydir;
pub mod round;
pub mod state;

pub use cosigner::Cosigner;
pub use error::{AuditorError, Result};
pub use keydir::Keydir;
pub use round::{Auditor, Outcome};
