//! The main process: owns the configuration state, serves the command
//! socket, and keeps the workers running and in sync.
//!
//! One single-threaded event loop runs everything. Each command connection
//! is a task that reads one request, has it handled, writes every answer,
//! and only then reads the next, so a client's answers come in the order of
//! its requests; clients never wait for each other. A change is validated
//! and applied to the main state synchronously (so concurrent clients are
//! serialized in arrival order), then sent to every worker.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use sozu_command::channel::{ChannelError, CommandServerCodec};
use sozu_command::config::Config;
use sozu_command::proto::command::{
    Request, Response, ResponseStatus, RunState, WorkerRequest, WorkerResponse,
    request::RequestType, response_content::ContentType,
};
use sozu_command::state::ConfigState;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Notify, mpsc};
use tokio_util::codec::Framed;

use crate::audit::Peer;
use crate::events::Subscribers;
use crate::workers::{NoAnswer, Worker, WorkerLauncher, WorkerNews};

/// Answers (events included) a command connection may have waiting to be
/// written before the client is cut off for not reading them: an event
/// subscriber's documented queue.
const MAX_UNWRITTEN_ANSWERS: usize = crate::events::SUBSCRIBER_QUEUE;
/// How often a blocked write looks at how much is waiting behind it.
const UNWRITTEN_CHECK: Duration = Duration::from_millis(100);

/// Longest wait between two restarts of a crashing worker.
const MAX_RELAUNCH_DELAY: Duration = Duration::from_secs(30);

/// The main process.
pub struct Main {
    /// The configuration the daemon started with (or last reloaded).
    pub config: RefCell<Config>,
    /// The configuration state: the truth.
    pub state: RefCell<ConfigState>,
    /// Running workers, by id.
    pub workers: RefCell<BTreeMap<u32, Rc<Worker>>>,
    /// How workers are started.
    pub launcher: WorkerLauncher,
    /// Event subscribers.
    pub subscribers: Subscribers,
    /// Requests received, by kind (`count_requests`).
    pub request_counts: RefCell<BTreeMap<String, i32>>,
    /// Process-wide settings sent to workers (logging, metrics, limits),
    /// the latest of each kind, replayed to restarted workers.
    pub settings: RefCell<BTreeMap<String, Request>>,
    /// How long workers have to answer.
    pub worker_timeout: Duration,
    /// Held while a configuration change is applied (or taken back) and
    /// while a worker is given the whole state, so that changes happen one
    /// at a time and a starting worker misses none.
    pub changes: tokio::sync::Mutex<()>,
    /// Consecutive quick deaths by worker id, for the restart backoff.
    relaunches: RefCell<HashMap<u32, u32>>,
    next_request: Cell<u64>,
    /// Set when the daemon must exit.
    pub exit: Notify,
    /// True once a stop began: nothing is restarted any more.
    pub stopping: Cell<bool>,
    /// Set by a stop request: the daemon exits once its answer is written.
    pub exit_after_answer: Cell<bool>,
    /// The listening command socket (handed over by `upgrade_main`).
    pub command_socket_fd: Cell<std::os::fd::RawFd>,
}

