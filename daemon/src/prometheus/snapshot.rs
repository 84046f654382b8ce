//! The exposition text scrapes are answered with, refreshed at most once a
//! second.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sozu_command::proto::command::{QueryMetricsOptions, request::RequestType};
use tokio::sync::Notify;

use crate::commands::query;
use crate::main_process::Main;

/// Shortest time between two snapshots.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The latest exposition text.
#[derive(Default)]
pub struct Snapshot {
    text: RefCell<Bytes>,
    taken: Cell<Option<Instant>>,
    refreshing: Cell<bool>,
    refreshed: Notify,
}

impl Snapshot {
    /// The latest text. Starts a new snapshot when this one is a second
    /// old or more (and none is being taken); waits only when there is no
    /// snapshot yet.
    pub async fn current(self: &Rc<Self>, main: &Rc<Main>) -> Bytes {
        // Registered now: the wake-up of a refresh that ends before this
        // task is polled again is not missed.
        let refreshed = self.refreshed.notified();
        let stale = self
            .taken
            .get()
            .is_none_or(|taken| taken.elapsed() >= MIN_INTERVAL);
        if stale && !self.refreshing.get() {
            self.refreshing.set(true);
            let (snapshot, main) = (self.clone(), main.clone());
            tokio::task::spawn_local(async move { snapshot.refresh(&main).await });
        }
        if self.taken.get().is_none() {
            let wait = main.worker_timeout() + Duration::from_secs(1);
            let _ = tokio::time::timeout(wait, refreshed).await;
        }
        self.text.borrow().clone()
    }

    async fn refresh(&self, main: &Rc<Main>) {
        let options = QueryMetricsOptions::default();
        let request = RequestType::QueryMetrics(options.clone()).into();
        match query::aggregate(main, &request, &options, true).await {
            Ok(aggregated) => {
                let text = sozu_command::prometheus::render(&aggregated);
                *self.text.borrow_mut() = Bytes::from(text);
            }
            Err(error) => tracing::warn!(%error, "prometheus snapshot failed"),
        }
        self.taken.set(Some(Instant::now()));
        self.refreshing.set(false);
        self.refreshed.notify_waiters();
    }
}
