//! Log output of the daemon's processes.

use tracing_subscriber::EnvFilter;

/// Sets up logging to standard error at `level` (a tracing filter such as
/// `info` or `sozu_proxy=debug`), each line tagged with the process name.
/// `RUST_LOG` overrides the level when set. Audit lines (who changed what)
/// are written whatever the level.
pub fn init(level: &str, process: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("{level},audit=info")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true)
        .try_init();
    tracing::debug!(process, "logging started");
}
