//! `close_sessions`: closing the sessions of a cluster, or of one of its
//! backends, on every worker.

use std::rc::Rc;

use sozu_command::proto::command::{
    CloseSessions, ClosedSessions, Request, Response, response_content::ContentType,
};

use super::Answers;
use crate::audit::{self, Peer};
use crate::main_process::Main;

/// Closes the sessions of a cluster (or of one backend) on every worker and
/// answers how many were closed in all. An action: never saved or replayed.
pub async fn close_sessions(
    main: &Rc<Main>,
    request: &Request,
    close: &CloseSessions,
    peer: &Peer,
    answers: &Answers,
) {
    if !main.state().clusters.contains_key(&close.cluster_id) {
        let message = format!("cluster '{}' does not exist", close.cluster_id);
        audit::record_request(peer, request, Err(&message));
        let _ = answers.send(Response::failure(message));
        return;
    }
    let _ = answers.send(Response::processing("Closing sessions on every worker..."));
    let results = main.fan_out(request, Some(main.worker_timeout())).await;
    let outcome = results.failures().map_err(|failures| failures.to_string());
    let mut total = ClosedSessions::default();
    for (_, response) in results.into_answered_ok() {
        if let Some(ContentType::ClosedSessions(closed)) =
            response.content.and_then(|content| content.content_type)
        {
            total.closed += closed.closed;
            total.draining += closed.draining;
        }
    }
    audit::record_request(
        peer,
        request,
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
