//! Rates and percentiles over a window: the difference between two samples
//! of the daemon's counters and cumulative histograms.
//!
//! A daemon reports totals since each worker started. Dividing a total by
//! the uptime gives a lifetime average, which hides what is happening now;
//! the console instead keeps a few recent samples and reports what changed
//! between the oldest one inside the window and the newest one. When a
//! counter goes down (a worker restarted, the daemon was replaced) the
//! window restarts from the newest sample rather than reporting nonsense.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sozu_command::proto::command::FilteredMetrics;
use sozu_command::proto::command::filtered_metrics::Inner;

/// A cumulative latency histogram, in whole milliseconds: `buckets` holds
/// `(le, count of samples <= le)`, ascending in `le`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Samples recorded.
    pub count: u64,
    /// Cumulative buckets, ascending.
    pub buckets: Vec<(u64, u64)>,
}

impl Histogram {
    /// The histogram of a `FilteredMetrics` value, if it is one.
    pub fn from_metric(metric: &FilteredMetrics) -> Option<Histogram> {
        match &metric.inner {
            Some(Inner::Histogram(histogram)) => {
                let mut buckets: Vec<(u64, u64)> = histogram
                    .buckets
                    .iter()
                    .map(|bucket| (bucket.le, bucket.count))
                    .collect();
                buckets.sort_unstable();
                // Cumulative counts never go down; a daemon that merged
                // buckets badly is read as the nearest valid histogram.
                let mut highest = 0;
                for (_, count) in &mut buckets {
                    highest = highest.max(*count);
                    *count = highest;
                }
                Some(Histogram {
                    count: histogram.count,
                    buckets,
                })
            }
            _ => None,
        }
    }

    /// Samples at or below `le`: the step function the buckets describe.
    fn at_or_below(&self, le: u64) -> u64 {
        match self.buckets.partition_point(|(bound, _)| *bound <= le) {
            0 => 0,
            index => self.buckets[index - 1].1,
        }
    }

    /// The smallest bucket bound under which a share `quantile` of the
    /// samples added since `old` fall; `None` when nothing was added.
    pub fn quantile_since(&self, old: &Histogram, quantile: f64) -> Option<u64> {
        let added = self.count.checked_sub(old.count)?;
        if added == 0 {
            return None;
        }
        let wanted = ((quantile * added as f64).ceil() as u64).clamp(1, added);
        for (le, count) in &self.buckets {
            let in_window = count.saturating_sub(old.at_or_below(*le));
            if in_window >= wanted {
                return Some(*le);
            }
        }
        self.buckets.last().map(|(le, _)| *le)
    }
}

/// The counters the console follows for one scope (the whole proxy, a
/// cluster, a backend, a worker).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests (forwarded ones, or all answers when the daemon does not
    /// count requests apart).
    pub requests: u64,
    /// Answers with a status, all classes.
    pub answers: u64,
    /// Answers with a 5xx status.
    pub errors: u64,
    /// Bytes from clients.
    pub bytes_in: u64,
    /// Bytes to clients.
    pub bytes_out: u64,
    /// Whole-request latency, when reported.
    pub latency: Option<Histogram>,
}

/// Names the daemons use for the same thing, first match wins.
const REQUEST_NAMES: [&str; 2] = ["requests", "http.requests"];
/// Whole-request latency: Sozu calls it `request_time` (its
/// `service_time` is its own processing only); this project's daemon
/// reports the whole request as `service_time`.
const LATENCY_NAMES: [&str; 3] = [
    "request_time_histogram",
    "service_time_histogram",
    "backend_response_time_histogram",
];

/// Whether a metric is a gauge (a level, not a running total).
pub fn is_gauge(metric: &FilteredMetrics) -> bool {
    matches!(metric.inner, Some(Inner::Gauge(_)))
}

/// The value of a counter or gauge.
pub fn number(metric: &FilteredMetrics) -> Option<u64> {
    match metric.inner {
        Some(Inner::Count(count)) => Some(u64::try_from(count).unwrap_or(0)),
        Some(Inner::Gauge(gauge)) => Some(gauge),
        Some(Inner::Time(time)) => Some(time),
        _ => None,
    }
}

