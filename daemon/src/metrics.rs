//! Merging the metrics of every worker into one answer.
//!
//! Counters and gauges add up. Latency percentiles cannot be merged
//! exactly from percentiles: the merged value of each percentile is the
//! highest among workers (an upper bound), samples and sums add up, and
//! histogram buckets add up bucket by bucket.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};

use sozu_command::prometheus::cumulative_at;
use sozu_command::proto::command::{
    AggregatedMetrics, AvailableMetrics, BackendMetrics, ClusterMetrics, FilteredMetrics,
    WorkerMetrics, filtered_metrics::Inner,
};
use sozu_command::state::ConfigState;

fn merge_value(into: &mut FilteredMetrics, value: &FilteredMetrics) {
    match (&mut into.inner, &value.inner) {
        (Some(Inner::Count(a)), Some(Inner::Count(b))) => *a = a.saturating_add(*b),
        (Some(Inner::Gauge(a)), Some(Inner::Gauge(b))) => *a = a.saturating_add(*b),
        (Some(Inner::Time(a)), Some(Inner::Time(b))) => *a = (*a).max(*b),
        (Some(Inner::Percentiles(a)), Some(Inner::Percentiles(b))) => {
            a.samples += b.samples;
            a.sum += b.sum;
            a.p_50 = a.p_50.max(b.p_50);
            a.p_90 = a.p_90.max(b.p_90);
            a.p_99 = a.p_99.max(b.p_99);
            a.p_99_9 = a.p_99_9.max(b.p_99_9);
            a.p_99_99 = a.p_99_99.max(b.p_99_99);
            a.p_99_999 = a.p_99_999.max(b.p_99_999);
            a.p_100 = a.p_100.max(b.p_100);
        }
        (Some(Inner::Histogram(a)), Some(Inner::Histogram(b))) => {
            // Cumulative buckets: at any bound, the merged count is each
            // worker's count at or below that bound (its nearest bucket
            // under it; all its samples past its last bucket), added up.
            let bounds: BTreeSet<u64> = a.buckets.iter().chain(&b.buckets).map(|b| b.le).collect();
            let buckets = bounds
                .into_iter()
                .map(|le| sozu_command::proto::command::Bucket {
                    le,
                    count: cumulative_at(a, le) + cumulative_at(b, le),
                })
                .collect();
            a.sum += b.sum;
            a.count += b.count;
            a.buckets = buckets;
        }
        (slot, other) => *slot = other.clone(),
    }
}

fn merge_map(
    into: &mut BTreeMap<String, FilteredMetrics>,
    from: &BTreeMap<String, FilteredMetrics>,
) {
    for (name, value) in from {
        match into.get_mut(name) {
            // The shape of a cluster is the same in every worker.
            Some(existing) if name.starts_with("cluster.") || name == "backend.available" => {
                if let (Some(Inner::Gauge(a)), Some(Inner::Gauge(b))) =
                    (&mut existing.inner, &value.inner)
                {
                    *a = (*a).max(*b);
                }
            }
            Some(existing) => merge_value(existing, value),
            None => {
                into.insert(name.clone(), value.clone());
            }
        }
    }
}

fn merge_cluster(into: &mut ClusterMetrics, from: &ClusterMetrics) {
    merge_map(&mut into.cluster, &from.cluster);
    for backend in &from.backends {
        match into
            .backends
            .iter_mut()
            .find(|b| b.backend_id == backend.backend_id)
        {
            Some(existing) => merge_map(&mut existing.metrics, &backend.metrics),
            None => into.backends.push(BackendMetrics {
                backend_id: backend.backend_id.clone(),
                metrics: backend.metrics.clone(),
            }),
        }
    }
}

/// Adds one worker's metrics; with `per_worker`, also keeps them apart.
pub fn merge(
    aggregated: &mut AggregatedMetrics,
    worker_id: u32,
    worker: WorkerMetrics,
    per_worker: bool,
) {
    merge_map(&mut aggregated.proxying, &worker.proxy);
    for (cluster_id, cluster) in &worker.clusters {
        let entry = aggregated.clusters.entry(cluster_id.clone()).or_default();
        merge_cluster(entry, cluster);
    }
    if per_worker {
        aggregated.workers.insert(worker_id.to_string(), worker);
    }
}

/// What the main process counts about itself, for its metrics.
#[derive(Debug, Default)]
pub struct MainCounters {
    /// Configuration changes applied.
    pub changes: Cell<u64>,
    /// When the state was last saved to a file, unix seconds.
    pub last_save: Cell<Option<u64>>,
    /// Restarts after a death, by worker id.
    pub restarts: RefCell<BTreeMap<u32, u64>>,
}

impl MainCounters {
    /// Notes a state save that just succeeded.
    pub fn saved_now(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        self.last_save.set(Some(now));
    }
}

/// The main process's facts besides its state, read when metrics are
/// asked for.
#[derive(Debug, Default)]
pub struct MainFacts {
    /// Configuration changes applied.
    pub changes: u64,
    /// Last state save, unix seconds.
    pub last_save: Option<u64>,
    /// Each expected worker: id, whether it runs and answered, restarts.
    pub workers: Vec<(u32, bool, u64)>,
}