impl Main {
    /// A main process for `config` and an initial state, with no worker yet.
    pub fn new(config: Config, state: ConfigState, launcher: WorkerLauncher) -> Rc<Main> {
        Rc::new(Main {
            worker_timeout: Duration::from_secs(u64::from(config.worker_timeout.max(1))),
            config: RefCell::new(config),
            state: RefCell::new(state),
            changes: tokio::sync::Mutex::new(()),
            workers: RefCell::new(BTreeMap::new()),
            launcher,
            subscribers: Subscribers::default(),
            request_counts: RefCell::new(BTreeMap::new()),
            settings: RefCell::new(BTreeMap::new()),
            relaunches: RefCell::new(HashMap::new()),
            next_request: Cell::new(0),
            exit: Notify::new(),
            stopping: Cell::new(false),
            exit_after_answer: Cell::new(false),
            command_socket_fd: Cell::new(-1),
        })
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
    pub async fn fan_out(
        &self,
        request: &Request,
        timeout: Option<Duration>,
    ) -> Vec<(u32, Result<WorkerResponse, NoAnswer>)> {
        let workers: Vec<Rc<Worker>> = self.workers.borrow().values().cloned().collect();
        let asks = workers.iter().map(|worker| {
            let request = WorkerRequest {
                id: self.request_id("REQ"),
                content: request.clone(),
            };
            async move { (worker.id, worker.ask(request, timeout).await) }
        });
        futures::future::join_all(asks).await
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

    /// Answers the client whose `upgrade_main` request this program was
    /// started for, then serves it like any other.
    pub async fn serve_upgraded_client(self: Rc<Self>, stream: UnixStream) {
        let mut framed = Framed::new(
            stream,
            CommandServerCodec::with_max_frame_size(
                usize::try_from(self.config.borrow().max_command_buffer_size).unwrap_or(usize::MAX),
            ),
        );
        let answer = Response::ok(
            format!("Main process upgraded (pid {})", std::process::id()),
            None,
        );
        if framed.send(answer).await.is_ok() {
            self.serve_client(framed.into_inner()).await;
        }
    }

    /// Serves one command connection until the client goes away.
    pub async fn serve_client(self: Rc<Self>, stream: UnixStream) {
        let peer = Peer::of(&stream);
        let allowed = self.config.borrow().command_allowed_uids.clone();
        let max_frame =
            usize::try_from(self.config.borrow().max_command_buffer_size).unwrap_or(usize::MAX);
        let framed = Framed::new(stream, CommandServerCodec::with_max_frame_size(max_frame));
        let (mut sink, mut stream) = framed.split();
        let (answers, mut outgoing) = mpsc::unbounded_channel::<Response>();
        let writer = tokio::task::spawn_local(async move {
            while let Some(response) = outgoing.recv().await {
                let send = sink.send(fitted(response, max_frame));
                tokio::pin!(send);
                // While the client does not read, answers (events above
                // all) pile up here: past the limit it is cut off, rather
                // than hold the main process's memory without bound.
                let written = loop {
                    tokio::select! {
                        result = &mut send => break result.is_ok(),
                        () = tokio::time::sleep(UNWRITTEN_CHECK) => {
                            if outgoing.len() >= MAX_UNWRITTEN_ANSWERS {
                                break false;
                            }
                        }
                    }
                };
                if !written {
                    if outgoing.len() >= MAX_UNWRITTEN_ANSWERS {
                        static CUT_OFF: sozu_proxy::log_limit::LogLimit =
                            sozu_proxy::log_limit::LogLimit::new(Duration::from_secs(1));
                        if let Some(held_back) = CUT_OFF.allow() {
                            tracing::warn!(
                                held_back,
                                "cut off a command client that does not read its answers"
                            );
                        }
                        // Said once more, in case it reads again soon.
                        let failure = Response::failure(format!(
                            "connection closed: {MAX_UNWRITTEN_ANSWERS} answers or events were \
                             waiting to be written and the client did not read them"
                        ));
                        let _ = tokio::time::timeout(UNWRITTEN_CHECK, sink.send(failure)).await;
                    }
                    break;
                }
            }
        });
        if let Some(allowed) = allowed
            && !peer.uid.is_some_and(|uid| allowed.contains(&uid))
        {
            // A refused user could otherwise fill the log by reconnecting.
            static REFUSED: sozu_proxy::log_limit::LogLimit =
                sozu_proxy::log_limit::LogLimit::new(Duration::from_secs(1));
            if let Some(held_back) = REFUSED.allow() {
                tracing::warn!(%peer, held_back, "refused a command connection from a user not in command_allowed_uids");
            }
            let _ = answers.send(Response::failure(format!(
                "user {} is not allowed to use this command socket (command_allowed_uids)",
                peer.uid.map_or("unknown".to_owned(), |uid| uid.to_string())
            )));
            drop(answers);
            let _ = writer.await;
            return;
        }
        while let Some(frame) = stream.next().await {
            match frame {
                Ok(Ok(request)) => {
                    crate::commands::handle(&self, request, &peer, &answers).await;
                }
                Ok(Err(error)) => {
                    let _ = answers.send(Response::failure(format!(
                        "could not decode the request: {error}"
                    )));
                }
                Err(error) => {
                    // The stream cannot be resynchronised: say why, then close.
                    let _ = answers.send(Response::failure(describe_frame_error(&error)));
                    break;
                }
            }
            if answers.is_closed() || self.exit_after_answer.get() {
                break;
            }
        }
        drop(answers);
        let _ = writer.await;
        if self.exit_after_answer.get() {
            self.exit.notify_one();
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

fn describe_frame_error(error: &ChannelError) -> String {
    match error {
        ChannelError::FrameTooLarge { declared, max } => format!(
            "the request frame declares {declared} bytes, more than the {max} allowed (max_command_buffer_size); closing the connection"
        ),
        ChannelError::FrameTooSmall { declared } => format!(
            "the request frame declares {declared} bytes, less than its own 8-byte length; closing the connection"
        ),
        other => format!("broken command stream: {other}; closing the connection"),
    }
}

/// The result of answering a request that was sent to every worker:
/// `Ok` when all answered OK, else the `worker id: reason` list.
pub fn summarize(answers: &[(u32, Result<WorkerResponse, NoAnswer>)]) -> Result<(), String> {
    let failures: Vec<String> = answers
        .iter()
        .filter_map(|(id, answer)| match answer {
            Ok(response) if response.status == ResponseStatus::Ok as i32 => None,
            Ok(response) => Some(format!("worker {id}: {}", response.message)),
            Err(no_answer) => Some(format!("worker {id}: {no_answer}")),
        })
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// Resolves a path sent by a client against the main process's working
/// directory (the CLI makes them absolute before sending).
pub fn resolve(path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    }
}

/// Checks that no daemon is alive on the command socket, and removes a
/// stale socket file left by one that is gone.
pub fn check_command_socket(path: &Path) -> Result<(), String> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "another daemon is already listening on the command socket {}",
                path.display()
            ));
        }
        std::fs::remove_file(path).map_err(|error| {
            format!(
                "could not remove the stale socket {}: {error}",
                path.display()
            )
        })?;
    }
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
        && !parent.exists()
    {
        return Err(format!(
            "the folder of the command socket {} does not exist",
            path.display()
        ));
    }
    Ok(())
}

