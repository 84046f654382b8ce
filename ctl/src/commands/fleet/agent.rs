//! `sozu fleet agent --node NAME`: keeps the local daemon equal to the
//! fleet's desired state merged with the node's override.
//!
//! Two threads. The watcher thread owns etcd's long-lived parts: a watch
//! on `P/desired`, one on `P/overrides/NAME`, and the lease the node's
//! report lives on; each of them comes back with a backoff when etcd goes
//! away, and signals the main thread. The main thread does everything
//! else in order: reads the desired revision, plans with `apply`'s engine
//! from the daemon's live state (pruning: the desired state is the
//! truth), sends the steps, rolls back on a failure, reverts drift, and
//! writes the report. Every sync reads the *latest* desired state, so
//! revisions are applied in increasing order and one revision is never
//! applied twice; those in between that were never seen are skipped.
//!
//! Each event is printed to stdout as one JSON line (`applied`, `failed`,
//! `rolled_back`, `drift`, `etcd_unreachable`, `daemon_unreachable`).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};
use sozu_command::state::ConfigState;
use sozu_fleet::store::{self, Drift, NodeReport, check_node_name, now_ms};
use sozu_fleet::{Etcd, FleetError, Keys, merge};

use super::{fleet_error, parse_duration, runtime};
use crate::commands::apply::{Plan, live_state};
use crate::error::{CliError, ErrorKind};
use crate::session::Session;

/// `fleet agent`'s arguments.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct AgentArgs {
    /// This node's name (its report and override keys)
    #[arg(long, value_name = "NAME")]
    pub node: String,
    /// How often the daemon is compared with the applied state (drift)
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub resync: Duration,
    /// How often the report is rewritten (its heartbeat)
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub heartbeat: Duration,
    /// Time to live of the report's lease, seconds: a dead agent's report
    /// disappears after it
    #[arg(long = "lease-ttl", value_name = "SECONDS", default_value_t = 10)]
    pub lease_ttl: i64,
}

enum Signal {
    /// A watched key changed, or a watch was (re)created.
    Changed,
    /// A new lease was granted: the report must be written again.
    Lease,
}

fn event(value: Value) {
    let mut line = value.to_string();
    line.push('\n');
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(line.as_bytes());
    let _ = stdout.flush();
}

const MAX_BACKOFF: Duration = Duration::from_secs(5);

fn next_backoff(backoff: Duration) -> Duration {
    (backoff * 2).min(MAX_BACKOFF)
}

async fn watch_loop(etcd: Etcd, key: String, signals: Sender<Signal>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let started = Instant::now();
        let result = etcd
            .watch(&key, false, |_| {
                let _ = signals.send(Signal::Changed);
            })
            .await;
        if let Err(error) = result {
            event(
                json!({"event": "etcd_unreachable", "what": "watch", "key": key, "error": error.to_string()}),
            );
        }
        // A watch that stayed up a while starts its next backoff small.
        if started.elapsed() > MAX_BACKOFF {
            backoff = Duration::from_millis(100);
        }
        tokio::time::sleep(backoff).await;
        backoff = next_backoff(backoff);
        if signals.send(Signal::Changed).is_err() {
            return;
        }
    }
}