impl Counters {
    /// Reads the counters out of one scope's metrics.
    pub fn from_metrics(metrics: &BTreeMap<String, FilteredMetrics>) -> Counters {
        let get = |name: &str| metrics.get(name).and_then(number);
        let mut answers = 0;
        let mut errors = 0;
        for class in 1..=5 {
            let value = get(&format!("http.status.{class}xx")).unwrap_or(0);
            answers += value;
            if class == 5 {
                errors = value;
            }
        }
        let requests = REQUEST_NAMES
            .iter()
            .find_map(|name| get(name))
            .unwrap_or(answers);
        let latency = LATENCY_NAMES
            .iter()
            .find_map(|name| metrics.get(*name).and_then(Histogram::from_metric));
        Counters {
            requests,
            answers,
            errors,
            bytes_in: get("bytes_in").unwrap_or(0),
            bytes_out: get("bytes_out").unwrap_or(0),
            latency,
        }
    }

    /// Whether `self` can follow `old` (no counter went down).
    fn follows(&self, old: &Counters) -> bool {
        self.requests >= old.requests
            && self.answers >= old.answers
            && self.errors >= old.errors
            && self.bytes_in >= old.bytes_in
            && self.bytes_out >= old.bytes_out
            && match (&self.latency, &old.latency) {
                (Some(new), Some(old)) => new.count >= old.count,
                _ => true,
            }
    }
}

/// What happened in one scope during a window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Windowed {
    /// Requests per second.
    pub requests_per_second: f64,
    /// Share of answers that were 5xx, `None` without answers.
    pub error_ratio: Option<f64>,
    /// Median latency bound, milliseconds.
    pub p50_ms: Option<u64>,
    /// 99th percentile latency bound, milliseconds.
    pub p99_ms: Option<u64>,
    /// Bytes per second from clients.
    pub bytes_in_per_second: f64,
    /// Bytes per second to clients.
    pub bytes_out_per_second: f64,
}

impl Windowed {
    /// What changed from `old` to `new` over `elapsed`; `None` when a
    /// counter went down (a restart) or no time passed.
    pub fn between(old: &Counters, new: &Counters, elapsed: Duration) -> Option<Windowed> {
        let seconds = elapsed.as_secs_f64();
        if seconds <= 0.0 || !new.follows(old) {
            return None;
        }
        let answers = new.answers - old.answers;
        let (p50_ms, p99_ms) = match (&new.latency, &old.latency) {
            (Some(new), Some(old)) => (new.quantile_since(old, 0.5), new.quantile_since(old, 0.99)),
            (Some(new), None) => {
                let empty = Histogram::default();
                (
                    new.quantile_since(&empty, 0.5),
                    new.quantile_since(&empty, 0.99),
                )
            }
            _ => (None, None),
        };
        Some(Windowed {
            requests_per_second: (new.requests - old.requests) as f64 / seconds,
            error_ratio: (answers > 0).then(|| (new.errors - old.errors) as f64 / answers as f64),
            p50_ms,
            p99_ms,
            bytes_in_per_second: (new.bytes_in - old.bytes_in) as f64 / seconds,
            bytes_out_per_second: (new.bytes_out - old.bytes_out) as f64 / seconds,
        })
    }
}

/// A sample and when it was taken.
pub type Timed<T> = (Instant, T);

/// Samples kept for a window: every sample younger than the window, plus
/// the newest one older than it (the window's start).
#[derive(Debug, Clone)]
pub struct Samples<T> {
    window: Duration,
    samples: std::collections::VecDeque<Timed<T>>,
}

impl<T> Samples<T> {
    /// An empty series covering `window`.
    pub fn new(window: Duration) -> Self {
        Samples {
            window,
            samples: std::collections::VecDeque::new(),
        }
    }

    /// The window this series covers.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Adds a sample taken at `at`, dropping those no longer needed.
    pub fn push(&mut self, at: Instant, sample: T) {
        self.samples.push_back((at, sample));
        while self.samples.len() > 2 {
            let second = self.samples[1].0;
            if at.saturating_duration_since(second) >= self.window {
                self.samples.pop_front();
            } else {
                break;
            }
        }
    }

    /// Forgets every sample (after a restart, they describe another run).
    pub fn restart(&mut self) {
        self.samples.clear();
    }

    /// The oldest sample kept and the newest, when there are two.
    pub fn ends(&self) -> Option<(&Timed<T>, &Timed<T>)> {
        if self.samples.len() < 2 {
            return None;
        }
        Some((self.samples.front()?, self.samples.back()?))
    }

    /// The newest sample.
    pub fn newest(&self) -> Option<&Timed<T>> {
        self.samples.back()
    }

    /// The sample before the newest.
    pub fn previous(&self) -> Option<&Timed<T>> {
        self.samples.iter().rev().nth(1)
    }

    /// Samples kept.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether no sample was taken yet.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sozu_command::proto::command::{Bucket, FilteredHistogram};

