//! Log output of the daemon's processes, and its filter changed live.

use std::sync::OnceLock;

use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// The live filter of this process, once [`init`] installed it.
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Sets up logging to standard error at `level` (a tracing filter such as
/// `info` or `sozu_proxy=debug`), each line tagged with the process name.
/// `RUST_LOG` overrides the level when set. Audit lines (who changed what)
/// are written whatever the level. The filter can be changed later with
/// [`set_level`].
pub fn init(level: &str, process: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| parse(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    // Colours only for a person at a terminal: escape codes in a file or a
    // pipe are noise, and cost a fifth of the access log's time.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let output = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .with_target(true);
    if tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()
        .is_ok()
    {
        let _ = FILTER.set(handle);
    }
    tracing::debug!(process, "logging started");
}

/// The filter a `log_level` or a `logging` request names, audit lines
/// included; an error that names the filter when it is not one.
pub fn parse(level: &str) -> Result<EnvFilter, String> {
    if level.trim().is_empty() {
        return Err("the log filter is empty".to_owned());
    }
    EnvFilter::try_new(format!("{level},audit=info"))
        .map_err(|error| format!("'{level}' is not a log filter: {error}"))
}

/// Replaces this process's log filter now (a `logging` request).
pub fn set_level(level: &str) -> Result<(), String> {
    let filter = parse(level)?;
    let handle = FILTER
        .get()
        .ok_or("the log filter of this process cannot be changed (logging was set up elsewhere)")?;
    handle
        .reload(filter)
        .map_err(|error| format!("could not change the log filter: {error}"))?;
    tracing::info!(filter = level, "log filter changed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_parsed_and_bad_ones_named() {
        assert!(parse("debug").is_ok());
        assert!(parse("warn,sozu_proxy=trace").is_ok());
        let error = parse("sozu_proxy=loud").unwrap_err();
        assert!(error.contains("sozu_proxy=loud"), "{error}");
        assert!(parse(" ").is_err());
    }
}
