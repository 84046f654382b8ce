//! `save_state`, `load_state` and the automatic save after every change.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use sozu_command::proto::command::{EventKind, Response, ResponseStatus, WorkerResponse};
use sozu_command::state::file::{self, StateRecord};
use sozu_command::state::{ConfigState, undo::Undo};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Answers, resolve};
use crate::audit::{self, Peer};
use crate::changes;
use crate::events;
use crate::main_process::Main;
use crate::workers;

/// How often `load_state` reports progress, in records.
const PROGRESS_EVERY: usize = 1000;
/// Most refused records listed in the final answer.
const LISTED_ERRORS: usize = 20;
/// Most worker answers a state load waits for at once.
const ANSWERS_IN_FLIGHT: usize = 2048;

/// Where a client may read or write the state file it named.
enum StatePath {
    /// Anywhere the daemon can: a client running as the daemon's own user
    /// could read and write those files itself.
    Free(PathBuf),
    /// Below `state_directory`, links not followed: a client running as
    /// another user must not make the daemon touch files it could not.
    Beneath { root: PathBuf, relative: PathBuf },
}

impl StatePath {
    /// The path `requested` by `peer` (relative paths are against the
    /// daemon's working directory, or the state directory when confined),
    /// or why it is refused.
    fn of(main: &Main, peer: &Peer, requested: &str) -> Result<StatePath, String> {
        let own = nix::unistd::geteuid().as_raw();
        if peer.uid == Some(own) {
            return Ok(StatePath::Free(resolve(requested)));
        }
        let user = peer
            .uid
            .map_or_else(|| "an unknown user".to_owned(), |uid| format!("user {uid}"));
        let Some(root) = main.config().state_directory.clone() else {
            return Err(format!(
                "{user} may not name state files: the daemon runs as user {own}, and only its \
                 own user may name a state file unless state_directory is configured"
            ));
        };
        let relative = file::confine(&root, Path::new(requested)).map_err(|reason| {
            format!("{user} may only name state files in state_directory: {reason}")
        })?;
        Ok(StatePath::Beneath { root, relative })
    }

    fn display(&self) -> PathBuf {
        match self {
            StatePath::Free(path) => path.clone(),
            StatePath::Beneath { root, relative } => root.join(relative),
        }
    }
}

/// Writes the state to `path` (relative to the daemon's working directory).
pub fn save(main: &Rc<Main>, path: &str, peer: &Peer, answers: &Answers) {
    let path = match StatePath::of(main, peer, path) {
        Ok(path) => path,
        Err(refusal) => {
            let _ = answers.send(Response::failure(refusal));
            return;
        }
    };
    let result = match &path {
        StatePath::Free(path) => file::save(&main.state(), path),
        StatePath::Beneath { root, relative } => file::save_beneath(&main.state(), root, relative),
    };
    let path = path.display();
    let _ = answers.send(match result {
        Ok(records) => {
            main.counters().saved_now();
            main.event(events::event(EventKind::StateSaved));
            Response::ok(
                // Sozu's wording: scripts may look for it.
                format!("Saved {records} config messages to {}", path.display()),
                None,
            )
        }
        Err(error) => Response::failure(error.to_string()),
    });
}

/// Applies every record of the state file at `path`, reporting progress,
/// and answers with what was applied and every record that was refused.
///
/// Records are decoded one at a time and sent to the workers as they are
/// applied; at most [`ANSWERS_IN_FLIGHT`] worker answers are awaited at
/// once, so memory stays bounded whatever the file's size and the workers
/// apply while the main process reads on.
pub async fn load(main: &Rc<Main>, path: &str, peer: &Peer, answers: &Answers) {
    let path = match StatePath::of(main, peer, path) {
        Ok(path) => path,
        Err(refusal) => {
            let _ = answers.send(Response::failure(refusal));
            return;
        }
    };
    let max_size = main.config().max_state_file_size;
    let read = match &path {
        StatePath::Free(path) => file::read_bounded(path, max_size),
        StatePath::Beneath { root, relative } => file::read_beneath(root, relative, max_size),
    };
    let path = path.display();
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(error) => {
            let _ = answers.send(Response::failure(error.to_string()));
            return;
        }
    };
    let total = file::record_count(&bytes);
    let _ = answers.send(Response::processing(format!(
        "Loading {total} records from {}",
        path.display()
    )));
    // Changes happen one at a time; a load is one change made of records.
    let _turn = main.change_turn().await;
    let mut load = Load::new(main.worker_timeout());
    for (index, record) in file::records(&bytes).enumerate() {
        match record {
            Ok(record) => load.record(main, &record).await,
            Err(error) => load.errors.push(error.to_string()),
        }
        if (index + 1) % PROGRESS_EVERY == 0 {
            let _ = answers.send(Response::processing(format!(
                "Applied {} of {total} records",
                index + 1
            )));
        }
    }
    let (applied, changed, errors) = load.finish(main).await;
    // Each record the state took (and kept) is a configuration change, as
    // the same request sent alone would be; one found identical to what
    // the state holds is not (sent alone, it would be refused).
    let changes = &main.counters().changes;
    changes.set(changes.get() + changed as u64);
    let summary = format!(
        "{applied} of {total} records from {} applied",
        path.display()
    );
    audit::record(
        peer,
        "LOAD_STATE",
        &format!("path={}", path.display()),
        if errors.is_empty() {
            Ok(())
        } else {
            Err(summary.as_str())
        },
    );
    main.event(events::event(EventKind::StateLoaded));
    let _ = answers.send(if errors.is_empty() {
        Response::ok(format!("Loaded state: {summary}"), None)
    } else {
        Response::failure(problems(&summary, &errors))
    });
}

