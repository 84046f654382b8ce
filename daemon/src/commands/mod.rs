//! What the main process does with each kind of request.
//!
//! Four families, as PROTOCOL.md describes them:
//! - main-process requests (state files, listings, events, reload, upgrades);
//! - configuration changes: validated, applied to the main state, then sent
//!   to every worker; PROCESSING, then OK or a FAILURE naming each worker
//!   that failed or stayed silent;
//! - queries answered by every worker and merged;
//! - requests refused: internal ones and features not built here.

use std::collections::BTreeMap;
use std::rc::Rc;

use sozu_command::proto::command::{
    AggregatedMetrics, CertificatesWithFingerprints, ClusterHashes, ClusterInformations, Event,
    EventKind, ListedFrontends, Request, RequestCounts, Response, ResponseContent, ResponseStatus,
    RunState, WorkerInfo, WorkerInfos, WorkerResponses, request::RequestType,
    response_content::ContentType,
};
use sozu_command::state::ConfigState;
use tokio::sync::mpsc::UnboundedSender;

use crate::audit::{self, Peer};
use crate::events;
use crate::main_process::{Main, summarize};
use crate::workers::NoAnswer;

type Answers = UnboundedSender<Response>;

/// Handles one client request, writing every answer to `answers`.
pub async fn handle(main: &Rc<Main>, request: Request, peer: &Peer, answers: &Answers) {
    main.count(&request);
    let Some(request_type) = request.request_type.clone() else {
        let _ = answers.send(Response::failure(
            "empty request: the frame decoded to a request with no operation",
        ));
        return;
    };
    match request_type {
        RequestType::SaveState(path) => crate::state_files::save(main, &path, peer, answers),
        RequestType::LoadState(path) => crate::state_files::load(main, &path, peer, answers).await,
        RequestType::ListWorkers(_) => {
            let _ = answers.send(Response::ok(
                "Successfully listed workers",
                Some(ContentType::Workers(worker_infos(main, None))),
            ));
        }
        RequestType::ListFrontends(filters) => {
            let listed: ListedFrontends = main.state.borrow().list_frontends(&filters);
            let _ = answers.send(Response::ok(
                "Successfully listed frontends",
                Some(ContentType::FrontendList(listed)),
            ));
        }
        RequestType::ListListeners(_) => {
            let listed = main.state.borrow().list_listeners();
            let _ = answers.send(Response::ok(
                "Successfully listed listeners",
                Some(ContentType::ListenersList(listed)),
            ));
        }
        RequestType::QueryCertificatesFromTheState(filters) => {
            let certs = main.state.borrow().certificates(&filters);
            let _ = answers.send(Response::ok(
                "Successfully queried certificates from the state",
                Some(ContentType::CertificatesWithFingerprints(
                    CertificatesWithFingerprints { certs },
                )),
            ));
        }
        RequestType::CountRequests(_) => {
            let map = main.request_counts.borrow().clone();
            let _ = answers.send(Response::ok(
                "Successfully counted requests",
                Some(ContentType::RequestCounts(RequestCounts { map })),
            ));
        }
        RequestType::QueryHealthChecks(query) => {
            let list = main
                .state
                .borrow()
                .health_checks(query.cluster_id.as_deref());
            let _ = answers.send(Response::ok(
                "Successfully listed health checks",
                Some(ContentType::HealthChecksList(list)),
            ));
        }
        RequestType::SubscribeEvents(_) => subscribe(main, answers).await,
        RequestType::ReloadConfiguration(path) => {
            crate::reload::reload(main, &path, peer, answers).await
        }
        RequestType::UpgradeMain(_) => crate::upgrade::upgrade_main(main, peer, answers).await,
        RequestType::UpgradeWorker(id) => crate::upgrade::upgrade_worker(main, id, answers).await,
        RequestType::LaunchWorker(_) | RequestType::ReturnListenSockets(_) => {
            let _ = answers.send(Response::failure(format!(
                "{} is internal to the daemon and cannot be sent by a client",
                request.kind_name()
            )));
        }
        RequestType::Status(_) => status(main, &request, answers).await,
        RequestType::QueryClusterById(_)
        | RequestType::QueryClustersByDomain(_)
        | RequestType::QueryClustersHashes(_)
        | RequestType::QueryCertificatesFromWorkers(_)
        | RequestType::QueryMaxConnectionsPerIp(_) => {
            merged_query(main, &request, answers).await;
        }
        RequestType::QueryMetrics(_) => metrics(main, &request, answers).await,
        RequestType::CloseSessions(close) => {
            close_sessions(main, &request, &close, peer, answers).await
        }
        RequestType::SoftStop(_) => crate::stop::soft_stop(main, answers).await,
        RequestType::HardStop(_) => crate::stop::hard_stop(main, answers).await,
        _ => {
            let result = apply_change(main, &request, peer, Some(answers)).await;
            let _ = answers.send(match result {
                Ok(()) => Response::ok("Successfully applied request to all workers", None),
                Err(message) => Response::failure(message),
            });
        }
    }
}

