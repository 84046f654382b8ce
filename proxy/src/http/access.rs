//! What one relayed request leaves behind: its metrics and its access log
//! line, written without allocating (the log line's text fields are copied
//! into a per-connection buffer, and the record goes straight to the access
//! log's writer when the daemon's layer takes it: see
//! [`access_log::log_request`]).

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::access_log::{self, Elapsed, Entry};
use crate::balancer::Backend;
use crate::context::Shared;
use crate::metrics::Answered;

/// The text fields of the access log line, as ranges of the connection's
/// log buffer.
#[derive(Default, Clone)]
pub(super) struct LogFields {
    pub(super) method: Range<usize>,
    pub(super) host: Range<usize>,
    pub(super) path: Range<usize>,
    pub(super) user_agent: Range<usize>,
}

impl LogFields {
    /// Copies the fields into `log` (emptied first): a few dozen bytes into
    /// a buffer that lives as long as the connection.
    pub(super) fn capture(
        log: &mut Vec<u8>,
        method: &str,
        host: Option<&str>,
        path: &str,
        user_agent: Option<&[u8]>,
    ) -> LogFields {
        log.clear();
        let mut push = |bytes: &[u8]| {
            let start = log.len();
            log.extend_from_slice(bytes);
            start..log.len()
        };
        LogFields {
            method: push(method.as_bytes()),
            host: push(host.unwrap_or("-").as_bytes()),
            path: push(path.as_bytes()),
            user_agent: push(user_agent.unwrap_or(b"-")),
        }
    }
}

/// One relayed request, from its head to the end of its answer.
pub(super) struct Record {
    pub(super) started: Instant,
    /// The request id, a ULID in text.
    pub(super) id: [u8; ulid::ULID_LEN],
    pub(super) backend: Option<Arc<Backend>>,
    pub(super) connect_time: Option<Duration>,
    pub(super) response_time: Option<Duration>,
    /// Request body bytes forwarded.
    pub(super) bytes_in: u64,
    pub(super) fields: LogFields,
    /// `https` on a TLS listener, else `http`: the access record's
    /// protocol, as the hyper path and TCP sessions name theirs.
    pub(super) protocol: &'static str,
}

impl Record {
    pub(super) fn new(fields: LogFields, secure: bool) -> Record {
        let mut id = [0; ulid::ULID_LEN];
        ulid::Ulid::from_datetime(coarse_now()).array_to_str(&mut id);
        Record {
            started: Instant::now(),
            id,
            backend: None,
            connect_time: None,
            response_time: None,
            bytes_in: 0,
            fields,
            protocol: if secure { "https" } else { "http" },
        }
    }

    /// The request id.
    pub(super) fn id(&self) -> &str {
        std::str::from_utf8(&self.id).unwrap_or_default()
    }

    /// Counts the request in the metrics and writes its access log line;
    /// returns the instant it read to time the request, which the
    /// connection's next wait starts from (one clock read less).
    pub(super) fn finish(
        &self,
        shared: &Shared,
        peer: &str,
        cluster: Option<&str>,
        log: &[u8],
        status: u16,
        bytes_out: u64,
    ) -> Instant {
        let now = Instant::now();
        let service_time = now.saturating_duration_since(self.started);
        let answered = Answered {
            status,
            bytes_in: self.bytes_in,
            bytes_out,
            connect_time: self.connect_time,
            response_time: self.response_time,
            service_time,
        };
        let backend_id = self.backend.as_ref().map(|backend| backend.id());
        shared
            .metrics
            .borrow_mut()
            .record(cluster, backend_id, &answered);
        // With access logs off, the record's fields are not even read.
        if !access_log::wanted() {
            return now;
        }
        let text = |range: &Range<usize>| {
            log.get(range.clone())
                .and_then(|bytes| std::str::from_utf8(bytes).ok())
                .unwrap_or("-")
        };
        access_log::log_request(&Entry {
            request_id: Some(self.id()),
            client: Some(peer),
            cluster,
            backend: backend_id,
            backend_address: self.backend.as_ref().map(|b| b.address_text()),
            method: Some(text(&self.fields.method)),
            host: Some(text(&self.fields.host)),
            path: Some(text(&self.fields.path)),
            protocol: Some(self.protocol),
            user_agent: Some(text(&self.fields.user_agent)),
            status: Some(status),
            bytes_in: Some(answered.bytes_in),
            bytes_out: Some(bytes_out),
            service: Elapsed::Measured(service_time),
            response: Elapsed::of(self.response_time),
            connect: Elapsed::of(self.connect_time),
            ..Entry::default()
        });
        now
    }
}

/// The time of day from the kernel's coarse clock (as of the last timer
/// tick, a few milliseconds at most): a request id's time is kept to the
/// millisecond and need not be finer, and this clock is read without
/// asking the hardware for the time (the precise one costs about as much
/// as a percent of a keep-alive request).
fn coarse_now() -> std::time::SystemTime {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `now` is.
    let read = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut now) };
    match (read, u64::try_from(now.tv_sec), u32::try_from(now.tv_nsec)) {
        (0, Ok(seconds), Ok(nanos)) => {
            std::time::UNIX_EPOCH + Duration::new(seconds, nanos.min(999_999_999))
        }
        _ => std::time::SystemTime::now(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    #[test]
    fn the_coarse_clock_tells_the_time_of_day_to_within_a_tick() {
        let before = SystemTime::now();
        let coarse = super::coarse_now();
        let after = SystemTime::now();
        // At most a timer tick behind (a few milliseconds; a second is
        // generous), never after the precise clock.
        let behind = before.duration_since(coarse).unwrap_or(Duration::ZERO);
        assert!(behind < Duration::from_secs(1), "{behind:?} behind");
        assert!(coarse <= after);
    }
}
