//! The backends of one cluster and the choice of one for each connection.
//!
//! A [`Balancer`] holds a cluster's backends (from [`AddBackend`] and
//! removals) with what it learns about them: connection failures and the
//! wait that follows each, whether they are down, health-check verdicts and
//! a peak-EWMA of their connect time. [`Balancer::choose`] picks a backend:
//!
//! - candidates are the non-backup backends that are not unhealthy and not
//!   waiting out a failure; if there are none, the backups in the same
//!   state; if none either, every backend not waiting (fail-open: health
//!   checks can be wrong, a failure is a fact); if none, nothing (the server
//!   answers 503);
//! - a sticky value picks the candidate whose sticky value (`sticky_id`, else
//!   backend id) equals it, else balancing goes on as if none was given;
//! - then the cluster's [`Policy`] picks among the candidates.
//!
//! Failures: a backend whose connection fails waits; after the n-th counted
//! failure in a row the wait is a random whole number of seconds from 1 to
//! below 2^(n-1) (so 1 s after the first two), at most 63 s, as in Sozu's
//! exponential backoff. It is down after 6 counted failures and
//! still tried again after each wait; one successful connection resets it.
//! A failure reported while the backend is already waiting (an attempt that
//! started before the first failure was known) is not counted.
//!
//! Time is always an input (`now`), and randomness comes from a seedable
//! generator, so that behaviour can be tested exactly.

mod backend;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use sozu_command::proto::command::{
    AddBackend, Cluster, Event, EventKind, LoadBalancingAlgorithms, LoadMetric,
};

pub use self::backend::{Backend, BackendSettings};

/// Failures after which a backend is down, and the exponent of the longest
/// wait (2^6 - 1 = 63 s).
const MAX_COUNTED_FAILURES: u32 = 6;

/// How fast the connect-time estimate forgets a peak: the weight of the old
/// estimate is `exp(-elapsed / DECAY)`.
const CONNECT_TIME_DECAY: Duration = Duration::from_secs(10);

/// The weight of a backend that does not set one.
const DEFAULT_WEIGHT: u32 = 100;

/// How a cluster picks among its candidate backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Each candidate in turn, in the order backends were added.
    #[default]
    RoundRobin,
    /// A random candidate, with probability proportional to its weight.
    Random,
    /// The candidate with the lowest load; ties broken at random.
    LeastLoaded(LoadMetric),
    /// Two distinct random candidates; the less loaded of the two.
    PowerOfTwo(LoadMetric),
}

/// A health-check verdict on a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Health {
    /// No health check (or no verdict yet): treated as healthy.
    #[default]
    Unknown,
    /// The health check passes.
    Healthy,
    /// The health check fails: chosen only when nothing healthy is left.
    Unhealthy,
}

/// Something the control plane should hear about; [`BalancerEvent::to_event`]
/// makes the protocol [`Event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BalancerEvent {
    /// A backend reached 6 counted failures.
    BackendDown {
        /// The backend's cluster.
        cluster_id: String,
        /// The backend id.
        backend_id: String,
        /// The backend address.
        address: SocketAddr,
    },
    /// A backend that was down connected again.
    BackendUp {
        /// The backend's cluster.
        cluster_id: String,
        /// The backend id.
        backend_id: String,
        /// The backend address.
        address: SocketAddr,
    },
    /// A cluster with backends has none left that may be tried; raised once
    /// until the cluster recovers.
    NoAvailableBackends {
        /// The cluster.
        cluster_id: String,
    },
    /// A cluster that had no backend left connected to one again.
    ClusterRecovered {
        /// The cluster.
        cluster_id: String,
    },
    /// A backend removed from its cluster has closed its last connection.
    RemovedBackendHasNoConnections {
        /// The backend's cluster.
        cluster_id: String,
        /// The backend id.
        backend_id: String,
        /// The backend address.
        address: SocketAddr,
    },
}

impl BalancerEvent {
    /// The protocol kind of this event.
    pub fn kind(&self) -> EventKind {
        match self {
            BalancerEvent::BackendDown { .. } => EventKind::BackendDown,
            BalancerEvent::BackendUp { .. } => EventKind::BackendUp,
            BalancerEvent::NoAvailableBackends { .. } => EventKind::NoAvailableBackends,
            BalancerEvent::ClusterRecovered { .. } => EventKind::ClusterRecovered,
            BalancerEvent::RemovedBackendHasNoConnections { .. } => {
                EventKind::RemovedBackendHasNoConnections
            }
        }
    }

