//! The main process's own data: the configuration state (the truth), the
//! running workers, the process settings, and keeping the workers running.
//!
//! [`Main`]'s fields are private to this module: the command handlers, the
//! command socket and the boot path go through its methods. Everything runs
//! on one single-threaded event loop, hence `RefCell`s: a borrow is never
//! held across an `.await`.

use std::cell::{Cell, Ref, RefCell, RefMut};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Duration;

use sozu_command::config::Config;
use sozu_command::proto::command::{
    Request, ResponseStatus, RunState, WorkerRequest, response_content::ContentType,
};
use sozu_command::state::ConfigState;
use tokio::sync::{MutexGuard, Notify};

use crate::events::Subscribers;
use crate::fan_out::{self, FanOut};
use crate::workers::{Worker, WorkerLauncher, WorkerNews};

/// Longest wait between two restarts of a crashing worker.
const MAX_RELAUNCH_DELAY: Duration = Duration::from_secs(30);

/// The main process.
pub struct Main {
    /// The configuration the daemon started with (or last reloaded).
    config: RefCell<Config>,
    /// The configuration state: the truth.
    state: RefCell<ConfigState>,
    /// Running workers, by id.
    workers: RefCell<BTreeMap<u32, Rc<Worker>>>,
    /// How workers are started.
    launcher: WorkerLauncher,
    /// Event subscribers.
    subscribers: Subscribers,
    /// Requests received, by kind (`count_requests`).
    request_counts: RefCell<BTreeMap<String, i32>>,
    /// Process-wide settings sent to workers (logging, metrics, limits),
    /// the latest of each kind, replayed to restarted workers.
    settings: RefCell<BTreeMap<String, Request>>,
    /// How long workers have to answer.
    worker_timeout: Duration,
    /// Held while a configuration change is applied (or taken back) and
    /// while a worker is given the whole state, so that changes happen one
    /// at a time and a starting worker misses none.
    changes: tokio::sync::Mutex<()>,
    /// Consecutive quick deaths by worker id, for the restart backoff.
    relaunches: RefCell<HashMap<u32, u32>>,
    next_request: Cell<u64>,
    /// Set when the daemon must exit.
    exit: Notify,
    /// True once a stop began: nothing is restarted any more.
    stopping: Cell<bool>,
    /// Set by a stop request: the daemon exits once its answer is written.
    exit_after_answer: Cell<bool>,
    /// The listening command socket (handed over by `upgrade_main`).
    command_socket_fd: Cell<std::os::fd::RawFd>,
    /// Changes, saves and restarts, for the metrics.
    counters: crate::metrics::MainCounters,
}

impl Main {
    /// A main process for `config`, an initial state and the process
    /// settings, with no worker yet.
    pub fn new(
        config: Config,
        state: ConfigState,
        settings: Vec<Request>,
        launcher: WorkerLauncher,
    ) -> Rc<Main> {
        Rc::new(Main {
            worker_timeout: Duration::from_secs(u64::from(config.worker_timeout.max(1))),
            config: RefCell::new(config),
            state: RefCell::new(state),
            changes: tokio::sync::Mutex::new(()),
            workers: RefCell::new(BTreeMap::new()),
            launcher,
            subscribers: Subscribers::default(),
            request_counts: RefCell::new(BTreeMap::new()),
            settings: RefCell::new(
                settings
                    .into_iter()
                    .map(|request| (request.kind_name(), request))
                    .collect(),
            ),
            relaunches: RefCell::new(HashMap::new()),
            next_request: Cell::new(0),
            exit: Notify::new(),
            stopping: Cell::new(false),
            exit_after_answer: Cell::new(false),
            command_socket_fd: Cell::new(-1),
            counters: crate::metrics::MainCounters::default(),
        })
    }

    /// Changes, saves and restarts counted for the metrics.
    pub fn counters(&self) -> &crate::metrics::MainCounters {
        &self.counters
    }

