//! Log lines that input or resource exhaustion can repeat without end
//! (accept failures, malformed frames, refused clients) are written at most
//! once per interval each, with the number held back in between, so that a
//! flood costs a few lines rather than the disk.
//!
//! ```
//! use std::time::Duration;
//! use sozu_proxy::log_limit::LogLimit;
//!
//! static ACCEPT_FAILED: LogLimit = LogLimit::new(Duration::from_secs(1));
//! # let error = "EMFILE";
//! if let Some(held_back) = ACCEPT_FAILED.allow() {
//!     tracing::warn!(%error, held_back, "accept failed");
//! }
//! ```

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One kind of log line, let through at most once per interval. Usable as
/// a `static` (one per call site) or a field.
#[derive(Debug)]
pub struct LogLimit {
    interval_ms: u64,
    /// When the last line was let through, in milliseconds since
    /// [`epoch`] plus one; 0 for never.
    last: AtomicU64,
    /// Lines held back since the last one let through.
    held_back: AtomicU64,
}

/// The process's reference instant for every limit.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl LogLimit {
    /// A limit of one line per `interval`.
    pub const fn new(interval: Duration) -> Self {
        LogLimit {
            interval_ms: interval.as_millis() as u64,
            last: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        }
    }

    /// Whether to write this occurrence: `Some(n)` when it should be
    /// written, `n` being how many were held back since the last one
    /// written; `None` when it is held back (and counted).
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(epoch().elapsed())
    }

    fn allow_at(&self, since_epoch: Duration) -> Option<u64> {
        let now = since_epoch.as_millis() as u64 + 1;
        let last = self.last.load(Ordering::Relaxed);
        let due = last == 0 || now >= last.saturating_add(self.interval_ms);
        if due
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.held_back.swap(0, Ordering::Relaxed));
        }
        self.held_back.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_held_back() {
        let limit = LogLimit::new(Duration::from_secs(1));
        let at = |ms| limit.allow_at(Duration::from_millis(ms));
        assert_eq!(at(0), Some(0));
        assert_eq!(at(1), None);
        assert_eq!(at(999), None);
        assert_eq!(at(1000), Some(2));
        assert_eq!(at(1500), None);
        assert_eq!(at(5000), Some(1));
        assert_eq!(at(5001), None);
    }

    #[test]
    fn a_flood_is_a_handful_of_lines() {
        let limit = LogLimit::new(Duration::from_secs(1));
        let written = (0..1_000_000).filter(|_| limit.allow().is_some()).count();
        assert!(written <= 5, "{written}");
    }
}
