//! Access logs: one record per request (HTTP) or session (TCP).
//!
//! # How records reach writers
//!
//! Every record is an [`Entry`] written in the chosen [`AccessLogFormat`]
//! by [`AccessLogLayer`] through an [`AccessLogWriter`] (the embedder
//! decides where records go). Entries reach the layer two ways:
//!
//! - as `tracing` events with target `"access"` ([`TARGET`]): the layer, a
//!   `tracing_subscriber` layer, reads their fields into an entry (any may
//!   be missing, and is then `-`). The proxy's refusals, errors and 408s,
//!   the requests the hyper path served (their record has no user agent)
//!   and TCP sessions come this way, and so does anything an embedder
//!   emits;
//! - straight from the proxy, for the record of each request the HTTP/1.1
//!   relay served ([`log_request`]): when access events
//!   are enabled by the current subscriber's filter (as a `tracing` event
//!   would be, so a filter changed at run time applies at once) and that
//!   subscriber holds an [`AccessLogLayer`] made with
//!   [`AccessLogLayer::direct`], the entry is written through that layer
//!   with no event at all; otherwise the same record goes out as an event,
//!   to whatever the subscriber does with events. Either way a record is
//!   written once, in the same bytes.
//!
//! The fields an event may carry: `request_id`, `session_id`, `client`,
//! `cluster`, `backend`, `backend_address`, `method`, `host`, `path` (or
//! `route`, host and path together, when those two are absent),
//! `protocol`, `user_agent`, `status`, `bytes_in`, `bytes_out`,
//! `service_ms`, `response_ms`, `connect_ms`, `duration_ms` (a negative
//! time is one that was not measured), `error` or `end`; the JSON format
//! also keeps every other field of the event.
//!
//! Formats:
//!
//! - `ascii`: one line in the layout of Sozu's access logs (time, precise
//!   time, pid, level, tag, then `[session request cluster backend]`,
//!   addresses, durations, bytes, protocol and endpoint); control
//!   characters in what clients sent are escaped;
//! - `protobuf`: Sozu's `ProtobufAccessLog` message, framed as Sozu frames
//!   it in a file: a varint length, the message, then two zero bytes;
//! - `json`: one JSON object a line.

mod format;
#[cfg(test)]
mod tests;
mod visit;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prost::Message;
use sozu_command::proto::command::ProtobufAccessLog;
use tracing_subscriber::layer::{Context, Layer};

use format::Fields;
pub use format::{escaped, json_string, rfc3339};
use visit::Record;

/// The `tracing` target of access events.
pub const TARGET: &str = "access";

/// How access records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// Sozu's text layout.
    Ascii,
    /// Sozu's `ProtobufAccessLog`, length-delimited.
    Protobuf,
    /// One JSON object a line.
    Json,
}

/// Where access records go. Text records come without their newline.
pub trait AccessLogWriter: Send + Sync + 'static {
    /// One text record (`ascii` or `json`).
    fn write_text(&self, record: &[u8]);
    /// One framed binary record (`protobuf`).
    fn write_binary(&self, record: &[u8]);
}

/// One of the times an access record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Elapsed {
    /// The record has no such time (`-` in ascii).
    #[default]
    Absent,
    /// The time belongs in the record but was not measured (no answer, no
    /// connection): an event carries it as `-1` ms, and the formats write
    /// what they always wrote for that (`0μs` in ascii, `0` in protobuf,
    /// `-1` in JSON).
    Unmeasured,
    /// A measured time.
    Measured(Duration),
}

impl Elapsed {
    /// A time that belongs in the record: measured, or not.
    pub fn of(time: Option<Duration>) -> Elapsed {
        time.map_or(Elapsed::Unmeasured, Elapsed::Measured)
    }

    /// The time from milliseconds as an event gives them: negative (or
    /// not a number) is unmeasured; nanoseconds are rounded to the nearest,
    /// so that a time an event carried as `as_secs_f64() * 1000.0` comes
    /// back as the same duration.
    pub fn from_millis(ms: f64) -> Elapsed {
        if ms.is_nan() || ms < 0.0 {
            return Elapsed::Unmeasured;
        }
        let nanos = (ms * 1e6).round();
        if nanos >= u64::MAX as f64 {
            Elapsed::Measured(Duration::MAX)
        } else {
            Elapsed::Measured(Duration::from_nanos(nanos as u64))
        }
    }

