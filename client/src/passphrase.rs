//! The passphrase policy: a new passphrase must resist guessing on its own, and is never the XMPP password.
//!
//! The passphrase seals the private keys stored on the server. keydir limits the guesses
//! it helps with (protocol section 6.2), but someone holding both its database and its OPRF
//! seed can guess offline against Argon2id alone, so the passphrase itself must be strong:
//! the estimate of [`zxcvbn`] (Dropbox's strength estimator: dictionaries, names, keyboard
//! patterns, dates, l33t) must reach [`MIN_SCORE`], at least 10^10 guesses. A passphrase equal
//! to the XMPP password is refused under every policy: the server checks that password at
//! each login, so it knows it (or enough to test a guess at it).

use keyward_proto::BareJid;
use zxcvbn::Score;

/// The lowest accepted estimate: "safely unguessable", at least 10^10 guesses.
pub const MIN_SCORE: Score = Score::Three;

/// How a new passphrase (first use, or a change) is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PassphrasePolicy {
    /// Strong enough ([`MIN_SCORE`]) and not the XMPP password: the default.
    #[default]
    Strict,
    /// Any passphrase but the XMPP password. For tests only (`--allow-weak-passphrase`):
    /// a weak passphrase makes the keys as weak as it is to whoever holds keydir's database
    /// and OPRF seed.
    AllowWeakForTests,
}

/// Why a new passphrase was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// The strength estimate is below [`MIN_SCORE`]; the reason and hints are the estimator's.
    #[error("the passphrase is too easy to guess{}{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default(), hints_text(hints))]
    Weak {
        /// The estimator's warning, if it gave one.
        reason: Option<String>,
        /// Its suggestions.
        hints: Vec<String>,
    },
    /// It is the XMPP password.
    #[error("the passphrase must not be your XMPP password: the server knows that one")]
    IsPassword,
}

fn hints_text(hints: &[String]) -> String {
    if hints.is_empty() { String::new() } else { format!(" ({})", hints.join(" ")) }
}

impl PassphrasePolicy {
    /// Checks a new passphrase for `jid`, whose XMPP password is `password`.
    pub fn check(self, passphrase: &str, password: &str, jid: &BareJid) -> Result<(), Refused> {
        if constant_time_eq(passphrase.as_bytes(), password.as_bytes()) {
            return Err(Refused::IsPassword);
        }
        if self == Self::AllowWeakForTests {
            return Ok(());
        }
        // The account's own name and server make a passphrase no stronger.
        let inputs = [jid.local().unwrap_or_default(), jid.domain(), jid.as_str()];
        let estimate = zxcvbn::zxcvbn(passphrase, &inputs);
        if estimate.score() >= MIN_SCORE {
            return Ok(());
        }
        let feedback = estimate.feedback();
        Err(Refused::Weak {
            reason: feedback.and_then(|f| f.warning()).map(|w| w.to_string()),
            hints: feedback.map(|f| f.suggestions().iter().map(ToString::to_string).collect()).unwrap_or_default(),
        })
    }
}

/// Compares without an early exit on the first differing byte (the length still shows).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid() -> BareJid {
        BareJid::parse("alice@example.test").expect("valid")
    }

    #[test]
    fn weak_passphrases_are_refused_with_the_estimators_reason() {
        for weak in ["password", "alice2024", "qwertyuiop", "Password123!", "alice@example.test", "example.test1"] {
            match PassphrasePolicy::Strict.check(weak, "xmpp password", &jid()) {
                Err(refused @ Refused::Weak { .. }) => assert!(refused.to_string().contains("too easy"), "{refused}"),
                other => panic!("{weak:?} was not refused as weak: {other:?}"),
            }
        }
        let Err(Refused::Weak { reason, hints }) = PassphrasePolicy::Strict.check("password", "x", &jid()) else {
            panic!("refused");
        };
        assert!(reason.is_some() || !hints.is_empty(), "the user is told why");
    }

    #[test]
    fn strong_passphrases_pass() {
        for strong in ["correct horse battery staple", "vN7#qLm2$wPz9!tR", "Ceci n'est pas une pipe, 1929"] {
            assert_eq!(PassphrasePolicy::Strict.check(strong, "xmpp password", &jid()), Ok(()), "{strong}");
        }
    }

    #[test]
    fn the_xmpp_password_is_refused_under_every_policy() {
        let password = "correct horse battery staple";
        for policy in [PassphrasePolicy::Strict, PassphrasePolicy::AllowWeakForTests] {
            assert_eq!(policy.check(password, password, &jid()), Err(Refused::IsPassword));
        }
        assert_eq!(PassphrasePolicy::AllowWeakForTests.check("pw", "other", &jid()), Ok(()));
    }
}