    /// The protocol event to send to subscribers.
    pub fn to_event(&self) -> Event {
        let (cluster_id, backend) = match self {
            BalancerEvent::BackendDown {
                cluster_id,
                backend_id,
                address,
            }
            | BalancerEvent::BackendUp {
                cluster_id,
                backend_id,
                address,
            }
            | BalancerEvent::RemovedBackendHasNoConnections {
                cluster_id,
                backend_id,
                address,
            } => (cluster_id, Some((backend_id, address))),
            BalancerEvent::NoAvailableBackends { cluster_id }
            | BalancerEvent::ClusterRecovered { cluster_id } => (cluster_id, None),
        };
        Event {
            kind: self.kind() as i32,
            cluster_id: Some(cluster_id.clone()),
            backend_id: backend.map(|(id, _)| id.clone()),
            address: backend.map(|(_, address)| (*address).into()),
            metric_detail: None,
        }
    }
}

/// Why a cluster's configuration or a backend could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BalancerError {
    /// HRW and MAGLEV exist in the protocol but are not implemented.
    #[error(
        "cluster {cluster_id}: load balancing algorithm {algorithm} is not supported \
         (use ROUND_ROBIN, RANDOM, LEAST_LOADED or POWER_OF_TWO)"
    )]
    UnsupportedAlgorithm {
        /// The cluster.
        cluster_id: String,
        /// The algorithm's protocol name.
        algorithm: &'static str,
    },
    /// An enum field holds a number the protocol does not define.
    #[error("cluster {cluster_id}: unknown {field} {value}")]
    UnknownValue {
        /// The cluster.
        cluster_id: String,
        /// The field.
        field: &'static str,
        /// The number found.
        value: i32,
    },
    /// A backend cannot be added as given.
    #[error("cluster {cluster_id}: backend {backend_id}: {reason}")]
    InvalidBackend {
        /// The cluster.
        cluster_id: String,
        /// The backend id.
        backend_id: String,
        /// What is wrong.
        reason: String,
    },
}

/// What the balancer knows about a backend beyond its counters, for metrics
/// and for the console.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackendStatus {
    /// The last health-check verdict.
    pub health: Health,
    /// Counted consecutive failures (at most 6).
    pub failures: u32,
    /// Until when the backend is not tried, if it is waiting out a failure.
    pub retry_at: Option<Instant>,
    /// Whether it reached 6 counted failures and has not connected since.
    pub down: bool,
    /// The peak-EWMA connect time, once a connection was timed.
    pub connect_time: Option<Duration>,
}

/// The backends of one cluster and how to pick one. Methods that change
/// what the balancer knows take `&mut self`; a worker owns one per cluster.
#[derive(Debug)]
pub struct Balancer {
    cluster_id: String,
    /// In the order they were added, which is the round-robin order.
    backends: Vec<Entry>,
    policy: Policy,
    /// The index round robin tries first.
    next: usize,
    rng: SmallRng,
    /// NoAvailableBackends was raised and ClusterRecovered not yet.
    unavailable: bool,
}

/// A backend with what only the balancer needs about it.
#[derive(Debug)]
struct Entry {
    backend: Arc<Backend>,
    // Copies of the settings the choice reads, to avoid the backend's lock.
    sticky_value: Box<str>,
    weight: u32,
    backup: bool,
    health: Health,
    failures: u32,
    retry_at: Option<Instant>,
    down: bool,
    connect_time: PeakEwma,
}

impl Entry {
    fn waiting(&self, now: Instant) -> bool {
        self.retry_at.is_some_and(|retry_at| now < retry_at)
    }

    fn load(&self, metric: LoadMetric) -> f64 {
        let connections = self.backend.connections() as f64;
        match metric {
            LoadMetric::Connections => connections,
            LoadMetric::Requests => self.backend.requests() as f64,
            // Connect time alone would send everything to the fastest
            // backend until it slows down; scaling by its connections
            // spreads load as it builds up.
            LoadMetric::ConnectionTime => self.connect_time.nanos * (connections + 1.0),
        }
    }

