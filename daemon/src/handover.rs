//! What crosses an `exec`: the facts the main process, the workers it
//! starts, and the program that replaces it after `upgrade_main` must agree
//! on, and the helpers that pass descriptors across.
//!
//! - A worker is this same binary run with the `worker` subcommand; it finds
//!   its id and settings in [`ENV_ID`] and [`ENV_CONFIG`], its command
//!   channel on [`CHANNEL_FD`] and its socket-passing channel on
//!   [`SCM_FD`], and, when [`ENV_ADOPT`] is set, first receives listening
//!   sockets on [`SCM_FD`] (a worker upgrade).
//! - After `upgrade_main`, the new program finds in [`ENV_UPGRADE`] the path
//!   of an [`UpgradeRecord`]: the state file, the settings, and the
//!   descriptors (command socket, worker channels, the asking client) that
//!   were kept open across the exec.
//!
//! This module depends on no other module of the daemon.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sozu_command::proto::command::Request;

/// The descriptor of the command channel in a worker.
pub const CHANNEL_FD: i32 = 3;
/// The descriptor of the socket-passing channel in a worker.
pub const SCM_FD: i32 = 4;
/// Environment variable holding the worker id.
pub const ENV_ID: &str = "SOZU_WORKER_ID";
/// Environment variable holding the `ServerConfig` as JSON.
pub const ENV_CONFIG: &str = "SOZU_WORKER_CONFIG";
/// Environment variable set when the worker must first receive listening
/// sockets on [`SCM_FD`] (an upgrade).
pub const ENV_ADOPT: &str = "SOZU_WORKER_ADOPT";
/// Environment variable naming the upgrade record for the new main process
/// program.
pub const ENV_UPGRADE: &str = "SOZU_UPGRADE_FROM";

/// The program to run for workers and upgrades: this executable's path,
/// even if the file was replaced on disk since it started (the point of an
/// upgrade).
pub fn executable() -> std::io::Result<PathBuf> {
    let path = std::env::current_exe()?;
    let text = path.to_string_lossy();
    match text.strip_suffix(" (deleted)") {
        Some(original) => Ok(PathBuf::from(original)),
        None => Ok(path),
    }
}

/// What the new main process program needs to carry on.
#[derive(Debug, Serialize, Deserialize)]
pub struct UpgradeRecord {
    /// The configuration file, if the daemon runs on one.
    pub config_path: Option<PathBuf>,
    /// The state, as a state file.
    pub state_file: PathBuf,
    /// The process settings, as JSON requests.
    pub settings: Vec<Request>,
    /// The workers and the descriptors of their channels.
    pub workers: Vec<UpgradedWorker>,
    /// The listening command socket.
    pub command_socket_fd: RawFd,
    /// The client that asked for the upgrade, to be answered.
    pub client_fd: Option<RawFd>,
}

/// A worker as the new main process adopts it.
#[derive(Debug, Serialize, Deserialize)]
pub struct UpgradedWorker {
    /// Its id.
    pub id: u32,
    /// Its generation.
    pub generation: u64,
    /// Its process id.
    pub pid: i32,
    /// The main process's end of its command channel.
    pub channel_fd: RawFd,
    /// The main process's end of its socket channel.
    pub scm_fd: RawFd,
}

/// Reads an upgrade record left by the previous program, and removes it.
pub fn read_record(path: &Path) -> Result<UpgradeRecord, String> {
    let text =
        std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let record =
        serde_json::from_slice(&text).map_err(|error| format!("bad upgrade record: {error}"))?;
    let _ = std::fs::remove_file(path);
    Ok(record)
}

/// Runs this executable again in this process, pointing it at the upgrade
/// record `record`. Only returns on failure, with why.
pub fn exec_with_record(record: &Path) -> String {
    let program = match executable() {
        Ok(program) => program,
        Err(error) => return error.to_string(),
    };
    let error = std::os::unix::process::CommandExt::exec(
        std::process::Command::new(program)
            .args(std::env::args_os().skip(1))
            .env(ENV_UPGRADE, record),
    );
    error.to_string()
}

/// Clears close-on-exec on `fd`, so that it stays open in the program an
/// upgrade runs.
pub fn keep_across_exec(fd: RawFd) -> std::io::Result<()> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    // SAFETY: the descriptor stays owned by its current owner; only its
    // close-on-exec flag changes.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::empty())).map_err(std::io::Error::from)?;
    Ok(())
}

/// Takes ownership of a descriptor named in the record.
///
/// # Safety
///
/// `fd` must be open in this process and owned by nothing else, which holds
/// for the descriptors the previous program listed before its exec.
pub unsafe fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: guaranteed by the caller.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Restores close-on-exec on a descriptor adopted after an upgrade, so it
/// does not leak into workers started later.
pub fn close_on_exec(fd: &impl AsRawFd) {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    // SAFETY: only the flag of a descriptor we own changes.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd.as_raw_fd()) };
    let _ = fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
}