/// Applies a change to the main state and every worker. Sends PROCESSING
/// on `progress` once the main state accepted it.
pub async fn apply_change(
    main: &Rc<Main>,
    request: &Request,
    peer: &Peer,
    progress: Option<&Answers>,
) -> Result<(), String> {
    let kind = request.kind_name();
    let result = apply_change_inner(main, request, progress).await;
    audit::record(
        peer,
        &kind,
        result.as_ref().map(|_| ()).map_err(String::as_str),
    );
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
    progress: Option<&Answers>,
) -> Result<(), String> {
    sozu_proxy::support::check(request)?;
    if ConfigState::changes_state(request) {
        // Everywhere or nowhere: see `changes`.
        return crate::changes::apply(main, request, || {
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
        crate::logging::set_level(filter).map_err(|error| format!("main process: {error}"))?;
    }
    main.settings
        .borrow_mut()
        .insert(request.kind_name(), request.clone());
    if let Some(progress) = progress {
        let _ = progress.send(Response::processing("Processing worker request..."));
    }
    let answers = main.fan_out(request, Some(main.worker_timeout)).await;
    summarize(&answers)
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

/// Worker list with each one's state; `answered` lists the workers that
/// answered a status query (the others are NOT_ANSWERING).
fn worker_infos(main: &Main, answered: Option<&BTreeMap<u32, bool>>) -> WorkerInfos {
    let vec = main
        .workers
        .borrow()
        .values()
        .map(|worker| {
            let run_state = match answered {
                Some(answered) if !answered.get(&worker.id).copied().unwrap_or(false) => {
                    RunState::NotAnswering
                }
                _ => worker.run_state(),
            };
            WorkerInfo {
                id: worker.id,
                pid: worker.pid,
                run_state: run_state as i32,
            }
        })
        .collect();
    WorkerInfos { vec }
}

async fn status(main: &Rc<Main>, request: &Request, answers: &Answers) {
    let _ = answers.send(Response::processing("Querying status of workers..."));
    let results = main.fan_out(request, Some(main.worker_timeout)).await;
    let answered: BTreeMap<u32, bool> = results
        .iter()
        .map(|(id, result)| {
            (
                *id,
                matches!(result, Ok(r) if r.status == ResponseStatus::Ok as i32),
            )
        })
        .collect();
    let _ = answers.send(Response::ok(
        "Successfully collected the status of workers",
        Some(ContentType::Workers(worker_infos(main, Some(&answered)))),
    ));
}

/// What the main process itself answers to a merged query, as the "main"
/// entry of the worker responses.
fn main_answer(main: &Main, request: &Request) -> Option<ContentType> {
    let state = main.state.borrow();
    match request.request_type.as_ref()? {
        RequestType::QueryClusterById(cluster_id) => {
            Some(ContentType::Clusters(ClusterInformations {
                vec: state.cluster_information(cluster_id).into_iter().collect(),
            }))
        }
        RequestType::QueryClustersByDomain(query) => {
            Some(ContentType::Clusters(ClusterInformations {
                vec: state
                    .cluster_ids_by_domain(&query.hostname, query.path.as_deref())
                    .iter()
                    .filter_map(|id| state.cluster_information(id))
                    .collect(),
            }))
        }
        RequestType::QueryClustersHashes(_) => Some(ContentType::ClusterHashes(ClusterHashes {
            map: state.cluster_hashes(),
        })),
        _ => None,
    }
}

async fn merged_query(main: &Rc<Main>, request: &Request, answers: &Answers) {
    let _ = answers.send(Response::processing("Querying workers..."));
    let results = main.fan_out(request, Some(main.worker_timeout)).await;
    let mut map = BTreeMap::new();
    let mut failures = Vec::new();
    for (id, result) in results {
        match result {
            Ok(response) if response.status == ResponseStatus::Ok as i32 => {
                map.insert(id.to_string(), response.content.unwrap_or_default());
            }
            Ok(response) => failures.push(format!("worker {id}: {}", response.message)),
            Err(no_answer) => failures.push(format!("worker {id}: {no_answer}")),
        }
    }
    if let Some(content) = main_answer(main, request) {
        map.insert(events::MAIN.to_owned(), ResponseContent::from(content));
    }
    if !failures.is_empty() {
        let _ = answers.send(Response::failure(format!(
            "some workers could not answer: {}",
            failures.join("; ")
        )));
        return;
    }
    let _ = answers.send(Response::ok(
        "Successfully queried workers",
        Some(ContentType::WorkerResponses(WorkerResponses { map })),
    ));
}

async fn metrics(main: &Rc<Main>, request: &Request, answers: &Answers) {
    let Some(RequestType::QueryMetrics(options)) = &request.request_type else {
        return;
    };
    let _ = answers.send(Response::processing("Querying metrics..."));
    let results = main.fan_out(request, Some(main.worker_timeout)).await;
    let mut aggregated = AggregatedMetrics::default();
    let mut failures = Vec::new();
    for (id, result) in results {
        match result {
            Ok(response) if response.status == ResponseStatus::Ok as i32 => {
                if let Some(ContentType::WorkerMetrics(worker)) =
                    response.content.and_then(|content| content.content_type)
                {
                    crate::metrics::merge(&mut aggregated, id, worker, options.workers);
                }
            }
            Ok(response) => failures.push(format!("worker {id}: {}", response.message)),
            Err(no_answer) => failures.push(format!("worker {id}: {no_answer}")),
        }
    }
    crate::metrics::add_main(&mut aggregated, &main.state.borrow());
    if !failures.is_empty() {
        let _ = answers.send(Response::failure(format!(
            "some workers could not answer: {}",
            failures.join("; ")
        )));
        return;
    }
    let _ = answers.send(if options.list {
        Response::ok(
            "Successfully listed available metrics",
            Some(ContentType::AvailableMetrics(crate::metrics::available(
                &aggregated,
            ))),
        )
    } else {
        Response::ok(
            "Successfully aggregated metrics",
            Some(ContentType::Metrics(aggregated)),
        )
    });
}

/// Closes the sessions of a cluster (or of one backend) on every worker and
/// answers how many were closed in all. An action: never saved or replayed.
async fn close_sessions(
    main: &Rc<Main>,
    request: &Request,
    close: &sozu_command::proto::command::CloseSessions,
    peer: &Peer,
    answers: &Answers,
) {
    if !main.state.borrow().clusters.contains_key(&close.cluster_id) {
        let message = format!("cluster '{}' does not exist", close.cluster_id);
        audit::record(peer, "CLOSE_SESSIONS", Err(&message));
        let _ = answers.send(Response::failure(message));
        return;
    }
    let _ = answers.send(Response::processing("Closing sessions on every worker..."));
    let results = main.fan_out(request, Some(main.worker_timeout)).await;
    let mut total = sozu_command::proto::command::ClosedSessions::default();
    let mut failures = Vec::new();
    for (id, result) in &results {
        match result {
            Ok(response) if response.status == ResponseStatus::Ok as i32 => {
                if let Some(ContentType::ClosedSessions(closed)) = response
                    .content
                    .as_ref()
                    .and_then(|content| content.content_type.clone())
                {
                    total.closed += closed.closed;
                    total.draining += closed.draining;
                }
            }
            other => failures.extend(describe(*id, other)),
        }
    }
    let outcome = if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    };
    audit::record(
        peer,
        "CLOSE_SESSIONS",
        outcome.as_ref().map(|_| ()).map_err(String::as_str),
    );
    let _ = answers.send(match outcome {
        Ok(()) => Response::ok(
            format!("Closed {} sessions", total.closed),
            Some(ContentType::ClosedSessions(total)),
        ),
        Err(failures) => Response::failure(format!(
            "closed {} sessions, but some workers failed: {failures}",
            total.closed
        )),
    });
}

async fn subscribe(main: &Rc<Main>, answers: &Answers) {
    let mut queue = main.subscribers.subscribe();
    loop {
        tokio::select! {
            event = queue.recv() => match event {
                Some(event) => {
                    if answers.send(event).is_err() {
                        return;
                    }
                }
                None => {
                    // Dropped for not keeping up: say so, then end the stream.
                    let _ = answers.send(Response::failure(
                        "event subscription dropped: the client did not read events fast enough",
                    ));
                    return;
                }
            },
            () = answers.closed() => return,
        }
    }
}

/// Describes a worker that did not answer, for messages.
pub fn describe(
    id: u32,
    result: &Result<sozu_command::proto::command::WorkerResponse, NoAnswer>,
) -> Option<String> {
    match result {
        Ok(response) if response.status == ResponseStatus::Ok as i32 => None,
        Ok(response) => Some(format!("worker {id}: {}", response.message)),
        Err(no_answer) => Some(format!("worker {id}: {no_answer}")),
    }
}