/// Binds the command socket with the configured mode (0600 by default).
/// The socket is created with no access for others from its first instant.
pub fn bind_command_socket(path: &Path, mode: u32) -> Result<UnixListener, String> {
    check_command_socket(path)?;
    let previous = unsafe_umask(0o177);
    let listener = UnixListener::bind(path);
    unsafe_umask(previous);
    let listener = listener.map_err(|error| {
        format!(
            "could not create the command socket {}: {error}",
            path.display()
        )
    })?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|error| format!("could not set the mode of {}: {error}", path.display()))?;
    Ok(listener)
}

fn unsafe_umask(mask: u32) -> u32 {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask)).bits()
}

/// Whether a request is handled by the main process alone.
pub fn is_main_only(request_type: &RequestType) -> bool {
    matches!(
        request_type,
        RequestType::SaveState(_)
            | RequestType::LoadState(_)
            | RequestType::ListWorkers(_)
            | RequestType::ListFrontends(_)
            | RequestType::ListListeners(_)
            | RequestType::UpgradeMain(_)
            | RequestType::UpgradeWorker(_)
            | RequestType::SubscribeEvents(_)
            | RequestType::ReloadConfiguration(_)
            | RequestType::QueryCertificatesFromTheState(_)
            | RequestType::CountRequests(_)
            | RequestType::QueryHealthChecks(_)
    )
}

/// The content a PROCESSING-then-final answer ends with.
pub fn final_answer(result: Result<(String, Option<ContentType>), String>) -> Response {
    match result {
        Ok((message, content)) => Response::ok(message, content),
        Err(message) => Response::failure(message),
    }
}

/// The answer itself, or, when it would not fit in one frame, a failure
/// that says so: the client gets an answer instead of waiting for one that
/// can never be written, and the connection goes on.
fn fitted(response: Response, max_frame_size: usize) -> Response {
    let len = sozu_command::channel::frame::frame_len(&response);
    if len <= max_frame_size {
        return response;
    }
    Response::failure(format!(
        "the answer is too large to send ({len} bytes, at most {max_frame_size}): raise \
         max_command_buffer_size, or ask for less (a cluster id, a domain)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_too_large_to_send_becomes_a_failure_that_says_so() {
        let small = Response::ok("fine", None);
        assert_eq!(fitted(small.clone(), 4096), small);
        let large = Response::ok("x".repeat(10_000), None);
        let refused = fitted(large.clone(), 4096);
        assert_eq!(refused.status, ResponseStatus::Failure as i32);
        assert!(refused.message.contains("too large"), "{}", refused.message);
        assert!(sozu_command::channel::frame::frame_len(&refused) <= 4096);
        assert_eq!(fitted(large.clone(), 1 << 20), large);
    }
}
