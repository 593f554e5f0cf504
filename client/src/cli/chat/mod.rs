//! `keyward chat`: an interactive terminal client (the state machine, its rendering, and the driver that runs them on a session).

mod app;
mod run;
mod ui;

pub(crate) use run::run;
