//! The faults of `cargo xtask chaos`: SIGKILL one part of the stack, start it again, and time how long until a client is served again.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use keyward_client::keyward_proto::BareJid;
use keyward_client::{Account, Session};
use keyward_tests::stack::Stack;

/// A part of the stack that crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    Postgres,
    Keydir,
    Component,
    Xmpp,
}

impl Fault {
    pub(crate) const ALL: [Fault; 4] = [Fault::Postgres, Fault::Keydir, Fault::Component, Fault::Xmpp];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Fault::Postgres => "Postgres",
            Fault::Keydir => "keydir",
            Fault::Component => "component",
            Fault::Xmpp => "XMPP server",
        }
    }
}

/// When a fault happened, in time since the load started.
#[derive(Debug, Clone)]
pub(crate) struct Outage {
    pub(crate) fault: Fault,
    /// The SIGKILL.
    pub(crate) killed: Duration,
    /// The part was started again and listens (Postgres: accepts connections).
    pub(crate) back: Duration,
    /// A client request went through the whole stack again (None: not within the deadline).
    pub(crate) serving: Option<Duration>,
    /// The component's process died by itself meanwhile (for the component's own fault: after its restart).
    pub(crate) component_exited: bool,
}

impl Outage {
    /// From the part's return to serving again.
    pub(crate) fn recovery(&self) -> Option<Duration> {
        self.serving.map(|s| s.saturating_sub(self.back))
    }
}

/// Kills `fault` with SIGKILL, keeps it down for `down`, starts it again, and has `probe`
/// measure when a client is served again (at most `deadline` after the return).
pub(crate) async fn inject(
    stack: &mut Stack,
    fault: Fault,
    down: Duration,
    probe: &mut Probe,
    t0: Instant,
    deadline: Duration,
) -> Result<Outage> {
    let component_pid = stack.pids().1;
    let killed = t0.elapsed();
    match fault {
        Fault::Postgres => stack.kill_postgres().await,
        Fault::Keydir => stack.kill_keydir().await,
        Fault::Component => stack.kill_component().await,
        Fault::Xmpp => stack.kill_xmpp().await,
    }
    .with_context(|| format!("killing {}", fault.name()))?;
    // The outage itself: the load keeps going against the dead part.
    tokio::time::sleep(down).await;
    match fault {
        Fault::Postgres => stack.start_postgres().await,
        Fault::Keydir => stack.start_keydir().await,
        Fault::Component => stack.component_mut().start_again().await,
        Fault::Xmpp => stack.xmpp_mut().restart().await,
    }
    .with_context(|| format!("starting {} again", fault.name()))?;
    let back = t0.elapsed();
    let serving = probe.until_served(deadline).await.map(|at| at - t0);
    let component_exited = component_exited(stack, (fault != Fault::Component).then_some(component_pid).flatten());
    Ok(Outage { fault, killed, back, serving, component_exited })
}

/// Whether the component's process died by itself (or is not the one that ran before).
pub(crate) fn component_exited(stack: &mut Stack, expected_pid: Option<u32>) -> bool {
    let exited = stack.component_mut().process().has_exited();
    exited || expected_pid.is_some_and(|pid| stack.pids().1 != Some(pid))
}

/// A client session that asks the directory for a key through the whole stack
/// (XMPP server, component, keydir, Postgres), reconnecting when needed.
pub(crate) struct Probe {
    account: Account,
    session: Option<Session>,
    peer: BareJid,
}

impl Probe {
    /// Registers and publishes the probe's account `probe` (the stack must be up), looking up `peer`.
    pub(crate) async fn new(account: Account, peer: BareJid) -> Result<Self> {
        let session = crate::load::create(&account).await.context("setting up the probe")?;
        Ok(Self { account, session: Some(session), peer })
    }

    /// One lookup; true when it was answered.
    pub(crate) async fn once(&mut self) -> bool {
        if self.session.is_none() {
            self.session = crate::load::connect(&self.account).await.ok();
        }
        let Some(session) = self.session.as_mut() else { return false };
        match session.refresh_key(&self.peer).await {
            Ok(_) => true,
            Err(keyward_client::Error::Connection(_) | keyward_client::Error::Timeout(_)) => {
                self.session = None;
                false
            }
            Err(_) => false,
        }
    }

    /// Probes every 50 ms until a lookup is answered; returns when (None after `deadline`).
    pub(crate) async fn until_served(&mut self, deadline: Duration) -> Option<Instant> {
        let started = Instant::now();
        while started.elapsed() < deadline {
            if self.once().await {
                return Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Ends the probe's session.
    pub(crate) async fn close(self) {
        if let Some(session) = self.session {
            let _ = session.close().await;
        }
    }
}