    fn status(&self) -> BackendStatus {
        BackendStatus {
            health: self.health,
            failures: self.failures,
            retry_at: self.retry_at,
            down: self.down,
            connect_time: self
                .connect_time
                .at
                .map(|_| Duration::from_nanos(self.connect_time.nanos as u64)),
        }
    }
}

/// A peak-sensitive moving average of connect times: a slower sample is
/// adopted at once, faster ones pull the estimate down as time passes.
/// Starts at zero, so a backend never measured is tried early and gets
/// measured.
#[derive(Debug, Default, Clone, Copy)]
struct PeakEwma {
    nanos: f64,
    at: Option<Instant>,
}

impl PeakEwma {
    fn observe(&mut self, now: Instant, sample: Duration) {
        let sample = sample.as_nanos() as f64;
        self.nanos = match self.at {
            Some(at) if sample < self.nanos => {
                let elapsed = now.saturating_duration_since(at).as_secs_f64();
                let keep = (-elapsed / CONNECT_TIME_DECAY.as_secs_f64()).exp();
                self.nanos * keep + sample * (1.0 - keep)
            }
            _ => sample,
        };
        self.at = Some(now);
    }
}

/// Which backends are candidates for one choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    Primary,
    Backup,
    FailOpen,
}

impl Balancer {
    /// An empty balancer for a cluster, round robin, with a generator
    /// seeded by the operating system.
    pub fn new(cluster_id: &str) -> Balancer {
        Balancer::with_rng(cluster_id, rand::make_rng())
    }

    /// Like [`Balancer::new`] with a fixed seed, for reproducible choices.
    pub fn with_seed(cluster_id: &str, seed: u64) -> Balancer {
        Balancer::with_rng(cluster_id, SmallRng::seed_from_u64(seed))
    }

    fn with_rng(cluster_id: &str, rng: SmallRng) -> Balancer {
        Balancer {
            cluster_id: cluster_id.to_owned(),
            backends: Vec::new(),
            policy: Policy::default(),
            next: 0,
            rng,
            unavailable: false,
        }
    }

    /// A balancer configured from a cluster's settings; refuses what
    /// [`Balancer::configure`] refuses.
    pub fn for_cluster(cluster: &Cluster) -> Result<Balancer, BalancerError> {
        let mut balancer = Balancer::new(&cluster.cluster_id);
        balancer.configure(cluster)?;
        Ok(balancer)
    }

    /// Applies a cluster's `load_balancing` and `load_metric`. Refuses HRW,
    /// MAGLEV and unknown values, leaving the policy unchanged.
    pub fn configure(&mut self, cluster: &Cluster) -> Result<(), BalancerError> {
        let algorithm =
            LoadBalancingAlgorithms::try_from(cluster.load_balancing).map_err(|_| {
                BalancerError::UnknownValue {
                    cluster_id: self.cluster_id.clone(),
                    field: "load balancing algorithm",
                    value: cluster.load_balancing,
                }
            })?;
        let metric = cluster
            .load_metric
            .map(|value| {
                LoadMetric::try_from(value).map_err(|_| BalancerError::UnknownValue {
                    cluster_id: self.cluster_id.clone(),
                    field: "load metric",
                    value,
                })
            })
            .transpose()?;
        self.set_policy(algorithm, metric)
    }

    /// Chooses the policy. The metric applies to least loaded and power of
    /// two choices (connections when not given). HRW and MAGLEV are refused:
    /// a cluster asking for them must be refused, not silently balanced
    /// another way.
    pub fn set_policy(
        &mut self,
        algorithm: LoadBalancingAlgorithms,
        metric: Option<LoadMetric>,
    ) -> Result<(), BalancerError> {
        let metric = metric.unwrap_or(LoadMetric::Connections);
        self.policy = match algorithm {
            LoadBalancingAlgorithms::RoundRobin => Policy::RoundRobin,
            LoadBalancingAlgorithms::Random => Policy::Random,
            LoadBalancingAlgorithms::LeastLoaded => Policy::LeastLoaded(metric),
            LoadBalancingAlgorithms::PowerOfTwo => Policy::PowerOfTwo(metric),
            LoadBalancingAlgorithms::Hrw | LoadBalancingAlgorithms::Maglev => {
                return Err(BalancerError::UnsupportedAlgorithm {
                    cluster_id: self.cluster_id.clone(),
                    algorithm: algorithm.as_str_name(),
                });
            }
        };
        Ok(())
    }

