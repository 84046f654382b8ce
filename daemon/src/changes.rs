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
//! Changes are applied one at a time ([`Main::change_turn`]): the next one
//! starts once the previous one is acknowledged or taken back, so taking a
//! change back never undoes someone else's.
//!
//! Process settings (logging, metrics, limits) are not part of the state:
//! they are kept by the main process and sent to every worker. Every change
//! is written to the audit log, and an applied one is announced as an event.

use std::rc::Rc;

use sozu_command::proto::command::{
    Event, EventKind, Request, Response, ResponseStatus, WorkerRequest, request::RequestType,
};
use sozu_command::state::{ConfigState, file, undo::Undo};
use tokio::sync::mpsc::UnboundedSender;

use crate::audit::{self, Peer};
use crate::events;
use crate::fan_out::{self, FanOut};
use crate::logging;
use crate::main_process::Main;

/// Applies a change to the main state and every worker. Sends PROCESSING
/// on `progress` once the main state accepted it.
pub async fn apply_change(
    main: &Rc<Main>,
    request: &Request,
    peer: &Peer,
    progress: Option<&UnboundedSender<Response>>,
) -> Result<(), String> {
    let result = apply_change_inner(main, request, progress).await;
    audit::record_request(
        peer,
        request,
        result.as_ref().map(|_| ()).map_err(String::as_str),
    );
    if result.is_ok() {
        let changes = &main.counters().changes;
        changes.set(changes.get() + 1);
    }
    if result.is_ok()
        && let Some(event) = change_event(request)
    {
        main.event(event);
    }
    result
}

async fn apply_change_inner(
    main: &Rc<Main>,
    request: &Request,
    progress: Option<&UnboundedSender<Response>>,
) -> Result<(), String> {
    sozu_proxy::enforceable::check(request)?;
    if ConfigState::changes_state(request) {
        // Everywhere or nowhere: see `apply` below.
        return apply(main, request, || {
            if let Some(progress) = progress {
                let _ = progress.send(Response::processing("Processing worker request..."));
            }
        })
        .await;
    }
    if !is_process_setting(request) {
        return Err(format!(
            "{} is not a request the daemon handles",
            request.kind_name()
        ));
    }
    if let Some(RequestType::Logging(filter)) = &request.request_type {
        // The main process's own filter first: a filter it refuses
        // reaches no worker.
        logging::set_level(filter).map_err(|error| format!("main process: {error}"))?;
    }
    main.keep_setting(request);
    if let Some(progress) = progress {
        let _ = progress.send(Response::processing("Processing worker request..."));
    }
    let answers = main.fan_out(request, Some(main.worker_timeout())).await;
    answers.failures().map_err(|failures| failures.to_string())
}

/// Process-wide settings sent to workers but not part of the state.
fn is_process_setting(request: &Request) -> bool {
    matches!(
        request.request_type,
        Some(
            RequestType::ConfigureMetrics(_)
                | RequestType::Logging(_)
                | RequestType::SetMaxConnectionsPerIp(_)
                | RequestType::SetMaxConnectionAttempts(_)
                | RequestType::SetMetricDetail(_)
        )
    )
}

