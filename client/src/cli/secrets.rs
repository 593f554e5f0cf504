//! Password and passphrase input: a file, an environment variable, or a prompt on the terminal.

use anyhow::{Context, bail};
use keyward_proto::BareJid;
use keyward_proto::restore::RecoveryCode;
use secrecy::{ExposeSecret, SecretString};
use std::io::IsTerminal;
use std::path::Path;

/// The environment variable holding the XMPP password.
pub const PASSWORD_ENV: &str = "KEYWARD_PASSWORD";
/// The environment variable holding the key passphrase.
pub const PASSPHRASE_ENV: &str = "KEYWARD_PASSPHRASE";

fn from_file(path: &Path, what: &str) -> anyhow::Result<SecretString> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the {what} file {}", path.display()))?;
    let line = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
    if line.is_empty() {
        bail!("the {what} file {} is empty", path.display());
    }
    Ok(SecretString::from(line.to_owned()))
}

fn from_env(name: &str) -> Option<SecretString> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).map(SecretString::from)
}

fn prompt(label: &str, env: &str, flag: &str) -> anyhow::Result<SecretString> {
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to ask for the {label}: set {env} or pass {flag}");
    }
    let value = rpassword::prompt_password(format!("{label}: ")).context("cannot read from the terminal")?;
    if value.is_empty() {
        bail!("the {label} is empty");
    }
    Ok(SecretString::from(value))
}

/// The XMPP password of `jid`: `--password-file`, else `KEYWARD_PASSWORD`, else a prompt.
pub fn password(file: Option<&Path>, jid: &BareJid) -> anyhow::Result<SecretString> {
    if let Some(file) = file {
        return from_file(file, "password");
    }
    if let Some(value) = from_env(PASSWORD_ENV) {
        return Ok(value);
    }
    prompt(&format!("XMPP password for {jid}"), PASSWORD_ENV, "--password-file")
}

/// Where one passphrase comes from: its file flag, its environment variable, and the prompt's words.
struct Source {
    what: &'static str,
    env: &'static str,
    flag: &'static str,
    prompt: &'static str,
    again: &'static str,
}

/// The passphrase of `source`: the file, else the environment variable, else a prompt (asked
/// twice when `confirm`, so a typo cannot lock the keys away).
fn passphrase_from(file: Option<&Path>, source: &Source, confirm: bool) -> anyhow::Result<SecretString> {
    if let Some(file) = file {
        return from_file(file, source.what);
    }
    if let Some(value) = from_env(source.env) {
        return Ok(value);
    }
    let first = prompt(source.prompt, source.env, source.flag)?;
    if confirm {
        let again = prompt(source.again, source.env, source.flag)?;
        if first.expose_secret() != again.expose_secret() {
            bail!("the two passphrases differ");
        }
    }
    Ok(first)
}

/// The key passphrase: `--passphrase-file`, else `KEYWARD_PASSPHRASE`, else a
/// prompt (asked twice when `confirm`).
pub fn passphrase(file: Option<&Path>, confirm: bool) -> anyhow::Result<SecretString> {
    let source = Source {
        what: "passphrase",
        env: PASSPHRASE_ENV,
        flag: "--passphrase-file",
        prompt: "keyward passphrase (protects your keys)",
        again: "the same passphrase again",
    };
    passphrase_from(file, &source, confirm)
}

/// The environment variable holding the new passphrase of `keyward passphrase`.
pub const NEW_PASSPHRASE_ENV: &str = "KEYWARD_NEW_PASSPHRASE";

/// The new passphrase of `keyward passphrase`: `--new-passphrase-file`, else
/// `KEYWARD_NEW_PASSPHRASE`, else a prompt, asked twice.
pub fn new_passphrase(file: Option<&Path>) -> anyhow::Result<SecretString> {
    let source = Source {
        what: "new passphrase",
        env: NEW_PASSPHRASE_ENV,
        flag: "--new-passphrase-file",
        prompt: "new keyward passphrase",
        again: "the same new passphrase again",
    };
    passphrase_from(file, &source, true)
}

/// The environment variable holding a recovery code (`keyward recover`).
pub const RECOVERY_CODE_ENV: &str = "KEYWARD_RECOVERY_CODE";

/// The recovery code for `keyward recover`: `--recovery-code-file`, else `KEYWARD_RECOVERY_CODE`,
/// else a prompt. Read as a person typed it (case, spaces and dashes ignored); a typo is caught
/// by its checksum before anything is asked of the server.
pub fn recovery_code(file: Option<&Path>) -> anyhow::Result<RecoveryCode> {
    let text = match file {
        Some(file) => from_file(file, "recovery code")?,
        None => match from_env(RECOVERY_CODE_ENV) {
            Some(value) => value,
            None => prompt("recovery code", RECOVERY_CODE_ENV, "--recovery-code-file")?,
        },
    };
    RecoveryCode::parse(text.expose_secret()).context("that is not a keyward recovery code")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_secret_loses_only_its_final_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "  s3cret word \r\n").expect("writes");
        assert_eq!(from_file(&path, "password").expect("reads").expose_secret(), "  s3cret word ");
        std::fs::write(&path, "\n").expect("writes");
        assert!(from_file(&path, "password").is_err());
        assert!(from_file(&dir.path().join("missing"), "password").is_err());
    }
}
