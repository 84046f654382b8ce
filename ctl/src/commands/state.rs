//! `state save|load|stats`.
//!
//! Paths are made absolute against the command line's working directory
//! before sending: the daemon runs elsewhere and would resolve a relative
//! path against its own.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use sozu_command::requests;
use sozu_command::state::file;

use crate::error::CliError;
use crate::session::Session;

/// `state …`
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum StateCmd {
    /// Save the state to a file
    Save {
        /// The file to write (made absolute against the working directory)
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
    },
    /// Load a state file into the running daemon
    Load {
        /// The file to read (made absolute against the working directory)
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
    },
    /// Count the requests received since the daemon started, by kind
    Stats,
}

/// `path` made absolute against the working directory.
pub fn absolute(path: &Path) -> Result<PathBuf, CliError> {
    std::path::absolute(path)
        .map_err(|error| CliError::usage(format!("-f/--file: {}: {error}", path.display())))
}

/// Runs a `state` subcommand.
pub fn run(session: &mut Session, cmd: &StateCmd) -> Result<(), CliError> {
    match cmd {
        StateCmd::Save { file } => {
            let path = absolute(file)?;
            let folder = path.parent().unwrap_or(Path::new("/"));
            if !folder.is_dir() {
                return Err(CliError::usage(format!(
                    "-f/--file: the folder {} does not exist",
                    folder.display()
                )));
            }
            session.run(
                &requests::save_state(&path),
                &format!("state saved to {}", path.display()),
            )
        }
        StateCmd::Load { file } => {
            let path = absolute(file)?;
            // The daemon reports progress as it goes; a bar over the number
            // of records shows how far along it is. Counting the records'
            // separators is enough for that: decoding them here would take
            // CPU time from the daemon that loads them. A file this user
            // may not read (one in the daemon's state_directory) is the
            // daemon's to read: the bar then has no total.
            let records = match file::read_bounded(&path, session.max_state_file_size()) {
                Ok(bytes) => Some(file::record_count(&bytes) as u64),
                Err(file::StateFileError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::PermissionDenied =>
                {
                    None
                }
                Err(error) => return Err(CliError::usage(format!("-f/--file: {error}"))),
            };
            let progress = session.out.bar(records);
            let answer = session.request_with(
                &requests::load_state(&path),
                &progress,
                |progress, answer| progress.step(&answer.message),
            )?;
            session.print_answer(&answer, &format!("state loaded from {}", path.display()));
            Ok(())
        }
        StateCmd::Stats => session.run(&requests::count_requests(), "requests received"),
    }
}
