//! Secrets in configuration: values that never print, and bearer tokens compared in constant time.

use std::fmt;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Error;

/// A secret setting (a shared secret, a token, a database URL with its password). `Debug` and
/// `Display` print `[redacted]`; the memory is zeroized when dropped.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(SecretString::from(secret.into()))
    }

    /// The secret itself, for the one place that must use it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl FromStr for Secret {
    type Err = core::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

/// A bearer token a service checks. Only its SHA-256 digest is kept; `Debug` is redacted and
/// there is no `Display`, so it cannot end up in a log line; comparison is constant-time.
#[derive(Clone)]
pub struct Token {
    /// Comparing digests of equal length keeps the comparison constant-time whatever the
    /// presented token's length.
    digest: [u8; 32],
}

impl Token {
    /// The shortest token accepted.
    pub const MIN_LEN: usize = 16;

    /// Wraps a token. Refuses tokens shorter than [`Token::MIN_LEN`] bytes.
    pub fn new(secret: &str) -> Result<Self, Error> {
        if secret.len() < Self::MIN_LEN {
            return Err(Error::TokenTooShort { min: Self::MIN_LEN });
        }
        Ok(Self { digest: Sha256::digest(secret.as_bytes()).into() })
    }

    /// Whether `presented` is this token, in constant time.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        self.digest.ct_eq(&digest).into()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret: Secret = "hunter2-hunter2".parse().expect("infallible");
        assert_eq!(format!("{secret} {secret:?}"), "[redacted] [redacted]");
        assert_eq!(secret.expose(), "hunter2-hunter2");
        let token = Token::new("0123456789abcdef").expect("long enough");
        assert_eq!(format!("{token:?}"), "Token([redacted])");
    }

    #[test]
    fn tokens_match_exactly_and_short_ones_are_refused() {
        let token = Token::new("0123456789abcdef").expect("long enough");
        assert!(token.matches(b"0123456789abcdef"));
        for wrong in [&b"0123456789abcdeF"[..], b"0123456789abcdef0", b"", b"0123456789abcde"] {
            assert!(!token.matches(wrong), "{wrong:?}");
        }
        assert!(matches!(Token::new("short"), Err(Error::TokenTooShort { min: 16 })));
    }
}
