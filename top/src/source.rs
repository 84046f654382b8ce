//! The data sources: one thread and one command-socket connection each,
//! polling at its own pace, off the UI loop.
//!
//! A source that fails (the daemon went away, an answer timed out, a
//! request was refused) reports [`Update::Failed`] once, then reconnects
//! with a growing backoff; its last data stays with the console. The event
//! source subscribes again after each reconnection.
//!
//! A source stops by itself when the console no longer listens (its
//! sender fails), so quitting never waits for a source.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sozu_command::channel::{ChannelError, CommandChannel};
use sozu_command::proto::command::request::RequestType;
use sozu_command::proto::command::response_content::ContentType;
use sozu_command::proto::command::{
    ClusterInformation, MetricDetail, Request, Response, ResponseStatus, SetMetricDetail,
};
use sozu_command::requests::{self, MetricsQuery};

use crate::data::{CertificateRow, MetricsSample, SourceId, Update, listener_rows};

/// Where and how to reach the daemon.
#[derive(Debug, Clone)]
pub struct Connector {
    /// The command socket.
    pub socket: PathBuf,
    /// The wait for each answer.
    pub timeout: Duration,
    /// The largest frame accepted.
    pub max_frame_size: usize,
}

impl Connector {
    /// Opens a connection.
    pub fn connect(&self) -> Result<CommandChannel, String> {
        CommandChannel::connect(&self.socket)
            .map(|channel| channel.with_max_frame_size(self.max_frame_size))
            .map_err(|error| match error {
                ChannelError::Connect { source, .. } => format!("cannot connect: {source}"),
                other => other.to_string(),
            })
    }

    /// Sends a request and waits for its final answer; a FAILURE is an
    /// error carrying the daemon's message.
    pub fn ask(&self, channel: &mut CommandChannel, request: &Request) -> Result<Response, String> {
        let answer = channel
            .exchange(request, Some(self.timeout), |_| {})
            .map_err(|error| match error {
                ChannelError::ConnectionClosed => "the daemon closed the connection".to_owned(),
                ChannelError::Timeout { .. } => {
                    format!("no answer within {} ms", self.timeout.as_millis())
                }
                other => other.to_string(),
            })?;
        if answer.status == ResponseStatus::Failure as i32 {
            return Err(format!("refused: {}", answer.message));
        }
        Ok(answer)
    }
}

/// A message for the console's loop.
pub type Report = (SourceId, Update);

/// Tells a source to poll now instead of at its next tick.
#[derive(Debug, Clone)]
pub struct Poke(Sender<()>);

impl Poke {
    /// Asks for a poll now; ignored by a source that stopped.
    pub fn now(&self) {
        let _ = self.0.send(());
    }
}

/// The metric-detail lease the metrics source holds, so that the console
/// can clear it on exit.
#[derive(Debug, Clone, Default)]
pub struct Lease {
    held: Arc<Mutex<Option<String>>>,
    closing: Arc<std::sync::atomic::AtomicBool>,
}

/// How long a lease lives if the console dies without clearing it.
pub const LEASE_TTL_SECONDS: u32 = 30;
/// How often the lease is renewed.
const LEASE_RENEWAL: Duration = Duration::from_secs(10);

impl Lease {
    fn hold(&self, client_id: &str) {
        if let Ok(mut held) = self.held.lock() {
            *held = Some(client_id.to_owned());
        }
    }

    fn is_closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Clears the lease, if one is held, waiting at most `wait` in all.
    pub fn clear(&self, connector: &Connector, wait: Duration) {
        // No renewal after this point.
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let Some(client_id) = self.held.lock().ok().and_then(|mut held| held.take()) else {
            return;
        };
        let connector = Connector {
            timeout: wait,
            ..connector.clone()
        };
        // Sent, not waited for: the daemon reads it after the console is
        // gone, and the lease's time to live is the backstop.
        if let Ok(mut channel) = connector.connect() {
            let _ = channel.write_message(
                &RequestType::SetMetricDetail(SetMetricDetail {
                    client_id,
                    clear: Some(true),
                    reason: Some("sozu top exits".to_owned()),
                    ..Default::default()
                })
                .into(),
            );
        }
    }
}

