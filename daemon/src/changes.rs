//! A configuration change, everywhere or nowhere.
//!
//! The main process applies a change to its state (which refuses what
//! [`sozu_command::validate`] or the state itself refuses, changing
//! nothing), sends it to every worker, and, with `automatic_state_save`,
//! saves the state. The change is acknowledged only when all of that
//! succeeded. Otherwise (a worker refused it, for something only a worker
//! can find out such as an address another process listens on; a worker
//! stayed silent or died; the save failed) it is taken back: from the main
//! state, and from every worker that did not refuse it (a worker that
//! refused it applied nothing), and the client gets a FAILURE saying why.
//!
//! Changes are applied one at a time ([`Main::changes`]): the next one
//! starts once the previous one is acknowledged or taken back, so taking a
//! change back never undoes someone else's.

use std::rc::Rc;

use sozu_command::proto::command::{Request, ResponseStatus, WorkerRequest, WorkerResponse};
use sozu_command::state::undo::Undo;

use crate::main_process::{Main, summarize};
use crate::workers::NoAnswer;

/// Applies a state change to the main state and every worker, then saves
/// it when automatic saves are on. `processing` is called once the main
/// state accepted it.
pub async fn apply(
    main: &Rc<Main>,
    request: &Request,
    processing: impl FnOnce(),
) -> Result<(), String> {
    let _turn = main.changes.lock().await;
    let undo = main.state.borrow().undo_of(request);
    main.state
        .borrow_mut()
        .dispatch(request)
        .map_err(|error| format!("could not apply request on the main process state: {error}"))?;
    processing();
    let answers = main.fan_out(request, Some(main.worker_timeout)).await;
    let outcome = summarize(&answers).and_then(|()| {
        crate::state_files::save_automatically(main)
            .map_err(|error| format!("the automatic state save failed: {error}"))
    });
    if let Err(reason) = outcome {
        take_back(main, request, &undo, &answers).await;
        return Err(format!("{reason}; the change was rolled back"));
    }
    Ok(())
}

/// Takes a change back from the main state and from every worker that did
/// not refuse it.
pub async fn take_back(
    main: &Rc<Main>,
    request: &Request,
    undo: &Undo,
    answers: &[(u32, Result<WorkerResponse, NoAnswer>)],
) {
    let kind = request.kind_name();
    for error in main.state.borrow_mut().undo(undo) {
        tracing::error!(request = %kind, %error, "could not take the change back from the main state");
    }
    let applied_by: Vec<u32> = answers
        .iter()
        .filter(|(_, answer)| {
            !matches!(answer, Ok(response) if response.status == ResponseStatus::Failure as i32)
        })
        .map(|(id, _)| *id)
        .collect();
    let workers: Vec<_> = main
        .workers
        .borrow()
        .values()
        .filter(|worker| applied_by.contains(&worker.id))
        .cloned()
        .collect();
    for reverse in &undo.requests {
        let asks = workers.iter().map(|worker| {
            let request = WorkerRequest {
                id: main.request_id("UNDO"),
                content: reverse.clone(),
            };
            async move {
                (
                    worker.id,
                    worker.ask(request, Some(main.worker_timeout)).await,
                )
            }
        });
        for (id, answer) in futures::future::join_all(asks).await {
            if let Some(problem) = crate::commands::describe(id, &answer) {
                tracing::warn!(request = %kind, undo = %reverse.kind_name(), %problem, "a worker did not take the change back");
            }
        }
    }
    tracing::warn!(request = %kind, "change rolled back");
}

/// Takes several changes back, the last one first: from the main state,
/// and from every worker not listed as having refused that change. Used by
/// state loads, which stream records to the workers without waiting for
/// each.
pub async fn take_back_all(main: &Rc<Main>, changes: Vec<(Undo, Vec<u32>)>) {
    let workers: Vec<_> = main.workers.borrow().values().cloned().collect();
    let mut waiting = Vec::new();
    for (undo, refused_by) in changes.into_iter().rev() {
        for error in main.state.borrow_mut().undo(&undo) {
            tracing::error!(%error, "could not take a loaded record back from the main state");
        }
        for worker in workers.iter().filter(|w| !refused_by.contains(&w.id)) {
            for reverse in &undo.requests {
                let answer = worker.send(WorkerRequest {
                    id: main.request_id("UNDO"),
                    content: reverse.clone(),
                });
                waiting.push((worker.id, answer));
            }
        }
    }
    let deadline = tokio::time::Instant::now() + main.worker_timeout;
    for (id, answer) in waiting {
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(response)) if response.status == ResponseStatus::Ok as i32 => {}
            Ok(Ok(response)) => {
                tracing::warn!(worker = id, reason = %response.message, "a worker did not take a record back");
            }
            _ => tracing::warn!(
                worker = id,
                "a worker did not answer while taking records back"
            ),
        }
    }
}
