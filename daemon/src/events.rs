//! Event subscribers: every event, from the main process or a worker, goes
//! to every subscriber, without ever waiting for one.

use std::cell::RefCell;

use sozu_command::proto::command::{
    Event, EventKind, Response, ResponseStatus, response_content::ContentType,
};
use tokio::sync::mpsc;

/// Events a subscriber may have queued before it is dropped as too slow.
pub const SUBSCRIBER_QUEUE: usize = 4096;

/// The message of events that come from the main process.
pub const MAIN: &str = "main";

/// The current subscribers.
#[derive(Default)]
pub struct Subscribers {
    queues: RefCell<Vec<mpsc::Sender<Response>>>,
}

/// An event as a subscriber receives it: PROCESSING, the source as message.
pub fn event_response(source: &str, event: Event) -> Response {
    Response {
        status: ResponseStatus::Processing as i32,
        message: source.to_owned(),
        content: Some(ContentType::Event(event).into()),
    }
}

/// An event with only a kind.
pub fn event(kind: EventKind) -> Event {
    Event {
        kind: kind as i32,
        cluster_id: None,
        backend_id: None,
        address: None,
        metric_detail: None,
    }
}

impl Subscribers {
    /// A new subscriber; its queue starts with its own EVENTS_SUBSCRIBED.
    pub fn subscribe(&self) -> mpsc::Receiver<Response> {
        let (sender, receiver) = mpsc::channel(SUBSCRIBER_QUEUE);
        let _ = sender.try_send(event_response(MAIN, event(EventKind::EventsSubscribed)));
        self.queues.borrow_mut().push(sender);
        receiver
    }

    /// Queues `event` for every subscriber. A subscriber whose queue is full
    /// is dropped: its connection is told and closed, the others go on.
    pub fn broadcast(&self, source: &str, event: Event) {
        let response = event_response(source, event);
        self.queues
            .borrow_mut()
            .retain(|queue| match queue.try_send(response.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!("dropping an event subscriber that does not keep up");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
    }
}
