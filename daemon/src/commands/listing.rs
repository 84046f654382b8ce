//! Requests the main process answers alone, from its own state: listings of
//! workers, frontends, listeners, certificates, request counts and health
//! checks.

use sozu_command::proto::command::{
    CertificatesWithFingerprints, RequestCounts, Response, RunState, WorkerInfo, WorkerInfos,
    request::RequestType, response_content::ContentType,
};

use crate::fan_out::FanOut;
use crate::main_process::Main;

/// The answer to a listing request (a failure for any other request).
pub fn answer(main: &Main, request: &RequestType) -> Response {
    let (message, content) = match request {
        RequestType::ListWorkers(_) => (
            "Successfully listed workers",
            ContentType::Workers(worker_infos(main, None)),
        ),
        RequestType::ListFrontends(filters) => (
            "Successfully listed frontends",
            ContentType::FrontendList(main.state().list_frontends(filters)),
        ),
        RequestType::ListListeners(_) => (
            "Successfully listed listeners",
            ContentType::ListenersList(main.state().list_listeners()),
        ),
        RequestType::QueryCertificatesFromTheState(filters) => (
            "Successfully queried certificates from the state",
            ContentType::CertificatesWithFingerprints(CertificatesWithFingerprints {
                certs: main.state().certificates(filters),
            }),
        ),
        RequestType::CountRequests(_) => (
            "Successfully counted requests",
            ContentType::RequestCounts(RequestCounts {
                map: main.request_counts(),
            }),
        ),
        RequestType::QueryHealthChecks(query) => (
            "Successfully listed health checks",
            ContentType::HealthChecksList(main.state().health_checks(query.cluster_id.as_deref())),
        ),
        _ => return Response::failure("not a listing request"),
    };
    Response::ok(message, Some(content))
}

/// Worker list with each one's state; with `status`, the answers to a
/// status query, a worker that did not answer it OK is NOT_ANSWERING.
pub fn worker_infos(main: &Main, status: Option<&FanOut>) -> WorkerInfos {
    let vec = main
        .workers()
        .iter()
        .map(|worker| {
            let run_state = match status {
                Some(status) if !status.ok_from(worker.id) => RunState::NotAnswering,
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