/// What a source does on each tick.
trait Poller: Send + 'static {
    /// Called once per connection, before the first poll.
    fn connected(&mut self, _connector: &Connector, _channel: &mut CommandChannel) {}
    /// One poll: the update to report.
    fn poll(
        &mut self,
        connector: &Connector,
        channel: &mut CommandChannel,
    ) -> Result<Update, String>;
}

/// Starts every source; each sends its reports on `reports`. Returns a
/// poke per source.
pub fn spawn_all<M: From<Report> + Send + 'static>(
    connector: &Connector,
    refresh: Duration,
    reports: &Sender<M>,
    lease: &Lease,
) -> Vec<Poke> {
    let slow = (refresh * 5).max(Duration::from_secs(5));
    let mut pokes = Vec::new();
    let mut start = |source: SourceId, every: Duration, poller: Box<dyn Poller>| {
        let (poke, poked) = std::sync::mpsc::channel();
        let connector = connector.clone();
        let reports = reports.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("top-{}", source.name()))
            .spawn(move || run_poller(source, every, poller, &connector, &reports, &poked));
        if spawned.is_ok() {
            pokes.push(Poke(poke));
        }
    };
    start(
        SourceId::Metrics,
        refresh,
        Box::new(MetricsPoller {
            every_seconds: u32::try_from(refresh.as_secs()).unwrap_or(u32::MAX),
            lease: lease.clone(),
            lease_renewed: None,
            lease_refused: false,
        }),
    );
    start(SourceId::Workers, refresh, Box::<WorkersPoller>::default());
    start(
        SourceId::Clusters,
        refresh,
        Box::<ClustersPoller>::default(),
    );
    start(SourceId::Listeners, slow, Box::<ListenersPoller>::default());
    start(
        SourceId::Certificates,
        slow,
        Box::<CertificatesPoller>::default(),
    );
    let connector = connector.clone();
    let reports = reports.clone();
    let _ = std::thread::Builder::new()
        .name("top-events".to_owned())
        .spawn(move || run_events(&connector, &reports));
    pokes
}

/// The first wait after a failure, doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between reconnection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3);

fn run_poller<M: From<Report>>(
    source: SourceId,
    every: Duration,
    mut poller: Box<dyn Poller>,
    connector: &Connector,
    reports: &Sender<M>,
    poked: &Receiver<()>,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let mut channel = match connector.connect() {
            Ok(channel) => channel,
            Err(error) => {
                if reports
                    .send(M::from((source, Update::Failed(error))))
                    .is_err()
                {
                    return;
                }
                if !wait(poked, backoff) {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        poller.connected(connector, &mut channel);
        loop {
            let started = Instant::now();
            // A bug in a source must not take the console down: it is
            // reported as that source failing, and the source starts over.
            let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                poller.poll(connector, &mut channel)
            }))
            .unwrap_or_else(|_| Err(format!("internal error in the {} source", source.name())));
            match polled {
                Ok(update) => {
                    backoff = FIRST_BACKOFF;
                    if reports.send(M::from((source, update))).is_err() {
                        return;
                    }
                }
                Err(error) => {
                    if reports
                        .send(M::from((source, Update::Failed(error))))
                        .is_err()
                    {
                        return;
                    }
                    if !wait(poked, backoff) {
                        return;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    break;
                }
            }
            if !wait(poked, every.saturating_sub(started.elapsed())) {
                return;
            }
        }
    }
}

/// Sleeps for `duration` or until poked; false when the console is gone.
fn wait(poked: &Receiver<()>, duration: Duration) -> bool {
    match poked.recv_timeout(duration) {
        Ok(()) => {
            // Several pokes in a row are one.
            while poked.try_recv().is_ok() {}
            true
        }
        Err(RecvTimeoutError::Timeout) => true,
        Err(RecvTimeoutError::Disconnected) => false,
    }
}

fn content(answer: Response) -> Option<ContentType> {
    answer.content.and_then(|content| content.content_type)
}

