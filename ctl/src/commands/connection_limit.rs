//! `connection-limit set|remove|show`: the per-(cluster, source IP) limit.
//!
//! The limit lives in the workers' memory only: a worker started later
//! takes the configuration file's value, so make lasting changes there too.

use clap::Subcommand;
use sozu_command::requests;

use crate::error::CliError;
use crate::session::Session;

/// `connection-limit …`
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum ConnectionLimitCmd {
    /// Allow at most N simultaneous connections per (cluster, source IP); 0 lifts the limit
    Set {
        /// The limit (0: unlimited)
        limit: u64,
    },
    /// Lift the limit (same as `set 0`)
    Remove,
    /// Show the limit in force
    Show,
}

/// Runs a `connection-limit` subcommand.
pub fn run(session: &mut Session, cmd: &ConnectionLimitCmd) -> Result<(), CliError> {
    match cmd {
        ConnectionLimitCmd::Set { limit } => session.run(
            &requests::set_max_connections_per_ip(*limit),
            &match limit {
                0 => "connection limit lifted".to_owned(),
                limit => format!("connection limit set to {limit}"),
            },
        ),
        ConnectionLimitCmd::Remove => session.run(
            &requests::set_max_connections_per_ip(0),
            "connection limit lifted",
        ),
        ConnectionLimitCmd::Show => session.run(
            &requests::query_max_connections_per_ip(),
            "connection limit",
        ),
    }
}
