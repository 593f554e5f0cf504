//! `cargo xtask test`: the project's one test command, run by CI and by developers alike.

use crate::install::{self, APT_PACKAGES, PYTHON_TOOLS};
use anyhow::Result;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(crate::repo_root()).env("SQLX_OFFLINE", "true");
    command
}

/// Installs what is missing, then runs formatting, lints, every test, and the
/// fuzz and deployment checks; stops at the first failure.
pub(crate) fn run() -> Result<()> {
    let root = crate::repo_root();
    install::apt_packages(APT_PACKAGES)?;
    let venv_bin = install::python_tools(PYTHON_TOOLS)?;
    let path = format!("{}:{}", venv_bin.display(), std::env::var("PATH").unwrap_or_default());

    let mut steps: Vec<(&str, Command)> = Vec::new();
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    steps.push(("format", fmt));
    let mut clippy = cargo();
    clippy.args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]);
    steps.push(("clippy", clippy));
    // The tests run the service binaries and the CLI as processes: build them first (no test
    // builds anything), with the same selection as the tests so that features unify alike.
    let mut build = cargo();
    build.args(["build", "--workspace", "--bins", "--tests"]);
    steps.push(("build", build));
    let mut tests = cargo();
    tests.args(["test", "--workspace"]).env("PATH", &path);
    steps.push(("tests", tests));
    for fuzz in ["fuzz", "component/fuzz"] {
        if root.join(fuzz).join("Cargo.toml").exists() {
            let mut check = cargo();
            // One target folder for both fuzz crates, so the second reuses the first's build.
            check
                .args(["check", "--quiet", "--target-dir", "target/fuzz-check", "--manifest-path"])
                .arg(Path::new(fuzz).join("Cargo.toml"));
            steps.push(("fuzz targets build", check));
        }
    }
    if root.join("deploy/check.sh").exists() {
        let mut deploy = Command::new("bash");
        deploy.arg(root.join("deploy/check.sh")).current_dir(&root).env("PATH", &path);
        steps.push(("deploy checks", deploy));
    }

    let total = steps.len();
    for (done, (name, mut command)) in steps.into_iter().enumerate() {
        let started = Instant::now();
        eprintln!("xtask: [{}/{total}] {name}", done + 1);
        install::run(&mut command)?;
        eprintln!("xtask: [{}/{total}] {name}: ok in {:.0?}", done + 1, started.elapsed());
    }
    eprintln!("xtask: all {total} steps passed");
    Ok(())
}