    /// Milliseconds, as an event carries them (`-1` when unmeasured).
    fn millis(self) -> Option<f64> {
        match self {
            Elapsed::Absent => None,
            Elapsed::Unmeasured => Some(-1.0),
            Elapsed::Measured(time) => Some(time.as_secs_f64() * 1000.0),
        }
    }
}

/// One access record, borrowed from whoever writes it. A text that is
/// `None`, `-` or empty is missing (`-` in ascii, absent in protobuf).
#[derive(Debug, Clone, Copy, Default)]
pub struct Entry<'a> {
    /// A TCP session's id (a ULID).
    pub session_id: Option<&'a str>,
    /// An HTTP request's id (a ULID).
    pub request_id: Option<&'a str>,
    /// The client's address.
    pub client: Option<&'a str>,
    /// The cluster that served it.
    pub cluster: Option<&'a str>,
    /// The backend's id.
    pub backend: Option<&'a str>,
    /// The backend's address.
    pub backend_address: Option<&'a str>,
    /// The request's method.
    pub method: Option<&'a str>,
    /// The request's host (no port).
    pub host: Option<&'a str>,
    /// The request's path and query.
    pub path: Option<&'a str>,
    /// `http`, `https` or `tcp`; `http` when missing.
    pub protocol: Option<&'a str>,
    /// The `User-Agent` the client sent.
    pub user_agent: Option<&'a str>,
    /// The answer's status.
    pub status: Option<u16>,
    /// Bytes from the client (request body, or TCP bytes in).
    pub bytes_in: Option<u64>,
    /// Bytes to the client.
    pub bytes_out: Option<u64>,
    /// From the request's head to the end of its answer.
    pub service: Elapsed,
    /// From the request sent to the backend to its answer's head.
    pub response: Elapsed,
    /// Connecting to the backend.
    pub connect: Elapsed,
    /// A TCP session's whole time.
    pub duration: Elapsed,
    /// Why the request or session ended, when it went wrong.
    pub error: Option<&'a str>,
}

impl Entry<'_> {
    /// The request record this entry makes: what [`log_request`] writes,
    /// and the event it emits when it cannot write directly carries
    /// exactly these fields (a request always has its status, byte counts
    /// and three times; no session id, error or session duration).
    fn as_request(&self) -> Entry<'_> {
        let present = |time: Elapsed| match time {
            Elapsed::Absent => Elapsed::Unmeasured,
            time => time,
        };
        Entry {
            session_id: None,
            status: Some(self.status.unwrap_or(0)),
            bytes_in: Some(self.bytes_in.unwrap_or(0)),
            bytes_out: Some(self.bytes_out.unwrap_or(0)),
            service: present(self.service),
            response: present(self.response),
            connect: present(self.connect),
            duration: Elapsed::Absent,
            error: None,
            ..*self
        }
    }

    /// The request record as a `tracing` event (the entry made by
    /// [`Entry::as_request`]).
    fn emit(&self) {
        fn text(text: Option<&str>) -> &str {
            text.unwrap_or("-")
        }
        let millis = |time: Elapsed| time.millis().unwrap_or(-1.0);
        tracing::info!(
            target: TARGET,
            request_id = text(self.request_id),
            client = text(self.client),
            cluster = text(self.cluster),
            backend = text(self.backend),
            backend_address = text(self.backend_address),
            method = text(self.method),
            host = text(self.host),
            path = text(self.path),
            protocol = text(self.protocol),
            user_agent = text(self.user_agent),
            status = self.status.unwrap_or(0),
            bytes_in = self.bytes_in.unwrap_or(0),
            bytes_out = self.bytes_out.unwrap_or(0),
            service_ms = millis(self.service),
            response_ms = millis(self.response),
            connect_ms = millis(self.connect),
            "request"
        );
    }
}

/// Writes the access record of one HTTP request: straight through the
/// current subscriber's [`AccessLogLayer`] when it was made
/// [`direct`](AccessLogLayer::direct), else as a `tracing` event with
/// target [`TARGET`]; nothing when that subscriber's filter turns access
/// events off. The record carries the request's fields (`session_id`,
/// `error` and `duration` are not part of it; a missing status, byte count
/// or time is written as the event would carry it: `0`, `0`, `-1` ms).
pub fn log_request(entry: &Entry<'_>) {
    if !wanted() {
        return;
    }
    let entry = entry.as_request();
    let written = tracing::dispatcher::get_default(|dispatch| {
        match dispatch.downcast_ref::<AccessLogLayer>() {
            Some(layer) if layer.direct => {
                layer.write_with_scratch(|layer, scratch| {
                    layer.write(&entry, Fields::Request, &mut scratch.out)
                });
                true
            }
            _ => false,
        }
    });
    if !written {
        entry.emit();
    }
}

