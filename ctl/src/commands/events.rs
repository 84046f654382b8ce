//! `events`: follow the daemon's event stream until it ends or the reader
//! stops reading.
//!
//! The first answer (the subscription's own EVENTS_SUBSCRIBED event) is
//! awaited with the `-t` timeout, so a dead daemon is reported; after that
//! the stream waits forever, since quiet periods are normal.

use serde_json::Value;
use sozu_command::proto::command::Response;
use sozu_command::requests;

use crate::error::CliError;
use crate::render;
use crate::session::{Session, content_json, content_of, final_answer};

/// One streamed answer as a JSON line: its content in Sozu's shape plus the
/// worker that sent it (`"main"` for the main process).
pub fn event_json(answer: &Response) -> Value {
    let mut value = content_json(content_of(answer));
    if let Value::Object(object) = &mut value {
        object.insert("worker".to_owned(), Value::String(answer.message.clone()));
    }
    value
}

/// One streamed answer as a human line.
pub fn event_text(answer: &Response) -> String {
    match content_of(answer) {
        Some(sozu_command::proto::command::response_content::ContentType::Event(event)) => {
            render::event_line(&answer.message, event)
        }
        _ => answer.message.clone(),
    }
}

/// `events`.
pub fn events(session: &mut Session) -> Result<(), CliError> {
    let first_wait = session.timeout();
    let out = session.out;
    let channel = session.channel()?;
    channel.write_message(&requests::subscribe_events())?;
    let mut wait = first_wait;
    loop {
        let Some(answer) = channel.read_message(wait)? else {
            return Err(CliError::new(
                crate::error::ErrorKind::Io,
                "the daemon closed the event stream",
            ));
        };
        wait = None;
        if !answer.is_processing() {
            // A daemon that refuses subscriptions, or ends the stream.
            let answer = final_answer(answer)?;
            if out.is_json() {
                out.json_line(&event_json(&answer));
            } else {
                out.stream_line(&event_text(&answer));
            }
            return Ok(());
        }
        let written = if out.is_json() {
            out.json_line(&event_json(&answer))
        } else {
            out.stream_line(&event_text(&answer))
        };
        if !written {
            // Whoever read the stream is gone: nothing left to do.
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sozu_command::proto::command::{Event, EventKind, response_content::ContentType};

    #[test]
    fn events_name_their_worker() {
        let answer = Response {
            status: 1,
            message: "main".into(),
            content: Some(
                ContentType::Event(Event {
                    kind: EventKind::EventsSubscribed as i32,
                    ..Event::default()
                })
                .into(),
            ),
        };
        assert_eq!(
            event_json(&answer),
            json!({"EVENT": {"kind": 26, "cluster_id": null, "backend_id": null,
                "address": null, "metric_detail": null}, "worker": "main"})
        );
        assert_eq!(event_text(&answer), "main: EVENTS_SUBSCRIBED");
    }
}