/// The event the main process reports for an applied change.
fn change_event(request: &Request) -> Option<Event> {
    let with = |kind: EventKind| Some(events::event(kind));
    let mut event = match request.request_type.as_ref()? {
        RequestType::AddCluster(_) => with(EventKind::ClusterAdded),
        RequestType::RemoveCluster(_) => with(EventKind::ClusterRemoved),
        RequestType::AddHttpFrontend(_)
        | RequestType::AddHttpsFrontend(_)
        | RequestType::AddTcpFrontend(_) => with(EventKind::FrontendAdded),
        RequestType::RemoveHttpFrontend(_)
        | RequestType::RemoveHttpsFrontend(_)
        | RequestType::RemoveTcpFrontend(_) => with(EventKind::FrontendRemoved),
        RequestType::AddCertificate(_) => with(EventKind::CertificateAdded),
        RequestType::RemoveCertificate(_) => with(EventKind::CertificateRemoved),
        RequestType::ReplaceCertificate(_) => with(EventKind::CertificateReplaced),
        RequestType::AddHttpListener(_)
        | RequestType::AddHttpsListener(_)
        | RequestType::AddTcpListener(_) => with(EventKind::ListenerAdded),
        RequestType::RemoveListener(_) => with(EventKind::ListenerRemoved),
        RequestType::ActivateListener(_) => with(EventKind::ListenerActivated),
        RequestType::DeactivateListener(_) => with(EventKind::ListenerDeactivated),
        RequestType::UpdateHttpListener(_)
        | RequestType::UpdateHttpsListener(_)
        | RequestType::UpdateTcpListener(_) => with(EventKind::ListenerUpdated),
        RequestType::ConfigureMetrics(_) => with(EventKind::MetricsConfigured),
        RequestType::Logging(_) => with(EventKind::LoggingLevelChanged),
        // Workers always report every level of detail: a lease changes
        // nothing, so it announces nothing (a console renews one every few
        // seconds).
        _ => None,
    }?;
    match request.request_type.as_ref()? {
        RequestType::AddCluster(cluster) => event.cluster_id = Some(cluster.cluster_id.clone()),
        RequestType::RemoveCluster(cluster_id) => event.cluster_id = Some(cluster_id.clone()),
        RequestType::AddHttpFrontend(front)
        | RequestType::AddHttpsFrontend(front)
        | RequestType::RemoveHttpFrontend(front)
        | RequestType::RemoveHttpsFrontend(front) => {
            event.cluster_id = front.cluster_id.clone();
            event.address = Some(front.address);
        }
        RequestType::AddTcpFrontend(front) | RequestType::RemoveTcpFrontend(front) => {
            event.cluster_id = Some(front.cluster_id.clone());
            event.address = Some(front.address);
        }
        RequestType::AddCertificate(add) => event.address = Some(add.address),
        RequestType::RemoveCertificate(remove) => event.address = Some(remove.address),
        RequestType::ReplaceCertificate(replace) => event.address = Some(replace.address),
        RequestType::AddHttpListener(listener) => event.address = Some(listener.address),
        RequestType::AddHttpsListener(listener) => event.address = Some(listener.address),
        RequestType::AddTcpListener(listener) => event.address = Some(listener.address),
        RequestType::RemoveListener(remove) => event.address = Some(remove.address),
        RequestType::ActivateListener(activate) => event.address = Some(activate.address),
        RequestType::DeactivateListener(deactivate) => event.address = Some(deactivate.address),
        RequestType::UpdateHttpListener(update) => event.address = Some(update.address),
        RequestType::UpdateHttpsListener(update) => event.address = Some(update.address),
        RequestType::UpdateTcpListener(update) => event.address = Some(update.address),
        _ => {}
    }
    Some(event)
}

/// Saves to the configured `saved_state` after a change, when
/// `automatic_state_save` is on. A failure is returned: the caller takes
/// the change back (a change is acknowledged only once it is saved).
pub fn save_automatically(main: &Rc<Main>) -> Result<(), file::StateFileError> {
    let config = main.config();
    if !config.automatic_state_save {
        return Ok(());
    }
    let Some(path) = config.saved_state.clone() else {
        return Ok(());
    };
    drop(config);
    file::save(&main.state(), &path)
        .map(|_| main.counters().saved_now())
        .inspect_err(|error| {
            tracing::error!(%error, "automatic state save failed");
        })
}

/// Applies a state change to the main state and every worker, then saves
/// it when automatic saves are on. `processing` is called once the main
/// state accepted it.
async fn apply(
    main: &Rc<Main>,
    request: &Request,
    processing: impl FnOnce(),
) -> Result<(), String> {
    let _turn = main.change_turn().await;
    let undo = main.state().undo_of(request);
    main.state_mut()
        .dispatch(request)
        .map_err(|error| format!("could not apply request on the main process state: {error}"))?;
    processing();
    let answers = main.fan_out(request, Some(main.worker_timeout())).await;
    let outcome = answers
        .failures()
        .map_err(|failures| failures.to_string())
        .and_then(|()| {
            save_automatically(main)
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
async fn take_back(main: &Rc<Main>, request: &Request, undo: &Undo, answers: &FanOut) {
    let kind = request.kind_name();
    for error in main.state_mut().undo(undo) {
        tracing::error!(request = %kind, %error, "could not take the change back from the main state");
    }
    let applied_by = answers.not_refused_by();
    let workers: Vec<_> = main
        .workers()
        .into_iter()
        .filter(|worker| applied_by.contains(&worker.id))
        .collect();
    for reverse in &undo.requests {
        let answers = fan_out::ask_all(
            &workers,
            reverse,
            || main.request_id("UNDO"),
            Some(main.worker_timeout()),
        )
        .await;
        if let Err(problem) = answers.failures() {
            tracing::warn!(request = %kind, undo = %reverse.kind_name(), %problem, "a worker did not take the change back");
        }
    }
    tracing::warn!(request = %kind, "change rolled back");
}

/// Takes several changes back, the last one first: from the main state,
/// and from every worker not listed as having refused that change. Used by
/// state loads, which stream records to the workers without waiting for
/// each.
pub async fn take_back_all(main: &Rc<Main>, changes: Vec<(Undo, Vec<u32>)>) {
    let workers = main.workers();
    let mut waiting = Vec::new();
    for (undo, refused_by) in changes.into_iter().rev() {
        for error in main.state_mut().undo(&undo) {
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
    let deadline = tokio::time::Instant::now() + main.worker_timeout();
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