async fn lease_loop(etcd: Etcd, ttl: i64, lease: Arc<AtomicI64>, signals: Sender<Signal>) {
    let mut backoff = Duration::from_millis(100);
    let period = Duration::from_secs_f64((ttl as f64 / 3.0).max(0.5));
    loop {
        let id = match etcd.grant(ttl).await {
            Ok(id) => id,
            Err(error) => {
                event(
                    json!({"event": "etcd_unreachable", "what": "lease", "error": error.to_string()}),
                );
                tokio::time::sleep(backoff).await;
                backoff = next_backoff(backoff);
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        lease.store(id, Ordering::SeqCst);
        if signals.send(Signal::Lease).is_err() {
            return;
        }
        loop {
            tokio::time::sleep(period).await;
            match etcd.keep_alive(id).await {
                Ok(left) if left > 0 => {}
                Ok(_) => break,
                Err(error) => {
                    event(
                        json!({"event": "etcd_unreachable", "what": "lease", "error": error.to_string()}),
                    );
                    if !error.is_unreachable() {
                        break;
                    }
                }
            }
        }
        lease.store(0, Ordering::SeqCst);
    }
}

fn start_watcher(
    etcd: Etcd,
    keys: &Keys,
    node: &str,
    ttl: i64,
    lease: Arc<AtomicI64>,
) -> Result<Receiver<Signal>, CliError> {
    let (signals, receiver) = channel();
    let rt = runtime()?;
    let desired = keys.desired();
    let override_key = keys.override_of(node);
    std::thread::Builder::new()
        .name("fleet-watch".to_owned())
        .spawn(move || {
            rt.block_on(async move {
                tokio::spawn(watch_loop(etcd.clone(), desired, signals.clone()));
                tokio::spawn(watch_loop(etcd.clone(), override_key, signals.clone()));
                lease_loop(etcd, ttl, lease, signals).await;
            });
        })
        .map_err(|error| CliError::new(ErrorKind::Io, format!("watch thread: {error}")))?;
    Ok(receiver)
}

/// What the node serves: revisions applied whole, and the state they made.
struct Applied {
    revision: i64,
    override_revision: i64,
    state: ConfigState,
}

/// Why a sync stopped short.
enum SyncError {
    /// etcd is away: keep serving, try again later.
    Etcd(FleetError),
    /// The daemon is away: reconnect, try again later.
    Daemon(CliError),
}

struct Agent<'a> {
    session: &'a mut Session,
    etcd: Etcd,
    keys: Keys,
    node: String,
    rt: tokio::runtime::Runtime,
    lease: Arc<AtomicI64>,
    applied: Option<Applied>,
    /// The revisions that failed here, not tried again until one changes.
    failed: Option<(i64, i64)>,
    report: NodeReport,
    /// The message of the failure of `failed`.
    failure: Option<String>,
    /// No report is written before the first sync ends.
    synced: bool,
    /// Whether the daemon holds `applied` as far as the agent knows (false
    /// after a drift, a failure or a lost connection, until verified).
    trusted: bool,
}

fn is_daemon_away(error: &CliError) -> bool {
    matches!(
        error.kind,
        ErrorKind::Connect | ErrorKind::Io | ErrorKind::Timeout | ErrorKind::Protocol
    )
}

impl Agent<'_> {
    /// Sends a plan's steps; the first refusal stops it.
    fn send(&mut self, plan: &Plan) -> Result<(), (usize, CliError)> {
        for (index, step) in plan.steps.iter().enumerate() {
            if let Err(error) = self.session.request(&step.request) {
                let error = if is_daemon_away(&error) {
                    error
                } else {
                    CliError::new(
                        error.kind,
                        format!(
                            "{} {}: {}",
                            step.action.name(),
                            step.description,
                            error.message
                        ),
                    )
                };
                return Err((index, error));
            }
        }
        Ok(())
    }

    fn live(&mut self) -> Result<ConfigState, SyncError> {
        live_state(self.session)
            .map(|(state, _notes)| state)
            .map_err(SyncError::Daemon)
    }

    /// The desired revision, the override's, and the merged target state
    /// (read only when `skip` does not already match).
    fn target(&mut self) -> Result<Option<(i64, i64, Option<ConfigState>)>, SyncError> {
        let etcd = self.etcd.clone();
        let keys = self.keys.clone();
        let node = self.node.clone();
        let known: Vec<(i64, i64)> = self
            .applied
            .iter()
            .map(|applied| (applied.revision, applied.override_revision))
            .chain(self.failed)
            .collect();
        let result = self.rt.block_on(async move {
            let Some((revision, desired)) = store::desired(&etcd, &keys).await? else {
                return Ok(None);
            };
            let over = store::override_of(&etcd, &keys, &node).await?;
            let override_revision = over.as_ref().map_or(0, |(revision, _)| *revision);
            if known.contains(&(revision, override_revision)) {
                return Ok(Some((revision, override_revision, None)));
            }
            let shared = store::content(&etcd, &desired).await?;
            Ok::<_, FleetError>(Some((revision, override_revision, Some((shared, over)))))
        });
        match result {
            Ok(None) => Ok(None),
            Ok(Some((revision, override_revision, None))) => {
                Ok(Some((revision, override_revision, None)))
            }
            Ok(Some((revision, override_revision, Some((shared, over))))) => {
                // A document that does not make a state is this revision's
                // failure on this node, as a refused request would be.
                match merge(&shared, over.as_ref().map(|(_, over)| over))
                    .and_then(|merged| merged.state())
                {
                    Ok(state) => Ok(Some((revision, override_revision, Some(state)))),
                    Err(error) => {
                        self.fail(revision, override_revision, error.to_string());
                        Ok(Some((revision, override_revision, None)))
                    }
                }
            }
            Err(error) => Err(SyncError::Etcd(error)),
        }
    }

    fn fail(&mut self, revision: i64, override_revision: i64, message: String) {
        event(
            json!({"event": "failed", "revision": revision, "override_revision": override_revision, "error": message}),
        );
        self.failed = Some((revision, override_revision));
        self.trusted = false;
        self.failure = Some(message.clone());
        self.report.error = Some(message);
        self.report.failed_revision = Some(revision);
        self.report.failed_override_revision = Some(override_revision);
    }

    fn sync(&mut self) -> Result<(), SyncError> {
        let Some((revision, override_revision, target)) = self.target()? else {
            // Nothing pushed yet: the daemon is left as it is.
            self.synced = true;
            return Ok(());
        };
        match target {
            Some(target) => self.apply(revision, override_revision, target),
            None => self.revert_drift(),
        }
    }

    fn apply(
        &mut self,
        revision: i64,
        override_revision: i64,
        target: ConfigState,
    ) -> Result<(), SyncError> {
        // Planned from the state applied last when the daemon has not been
        // seen to differ from it since (no listing of every cluster); a
        // refusal then is checked against the live state before it counts.
        if self.trusted
            && let Some(applied) = &self.applied
        {
            let plan = Plan::new(&applied.state, &target, true);
            match self.send(&plan) {
                Ok(()) => {
                    self.applied_whole(revision, override_revision, target, plan.steps.len());
                    return Ok(());
                }
                Err((_, error)) if is_daemon_away(&error) => return Err(SyncError::Daemon(error)),
                Err(_) => self.trusted = false,
            }
        }
        let before = self.live()?;
        let plan = Plan::new(&before, &target, true);
        match self.send(&plan) {
            Ok(()) => {
                self.applied_whole(revision, override_revision, target, plan.steps.len());
                Ok(())
            }
            Err((_, error)) if is_daemon_away(&error) => Err(SyncError::Daemon(error)),
            Err((index, error)) => {
                self.fail(
                    revision,
                    override_revision,
                    format!(
                        "revision {revision}: step {}/{} {}",
                        index + 1,
                        plan.steps.len(),
                        error.message
                    ),
                );
                // Back to the last revision applied whole, or, for an agent
                // that has applied nothing yet, to what the daemon had.
                let good = self
                    .applied
                    .as_ref()
                    .map_or(before, |applied| applied.state.clone());
                let now = self.live()?;
                let back = Plan::new(&now, &good, true);
                match self.send(&back) {
                    Ok(()) => event(
                        json!({"event": "rolled_back", "revision": self.report.revision,
                        "steps": back.steps.len()}),
                    ),
                    Err((_, error)) if is_daemon_away(&error) => {
                        return Err(SyncError::Daemon(error));
                    }
                    Err((_, error)) => {
                        let message = format!(
                            "{}; the rollback failed too: {}",
                            self.report.error.clone().unwrap_or_default(),
                            error.message
                        );
                        self.report.error = Some(message);
                    }
                }
                self.synced = true;
                Ok(())
            }
        }
    }

    fn applied_whole(
        &mut self,
        revision: i64,
        override_revision: i64,
        target: ConfigState,
        steps: usize,
    ) {
        event(json!({"event": "applied", "revision": revision,
            "override_revision": override_revision, "steps": steps}));
        self.applied = Some(Applied {
            revision,
            override_revision,
            state: target,
        });
        self.trusted = true;
        self.failed = None;
        self.failure = None;
        self.report.revision = revision;
        self.report.override_revision = override_revision;
        self.report.applied_at = Some(now_ms());
        self.report.error = None;
        self.report.failed_revision = None;
        self.report.failed_override_revision = None;
        self.synced = true;
    }

    /// Makes the daemon equal to the state applied last (a hand-made
    /// change, a restarted daemon), and reports what was reverted.
    fn revert_drift(&mut self) -> Result<(), SyncError> {
        let Some(good) = self.applied.as_ref().map(|applied| applied.state.clone()) else {
            self.synced = true;
            return Ok(());
        };
        let live = self.live()?;
        let plan = Plan::new(&live, &good, true);
        if plan.steps.is_empty() {
            self.synced = true;
            self.trusted = true;
            return Ok(());
        }
        self.trusted = false;
        let what: Vec<String> = plan
            .steps
            .iter()
            .take(10)
            .map(|step| format!("{} {}", step.action.name(), step.description))
            .collect();
        match self.send(&plan) {
            Ok(()) => {
                event(json!({"event": "drift", "steps": plan.steps.len(), "what": what}));
                self.report.drift = Some(Drift {
                    at: now_ms(),
                    steps: plan.steps.len(),
                    what,
                });
                if self.failed.is_none() {
                    self.report.error = None;
                }
            }
            Err((_, error)) if is_daemon_away(&error) => return Err(SyncError::Daemon(error)),
            Err((_, error)) => {
                self.report.error = Some(format!("reverting drift: {}", error.message));
            }
        }
        self.synced = true;
        Ok(())
    }

    fn write_report(&mut self) -> bool {
        let lease = self.lease.load(Ordering::SeqCst);
        if !self.synced || lease == 0 {
            return false;
        }
        self.report.heartbeat_at = now_ms();
        let etcd = self.etcd.clone();
        let keys = self.keys.clone();
        let report = self.report.clone();
        match self
            .rt
            .block_on(async move { store::report(&etcd, &keys, &report, lease).await })
        {
            Ok(()) => true,
            Err(error) => {
                event(
                    json!({"event": "etcd_unreachable", "what": "report", "error": error.to_string()}),
                );
                false
            }
        }
    }
}