    /// The configuration in use. Not to be held across an `.await`.
    pub fn config(&self) -> Ref<'_, Config> {
        self.config.borrow()
    }

    /// Takes from a reloaded configuration the settings that apply while
    /// running (those that only matter at start, such as the socket and
    /// the worker count, stay as they are), and remembers its file.
    pub fn reloaded(&self, reloaded: &Config, path: std::path::PathBuf) {
        let mut current = self.config.borrow_mut();
        current.automatic_state_save = reloaded.automatic_state_save;
        current.saved_state = reloaded.saved_state.clone();
        current.worker_automatic_restart = reloaded.worker_automatic_restart;
        current.config_path = Some(path);
    }

    /// The configuration state. Not to be held across an `.await`.
    pub fn state(&self) -> Ref<'_, ConfigState> {
        self.state.borrow()
    }

    /// The configuration state, to change it. Not to be held across an
    /// `.await`; changes go through [`Main::change_turn`] first.
    pub fn state_mut(&self) -> RefMut<'_, ConfigState> {
        self.state.borrow_mut()
    }

    /// Waits for the turn to change the configuration: held while a change
    /// is applied (or taken back) everywhere, and while a worker is given
    /// the whole state, so that changes happen one at a time.
    pub async fn change_turn(&self) -> MutexGuard<'_, ()> {
        self.changes.lock().await
    }

    /// The running workers, in id order.
    pub fn workers(&self) -> Vec<Rc<Worker>> {
        self.workers.borrow().values().cloned().collect()
    }

    /// The running worker `id`.
    pub fn worker(&self, id: u32) -> Option<Rc<Worker>> {
        self.workers.borrow().get(&id).cloned()
    }

    /// Makes `worker` the running worker of its id (replacing any other).
    pub fn insert_worker(&self, worker: Rc<Worker>) {
        self.workers.borrow_mut().insert(worker.id, worker);
    }

    /// How workers are started (and adopted after an upgrade).
    pub fn launcher(&self) -> &WorkerLauncher {
        &self.launcher
    }

    /// How long workers have to answer a request.
    pub fn worker_timeout(&self) -> Duration {
        self.worker_timeout
    }

    /// The event subscribers.
    pub fn subscribers(&self) -> &Subscribers {
        &self.subscribers
    }

    /// The number of requests received, by kind.
    pub fn request_counts(&self) -> BTreeMap<String, i32> {
        self.request_counts.borrow().clone()
    }

    /// Keeps `request` as the latest process setting of its kind, replayed
    /// to every worker started from now on.
    pub fn keep_setting(&self, request: &Request) {
        self.settings
            .borrow_mut()
            .insert(request.kind_name(), request.clone());
    }

    /// The process settings, the latest of each kind.
    pub fn settings(&self) -> Vec<Request> {
        self.settings.borrow().values().cloned().collect()
    }

    /// Marks the daemon as stopping: dead workers are not restarted any
    /// more, and every worker is marked as stopping.
    pub fn begin_stop(&self) {
        self.stopping.set(true);
        for worker in self.workers.borrow().values() {
            worker.set_run_state(RunState::Stopping);
        }
    }

    /// Asks for the daemon to exit once the current answer is written.
    pub fn exit_after_answer(&self) {
        self.exit_after_answer.set(true);
    }

    /// Whether a stop asked for the daemon to exit once its answer is
    /// written.
    pub fn exits_after_answer(&self) -> bool {
        self.exit_after_answer.get()
    }

    /// Tells the main loop to exit.
    pub fn exit(&self) {
        self.exit.notify_one();
    }

    /// Waits until [`Main::exit`] is called.
    pub async fn exited(&self) {
        self.exit.notified().await
    }

    /// Remembers the descriptor of the listening command socket, to hand it
    /// over in an upgrade.
    pub fn set_command_socket_fd(&self, fd: std::os::fd::RawFd) {
        self.command_socket_fd.set(fd);
    }

    /// The descriptor of the listening command socket.
    pub fn command_socket_fd(&self) -> std::os::fd::RawFd {
        self.command_socket_fd.get()
    }

    /// A fresh request id for the worker channels.
    pub fn request_id(&self, prefix: &str) -> String {
        let next = self.next_request.get();
        self.next_request.set(next + 1);
        format!("{prefix}-{next}")
    }

    /// Everything a new worker must apply to hold the current
    /// configuration: the state, then the process settings.
    pub fn bootstrap_requests(&self) -> Vec<Request> {
        let mut requests = self.state.borrow().generate_requests();
        requests.extend(self.settings.borrow().values().cloned());
        requests
    }

    /// Starts worker `id` with the whole current configuration and waits
    /// until it applied it. Returns the worker or why it failed.
    pub async fn start_worker(
        self: &Rc<Self>,
        id: u32,
        generation: u64,
        sockets: Option<Vec<(std::net::SocketAddr, std::os::fd::OwnedFd)>>,
    ) -> Result<Rc<Worker>, String> {
        // A worker replacing another (an upgrade, given the old one's
        // sockets) must hold everything the old one held, or the upgrade
        // is refused and the old one kept; a worker started or restarted
        // on its own skips what it cannot apply (see below).
        let replacing = sockets.is_some();
        let worker = self
            .launcher
            .launch(id, generation, sockets)
            .map_err(|error| format!("could not start worker {id}: {error}"))?;
        let requests = self.bootstrap_requests();
        let answers: Vec<_> = requests
            .into_iter()
            .map(|request| {
                let kind = request.kind_name();
                let answer = worker.send(WorkerRequest {
                    id: self.request_id("INIT"),
                    content: request,
                });
                (kind, answer)
            })
            .collect();
        // The worker applies them in order; give it time proportional to
        // the work, at least the usual worker timeout.
        let deadline = tokio::time::Instant::now()
            + self.worker_timeout
            + Duration::from_millis(answers.len() as u64);
        for (kind, answer) in answers {
            match tokio::time::timeout_at(deadline, answer).await {
                Ok(Ok(response)) if response.status == ResponseStatus::Ok as i32 => {}
                Ok(Ok(response)) if replacing => {
                    worker.kill();
                    return Err(format!("worker {id} refused {kind}: {}", response.message));
                }
                Ok(Ok(response)) => {
                    // The worker applied nothing of that record and goes on
                    // with the others: one record it cannot apply (an
                    // address taken by another process meanwhile) must not
                    // keep it down.
                    tracing::error!(
                        worker = id,
                        request = %kind,
                        reason = %response.message,
                        "the starting worker skipped a record it could not apply"
                    );
                }
                Ok(Err(_)) => return Err(format!("worker {id} exited while starting")),
                Err(_) => {
                    worker.kill();
                    return Err(format!(
                        "worker {id} did not apply its configuration in time"
                    ));
                }
            }
        }
        Ok(worker)
    }

    /// Sends `request` to every worker and waits for each answer, at most
    /// `timeout` (`None`: no limit).
    pub async fn fan_out(&self, request: &Request, timeout: Option<Duration>) -> FanOut {
        let workers = self.workers();
        fan_out::ask_all(&workers, request, || self.request_id("REQ"), timeout).await
    }

    /// Reports an event to subscribers, from the main process.
    pub fn event(&self, event: sozu_command::proto::command::Event) {
        self.subscribers.broadcast(crate::events::MAIN, event);
    }

    /// Handles what workers report on their own.
    pub async fn on_news(self: &Rc<Self>, news: WorkerNews) {
        match news {
            WorkerNews::Event(worker_id, response) => {
                if let Some(ContentType::Event(event)) =
                    response.content.and_then(|content| content.content_type)
                {
                    self.subscribers.broadcast(&worker_id.to_string(), event);
                }
            }
            WorkerNews::Exited(worker_id, generation, status) => {
                let current = self.workers.borrow().get(&worker_id).cloned();
                let Some(worker) = current.filter(|worker| worker.generation == generation) else {
                    return; // an old generation, already replaced
                };
                self.workers.borrow_mut().remove(&worker_id);
                if self.stopping.get() || worker.run_state() == RunState::Stopping {
                    return;
                }
                tracing::error!(worker = worker_id, %status, "worker died");
                crate::systemd::notify(&format!(
                    "STATUS={} workers running (worker {worker_id} died)",
                    self.workers.borrow().len()
                ));
                self.event(sozu_command::proto::command::Event {
                    kind: sozu_command::proto::command::EventKind::WorkerKilled as i32,
                    ..crate::events::event(sozu_command::proto::command::EventKind::WorkerKilled)
                });
                if self.config.borrow().worker_automatic_restart {
                    let main = self.clone();
                    tokio::task::spawn_local(async move {
                        main.relaunch(worker_id, generation + 1).await
                    });
                }
            }
        }
    }

    /// Restarts a dead worker with exponential backoff until it runs.
    async fn relaunch(self: Rc<Self>, worker_id: u32, mut generation: u64) {
        loop {
            let deaths = {
                let mut relaunches = self.relaunches.borrow_mut();
                let deaths = relaunches.entry(worker_id).or_insert(0);
                *deaths += 1;
                *deaths
            };
            let delay = Duration::from_millis(100u64.saturating_mul(1 << deaths.min(9)))
                .min(MAX_RELAUNCH_DELAY);
            tokio::time::sleep(delay).await;
            if self.stopping.get() {
                return;
            }
            // No change is applied while the worker is given the state:
            // it joins the workers holding exactly what the main process
            // holds.
            let turn = self.changes.lock().await;
            let started = self.start_worker(worker_id, generation, None).await;
            if let Ok(worker) = &started {
                self.workers.borrow_mut().insert(worker_id, worker.clone());
            }
            drop(turn);
            match started {
                Ok(worker) => {
                    tracing::info!(worker = worker_id, pid = worker.pid, "worker restarted");
                    crate::systemd::notify(&format!(
                        "STATUS={} workers running",
                        self.workers.borrow().len()
                    ));
                    *self
                        .counters
                        .restarts
                        .borrow_mut()
                        .entry(worker_id)
                        .or_insert(0) += 1;
                    self.event(crate::events::event(
                        sozu_command::proto::command::EventKind::WorkerRelaunched,
                    ));
                    // A worker that then lives a while resets its backoff.
                    let main = self.clone();
                    tokio::task::spawn_local(async move {
                        tokio::time::sleep(MAX_RELAUNCH_DELAY).await;
                        let alive = main
                            .workers
                            .borrow()
                            .get(&worker_id)
                            .is_some_and(|worker| worker.generation == generation);
                        if alive {
                            main.relaunches.borrow_mut().remove(&worker_id);
                        }
                    });
                    return;
                }
                Err(error) => {
                    tracing::error!(worker = worker_id, %error, "could not restart the worker");
                    generation += 1;
                }
            }
        }
    }

    /// Counts a received request for `count_requests`.
    pub fn count(&self, request: &Request) {
        *self
            .request_counts
            .borrow_mut()
            .entry(request.kind_name())
            .or_insert(0) += 1;
    }
}
