//! The daemon: `sozu start` (main process) and the worker processes it runs.
//!
//! Work in progress: the entry points below are what the `sozu` binary calls.

use std::path::PathBuf;
use std::process::ExitCode;

/// What `sozu start` was given.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// The configuration file; `None` runs the built-in default.
    pub config: Option<PathBuf>,
}

/// Runs the main process until it is stopped.
pub fn start(options: StartOptions) -> ExitCode {
    let _ = options;
    eprintln!("sozu start: the daemon is not built yet");
    ExitCode::from(1)
}

/// Runs a worker process (started by the main process, never by hand).
pub fn worker() -> ExitCode {
    ExitCode::from(1)
}