/// Runs the agent until the process is stopped.
pub fn run(
    session: &mut Session,
    etcd: Etcd,
    keys: Keys,
    args: &AgentArgs,
) -> Result<(), CliError> {
    check_node_name(&args.node).map_err(fleet_error)?;
    if args.lease_ttl < 2 {
        return Err(CliError::usage("--lease-ttl: at least 2 seconds"));
    }
    let lease = Arc::new(AtomicI64::new(0));
    let signals = start_watcher(
        etcd.clone(),
        &keys,
        &args.node,
        args.lease_ttl,
        lease.clone(),
    )?;
    let mut agent = Agent {
        session,
        etcd,
        keys,
        node: args.node.clone(),
        rt: runtime()?,
        lease,
        applied: None,
        failed: None,
        failure: None,
        report: NodeReport {
            node: args.node.clone(),
            ..NodeReport::default()
        },
        synced: false,
        trusted: false,
    };
    let mut sync_due = Instant::now();
    let mut heartbeat_due = Instant::now();
    let mut backoff = Duration::from_millis(100);
    loop {
        let now = Instant::now();
        let wake = sync_due.min(heartbeat_due);
        let mut sync_now = now >= sync_due;
        let mut report_now = now >= heartbeat_due;
        if !sync_now && !report_now {
            match signals.recv_timeout(wake - now) {
                Ok(Signal::Changed) => sync_now = true,
                Ok(Signal::Lease) => report_now = true,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(CliError::new(ErrorKind::Io, "the watch thread stopped"));
                }
            }
            while let Ok(signal) = signals.try_recv() {
                match signal {
                    Signal::Changed => sync_now = true,
                    Signal::Lease => report_now = true,
                }
            }
        }
        if sync_now {
            let before = (agent.report.clone(), agent.synced);
            match agent.sync() {
                Ok(()) => {
                    if agent
                        .report
                        .error
                        .as_deref()
                        .is_some_and(|error| error.starts_with("daemon unreachable"))
                    {
                        agent.report.error = agent.failure.clone();
                    }
                    backoff = Duration::from_millis(100);
                    sync_due = Instant::now() + args.resync;
                    if (agent.report.clone(), agent.synced) != before {
                        report_now = true;
                    }
                }
                Err(SyncError::Etcd(error)) => {
                    event(
                        json!({"event": "etcd_unreachable", "what": "sync", "error": error.to_string()}),
                    );
                    sync_due = Instant::now() + backoff;
                    backoff = next_backoff(backoff);
                }
                Err(SyncError::Daemon(error)) => {
                    event(json!({"event": "daemon_unreachable", "error": error.message}));
                    agent.session.reconnect();
                    agent.trusted = false;
                    if agent.synced {
                        agent.report.error = Some(format!("daemon unreachable: {}", error.message));
                        report_now = true;
                    }
                    sync_due = Instant::now() + backoff;
                    backoff = next_backoff(backoff);
                }
            }
        }
        if report_now {
            agent.write_report();
            heartbeat_due = Instant::now() + args.heartbeat;
        }
    }
}