/// `Unchanged` when `now` equals what was reported last, else `now`
/// reported (and remembered).
fn report_change<T: PartialEq + Clone>(
    last: &mut Option<T>,
    now: T,
    report: fn(T) -> Update,
) -> Update {
    if last.as_ref() == Some(&now) {
        return Update::Unchanged;
    }
    *last = Some(now.clone());
    report(now)
}

/// The main process's part of a merged answer, else any worker's.
fn merged(content: Option<ContentType>) -> Vec<ContentType> {
    match content {
        Some(ContentType::WorkerResponses(responses)) => {
            let mut map = responses.map;
            let mut parts = Vec::new();
            if let Some(main) = map.remove("main") {
                parts.extend(main.content_type);
            }
            parts.extend(map.into_values().filter_map(|part| part.content_type));
            parts
        }
        Some(other) => vec![other],
        None => Vec::new(),
    }
}

struct MetricsPoller {
    every_seconds: u32,
    lease: Lease,
    lease_renewed: Option<Instant>,
    lease_refused: bool,
}

impl MetricsPoller {
    /// A Sozu daemon reports per-backend metrics only while some client
    /// holds a metric-detail lease; take one and keep it renewed.
    fn renew_lease(&mut self, connector: &Connector, channel: &mut CommandChannel) {
        if self.lease_refused
            || self.lease.is_closing()
            || self
                .lease_renewed
                .is_some_and(|renewed| renewed.elapsed() < LEASE_RENEWAL)
        {
            return;
        }
        let client_id = lease_client_id();
        let request: Request = RequestType::SetMetricDetail(SetMetricDetail {
            client_id: client_id.clone(),
            detail: Some(MetricDetail::DetailBackend as i32),
            // Outlives the wait between two polls, however long.
            ttl_seconds: Some(LEASE_TTL_SECONDS.max(self.every_seconds.saturating_mul(3))),
            clear: None,
            reason: Some("sozu top shows per-backend metrics".to_owned()),
            peer_pid: i32::try_from(std::process::id()).ok(),
            peer_session_ulid: None,
        })
        .into();
        match connector.ask(channel, &request) {
            Ok(_) => {
                self.lease.hold(&client_id);
                self.lease_renewed = Some(Instant::now());
            }
            // A daemon that does not know leases reports everything anyway.
            Err(_) => self.lease_refused = true,
        }
    }
}

impl Poller for MetricsPoller {
    fn connected(&mut self, _connector: &Connector, _channel: &mut CommandChannel) {
        self.lease_renewed = None;
        self.lease_refused = false;
    }

    fn poll(
        &mut self,
        connector: &Connector,
        channel: &mut CommandChannel,
    ) -> Result<Update, String> {
        self.renew_lease(connector, channel);
        let aggregated = connector.ask(
            channel,
            &requests::query_metrics(&MetricsQuery {
                list: false,
                names: Vec::new(),
                cluster_ids: Vec::new(),
                backend_ids: Vec::new(),
                no_clusters: false,
                workers: false,
            }),
        )?;
        let Some(ContentType::Metrics(aggregated)) = content(aggregated) else {
            return Err("the metrics answer holds no metrics".to_owned());
        };
        let per_worker = connector.ask(
            channel,
            &requests::query_metrics(&MetricsQuery {
                list: false,
                names: Vec::new(),
                cluster_ids: Vec::new(),
                backend_ids: Vec::new(),
                no_clusters: true,
                workers: true,
            }),
        )?;
        let workers = match content(per_worker) {
            Some(ContentType::Metrics(per_worker)) => Some(per_worker.workers),
            _ => None,
        };
        Ok(Update::Metrics(Arc::new(MetricsSample::read(
            &aggregated,
            workers.as_ref(),
        ))))
    }
}

#[derive(Default)]
struct WorkersPoller {
    last: Option<Vec<sozu_command::proto::command::WorkerInfo>>,
}

impl Poller for WorkersPoller {
    fn connected(&mut self, _connector: &Connector, _channel: &mut CommandChannel) {
        self.last = None;
    }

