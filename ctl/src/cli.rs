//! The command tree: global flags and one subcommand per family.
//!
//! Names and flags follow Sozu 2.3.3's command line so existing scripts keep
//! working; the families' own arguments live next to the code that runs them
//! (`commands/cluster.rs`, `commands/listener.rs`, …). `completions` and
//! `man` are generated from these same definitions.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::commands::apply::{ApplyArgs, DiffArgs};
use crate::commands::backend::BackendCmd;
use crate::commands::certificate::CertificateCmd;
use crate::commands::cluster::ClusterCmd;
use crate::commands::config_check::ConfigCmd;
use crate::commands::connection_limit::ConnectionLimitCmd;
use crate::commands::docs::Shell;
use crate::commands::frontend::FrontendCmd;
use crate::commands::listener::ListenerCmd;
use crate::commands::metrics::MetricsCmd;
use crate::commands::state::StateCmd;
use crate::commands::top::TopArgs;

/// The help heading of the flags every subcommand takes.
const GLOBAL: &str = "Global options";

/// Command line of a Sozu-compatible reverse proxy: runs the daemon and
/// drives it through its command socket.
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(name = "sozu", version, about, max_term_width = 100)]
pub struct Args {
    /// Configuration file (gives the command socket and the default timeout)
    #[arg(
        short = 'c',
        long = "config",
        global = true,
        env = "SOZU_CONFIG",
        value_name = "PATH",
        help_heading = GLOBAL
    )]
    pub config: Option<PathBuf>,

    /// Longest wait for each answer of the daemon, in milliseconds; every
    /// progress answer starts the wait again. 0 waits forever. Default: the
    /// configuration's ctl_command_timeout, else 1000
    #[arg(short = 't', long = "timeout", global = true, value_name = "MS", help_heading = GLOBAL)]
    pub timeout: Option<u64>,

    /// Print machine-readable JSON on stdout (errors included)
    #[arg(short = 'j', long = "json", global = true, help_heading = GLOBAL)]
    pub json: bool,

    /// Command socket to use, overriding the configuration. Without it and
    /// without a configuration: $SOZU_SOCKET, ./sozu.sock, /run/sozu/sozu.sock
    #[arg(long = "socket", global = true, value_name = "PATH", help_heading = GLOBAL)]
    pub socket: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// Every subcommand.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
// The listener family carries many update flags; boxing a clap subcommand
// only makes matching on it clumsier.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run the daemon (main process and workers)
    Start {
        /// Serve Prometheus metrics (GET /metrics) on this address, as
        /// `prometheus_address` under `[metrics]` does
        #[arg(long, value_name = "ADDR")]
        prometheus_address: Option<std::net::SocketAddr>,
    },
    /// Run a worker process (started by the main process, never by hand)
    #[command(hide = true)]
    Worker,
    /// Stop the proxy: wait for connections to finish, or not (--hard)
    Shutdown {
        /// Do not wait for connections to finish
        #[arg(long)]
        hard: bool,
    },
    /// Replace the main process and then every worker, or one worker
    Upgrade {
        /// Upgrade only this worker
        #[arg(long, value_name = "ID")]
        worker: Option<u32>,
    },
    /// Show the workers and their state
    Status,
    /// Apply a configuration file: the one the daemon started with, or FILE
    Reload {
        /// Configuration file to apply instead of the current one
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Change the log filter of every process (e.g. info, debug)
    Logging {
        /// The new filter
        filter: String,
    },
    /// Follow the daemon's events (backends up and down, changes, …)
    Events,
    /// Save, load or count the configuration state
    State {
        #[command(subcommand)]
        cmd: StateCmd,
    },
    /// Collect, clear or show metrics
    Metrics {
        #[command(subcommand)]
        cmd: MetricsCmd,
    },
    /// Add, remove and list clusters; manage health checks
    Cluster {
        #[command(subcommand)]
        cmd: ClusterCmd,
    },
    /// Add and remove backends
    Backend {
        #[command(subcommand)]
        cmd: BackendCmd,
    },
    /// Add, remove and list frontends (routing rules)
    Frontend {
        #[command(subcommand)]
        cmd: FrontendCmd,
    },
    /// Add, remove, activate, update and list listeners
    Listener {
        #[command(subcommand)]
        cmd: ListenerCmd,
    },
    /// Add, remove, replace and list TLS certificates
    Certificate {
        #[command(subcommand)]
        cmd: CertificateCmd,
    },
    /// Check a configuration file
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Limit connections per (cluster, source IP)
    ConnectionLimit {
        #[command(subcommand)]
        cmd: ConnectionLimitCmd,
    },
    /// Live console: traffic, clusters, backends, listeners, certificates,
    /// workers, events; acts on backends, frontends and listeners
    Top(TopArgs),
    /// Make the live configuration match a file, sending only the difference
    Apply(ApplyArgs),
    /// Show what `apply` would send for a file, without sending it
    Diff(DiffArgs),
    /// A fleet of daemons kept equal to one desired state in etcd
    Fleet {
        #[command(flatten)]
        etcd: crate::commands::fleet::EtcdArgs,
        #[command(subcommand)]
        cmd: crate::commands::fleet::FleetCmd,
    },
    /// Print a shell completion script
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the manual page (roff)
    Man,
}

