//! `sozu top`: resolves the socket and the flags, then hands over to the
//! `sozu-top` console.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use sozu_top::app::ViewId;

use crate::error::{CliError, ErrorKind};
use crate::session::Session;

/// The answer wait of the console's sources when no `-t/--timeout` is
/// given: a refresh of a large daemon's metrics takes longer than the CLI's
/// default second.
const DEFAULT_TOP_TIMEOUT: Duration = Duration::from_secs(3);

/// `sozu top` flags.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct TopArgs {
    /// Milliseconds between two polls of each data source (at least 100)
    #[arg(long = "refresh-ms", value_name = "MS", default_value_t = sozu_top::DEFAULT_REFRESH_MS)]
    pub refresh_ms: u64,
    /// Show only: refuse every action (remove, weight, activate)
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// No colours (also when NO_COLOR is set)
    #[arg(long = "no-color")]
    pub no_color: bool,
    /// Leave the mouse to the terminal (text selection) instead of clicks
    #[arg(long = "no-mouse")]
    pub no_mouse: bool,
    /// The view to start on: overview, clusters, backends, frontends,
    /// listeners, certificates, workers, h2, events
    #[arg(long = "view", value_name = "NAME", default_value = "overview")]
    pub view: String,
    /// Print one frame as plain text on stdout and exit (after one refresh
    /// interval, so rates are real)
    #[arg(long = "snapshot")]
    pub snapshot: bool,
    /// Size of the snapshot, WIDTHxHEIGHT (default: the terminal's, else 120x40)
    #[arg(long = "size", value_name = "WxH", requires = "snapshot")]
    pub size: Option<String>,
}

fn usage(error: sozu_top::TopError) -> CliError {
    match error {
        sozu_top::TopError::Usage(message) => CliError::usage(format!("top: {message}")),
        other => CliError::new(ErrorKind::Io, format!("top: {other}")),
    }
}

/// Runs the console, or prints a snapshot.
pub fn run(
    session: &Session,
    args: &TopArgs,
    timeout_flag: Option<u64>,
) -> Result<ExitCode, CliError> {
    let refresh = sozu_top::refresh_interval(args.refresh_ms).map_err(usage)?;
    let view = ViewId::from_name(&args.view).ok_or_else(|| {
        let names: Vec<&str> = ViewId::ALL.iter().map(|view| view.name()).collect();
        CliError::usage(format!(
            "top: --view {}: no such view (one of {})",
            args.view,
            names.join(", ")
        ))
    })?;
    let size = args
        .size
        .as_deref()
        .map(sozu_top::parse_size)
        .transpose()
        .map_err(usage)?;
    let no_color =
        args.no_color || std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    let timeout = match timeout_flag {
        Some(0) => Duration::from_secs(3600),
        Some(millis) => Duration::from_millis(millis),
        None => DEFAULT_TOP_TIMEOUT,
    };
    let options = sozu_top::Options {
        socket: session.socket_path(),
        refresh,
        timeout,
        max_frame_size: session.max_frame_size(),
        read_only: args.read_only,
        color: !no_color,
        mouse: !args.no_mouse,
        view,
    };
    if args.snapshot {
        let size = size.unwrap_or_else(terminal_size);
        let snapshot = sozu_top::snapshot(options, size).map_err(usage)?;
        print!("{}", snapshot.text);
        if !snapshot.connected {
            return Err(CliError::new(
                ErrorKind::Connect,
                "top --snapshot: some data could not be read from the daemon (see the status line above)",
            ));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err(CliError::usage(
            "top: standard output is not a terminal; use --snapshot for text",
        ));
    }
    sozu_top::run(options).map_err(usage)?;
    Ok(ExitCode::SUCCESS)
}

/// The terminal's size when stdout is one, else the default snapshot size.
fn terminal_size() -> (u16, u16) {
    if std::io::IsTerminal::is_terminal(&std::io::stdout())
        && let Ok((width, height)) = sozu_top::terminal_size()
        && width >= sozu_top::view::MIN_WIDTH
        && height >= sozu_top::view::MIN_HEIGHT
    {
        return (width, height);
    }
    sozu_top::DEFAULT_SNAPSHOT_SIZE
}