    /// The policy in force.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The cluster these backends belong to.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// How many backends the cluster has (removed ones not counted).
    pub fn len(&self) -> usize {
        self.backends.len()
    }

    /// Whether the cluster has no backend.
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// How many backends may be tried at `now` (not waiting out a failure),
    /// the "available backends" of cluster metrics.
    pub fn available(&self, now: Instant) -> usize {
        self.backends
            .iter()
            .filter(|entry| !entry.waiting(now))
            .count()
    }

    /// Each backend's id and whether it may be tried at `now`, in the
    /// order they were added (the "up" gauge of backend metrics).
    pub fn availability(&self, now: Instant) -> impl Iterator<Item = (&str, bool)> {
        self.backends
            .iter()
            .map(move |entry| (entry.backend.id(), !entry.waiting(now)))
    }

    /// The backends, in the order they were added.
    pub fn backends(&self) -> impl Iterator<Item = &Arc<Backend>> {
        self.backends.iter().map(|entry| &entry.backend)
    }

    /// The backend with this id and address.
    pub fn backend(&self, backend_id: &str, address: SocketAddr) -> Option<&Arc<Backend>> {
        self.index_of(backend_id, address)
            .map(|index| &self.backends[index].backend)
    }

    /// What the balancer knows about a backend; `None` once it is removed.
    pub fn status(&self, backend: &Backend) -> Option<BackendStatus> {
        self.entry(backend)
            .map(|index| self.backends[index].status())
    }

    /// Adds a backend, or updates the one with the same id and address in
    /// place (sticky id, weight, backup, unix path), keeping its counters and
    /// failure state. Returns its handle.
    pub fn add_backend(&mut self, add: &AddBackend) -> Result<Arc<Backend>, BalancerError> {
        let invalid = |reason: String| BalancerError::InvalidBackend {
            cluster_id: self.cluster_id.clone(),
            backend_id: add.backend_id.clone(),
            reason,
        };
        if add.cluster_id != self.cluster_id {
            return Err(invalid(format!(
                "it belongs to cluster {}, not this one",
                add.cluster_id
            )));
        }
        let address = add
            .address
            .validate()
            .map_err(|reason| invalid(format!("invalid address: {reason}")))?;
        let weight = match add.load_balancing_parameters.map(|params| params.weight) {
            None | Some(0) => DEFAULT_WEIGHT,
            Some(weight) => u32::try_from(weight)
                .map_err(|_| invalid(format!("weight {weight} is negative")))?,
        };
        let settings = BackendSettings {
            sticky_value: add
                .sticky_id
                .clone()
                .unwrap_or_else(|| add.backend_id.clone()),
            weight,
            backup: add.backup.unwrap_or(false),
            unix_path: add.unix_path.clone(),
        };
        if let Some(index) = self.index_of(&add.backend_id, address) {
            let entry = &mut self.backends[index];
            entry.sticky_value = settings.sticky_value.as_str().into();
            entry.weight = settings.weight;
            entry.backup = settings.backup;
            entry.backend.replace_settings(settings);
            return Ok(Arc::clone(&entry.backend));
        }
        let entry = Entry {
            sticky_value: settings.sticky_value.as_str().into(),
            weight: settings.weight,
            backup: settings.backup,
            backend: Arc::new(Backend::new(
                &self.cluster_id,
                &add.backend_id,
                address,
                settings,
            )),
            health: Health::Unknown,
            failures: 0,
            retry_at: None,
            down: false,
            connect_time: PeakEwma::default(),
        };
        let backend = Arc::clone(&entry.backend);
        self.backends.push(entry);
        Ok(backend)
    }

