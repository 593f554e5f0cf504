//! `cargo xtask test`: the project's one test command, run by CI and by developers alike.

use crate::fuzz;
use crate::install::{self, APT_PACKAGES, PYTHON_TOOLS};
use anyhow::Result;
use keyward_tests::xmpp::ServerKind;
use std::process::Command;
use std::time::{Duration, Instant};

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
    // After the fuzz step, which runs in-process.
    let deploy = root.join("deploy/check.sh").exists().then(|| {
        let mut deploy = Command::new("bash");
        deploy.arg(root.join("deploy/check.sh")).current_dir(&root).env("PATH", &path);
        deploy
    });

    let total = steps.len() + 2 + usize::from(deploy.is_some());
    let mut done = 0;
    let mut step = |name: &str, body: &mut dyn FnMut() -> Result<()>| -> Result<()> {
        done += 1;
        let started = Instant::now();
        eprintln!("xtask: [{done}/{total}] {name}");
        body()?;
        eprintln!("xtask: [{done}/{total}] {name}: ok in {:.0?}", started.elapsed());
        Ok(())
    };
    for (name, mut command) in steps {
        step(name, &mut || install::run(&mut command))?;
    }
    // Every part killed in turn under load, on both servers, with the binaries just built:
    // what `cargo xtask chaos --short` does (its report goes to target/chaos/report.md).
    step("chaos (short)", &mut || crate::chaos::run_on(&ServerKind::ALL, &crate::stack::debug_dir(), true, None))?;
    // Every fuzz target, briefly, from its seeds: what `cargo xtask fuzz --dev --seconds 20 --jobs 2` does.
    let fuzz = fuzz::Options { time: Duration::from_secs(20), target: None, jobs: 2, dev: true };
    step("fuzz", &mut || fuzz::run(&fuzz))?;
    if let Some(mut command) = deploy {
        step("deploy checks", &mut || install::run(&mut command))?;
    }
    eprintln!("xtask: all {total} steps passed");
    Ok(())
}
