//! The daemon: `sozu start` (the main process) and the worker processes it
//! runs.
//!
//! Modules, each importing only those listed before it:
//!
//! - `handover`: what crosses an `exec` (worker descriptors and
//!   environment, the upgrade record); `scm`: passing listening sockets;
//!   `log_sink` (log targets), `systemd` (notifications, pid file),
//!   `logging`, `audit`, `events`, `metrics`: what the daemon
//!   reports;
//! - `workers`: starting workers and talking to them; `fan_out`: one
//!   request to every worker, and which ones failed;
//! - `main_process`: the main process's state, workers and settings, and
//!   keeping workers running;
//! - `changes`: a configuration change, everywhere or nowhere;
//! - `commands`: what each request does, one file per family;
//! - `command_socket`: binding, accepting and serving command
//!   connections;
//! - `boot`: one start path for `sozu start` and for the program an
//!   upgrade runs, and the main loop;
//! - `worker_process`: the worker side, a `sozu_proxy::Server` driven
//!   over the channel.

mod audit;
mod boot;
mod changes;
mod command_socket;
mod commands;
mod events;
mod fan_out;
mod handover;
mod log_sink;
mod logging;
mod main_process;
mod metrics;
mod prometheus;
mod scm;
mod systemd;
mod worker_process;
mod workers;

use std::process::ExitCode;

pub use boot::{StartOptions, start};

/// Checks the log targets of a configuration without opening them (`sozu
/// config check`); an error names the key and the target.
pub fn check_log_targets(config: &sozu_command::config::Config) -> Result<(), String> {
    logging::check_targets(config)
}

/// Runs a worker process (started by the main process, never by hand).
pub fn worker() -> ExitCode {
    worker_process::run()
}