/// Whether the current subscriber's filter lets access records through:
/// a caller with an entry to build can ask before building it.
pub fn wanted() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::INFO)
}

/// The layer that turns access events (and direct request records) into
/// records.
pub struct AccessLogLayer {
    format: AccessLogFormat,
    writer: Arc<dyn AccessLogWriter>,
    /// The process tag (`main`, `worker-0`).
    tag: String,
    pid: u32,
    /// Whether [`log_request`] writes through this layer with no event.
    direct: bool,
}

impl AccessLogLayer {
    /// A layer writing `format` records through `writer`, tagged `tag`.
    pub fn new(format: AccessLogFormat, writer: Arc<dyn AccessLogWriter>, tag: &str) -> Self {
        AccessLogLayer {
            format,
            writer,
            tag: tag.to_owned(),
            pid: std::process::id(),
            direct: false,
        }
    }

    /// Makes request records ([`log_request`]) skip `tracing` events and
    /// go straight to this layer's writer, when it is part of the current
    /// subscriber and that subscriber's filter enables access events at
    /// `INFO`. Cheaper per request; the records are byte for byte the
    /// same. Choose it only when no other layer of the subscriber needs
    /// the access events (they no longer see request records; a second
    /// access layer among them included), and add the layer without a
    /// per-layer filter of its own (the subscriber's filter is the one
    /// consulted). The layer is found in the subscriber current where
    /// the request is served (the thread's default, else the global one),
    /// so a record goes to one place: a subscriber without the layer, or
    /// with a layer made without this, gets it as an event; nothing is
    /// written twice or lost.
    pub fn direct(mut self) -> Self {
        self.direct = true;
        self
    }
}

impl<S: tracing::Subscriber> Layer<S> for AccessLogLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _context: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        self.write_with_scratch(|layer, scratch| {
            let Scratch { record, out } = scratch;
            record.clear();
            event.record(record);
            layer.write(&record.entry(), Fields::Visited(record), out);
        });
    }
}

/// The buffers one access record is written with.
#[derive(Default)]
struct Scratch {
    /// An event's fields.
    record: Record,
    out: Output,
}

/// What a record is written into.
#[derive(Default)]
struct Output {
    /// An ascii or JSON line.
    line: String,
    /// A protobuf message, and its framed bytes.
    message: ProtobufAccessLog,
    framed: Vec<u8>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// The time a record is written at (fixed by a test, when it says so).
fn now() -> SystemTime {
    #[cfg(test)]
    if let Some(time) = tests::FIXED_TIME.get() {
        return time;
    }
    SystemTime::now()
}

impl AccessLogLayer {
    /// Runs `write` with buffers this thread reuses: no allocation per
    /// access record once they have grown. (A record written while another
    /// is being written, by a writer that logs, gets buffers of its own.)
    fn write_with_scratch(&self, write: impl FnOnce(&Self, &mut Scratch)) {
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut scratch) => write(self, &mut scratch),
            Err(_) => write(self, &mut Scratch::default()),
        });
    }

    /// Writes `entry` (with the fields of its event, if it came as one).
    fn write(&self, entry: &Entry<'_>, fields: Fields<'_>, out: &mut Output) {
        let line = &mut out.line;
        line.clear();
        let now = now();
        match self.format {
            AccessLogFormat::Ascii => {
                format::ascii(line, entry, now, self.pid, &self.tag);
                self.writer.write_text(line.as_bytes());
            }
            AccessLogFormat::Json => {
                format::json(line, entry, fields, now, self.pid, &self.tag);
                self.writer.write_text(line.as_bytes());
            }
            AccessLogFormat::Protobuf => {
                let Output {
                    message, framed, ..
                } = out;
                format::protobuf(message, entry, now, &self.tag);
                framed.clear();
                if message.encode_length_delimited(&mut *framed).is_ok() {
                    framed.extend_from_slice(&[0, 0]);
                    self.writer.write_binary(framed);
                }
            }
        }
    }
}
