//! Stopping the daemon: soft (drain, then exit) and hard (now).

use std::rc::Rc;

use sozu_command::proto::command::{
    EventKind, HardStop, Request, Response, SoftStop, request::RequestType,
};

use super::Answers;
use crate::audit::{self, Peer};
use crate::events;
use crate::main_process::Main;
use crate::systemd;

/// Asks every worker to finish its in-flight requests and stop, waits for
/// all of them, then exits.
pub async fn soft_stop(main: &Rc<Main>, peer: &Peer, answers: &Answers) {
    main.begin_stop();
    systemd::stopping("stopping gracefully");
    audit::record(peer, "SOFT_STOP", "", Ok(()));
    main.event(events::event(EventKind::SozuStopRequested));
    let _ = answers.send(Response::processing(
        "Stopping: workers finish their in-flight requests",
    ));
    let request: Request = RequestType::SoftStop(SoftStop {}).into();
    // No deadline here: each worker bounds its own drain.
    let results = main.fan_out(&request, None).await;
    let _ = answers.send(match results.failures() {
        Ok(()) => Response::ok("Stopped gracefully", None),
        Err(failures) => Response::failure(format!("Stopped, with errors: {failures}")),
    });
    main.exit_after_answer();
}

/// Stops every worker now and exits.
pub async fn hard_stop(main: &Rc<Main>, peer: &Peer, answers: &Answers) {
    main.begin_stop();
    systemd::stopping("stopping now");
    audit::record(peer, "HARD_STOP", "", Ok(()));
    main.event(events::event(EventKind::SozuStopRequested));
    let _ = answers.send(Response::processing("Stopping now"));
    let request: Request = RequestType::HardStop(HardStop {}).into();
    let results = main.fan_out(&request, Some(main.worker_timeout())).await;
    for worker in main.workers() {
        worker.kill();
    }
    let _ = answers.send(match results.failures() {
        Ok(()) => Response::ok("Stopped", None),
        Err(failures) => Response::failure(format!("Stopped, with errors: {failures}")),
    });
    main.exit_after_answer();
}
