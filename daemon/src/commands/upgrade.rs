//! Zero-downtime upgrades of the main process and of workers.
//!
//! `upgrade_worker` starts a replacement worker that takes over the old
//! one's listening sockets (passed with SCM_RIGHTS through the main
//! process), so the kernel keeps queueing connections on the very same
//! sockets; then the old worker is soft-stopped and finishes what it was
//! doing. No connection is refused or cut.
//!
//! `upgrade_main` replaces the main process's program in place (`exec`,
//! same process id, so the workers stay its children). The command socket,
//! the worker channels and the requesting client's connection survive the
//! exec; the state and settings travel in a file named by an environment
//! variable. The new program answers the client and carries on.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sozu_command::proto::command::{
    EventKind, Request, Response, ReturnListenSockets, RunState, SoftStop, WorkerRequest,
    request::RequestType,
};
use sozu_command::state::file;
use tokio::sync::mpsc::UnboundedSender;

use crate::audit::Peer;
use crate::events;
use crate::main_process::Main;

/// Environment variable naming the upgrade record for the new program.
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

/// Replaces worker `id`: new process on the same listening sockets, then a
/// soft stop of the old one.
pub async fn upgrade_worker(main: &Rc<Main>, id: u32, answers: &UnboundedSender<Response>) {
    let old = main.workers.borrow().get(&id).cloned();
    let Some(old) = old else {
        let _ = answers.send(Response::failure(format!("there is no worker {id}")));
        return;
    };
    let _ = answers.send(Response::processing(format!("Upgrading worker {id}")));
    let handover = old
        .ask(
            WorkerRequest {
                id: main.request_id("UPGRADE"),
                content: RequestType::ReturnListenSockets(ReturnListenSockets {}).into(),
            },
            Some(main.worker_timeout),
        )
        .await;
    let sockets = match handover {
        Ok(response) if response.status == 0 => match old.receive_sockets() {
            Ok(sockets) => sockets,
            Err(error) => {
                let _ = answers.send(Response::failure(format!(
                    "worker {id} not upgraded: could not receive its sockets: {error}"
                )));
                return;
            }
        },
        Ok(response) => {
            let _ = answers.send(Response::failure(format!(
                "worker {id} not upgraded: it could not hand over its sockets: {}",
                response.message
            )));
            return;
        }
        Err(no_answer) => {
            let _ = answers.send(Response::failure(format!(
                "worker {id} not upgraded: {no_answer}"
            )));
            return;
        }
    };
    let count = sockets.len();
    // No change is applied between the new worker's copy of the state and
    // its joining the workers that changes are sent to.
    let turn = main.changes.lock().await;
    let new = match main
        .start_worker(id, old.generation + 1, Some(sockets))
        .await
    {
        Ok(worker) => worker,
        Err(error) => {
            // The old worker never stopped listening: nothing was lost.
            let _ = answers.send(Response::failure(format!(
                "worker {id} not upgraded: {error}"
            )));
            return;
        }
    };
    old.set_run_state(RunState::Stopping);
    main.workers.borrow_mut().insert(id, new.clone());
    drop(turn);
    let _ = answers.send(Response::processing(format!(
        "Worker {id} replaced (pid {} -> {}) on {count} listening sockets; draining the old one",
        old.pid, new.pid
    )));
    let drained = old.ask(
        WorkerRequest {
            id: main.request_id("UPGRADE"),
            content: RequestType::SoftStop(SoftStop {}).into(),
        },
        None,
    );
    let drained = drained.await;
    main.event(events::event(EventKind::WorkerUpgraded));
    let _ = answers.send(match drained {
        Ok(_) | Err(crate::workers::NoAnswer::Gone) => {
            Response::ok(format!("Worker {id} upgraded: new pid {}", new.pid), None)
        }
        Err(no_answer) => Response::failure(format!(
            "Worker {id} upgraded (new pid {}), but the old one did not stop cleanly: {no_answer}",
            new.pid
        )),
    });
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

fn keep_across_exec(fd: RawFd) -> std::io::Result<()> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    // SAFETY: the descriptor stays owned by its current owner; only its
    // close-on-exec flag changes.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::empty())).map_err(std::io::Error::from)?;
    Ok(())
}

/// Replaces the main process program, keeping everything it holds.
pub async fn upgrade_main(main: &Rc<Main>, peer: &Peer, answers: &UnboundedSender<Response>) {
    match prepare_upgrade(main, peer).await {
        Ok(record_path) => {
            let error = exec_with_record(&record_path);
            let _ = std::fs::remove_file(&record_path);
            let _ = answers.send(Response::failure(format!(
                "main process not upgraded: could not run the new program: {error}"
            )));
        }
        Err(error) => {
            let _ = answers.send(Response::failure(format!(
                "main process not upgraded: {error}"
            )));
        }
    }
}

async fn prepare_upgrade(main: &Rc<Main>, peer: &Peer) -> Result<PathBuf, String> {
    // Let the workers answer what they were asked, so no answer is lost in
    // the exec.
    let deadline = tokio::time::Instant::now() + main.worker_timeout;
    while main
        .workers
        .borrow()
        .values()
        .any(|worker| worker.pending_count() > 0)
    {
        if tokio::time::Instant::now() >= deadline {
            return Err("workers still have requests in progress".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let folder = std::env::temp_dir();
    let stamp = format!("{}-{}", std::process::id(), main.request_id("U"));
    let state_file = folder.join(format!("sozu-upgrade-state-{stamp}.txt"));
    file::save(&main.state.borrow(), &state_file).map_err(|error| error.to_string())?;
    let mut workers = Vec::new();
    for worker in main.workers.borrow().values() {
        let (channel_fd, scm_fd) = worker.descriptors();
        keep_across_exec(channel_fd).map_err(|error| error.to_string())?;
        keep_across_exec(scm_fd).map_err(|error| error.to_string())?;
        workers.push(UpgradedWorker {
            id: worker.id,
            generation: worker.generation,
            pid: worker.pid,
            channel_fd,
            scm_fd,
        });
    }
    let command_socket_fd = main.command_socket_fd.get();
    keep_across_exec(command_socket_fd).map_err(|error| error.to_string())?;
    if let Some(client_fd) = peer.fd {
        keep_across_exec(client_fd).map_err(|error| error.to_string())?;
    }
    let record = UpgradeRecord {
        config_path: main.config.borrow().config_path.clone(),
        state_file,
        settings: main.settings.borrow().values().cloned().collect(),
        workers,
        command_socket_fd,
        client_fd: peer.fd,
    };
    let record_path = folder.join(format!("sozu-upgrade-{stamp}.json"));
    let text = serde_json::to_vec(&record).map_err(|error| error.to_string())?;
    file::write_atomically(&record_path, &text).map_err(|error| error.to_string())?;
    Ok(record_path)
}

/// Runs the new program in this process. Only returns on failure.
fn exec_with_record(record: &Path) -> String {
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

/// Reads an upgrade record left by the previous program.
pub fn read_record(path: &Path) -> Result<UpgradeRecord, String> {
    let text =
        std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let record =
        serde_json::from_slice(&text).map_err(|error| format!("bad upgrade record: {error}"))?;
    let _ = std::fs::remove_file(path);
    Ok(record)
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
