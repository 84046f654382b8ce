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
    // Colours only for a person at a terminal: escape codes in a file or a
    // pipe are noise, and cost a fifth of the access log's time.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .with_target(true)
        .try_init();
    tracing::debug!(process, "logging started");
}