    fn poll(
        &mut self,
        connector: &Connector,
        channel: &mut CommandChannel,
    ) -> Result<Update, String> {
        let answer = connector.ask(channel, &requests::status())?;
        match content(answer) {
            Some(ContentType::Workers(workers)) => {
                let mut workers = workers.vec;
                workers.sort_by_key(|worker| worker.id);
                Ok(report_change(&mut self.last, workers, Update::Workers))
            }
            _ => Err("the status answer lists no workers".to_owned()),
        }
    }
}

/// Lists clusters through their hashes and fetches the details of a
/// cluster only when its hash changed.
#[derive(Default)]
struct ClustersPoller {
    hashes: BTreeMap<String, u64>,
    clusters: Arc<BTreeMap<String, ClusterInformation>>,
    reported: bool,
}

impl Poller for ClustersPoller {
    fn connected(&mut self, _connector: &Connector, _channel: &mut CommandChannel) {
        // The hashes stay: an equal hash is an equal cluster, whichever
        // daemon answers now; the list is reported again once.
        self.reported = false;
    }

    fn poll(
        &mut self,
        connector: &Connector,
        channel: &mut CommandChannel,
    ) -> Result<Update, String> {
        let answer = connector.ask(channel, &requests::query_clusters_hashes())?;
        let hashes = merged(content(answer))
            .into_iter()
            .find_map(|part| match part {
                ContentType::ClusterHashes(hashes) => Some(hashes.map),
                _ => None,
            })
            .unwrap_or_default();
        let changed: Vec<String> = hashes
            .iter()
            .filter(|(id, hash)| self.hashes.get(*id) != Some(hash))
            .map(|(id, _)| id.clone())
            .collect();
        let removed = self.hashes.keys().any(|id| !hashes.contains_key(id));
        if changed.is_empty() && !removed && self.reported {
            return Ok(Update::Unchanged);
        }
        let mut clusters = (*self.clusters).clone();
        clusters.retain(|id, _| hashes.contains_key(id));
        self.hashes.retain(|id, _| hashes.contains_key(id));
        for id in &changed {
            let information = match connector.ask(channel, &requests::query_cluster_by_id(id)) {
                Ok(answer) => merged(content(answer))
                    .into_iter()
                    .find_map(|part| match part {
                        ContentType::Clusters(list) => list.vec.into_iter().next(),
                        _ => None,
                    }),
                // Removed between the two queries: gone, and asked again
                // next time if it is still listed.
                Err(refused) if refused.starts_with("refused") => None,
                Err(error) => {
                    // What was fetched so far is kept for the next try.
                    self.clusters = Arc::new(clusters);
                    return Err(error);
                }
            };
            match information {
                Some(information) => {
                    clusters.insert(id.clone(), information);
                    if let Some(hash) = hashes.get(id) {
                        self.hashes.insert(id.clone(), *hash);
                    }
                }
                None => {
                    clusters.remove(id);
                }
            }
        }
        self.clusters = Arc::new(clusters);
        self.reported = true;
        Ok(Update::Clusters(self.clusters.clone()))
    }
}

#[derive(Default)]
struct ListenersPoller {
    last: Option<Vec<crate::data::ListenerRow>>,
}

impl Poller for ListenersPoller {
    fn connected(&mut self, _connector: &Connector, _channel: &mut CommandChannel) {
        self.last = None;
    }

    fn poll(
        &mut self,
        connector: &Connector,
        channel: &mut CommandChannel,
    ) -> Result<Update, String> {
        let answer = connector.ask(channel, &requests::list_listeners())?;
        let Some(ContentType::ListenersList(list)) = content(answer) else {
            return Err("the listener answer lists no listeners".to_owned());
        };
        let rows = listener_rows(&list);
        Ok(report_change(&mut self.last, rows, Update::Listeners))
    }
}

/// Lists the certificates each listener serves, and reads the expiry of
/// each certificate once (by fingerprint).
#[derive(Default)]
struct CertificatesPoller {
    expiry: HashMap<String, (Vec<String>, Option<i64>)>,
    last: Option<Vec<CertificateRow>>,
}