/// The failure message of a load: the summary, then the first
/// [`LISTED_ERRORS`] problems and how many more there were.
fn problems(summary: &str, errors: &[String]) -> String {
    let listed: Vec<&str> = errors
        .iter()
        .take(LISTED_ERRORS)
        .map(String::as_str)
        .collect();
    let more = errors.len().saturating_sub(LISTED_ERRORS);
    let mut message = format!(
        "{summary}; {} problems: {}",
        errors.len(),
        listed.join("; ")
    );
    if more > 0 {
        message.push_str(&format!("; and {more} more"));
    }
    message
}

/// A state load under way.
struct Load {
    /// Records the state now holds (those it already held included).
    applied: usize,
    /// What went wrong, record by record.
    errors: Vec<String>,
    /// What takes each applied record back, and which workers refused it:
    /// a record a worker refused is taken back everywhere, and every record
    /// is when the automatic save fails.
    undos: Vec<(usize, Undo, Vec<u32>)>,
    /// Worker answers not checked yet: (record number, worker id, answer).
    waiting: VecDeque<(usize, u32, oneshot::Receiver<WorkerResponse>)>,
    deadlines: Deadlines,
}

impl Load {
    fn new(worker_timeout: Duration) -> Self {
        Load {
            applied: 0,
            errors: Vec::new(),
            undos: Vec::new(),
            waiting: VecDeque::new(),
            deadlines: Deadlines::new(worker_timeout),
        }
    }

    /// Applies one record to the main state and sends it to every worker,
    /// or notes why it was refused.
    async fn record(&mut self, main: &Rc<Main>, record: &StateRecord) {
        // Encoded before it changes the state (a request too large for the
        // workers' channel is refused like any other), once for every worker.
        let id = main.request_id("LOAD");
        // A record for something the state holds already: the same thing
        // changes nothing; something else is refused, saying what differs.
        let existing = main.state().existing(&record.request);
        match existing {
            Some(Ok(())) => {
                self.applied += 1;
                return;
            }
            Some(Err(difference)) => {
                self.errors.push(format!(
                    "record {} (byte {}): {} refused: {difference}",
                    record.number,
                    record.offset,
                    record.request.kind_name()
                ));
                return;
            }
            None => {}
        }
        let undo = main.state().undo_of(&record.request);
        match accept(main, &id, record) {
            Ok(frame) => {
                self.applied += 1;
                self.undos.push((record.number, undo, Vec::new()));
                for worker in main.workers() {
                    let answer = worker.send_frame(id.clone(), frame.clone());
                    self.waiting.push_back((record.number, worker.id, answer));
                }
                while self.waiting.len() > ANSWERS_IN_FLIGHT {
                    if let Some((number, worker, answer)) = self.waiting.pop_front() {
                        self.check(number, worker, answer).await;
                    }
                }
            }
            Err(reason) => self.errors.push(format!(
                "record {} (byte {}): {reason}",
                record.number, record.offset
            )),
        }
    }

    /// Waits for one worker answer and notes a refusal.
    async fn check(
        &mut self,
        number: usize,
        worker: u32,
        answer: oneshot::Receiver<WorkerResponse>,
    ) {
        if !check_answer(
            number,
            worker,
            answer,
            &mut self.deadlines,
            &mut self.errors,
        )
        .await
        {
            refused_by(&mut self.undos, number, worker);
        }
    }

