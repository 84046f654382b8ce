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
//! variable. The new program answers the client and carries on. What both
//! programs must agree on is in [`crate::handover`]; the new program starts
//! through the same boot path as `sozu start` (`crate::boot`).

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use sozu_command::proto::command::{
    EventKind, Response, ReturnListenSockets, RunState, SoftStop, WorkerRequest,
    request::RequestType,
};
use sozu_command::state::file;

use super::{Answers, forward_audited};
use crate::audit::{self, Peer};
use crate::events;
use crate::handover::{self, UpgradeRecord, UpgradedWorker, keep_across_exec};
use crate::main_process::Main;
use crate::systemd;
use crate::workers::NoAnswer;

/// Replaces worker `id` (see [`upgrade_worker_inner`]), telling systemd
/// and the audit log.
pub async fn upgrade_worker(main: &Rc<Main>, id: u32, peer: &Peer, answers: &Answers) {
    systemd::reloading(&format!("upgrading worker {id}"));
    let (forward, outcome) = tokio::sync::mpsc::unbounded_channel();
    upgrade_worker_inner(main, id, &forward).await;
    drop(forward);
    let summary = format!("worker={id}");
    forward_audited(outcome, answers, peer, "UPGRADE_WORKER", &summary).await;
    systemd::ready(main.workers().len());
}

/// Replaces worker `id`: new process on the same listening sockets, then a
/// soft stop of the old one.
async fn upgrade_worker_inner(main: &Rc<Main>, id: u32, answers: &Answers) {
    let old = main.worker(id);
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
            Some(main.worker_timeout()),
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
    let turn = main.change_turn().await;
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
    main.insert_worker(new.clone());
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
        Ok(_) | Err(NoAnswer::Gone) => {
            Response::ok(format!("Worker {id} upgraded: new pid {}", new.pid), None)
        }
        Err(no_answer) => Response::failure(format!(
            "Worker {id} upgraded (new pid {}), but the old one did not stop cleanly: {no_answer}",
            new.pid
        )),
    });
}

/// Replaces the main process program, keeping everything it holds.
pub async fn upgrade_main(main: &Rc<Main>, peer: &Peer, answers: &Answers) {
    systemd::reloading("upgrading the main process");
    let failure = match prepare_upgrade(main, peer).await {
        Ok(record_path) => {
            // The new program answers the client and writes the audit
            // record of a success.
            let error = handover::exec_with_record(&record_path);
            let _ = std::fs::remove_file(&record_path);
            format!("main process not upgraded: could not run the new program: {error}")
        }
        Err(error) => format!("main process not upgraded: {error}"),
    };
    audit::record(peer, "UPGRADE_MAIN", "", Err(&failure));
    let _ = answers.send(Response::failure(failure));
    systemd::ready(main.workers().len());
}

async fn prepare_upgrade(main: &Rc<Main>, peer: &Peer) -> Result<PathBuf, String> {
    // Let the workers answer what they were asked, so no answer is lost in
    // the exec.
    let deadline = tokio::time::Instant::now() + main.worker_timeout();
    while main
        .workers()
        .iter()
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
    file::save(&main.state(), &state_file).map_err(|error| error.to_string())?;
    let mut workers = Vec::new();
    for worker in main.workers() {
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
    let command_socket_fd = main.command_socket_fd();
    keep_across_exec(command_socket_fd).map_err(|error| error.to_string())?;
    if let Some(client_fd) = peer.fd {
        keep_across_exec(client_fd).map_err(|error| error.to_string())?;
    }
    let record = UpgradeRecord {
        config_path: main.config().config_path.clone(),
        state_file,
        settings: main.settings(),
        workers,
        command_socket_fd,
        client_fd: peer.fd,
    };
    let record_path = folder.join(format!("sozu-upgrade-{stamp}.json"));
    let text = serde_json::to_vec(&record).map_err(|error| error.to_string())?;
    file::write_atomically(&record_path, &text).map_err(|error| error.to_string())?;
    Ok(record_path)
}