impl CertificatesPoller {
    fn details(
        &mut self,
        connector: &Connector,
        channel: &mut CommandChannel,
        fingerprint: &str,
    ) -> Result<(Vec<String>, Option<i64>), String> {
        if let Some(known) = self.expiry.get(fingerprint) {
            return Ok(known.clone());
        }
        let answer = connector.ask(
            channel,
            &requests::query_certificates(Some(fingerprint), None, false),
        )?;
        let mut found = (Vec::new(), None);
        if let Some(ContentType::CertificatesWithFingerprints(certificates)) = content(answer)
            && let Some(certificate) = certificates.certs.values().next()
        {
            match sozu_command::certificate::certificate_info(&certificate.certificate) {
                Ok(info) => found = (info.names, Some(info.not_after)),
                Err(_) => found = (certificate.names.clone(), None),
            }
        }
        self.expiry.insert(fingerprint.to_owned(), found.clone());
        Ok(found)
    }
}

impl Poller for CertificatesPoller {
    fn connected(&mut self, _connector: &Connector, _channel: &mut CommandChannel) {
        self.last = None;
    }

    fn poll(
        &mut self,
        connector: &Connector,
        channel: &mut CommandChannel,
    ) -> Result<Update, String> {
        let answer = connector.ask(channel, &requests::query_certificates(None, None, true))?;
        let mut served: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for part in merged(content(answer)) {
            if let ContentType::CertificatesByAddress(list) = part {
                for by_address in list.certificates {
                    for summary in by_address.certificate_summaries {
                        let names = served
                            .entry((by_address.address.to_string(), summary.fingerprint))
                            .or_default();
                        if !names.contains(&summary.domain) {
                            names.push(summary.domain);
                        }
                    }
                }
            }
        }
        let mut rows = Vec::with_capacity(served.len());
        for ((address, fingerprint), served_names) in served {
            let (names, not_after) = self.details(connector, channel, &fingerprint)?;
            rows.push(CertificateRow {
                address,
                names: if names.is_empty() {
                    served_names
                } else {
                    names
                },
                fingerprint,
                not_after,
            });
        }
        Ok(report_change(&mut self.last, rows, Update::Certificates))
    }
}

/// The client id of this console's metric-detail lease.
fn lease_client_id() -> String {
    format!("sozu-top-{}", std::process::id())
}

/// Whether an event only reports this console's own lease (a Sozu daemon
/// announces each one).
fn is_own_lease(event: &sozu_command::proto::command::Event) -> bool {
    event.kind == sozu_command::proto::command::EventKind::MetricDetailChanged as i32
        && event
            .metric_detail
            .as_ref()
            .and_then(|transition| transition.client_id.as_deref())
            .is_some_and(|client| client == lease_client_id())
}

/// The event subscription: reconnects and subscribes again whenever the
/// connection is lost.
fn run_events<M: From<Report>>(connector: &Connector, reports: &Sender<M>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let error = match subscribe(connector, reports, &mut backoff) {
            Ok(()) => return,
            Err(error) => error,
        };
        if reports
            .send(M::from((SourceId::Events, Update::Failed(error))))
            .is_err()
        {
            return;
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Streams events until the connection fails (`Err`) or the console is
/// gone (`Ok`).
fn subscribe<M: From<Report>>(
    connector: &Connector,
    reports: &Sender<M>,
    backoff: &mut Duration,
) -> Result<(), String> {
    let mut channel = connector.connect()?;
    channel
        .write_message(&requests::subscribe_events())
        .map_err(|error| error.to_string())?;
    let mut announced = false;
    loop {
        let message = channel
            .read_message(None)
            .map_err(|error| error.to_string())?;
        let Some(answer) = message else {
            return Err("the daemon closed the event stream".to_owned());
        };
        if answer.status == ResponseStatus::Failure as i32 {
            return Err(format!("event stream ended: {}", answer.message));
        }
        if !announced {
            // The subscription is up: tell the console, once.
            announced = true;
            *backoff = FIRST_BACKOFF;
            if reports
                .send(M::from((SourceId::Events, Update::Unchanged)))
                .is_err()
            {
                return Ok(());
            }
        }
        if let Some(ContentType::Event(event)) = content(answer)
            && !is_own_lease(&event)
            && reports
                .send(M::from((
                    SourceId::Events,
                    Update::Event(SystemTime::now(), event),
                )))
                .is_err()
        {
            return Ok(());
        }
    }
}