    fn histogram(count: u64, buckets: &[(u64, u64)]) -> Histogram {
        Histogram {
            count,
            buckets: buckets.to_vec(),
        }
    }

    fn counters(requests: u64, errors: u64, answers: u64, latency: Histogram) -> Counters {
        Counters {
            requests,
            answers,
            errors,
            bytes_in: requests * 100,
            bytes_out: requests * 1000,
            latency: Some(latency),
        }
    }

    #[test]
    fn quantiles_come_from_the_samples_added_in_the_window() {
        // Lifetime: 1000 fast requests (<= 1 ms). Window: 100 more, 98 of
        // them slow (<= 63 ms), 2 fast.
        let old = histogram(1000, &[(0, 500), (1, 1000)]);
        let new = histogram(1100, &[(0, 501), (1, 1002), (31, 1002), (63, 1100)]);
        assert_eq!(new.quantile_since(&old, 0.5), Some(63));
        assert_eq!(new.quantile_since(&old, 0.01), Some(0));
        assert_eq!(new.quantile_since(&old, 0.02), Some(1));
        assert_eq!(new.quantile_since(&old, 0.99), Some(63));
        // Since start, the median would still be 1 ms: the window tells the truth.
        assert_eq!(new.quantile_since(&Histogram::default(), 0.5), Some(1));
        assert_eq!(old.quantile_since(&old, 0.5), None);
    }

    #[test]
    fn rates_divide_the_difference_by_the_elapsed_time() {
        let old = counters(1000, 10, 1000, histogram(1000, &[(0, 1000)]));
        let new = counters(1500, 60, 1500, histogram(1500, &[(0, 1000), (7, 1500)]));
        let windowed = Windowed::between(&old, &new, Duration::from_secs(10)).unwrap();
        assert_eq!(windowed.requests_per_second, 50.0);
        assert_eq!(windowed.error_ratio, Some(0.1));
        assert_eq!(windowed.p50_ms, Some(7));
        assert_eq!(windowed.p99_ms, Some(7));
        assert_eq!(windowed.bytes_in_per_second, 5000.0);
        assert_eq!(windowed.bytes_out_per_second, 50000.0);
    }

    #[test]
    fn a_counter_that_went_down_is_a_restart_not_a_rate() {
        let old = counters(1000, 0, 1000, histogram(1000, &[(0, 1000)]));
        let new = counters(10, 0, 10, histogram(10, &[(0, 10)]));
        assert_eq!(Windowed::between(&old, &new, Duration::from_secs(1)), None);
        assert_eq!(Windowed::between(&old, &old, Duration::ZERO), None);
    }

    #[test]
    fn no_answers_means_no_error_ratio_and_no_latency() {
        let old = counters(5, 0, 5, histogram(5, &[(0, 5)]));
        let windowed = Windowed::between(&old, &old, Duration::from_secs(1)).unwrap();
        assert_eq!(windowed.requests_per_second, 0.0);
        assert_eq!(windowed.error_ratio, None);
        assert_eq!(windowed.p99_ms, None);
    }

    #[test]
    fn counters_read_both_daemons_names() {
        let count = |value: i64| FilteredMetrics {
            inner: Some(Inner::Count(value)),
        };
        let mut metrics = BTreeMap::new();
        metrics.insert("http.requests".to_owned(), count(42));
        metrics.insert("http.status.2xx".to_owned(), count(40));
        metrics.insert("http.status.5xx".to_owned(), count(2));
        metrics.insert(
            "request_time_histogram".to_owned(),
            FilteredMetrics {
                inner: Some(Inner::Histogram(FilteredHistogram {
                    sum: 3,
                    count: 42,
                    buckets: vec![Bucket { count: 42, le: 3 }, Bucket { count: 40, le: 1 }],
                })),
            },
        );
        let counters = Counters::from_metrics(&metrics);
        assert_eq!(counters.requests, 42);
        assert_eq!(counters.answers, 42);
        assert_eq!(counters.errors, 2);
        assert_eq!(counters.latency.unwrap().buckets, vec![(1, 40), (3, 42)]);
    }

    #[test]
    fn samples_keep_one_sample_older_than_the_window() {
        let start = Instant::now();
        let mut samples = Samples::new(Duration::from_secs(10));
        for second in 0..30 {
            samples.push(start + Duration::from_secs(second), second);
        }
        let ((oldest_at, oldest), (newest_at, newest)) = samples.ends().unwrap();
        assert_eq!((*oldest, *newest), (19, 29));
        assert_eq!(*newest_at - *oldest_at, Duration::from_secs(10));
        samples.restart();
        assert!(samples.ends().is_none());
        assert!(samples.is_empty());
    }
}