    /// Removes a backend from the cluster and returns its handle, `None` if
    /// there was no such backend. It is never chosen again; handles held
    /// elsewhere keep working and counting. Check
    /// [`Backend::drained_event`] on the returned handle: a backend removed
    /// with no connection is drained already.
    pub fn remove_backend(
        &mut self,
        backend_id: &str,
        address: SocketAddr,
    ) -> Option<Arc<Backend>> {
        let index = self.index_of(backend_id, address)?;
        let entry = self.backends.remove(index);
        // Keep round robin on the backend it would have tried next.
        if index < self.next {
            self.next -= 1;
        }
        entry.backend.mark_removed();
        Some(entry.backend)
    }

    /// Records a health-check verdict; returns whether the backend is in
    /// this cluster. No event follows: health alone never leaves a cluster
    /// without candidates (fail-open), and the health checker publishes its
    /// own HEALTH_CHECK events.
    pub fn set_health(&mut self, backend: &Backend, health: Health) -> bool {
        match self.entry(backend) {
            Some(index) => {
                self.backends[index].health = health;
                true
            }
            None => false,
        }
    }

    /// Picks the backend for a new connection, or `None` when no backend
    /// can be tried (answer 503). `sticky` is the value of the request's
    /// sticky cookie; `exclude` lists backends this request already tried.
    pub fn choose(
        &mut self,
        now: Instant,
        sticky: Option<&str>,
        exclude: &[Arc<Backend>],
    ) -> Option<Arc<Backend>> {
        let tier = self.tier(now, exclude)?;
        let candidate = |entry: &Entry| {
            !entry.waiting(now)
                && !exclude
                    .iter()
                    .any(|excluded| Arc::ptr_eq(excluded, &entry.backend))
                && match tier {
                    Tier::Primary => !entry.backup && entry.health != Health::Unhealthy,
                    Tier::Backup => entry.backup && entry.health != Health::Unhealthy,
                    Tier::FailOpen => true,
                }
        };
        let Balancer {
            backends,
            policy,
            next,
            rng,
            ..
        } = self;
        let index = match sticky {
            Some(value) => {
                let sticky_candidate =
                    |entry: &Entry| *entry.sticky_value == *value && candidate(entry);
                let mut matching = backends
                    .iter()
                    .enumerate()
                    .filter(|(_, entry)| sticky_candidate(entry));
                match (matching.next(), matching.next()) {
                    (None, _) => pick(*policy, backends, next, rng, candidate),
                    (Some((index, _)), None) => Some(index),
                    // Several backends may share a sticky value (one id on
                    // several addresses): balance among them.
                    (Some(_), Some(_)) => pick(*policy, backends, next, rng, sticky_candidate),
                }
            }
            None => pick(*policy, backends, next, rng, candidate),
        };
        index.map(|index| Arc::clone(&self.backends[index].backend))
    }

    /// The first tier with a candidate, if any.
    fn tier(&self, now: Instant, exclude: &[Arc<Backend>]) -> Option<Tier> {
        let mut tier = None;
        for entry in &self.backends {
            if entry.waiting(now)
                || exclude
                    .iter()
                    .any(|excluded| Arc::ptr_eq(excluded, &entry.backend))
            {
                continue;
            }
            if entry.health == Health::Unhealthy {
                tier = tier.or(Some(Tier::FailOpen));
            } else if entry.backup {
                tier = Some(Tier::Backup);
            } else {
                return Some(Tier::Primary);
            }
        }
        tier
    }

    /// Records a successful connection and how long it took. Resets the
    /// backend's failures; raises BackendUp if it was down and
    /// ClusterRecovered if the cluster had nothing left.
    pub fn connect_succeeded(
        &mut self,
        backend: &Backend,
        now: Instant,
        connect_time: Duration,
    ) -> Vec<BalancerEvent> {
        let mut events = Vec::new();
        let Some(index) = self.entry(backend) else {
            return events;
        };
        let entry = &mut self.backends[index];
        entry.connect_time.observe(now, connect_time);
        entry.failures = 0;
        entry.retry_at = None;
        if entry.down {
            entry.down = false;
            events.push(BalancerEvent::BackendUp {
                cluster_id: self.cluster_id.clone(),
                backend_id: backend.id().to_owned(),
                address: backend.address(),
            });
        }
        if self.unavailable {
            self.unavailable = false;
            events.push(BalancerEvent::ClusterRecovered {
                cluster_id: self.cluster_id.clone(),
            });
        }
        events
    }