    /// Waits for the remaining answers, takes back what a worker refused
    /// (or everything, when the automatic save fails), and returns how many
    /// records were applied (those found identical to the state included),
    /// how many of them the state took and kept, and every problem.
    async fn finish(mut self, main: &Rc<Main>) -> (usize, usize, Vec<String>) {
        while let Some((number, worker, answer)) = self.waiting.pop_front() {
            self.check(number, worker, answer).await;
        }
        let Load {
            mut applied,
            mut errors,
            undos,
            ..
        } = self;
        // Records some worker did not apply are taken back everywhere, so
        // the main process and every worker hold the same.
        let (refused, kept): (Vec<_>, Vec<_>) = undos
            .into_iter()
            .partition(|(_, _, refused_by)| !refused_by.is_empty());
        applied -= refused.len();
        let refused_count = refused.len();
        changes::take_back_all(
            main,
            refused
                .into_iter()
                .map(|(_, undo, refused_by)| (undo, refused_by))
                .collect(),
        )
        .await;
        if refused_count > 0 {
            errors.push(format!(
                "{refused_count} record(s) a worker did not apply were rolled back"
            ));
        }
        let mut changed = kept.len();
        if !kept.is_empty()
            && let Err(error) = changes::save_automatically(main)
        {
            let count = kept.len();
            changes::take_back_all(
                main,
                kept.into_iter()
                    .map(|(_, undo, refused_by)| (undo, refused_by))
                    .collect(),
            )
            .await;
            applied = 0;
            changed = 0;
            errors.insert(
                0,
                format!("the automatic state save failed: {error}; the {count} applied record(s) were rolled back"),
            );
        }
        (applied, changed, errors)
    }
}

/// Applies a record to the main state and returns its frame for the
/// workers, or why it is refused (then the state is unchanged).
fn accept(main: &Main, id: &str, record: &StateRecord) -> Result<Bytes, String> {
    sozu_proxy::enforceable::check(&record.request)?;
    if !ConfigState::changes_state(&record.request) {
        return Err(format!(
            "{} cannot appear in a state file",
            record.request.kind_name()
        ));
    }
    let frame = workers::encode_request(id, &record.request, main.launcher().max_frame_size)
        .map_err(|error| error.to_string())?;
    main.state_mut()
        .dispatch(&record.request)
        .map_err(|error| file::refused(record, &error).reason)?;
    Ok(frame)
}

/// When each worker's next answer is due: `worker_timeout` after its
/// previous answer (or after the load began waiting for it). A worker that
/// says nothing for that long is late for every answer still to come, and
/// each of those is noted at once instead of being waited for in turn.
struct Deadlines {
    timeout: Duration,
    due: HashMap<u32, Instant>,
}

impl Deadlines {
    fn new(timeout: Duration) -> Self {
        Deadlines {
            timeout,
            due: HashMap::new(),
        }
    }

    fn of(&mut self, worker: u32) -> Instant {
        *self
            .due
            .entry(worker)
            .or_insert_with(|| Instant::now() + self.timeout)
    }

    fn answered(&mut self, worker: u32) {
        self.due.insert(worker, Instant::now() + self.timeout);
    }
}

/// Notes that `worker` did not apply the record numbered `number`.
fn refused_by(undos: &mut [(usize, Undo, Vec<u32>)], number: usize, worker: u32) {
    if let Ok(index) = undos.binary_search_by_key(&number, |(n, _, _)| *n) {
        undos[index].2.push(worker);
    }
}

/// Waits for a worker's answer to a loaded record until the worker's
/// deadline, and notes a refusal or a missing answer. Returns whether the
/// worker applied it.
async fn check_answer(
    number: usize,
    worker: u32,
    answer: oneshot::Receiver<WorkerResponse>,
    deadlines: &mut Deadlines,
    errors: &mut Vec<String>,
) -> bool {
    // An answer already there is taken even after the deadline.
    match tokio::time::timeout_at(deadlines.of(worker), answer).await {
        Ok(Ok(response)) => {
            deadlines.answered(worker);
            if response.status != ResponseStatus::Ok as i32 {
                errors.push(format!(
                    "record {number}: worker {worker}: {}",
                    response.message
                ));
                return false;
            }
            true
        }
        Ok(Err(_)) => {
            errors.push(format!("record {number}: worker {worker} is not running"));
            true
        }
        Err(_) => {
            errors.push(format!(
                "record {number}: worker {worker} did not answer in time"
            ));
            true
        }
    }
}