/// The argument list as typed, adjusted where Sozu's flags cannot be
/// expressed directly in clap.
///
/// `cluster health-check set --timeout SECS` is the probe timeout in seconds
/// while `--timeout` everywhere else is the global command timeout in
/// milliseconds. A global flag cannot be shadowed by a subcommand's own flag
/// of the same name, so after `health-check set` the long form is renamed
/// to `--probe-timeout` before parsing (the short `-t` stays global).
pub fn normalize(mut arguments: Vec<String>) -> Vec<String> {
    let path = ["cluster", "health-check", "set"];
    let separator = arguments
        .iter()
        .position(|argument| argument == "--")
        .unwrap_or(arguments.len());
    let Some(start) = arguments[..separator]
        .windows(path.len())
        .position(|window| {
            window
                .iter()
                .zip(path)
                .all(|(argument, name)| argument == name)
        })
    else {
        return arguments;
    };
    for argument in &mut arguments[start + path.len()..separator] {
        if argument == "--timeout" {
            *argument = "--probe-timeout".to_owned();
        } else if let Some(value) = argument.strip_prefix("--timeout=") {
            *argument = format!("--probe-timeout={value}");
        }
    }
    arguments
}

/// Whether the arguments ask for JSON output, judged before parsing so that
/// even a usage error can be reported as JSON.
pub fn wants_json(arguments: &[String]) -> bool {
    arguments
        .iter()
        .skip(1)
        .take_while(|argument| argument.as_str() != "--")
        .any(|argument| {
            argument == "--json"
                || (argument.starts_with('-')
                    && !argument.starts_with("--")
                    && argument.len() > 1
                    && short_cluster_has_json(&argument[1..]))
        })
}

/// `-j`, `-jc` or `-cj`…: short flags may be grouped; stops at the first
/// short flag that takes a value (`-c`, `-t`), whose value follows.
fn short_cluster_has_json(cluster: &str) -> bool {
    for letter in cluster.chars() {
        match letter {
            'j' => return true,
            'c' | 't' => return false,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, error::ErrorKind};

    fn strings(arguments: &[&str]) -> Vec<String> {
        arguments.iter().map(|a| (*a).to_owned()).collect()
    }

    fn parse(arguments: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(normalize(strings(arguments)))
    }

    #[test]
    fn the_command_tree_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn global_flags_go_before_or_after_the_subcommand() {
        let before = parse(&["sozu", "-j", "-t", "50", "--socket", "/s", "status"]).unwrap();
        let after = parse(&[
            "sozu",
            "status",
            "--json",
            "--timeout",
            "50",
            "--socket",
            "/s",
        ])
        .unwrap();
        assert_eq!(before, after);
        assert!(before.json);
        assert_eq!(before.timeout, Some(50));
        assert_eq!(before.socket, Some(PathBuf::from("/s")));
        let deep = parse(&["sozu", "cluster", "list", "-c", "/etc/sozu.toml", "-j"]).unwrap();
        assert_eq!(deep.config, Some(PathBuf::from("/etc/sozu.toml")));
    }

    #[test]
    fn usage_errors_are_clap_errors() {
        assert_eq!(
            parse(&["sozu", "status", "--timeout", "soon"])
                .unwrap_err()
                .kind(),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            parse(&["sozu", "nosuchcommand"]).unwrap_err().kind(),
            ErrorKind::InvalidSubcommand
        );
    }

    #[test]
    fn health_check_timeout_is_the_probe_timeout() {
        let arguments = strings(&[
            "sozu",
            "-t",
            "900",
            "cluster",
            "health-check",
            "set",
            "-i",
            "app",
            "--timeout",
            "2",
        ]);
        let normalized = normalize(arguments);
        assert!(normalized.contains(&"--probe-timeout".to_owned()));
        let args = Args::try_parse_from(normalized).unwrap();
        assert_eq!(args.timeout, Some(900));
        // `--timeout` elsewhere is untouched, and so are look-alike values.
        for untouched in [
            &["sozu", "status", "--timeout", "3"][..],
            &[
                "sozu",
                "cluster",
                "add",
                "-i",
                "health-check",
                "--timeout",
                "3",
            ],
            &["sozu", "cluster", "health-check", "list", "--timeout", "3"],
        ] {
            assert_eq!(normalize(strings(untouched)), strings(untouched));
        }
        assert_eq!(
            normalize(strings(&[
                "sozu",
                "cluster",
                "health-check",
                "set",
                "--timeout=4"
            ]))[4],
            "--probe-timeout=4"
        );
    }

    #[test]
    fn json_is_detected_before_parsing() {
        assert!(wants_json(&strings(&["sozu", "bad", "-j"])));
        assert!(wants_json(&strings(&["sozu", "-jt", "5", "x"])));
        assert!(!wants_json(&strings(&["sozu", "-tj", "x"])));
        assert!(!wants_json(&strings(&["sozu", "x", "--", "-j"])));
    }
}
