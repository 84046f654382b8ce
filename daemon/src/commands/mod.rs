//! What the main process does with each kind of request: [`handle`]
//! dispatches, one file per family of handlers does the work.
//!
//! The families, as doc/protocol.md ("Who handles what") describes them:
//! - answered by the main process alone from its state ([`listing`]);
//! - configuration changes: validated, applied to the main state, then sent
//!   to every worker; PROCESSING, then OK or a FAILURE naming each worker
//!   that failed or stayed silent (see [`crate::changes`]);
//! - queries answered by every worker and merged ([`query`]), and closing
//!   sessions on every worker ([`sessions`]);
//! - the longer operations: state files ([`state_files`]), reloading the
//!   configuration ([`reload`]), stopping ([`stop`]), upgrades
//!   ([`upgrade`]), and event subscriptions ([`subscribe`]);
//! - requests refused: internal ones and features not built here.

mod listing;
pub mod query;
mod reload;
mod sessions;
mod state_files;
pub mod stop;
mod subscribe;
mod upgrade;

use std::path::{Path, PathBuf};
use std::rc::Rc;

use sozu_command::proto::command::{Request, Response, request::RequestType};
use tokio::sync::mpsc::UnboundedSender;

use crate::audit::Peer;
use crate::changes;
use crate::main_process::Main;

/// Where a handler writes its answers, in order: any PROCESSING answers,
/// then one final OK or FAILURE (an event subscription writes events until
/// the client goes away).
pub type Answers = UnboundedSender<Response>;

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
        RequestType::SaveState(path) => state_files::save(main, &path, peer, answers),
        RequestType::LoadState(path) => state_files::load(main, &path, peer, answers).await,
        RequestType::ListWorkers(_)
        | RequestType::ListFrontends(_)
        | RequestType::ListListeners(_)
        | RequestType::QueryCertificatesFromTheState(_)
        | RequestType::CountRequests(_)
        | RequestType::QueryHealthChecks(_) => {
            let _ = answers.send(listing::answer(main, &request_type));
        }
        RequestType::SubscribeEvents(_) => subscribe::subscribe(main, answers).await,
        RequestType::ReloadConfiguration(path) => reload::reload(main, &path, peer, answers).await,
        RequestType::UpgradeMain(_) => upgrade::upgrade_main(main, peer, answers).await,
        RequestType::UpgradeWorker(id) => upgrade::upgrade_worker(main, id, peer, answers).await,
        RequestType::LaunchWorker(_) | RequestType::ReturnListenSockets(_) => {
            let _ = answers.send(Response::failure(format!(
                "{} is internal to the daemon and cannot be sent by a client",
                request.kind_name()
            )));
        }
        RequestType::Status(_) => query::status(main, &request, answers).await,
        RequestType::QueryClusterById(_)
        | RequestType::QueryClustersByDomain(_)
        | RequestType::QueryClustersHashes(_)
        | RequestType::QueryCertificatesFromWorkers(_)
        | RequestType::QueryMaxConnectionsPerIp(_) => {
            query::merged_query(main, &request, answers).await;
        }
        RequestType::QueryMetrics(options) => {
            query::metrics(main, &request, &options, answers).await
        }
        RequestType::CloseSessions(close) => {
            sessions::close_sessions(main, &request, &close, peer, answers).await
        }
        RequestType::SoftStop(_) => stop::soft_stop(main, peer, answers).await,
        RequestType::HardStop(_) => stop::hard_stop(main, peer, answers).await,
        _ => {
            let result = changes::apply_change(main, &request, peer, Some(answers)).await;
            let _ = answers.send(match result {
                Ok(()) => Response::ok("Successfully applied request to all workers", None),
                Err(message) => Response::failure(message),
            });
        }
    }
}

/// Passes the answers of a command that ran into `outcome` on to the
/// client, writing the audit record of its final answer (`kind`, what the
/// request was about in `summary`).
async fn forward_audited(
    mut outcome: tokio::sync::mpsc::UnboundedReceiver<Response>,
    answers: &Answers,
    peer: &Peer,
    kind: &str,
    summary: &str,
) {
    use sozu_command::proto::command::ResponseStatus;
    while let Some(answer) = outcome.recv().await {
        if answer.status != ResponseStatus::Processing as i32 {
            let result = if answer.status == ResponseStatus::Ok as i32 {
                Ok(())
            } else {
                Err(answer.message.as_str())
            };
            crate::audit::record(peer, kind, summary, result);
        }
        let _ = answers.send(answer);
    }
}

/// Resolves a path sent by a client against the main process's working
/// directory (the CLI makes them absolute before sending).
fn resolve(path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    }
}
