//! Zero-downtime upgrades of the main process and of workers.

use std::rc::Rc;

use sozu_command::proto::command::Response;
use tokio::sync::mpsc::UnboundedSender;

use crate::audit::Peer;
use crate::main_process::Main;

/// Replaces the main process binary, keeping the command socket, the
/// workers and the state.
pub async fn upgrade_main(_main: &Rc<Main>, _peer: &Peer, answers: &UnboundedSender<Response>) {
    let _ = answers.send(Response::failure("upgrade_main is not built yet"));
}

/// Replaces one worker without refusing or cutting a client connection.
pub async fn upgrade_worker(_main: &Rc<Main>, _id: u32, answers: &UnboundedSender<Response>) {
    let _ = answers.send(Response::failure("upgrade_worker is not built yet"));
}
