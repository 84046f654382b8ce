//! `subscribe_events`: the connection then carries every event, from the
//! main process and every worker, until the client goes away or falls too
//! far behind.

use std::rc::Rc;

use sozu_command::proto::command::Response;

use super::Answers;
use crate::main_process::Main;

/// Streams events to `answers` until the client goes away, or until it is
/// dropped for not reading them fast enough (it is told so).
pub async fn subscribe(main: &Rc<Main>, answers: &Answers) {
    let mut queue = main.subscribers().subscribe();
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