    /// Records a failed connection (refused, timed out, reset before use).
    /// Unless the backend is already waiting, counts the failure and makes it
    /// wait; raises BackendDown when it reaches 6 failures and
    /// NoAvailableBackends when no backend is left to try.
    pub fn connect_failed(&mut self, backend: &Backend, now: Instant) -> Vec<BalancerEvent> {
        let mut events = Vec::new();
        let Some(index) = self.entry(backend) else {
            return events;
        };
        let entry = &mut self.backends[index];
        if entry.waiting(now) {
            return events;
        }
        // The exponent is the count before this failure, as in Sozu.
        let previous = entry.failures;
        entry.failures = (previous + 1).min(MAX_COUNTED_FAILURES);
        let wait = match previous {
            0 => 1,
            previous => self.rng.random_range(1..1u64 << previous),
        };
        entry.retry_at = Some(now + Duration::from_secs(wait));
        if entry.failures == MAX_COUNTED_FAILURES && !entry.down {
            entry.down = true;
            events.push(BalancerEvent::BackendDown {
                cluster_id: self.cluster_id.clone(),
                backend_id: backend.id().to_owned(),
                address: backend.address(),
            });
        }
        if !self.unavailable && self.available(now) == 0 {
            self.unavailable = true;
            events.push(BalancerEvent::NoAvailableBackends {
                cluster_id: self.cluster_id.clone(),
            });
        }
        events
    }

    fn index_of(&self, backend_id: &str, address: SocketAddr) -> Option<usize> {
        self.backends.iter().position(|entry| {
            entry.backend.address() == address && entry.backend.id() == backend_id
        })
    }

    /// The entry of a handle, by identity: a removed backend has none, even
    /// if one with the same id and address was added since.
    fn entry(&self, backend: &Backend) -> Option<usize> {
        self.backends
            .iter()
            .position(|entry| std::ptr::eq(Arc::as_ptr(&entry.backend), backend))
    }
}

/// Applies a policy to the entries `candidate` accepts; the index chosen.
fn pick(
    policy: Policy,
    backends: &[Entry],
    next: &mut usize,
    rng: &mut SmallRng,
    candidate: impl Fn(&Entry) -> bool,
) -> Option<usize> {
    let candidate = &candidate;
    let candidates = || {
        backends
            .iter()
            .enumerate()
            .filter(move |(_, entry)| candidate(entry))
    };
    match policy {
        Policy::RoundRobin => {
            let count = backends.len();
            let index = (0..count)
                .map(|offset| (*next + offset) % count)
                .find(|&index| candidate(&backends[index]))?;
            *next = (index + 1) % count;
            Some(index)
        }
        Policy::Random => {
            let total: u64 = candidates().map(|(_, entry)| u64::from(entry.weight)).sum();
            if total == 0 {
                return None;
            }
            let mut target = rng.random_range(0..total);
            candidates()
                .find(|(_, entry)| {
                    let weight = u64::from(entry.weight);
                    if target < weight {
                        true
                    } else {
                        target -= weight;
                        false
                    }
                })
                .map(|(index, _)| index)
        }
        Policy::LeastLoaded(metric) => {
            let mut best: Option<(usize, f64)> = None;
            let mut ties = 0u32;
            for (index, entry) in candidates() {
                let load = entry.load(metric);
                match best {
                    Some((_, best_load)) if load > best_load => {}
                    // Reservoir sampling: each of k tied backends is kept
                    // with probability 1/k, without collecting them.
                    Some((_, best_load)) if load == best_load => {
                        ties += 1;
                        if rng.random_range(0..ties) == 0 {
                            best = Some((index, load));
                        }
                    }
                    _ => {
                        best = Some((index, load));
                        ties = 1;
                    }
                }
            }
            best.map(|(index, _)| index)
        }
        Policy::PowerOfTwo(metric) => {
            let count = candidates().count();
            match count {
                0 => None,
                1 => candidates().next().map(|(index, _)| index),
                _ => {
                    let first = rng.random_range(0..count);
                    let mut second = rng.random_range(0..count - 1);
                    if second >= first {
                        second += 1;
                    }
                    let (first, a) = candidates().nth(first)?;
                    let (second, b) = candidates().nth(second)?;
                    Some(if b.load(metric) < a.load(metric) {
                        second
                    } else {
                        first
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
