//! `backend add|remove`.

use std::net::SocketAddr;

use clap::Subcommand;
use sozu_command::requests::{self, BackendSettings};

use crate::error::CliError;
use crate::session::Session;

/// `backend …`
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum BackendCmd {
    /// Add a backend to a cluster (or replace it: same id and address)
    Add {
        /// The cluster id
        #[arg(short = 'i', long = "id")]
        id: String,
        /// The backend id
        #[arg(long = "backend-id")]
        backend_id: String,
        /// Where the backend listens, IP:PORT
        #[arg(short = 'a', long = "address")]
        address: SocketAddr,
        /// Sticky session cookie value that selects this backend
        #[arg(short = 's', long = "sticky-id")]
        sticky_id: Option<String>,
        /// Serve only when no primary backend is up (`-b`, or `-b true|false`)
        #[arg(short = 'b', long = "backup", num_args = 0..=1, default_missing_value = "true",
              value_name = "BOOL")]
        backup: Option<bool>,
        /// Load balancing weight, 0 to 255 (not sent: 0, which balances like 100)
        #[arg(long = "weight", value_name = "N")]
        weight: Option<u8>,
    },
    /// Remove a backend
    Remove {
        /// The cluster id
        #[arg(short = 'i', long = "id")]
        id: String,
        /// The backend id
        #[arg(long = "backend-id")]
        backend_id: String,
        /// Where the backend listens, IP:PORT
        #[arg(short = 'a', long = "address")]
        address: SocketAddr,
    },
}

/// Runs a `backend` subcommand.
pub fn run(session: &mut Session, cmd: &BackendCmd) -> Result<(), CliError> {
    match cmd {
        BackendCmd::Add {
            id,
            backend_id,
            address,
            sticky_id,
            backup,
            weight,
        } => {
            let settings = BackendSettings {
                cluster_id: id.clone(),
                backend_id: backend_id.clone(),
                address: *address,
                sticky_id: sticky_id.clone(),
                backup: *backup,
                weight: *weight,
            };
            session.run(
                &requests::backend_add(&settings),
                &format!("backend {backend_id} ({address}) added to {id}"),
            )
        }
        BackendCmd::Remove {
            id,
            backend_id,
            address,
        } => session.run(
            &requests::backend_remove(id, backend_id, *address),
            &format!("backend {backend_id} ({address}) removed from {id}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Args, Command};
    use clap::Parser;

    fn backend(arguments: &[&str]) -> Result<BackendCmd, clap::Error> {
        let mut all = vec!["sozu", "backend"];
        all.extend_from_slice(arguments);
        match Args::try_parse_from(all)?.command {
            Command::Backend { cmd } => Ok(cmd),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn backup_takes_an_optional_value() {
        let base = ["add", "-i", "c", "--backend-id", "b", "-a", "127.0.0.1:80"];
        let backup = |extra: &[&str]| {
            let mut arguments = base.to_vec();
            arguments.extend_from_slice(extra);
            match backend(&arguments).unwrap() {
                BackendCmd::Add { backup, .. } => backup,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(backup(&[]), None);
        assert_eq!(backup(&["-b"]), Some(true));
        assert_eq!(backup(&["-b", "false"]), Some(false));
        assert_eq!(backup(&["--backup", "true"]), Some(true));
    }

    #[test]
    fn addresses_and_weights_are_validated() {
        let error =
            backend(&["add", "-i", "c", "--backend-id", "b", "-a", "localhost"]).unwrap_err();
        assert!(error.to_string().contains("--address"), "{error}");
        assert!(
            backend(&[
                "add",
                "-i",
                "c",
                "--backend-id",
                "b",
                "-a",
                "127.0.0.1:1",
                "--weight",
                "300"
            ])
            .is_err()
        );
    }
}
