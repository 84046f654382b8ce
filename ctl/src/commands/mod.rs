//! One module per family of subcommands, each with its clap arguments and
//! the code that runs them: parse, build the requests
//! (`sozu_command::requests`), exchange them through the
//! [`Session`](crate::session::Session), print through
//! [`Output`](crate::output::Output) and [`render`](crate::render).
//!
//! `main.rs` dispatches into these; they import the shared modules
//! (`session`, `output`, `render`, `error`) and never each other, except
//! `config_check` and `fleet`, which reuse `apply`'s plan.

pub mod apply;
pub mod backend;
pub mod certificate;
pub mod cluster;
pub mod config_check;
pub mod connection_limit;
pub mod control;
pub mod docs;
pub mod events;
pub mod fleet;
pub mod frontend;
pub mod listener;
pub mod metrics;
pub mod state;
pub mod top;