thread_local! {
    /// Expiry (unix seconds) by certificate fingerprint: certificates are
    /// parsed once, not at every scrape.
    static EXPIRY: RefCell<HashMap<String, Option<i64>>> = RefCell::new(HashMap::new());
}

/// Expiry of every certificate of the state, by fingerprint.
fn certificate_expiry(state: &ConfigState) -> BTreeMap<String, i64> {
    EXPIRY.with(|cache| {
        let mut cache = cache.borrow_mut();
        let mut expiry = BTreeMap::new();
        for certificates in state.certificates.values() {
            for (fingerprint, certificate) in certificates {
                let not_after = *cache.entry(fingerprint.clone()).or_insert_with(|| {
                    sozu_command::certificate::certificate_info(&certificate.certificate)
                        .ok()
                        .map(|info| info.not_after)
                });
                if let Some(not_after) = not_after {
                    expiry.insert(fingerprint.clone(), not_after);
                }
            }
        }
        // Certificates no longer in the state are forgotten.
        cache.retain(|fingerprint, _| expiry.contains_key(fingerprint));
        expiry
    })
}

/// Adds the main process's own metrics: state size, changes, last save,
/// workers, certificate expiry.
pub fn add_main(aggregated: &mut AggregatedMetrics, state: &ConfigState, facts: &MainFacts) {
    let gauge = |value: usize| FilteredMetrics {
        inner: Some(Inner::Gauge(value as u64)),
    };
    let count = |value: u64| FilteredMetrics {
        inner: Some(Inner::Count(i64::try_from(value).unwrap_or(i64::MAX))),
    };
    let certificates: usize = state.certificates.values().map(BTreeMap::len).sum();
    let main = &mut aggregated.main;
    main.insert("configuration.certificates".into(), gauge(certificates));
    main.insert("configuration.changes".into(), count(facts.changes));
    if let Some(saved) = facts.last_save {
        main.insert("state.last_save_timestamp".into(), gauge(saved as usize));
    }
    for (id, up, restarts) in &facts.workers {
        main.insert(format!("worker.{id}.up"), gauge(usize::from(*up)));
        main.insert(format!("worker.{id}.restarts"), count(*restarts));
    }
    for (fingerprint, not_after) in certificate_expiry(state) {
        main.insert(
            format!("certificate.{fingerprint}.not_after"),
            gauge(usize::try_from(not_after).unwrap_or(0)),
        );
    }
    aggregated
        .main
        .insert("configuration.clusters".into(), gauge(state.clusters.len()));
    aggregated.main.insert(
        "configuration.frontends".into(),
        gauge(state.frontend_count()),
    );
    aggregated.main.insert(
        "configuration.backends".into(),
        gauge(state.backend_count()),
    );
}

/// The answer to `metrics get --list`, as Sozu gives it: the names of the
/// metrics the workers report, proxy-wide ones apart from those of clusters
/// and backends, each list sorted.
pub fn available(aggregated: &AggregatedMetrics) -> AvailableMetrics {
    let proxy_metrics: BTreeSet<&String> = aggregated.proxying.keys().collect();
    let mut cluster_metrics = BTreeSet::new();
    for cluster in aggregated.clusters.values() {
        cluster_metrics.extend(cluster.cluster.keys());
        for backend in &cluster.backends {
            cluster_metrics.extend(backend.metrics.keys());
        }
    }
    AvailableMetrics {
        proxy_metrics: proxy_metrics.into_iter().cloned().collect(),
        cluster_metrics: cluster_metrics.into_iter().cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sozu_command::proto::command::{Bucket, FilteredHistogram};

    fn histogram(count: u64, buckets: &[(u64, u64)]) -> FilteredMetrics {
        FilteredMetrics {
            inner: Some(Inner::Histogram(FilteredHistogram {
                sum: 0,
                count,
                buckets: buckets
                    .iter()
                    .map(|(le, count)| Bucket {
                        le: *le,
                        count: *count,
                    })
                    .collect(),
            })),
        }
    }

    #[test]
    fn histograms_merge_bucket_by_bucket_whatever_their_bounds() {
        // Worker a: 10 samples, all <= 1 ms; worker b: 4 samples, up to 3 ms.
        let mut merged = histogram(10, &[(0, 5), (1, 10)]);
        merge_value(&mut merged, &histogram(4, &[(0, 1), (3, 4)]));
        let Some(Inner::Histogram(merged)) = merged.inner else {
            panic!("a histogram");
        };
        let buckets: Vec<(u64, u64)> = merged.buckets.iter().map(|b| (b.le, b.count)).collect();
        assert_eq!(buckets, vec![(0, 6), (1, 11), (3, 14)]);
        assert_eq!(merged.count, 14);
        // The other way round gives the same.
        let mut merged = histogram(4, &[(0, 1), (3, 4)]);
        merge_value(&mut merged, &histogram(10, &[(0, 5), (1, 10)]));
        let Some(Inner::Histogram(merged)) = merged.inner else {
            panic!("a histogram");
        };
        let buckets: Vec<(u64, u64)> = merged.buckets.iter().map(|b| (b.le, b.count)).collect();
        assert_eq!(buckets, vec![(0, 6), (1, 11), (3, 14)]);
    }
}
