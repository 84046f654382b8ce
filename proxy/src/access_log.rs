//! Access logs: one record per request (HTTP) or session (TCP), from the
//! `tracing` events the proxy emits with target `"access"`.
//!
//! [`AccessLogLayer`] is a `tracing_subscriber` layer: it reads the fields
//! of each such event (any may be missing, and is then `-`) and writes one
//! record in the chosen [`AccessLogFormat`] through an [`AccessLogWriter`]
//! (the embedder decides where records go). The fields it knows:
//!
//! `request_id`, `session_id`, `client`, `cluster`, `backend`,
//! `backend_address`, `method`, `host`, `path` (or `route`, host and path
//! together, when those two are absent), `protocol`, `user_agent`,
//! `status`, `bytes_in`, `bytes_out`, `service_ms`, `response_ms`,
//! `connect_ms`, `duration_ms`; the JSON format also keeps every other
//! field of the event.
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

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;
use sozu_command::proto::command::{
    HttpEndpoint, ProtobufAccessLog, ProtobufEndpoint, SocketAddress, TcpEndpoint, Uint128,
    protobuf_endpoint,
};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer};

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

/// The layer that turns access events into records.
pub struct AccessLogLayer {
    format: AccessLogFormat,
    writer: Arc<dyn AccessLogWriter>,
    /// The process tag (`main`, `worker-0`).
    tag: String,
    pid: u32,
}

impl AccessLogLayer {
    /// A layer writing `format` records through `writer`, tagged `tag`.
    pub fn new(format: AccessLogFormat, writer: Arc<dyn AccessLogWriter>, tag: &str) -> Self {
        AccessLogLayer {
            format,
            writer,
            tag: tag.to_owned(),
            pid: std::process::id(),
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for AccessLogLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _context: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        // The record and its line live in buffers this thread reuses: no
        // allocation per access record once they have grown. (A record
        // written while another is being written, by a writer that logs,
        // gets buffers of its own.)
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut scratch) => self.write(event, &mut scratch),
            Err(_) => self.write(event, &mut Scratch::default()),
        });
    }
}

/// The buffers one access record is written with.
#[derive(Default)]
struct Scratch {
    record: Record,
    line: String,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

impl AccessLogLayer {
    fn write(&self, event: &tracing::Event<'_>, scratch: &mut Scratch) {
        let Scratch { record, line } = scratch;
        record.clear();
        event.record(record);
        line.clear();
        let now = SystemTime::now();
        match self.format {
            AccessLogFormat::Ascii => {
                record.ascii(line, now, self.pid, &self.tag);
                self.writer.write_text(line.as_bytes());
            }
            AccessLogFormat::Json => {
                let line = record.json(now, self.pid, &self.tag);
                self.writer.write_text(line.as_bytes());
            }
            AccessLogFormat::Protobuf => {
                let message = record.protobuf(now, &self.tag);
                let mut framed = Vec::with_capacity(message.encoded_len() + 12);
                if message.encode_length_delimited(&mut framed).is_ok() {
                    framed.extend_from_slice(&[0, 0]);
                    self.writer.write_binary(&framed);
                }
            }
        }
    }
}

/// One field value as the event gave it (text in [`Record::texts`]).
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Text(std::ops::Range<usize>),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Bool(bool),
}

/// The fields of one access event, in the order they came.
#[derive(Debug, Default)]
struct Record {
    fields: Vec<(&'static str, Value)>,
    /// The text of every text field, one after the other.
    texts: String,
}

impl Visit for Record {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let start = self.texts.len();
        let _ = write!(self.texts, "{value:?}");
        let end = self.texts.len();
        self.fields.push((field.name(), Value::Text(start..end)));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        let start = self.texts.len();
        self.texts.push_str(value);
        let end = self.texts.len();
        self.fields.push((field.name(), Value::Text(start..end)));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.push((field.name(), Value::Unsigned(value)));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.push((field.name(), Value::Signed(value)));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.push((field.name(), Value::Float(value)));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.push((field.name(), Value::Bool(value)));
    }
}

impl Record {
    fn clear(&mut self) {
        self.fields.clear();
        self.texts.clear();
    }

    fn get(&self, name: &str) -> Option<&Value> {
        // Many field names have the same length: their first and last
        // bytes tell most of them apart before a full comparison (a line
        // looks up about twenty names among as many fields).
        let (first, last) = (name.bytes().next(), name.bytes().last());
        self.fields
            .iter()
            .find(|(field, _)| {
                field.len() == name.len()
                    && field.bytes().next() == first
                    && field.bytes().last() == last
                    && *field == name
            })
            .map(|(_, value)| value)
    }

    /// The text of a text value.
    fn slice(&self, range: &std::ops::Range<usize>) -> &str {
        self.texts.get(range.clone()).unwrap_or_default()
    }

    /// A text field as given; `-` (what the proxy writes for "none") and
    /// an empty text count as missing, and so does a field of another kind.
    fn str(&self, name: &str) -> Option<&str> {
        match self.get(name)? {
            Value::Text(range) => {
                Some(self.slice(range)).filter(|text| *text != "-" && !text.is_empty())
            }
            _ => None,
        }
    }

    /// A field as text (numbers written out); `-` counts as missing.
    fn text(&self, name: &str) -> Option<String> {
        let text = match self.get(name)? {
            Value::Text(range) => self.slice(range).to_owned(),
            Value::Unsigned(value) => value.to_string(),
            Value::Signed(value) => value.to_string(),
            Value::Float(value) => value.to_string(),
            Value::Bool(value) => value.to_string(),
        };
        (text != "-" && !text.is_empty()).then_some(text)
    }

    /// Writes a field into `line`, escaped, or `-` when it is missing.
    fn put(&self, line: &mut String, name: &str) {
        match self.get(name) {
            Some(Value::Text(range)) => push_escaped_or_dash(line, self.slice(range)),
            Some(Value::Unsigned(value)) => push_integer(line, *value),
            Some(Value::Signed(value)) => push_integer(line, *value),
            Some(Value::Float(value)) => {
                let _ = write!(line, "{value}");
            }
            Some(Value::Bool(value)) => {
                let _ = write!(line, "{value}");
            }
            None => line.push('-'),
        }
    }

    fn number(&self, name: &str) -> Option<f64> {
        match self.get(name)? {
            Value::Unsigned(value) => Some(*value as f64),
            Value::Signed(value) => Some(*value as f64),
            Value::Float(value) => Some(*value),
            Value::Text(range) => self.slice(range).parse().ok(),
            Value::Bool(_) => None,
        }
    }

    fn unsigned(&self, name: &str) -> Option<u64> {
        self.number(name)
            .filter(|value| *value >= 0.0)
            .map(|value| value as u64)
    }

    /// The host, from `host` or else from `route` (host and path together).
    fn host_str(&self) -> Option<&str> {
        self.str("host").or_else(|| {
            let route = self.str("route")?;
            let end = route.find('/').unwrap_or(route.len());
            let host = &route[..end];
            (!host.is_empty() && host != "-").then_some(host)
        })
    }

    /// The path, from `path` or else from `route`.
    fn path_str(&self) -> Option<&str> {
        self.str("path").or_else(|| {
            let route = self.str("route")?;
            route.find('/').map(|start| &route[start..])
        })
    }

    fn host(&self) -> Option<String> {
        self.host_str().map(str::to_owned)
    }

    fn path(&self) -> Option<String> {
        self.path_str().map(str::to_owned)
    }

    fn is_tcp(&self) -> bool {
        self.str("protocol") == Some("tcp")
    }

    /// The protocol: the event's, or `http` for a request event.
    fn protocol(&self) -> String {
        self.protocol_str().to_owned()
    }

    fn protocol_str(&self) -> &str {
        self.str("protocol").unwrap_or("http")
    }

    /// The whole time of the request or session, milliseconds.
    fn total_ms(&self) -> Option<f64> {
        self.number("duration_ms")
            .or_else(|| self.number("response_ms"))
            .or_else(|| self.number("service_ms"))
    }

    /// Writes the record as one Sozu-style text line into `line`.
    fn ascii(&self, line: &mut String, now: SystemTime, pid: u32, tag: &str) {
        push_rfc3339(line, now);
        line.push(' ');
        // Nanoseconds since the epoch fit 64 bits until 2554.
        push_integer(line, u64::try_from(nanos(now)).unwrap_or(u64::MAX));
        line.push(' ');
        push_integer(line, pid);
        line.push_str(" INFO ");
        line.push_str(tag);
        line.push_str(" [");
        let session = if self.str("session_id").is_some() {
            "session_id"
        } else {
            "request_id"
        };
        for (index, name) in [session, "request_id", "cluster", "backend"]
            .into_iter()
            .enumerate()
        {
            if index > 0 {
                line.push(' ');
            }
            self.put(line, name);
        }
        line.push_str("] ");
        self.put(line, "client");
        line.push(' ');
        self.put(line, "backend_address");
        line.push(' ');
        push_duration(line, self.total_ms());
        line.push('/');
        push_duration(line, self.number("service_ms"));
        line.push('/');
        push_duration(line, self.number("response_ms"));
        line.push_str("/-/- ");
        push_integer(line, self.unsigned("bytes_in").unwrap_or(0));
        line.push(' ');
        push_integer(line, self.unsigned("bytes_out").unwrap_or(0));
        line.push_str(" [");
        self.put(line, "user_agent");
        line.push_str("] - ");
        push_escaped_or_dash(line, self.protocol_str());
        line.push(' ');
        if self.is_tcp() {
            line.push_str("TCP");
        } else {
            self.put(line, "method");
            line.push(' ');
            push_escaped_or_dash(line, self.host_str().unwrap_or("-"));
            line.push(' ');
            push_escaped_or_dash(line, self.path_str().unwrap_or("-"));
            line.push(' ');
            self.put(line, "status");
        }
        let error = self.str("error").or_else(|| self.str("end"));
        if let Some(error) = error {
            line.push_str(" | ");
            push_escaped(line, error);
        }
    }

    fn json(&self, now: SystemTime, pid: u32, tag: &str) -> String {
        let mut line = String::with_capacity(384);
        line.push('{');
        let _ = write!(
            line,
            "\"time\":{},\"pid\":{pid},\"tag\":{}",
            json_string(&rfc3339(now)),
            json_string(tag)
        );
        let named = |line: &mut String, name: &str, value: Option<String>| {
            if let Some(value) = value {
                let _ = write!(line, ",{}:{}", json_string(name), json_string(&value));
            }
        };
        named(&mut line, "protocol", Some(self.protocol()));
        if self.text("host").is_none() {
            named(&mut line, "host", self.host());
        }
        if self.text("path").is_none() {
            named(&mut line, "path", self.path());
        }
        for (name, value) in &self.fields {
            if matches!(*name, "message" | "protocol") {
                continue;
            }
            let _ = write!(line, ",{}:", json_string(name));
            match value {
                Value::Text(range) if self.slice(range) == "-" => line.push_str("null"),
                Value::Text(range) => line.push_str(&json_string(self.slice(range))),
                Value::Unsigned(value) => {
                    let _ = write!(line, "{value}");
                }
                Value::Signed(value) => {
                    let _ = write!(line, "{value}");
                }
                Value::Float(value) if value.is_finite() => {
                    let _ = write!(line, "{value}");
                }
                Value::Float(_) => line.push_str("null"),
                Value::Bool(value) => {
                    let _ = write!(line, "{value}");
                }
            }
        }
        line.push('}');
        line
    }

    fn protobuf(&self, now: SystemTime, tag: &str) -> ProtobufAccessLog {
        let micros = |name: &str| self.number(name).map(|ms| (ms * 1000.0).max(0.0) as u64);
        let address = |name: &str| {
            self.text(name)
                .and_then(|text| text.parse::<std::net::SocketAddr>().ok())
                .map(SocketAddress::from)
        };
        let ulid = |name: &str| {
            self.text(name)
                .and_then(|text| ulid::Ulid::from_string(&text).ok())
                .map(|id| uint128(id.0))
        };
        let endpoint = if self.is_tcp() {
            protobuf_endpoint::Inner::Tcp(TcpEndpoint {})
        } else {
            protobuf_endpoint::Inner::Http(HttpEndpoint {
                method: self.text("method"),
                authority: self.host(),
                path: self.path(),
                status: self.unsigned("status").map(|status| status as u32),
                reason: None,
            })
        };
        let session_id = ulid("session_id");
        let time = nanos(now);
        ProtobufAccessLog {
            message: self.text("error").or_else(|| self.text("end")),
            request_id: ulid("request_id")
                .or(session_id)
                .unwrap_or_else(|| uint128(0)),
            cluster_id: self.text("cluster"),
            backend_id: self.text("backend"),
            session_address: address("client"),
            backend_address: address("backend_address"),
            protocol: self.protocol(),
            endpoint: ProtobufEndpoint {
                inner: Some(endpoint),
            },
            client_rtt: None,
            server_rtt: None,
            service_time: micros("service_ms")
                .or_else(|| micros("duration_ms"))
                .unwrap_or(0),
            bytes_in: self.unsigned("bytes_in").unwrap_or(0),
            bytes_out: self.unsigned("bytes_out").unwrap_or(0),
            user_agent: self.text("user_agent"),
            tags: Default::default(),
            tag: tag.to_owned(),
            time: uint128(time),
            request_time: self.total_ms().map(|ms| (ms * 1000.0).max(0.0) as u64),
            response_time: micros("response_ms"),
            otel: None,
            session_id,
            x_request_id: None,
            tls_version: None,
            tls_cipher: None,
            tls_sni: None,
            tls_alpn: None,
            xff_chain: None,
            start_time: None,
        }
    }
}

fn uint128(value: u128) -> Uint128 {
    Uint128 {
        low: value as u64,
        high: (value >> 64) as u64,
    }
}

/// Nanoseconds since the Unix epoch.
fn nanos(time: SystemTime) -> u128 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

/// Writes a duration in milliseconds as Sozu prints them (`-` when
/// unknown).
fn push_duration(line: &mut String, ms: Option<f64>) {
    match ms {
        None => line.push('-'),
        Some(ms) if ms < 1.0 => {
            push_integer(line, (ms * 1000.0).round() as u64);
            line.push_str("μs");
        }
        Some(ms) => {
            push_integer(line, ms.round() as u64);
            line.push_str("ms");
        }
    }
}

/// Writes an integer in decimal.
fn push_integer(line: &mut String, value: impl itoa::Integer) {
    line.push_str(itoa::Buffer::new().format(value));
}

/// A duration in milliseconds, as Sozu prints them (`-` when unknown).
#[cfg(test)]
fn duration(ms: Option<f64>) -> String {
    let mut text = String::new();
    push_duration(&mut text, ms);
    text
}

/// Writes a text field escaped ([`escaped`]), `-` when it is empty.
fn push_escaped_or_dash(line: &mut String, text: &str) {
    if text.is_empty() {
        line.push('-');
    } else {
        push_escaped(line, text);
    }
}

/// Writes `text` with control characters, spaces inside fields aside, as
/// `\xNN` (a client cannot forge a log line).
fn push_escaped(line: &mut String, text: &str) {
    // Control characters are ASCII below 0x20 and 0x7f, and U+0080 to
    // U+009F, which UTF-8 writes after a 0xc2 byte: text without those
    // bytes is copied as is.
    let plain = |b: &u8| (0x20..0x7f).contains(b) || (*b >= 0x80 && *b != 0xc2);
    if text.as_bytes().iter().all(plain) || !text.chars().any(char::is_control) {
        line.push_str(text);
        return;
    }
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(line, "\\x{:02x}", u32::from(c));
        } else {
            line.push(c);
        }
    }
}

/// `text` with control characters, spaces inside fields aside, written as
/// `\xNN` (a client cannot forge a log line).
pub fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    push_escaped(&mut out, text);
    out
}

/// `text` as a JSON string.
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `time` as an RFC 3339 UTC timestamp with microseconds.
pub fn rfc3339(time: SystemTime) -> String {
    let mut text = String::with_capacity(27);
    push_rfc3339(&mut text, time);
    text
}

/// Writes `time` as an RFC 3339 UTC timestamp with microseconds. The date
/// and time to the second are formatted once a second per thread.
fn push_rfc3339(line: &mut String, time: SystemTime) {
    thread_local! {
        static SECOND: std::cell::RefCell<(u64, String)> =
            const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    SECOND.with(|second| {
        let mut second = second.borrow_mut();
        if second.0 != seconds {
            let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
            let in_day = seconds % 86_400;
            second.1.clear();
            let _ = write!(
                second.1,
                "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
                in_day / 3600,
                in_day / 60 % 60,
                in_day % 60,
            );
            second.0 = seconds;
        }
        line.push_str(&second.1);
    });
    let _ = write!(line, ".{:06}Z", since.subsec_micros());
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard
/// Hinnant's published days-to-civil algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tracing_subscriber::prelude::*;

    #[derive(Default)]
    struct Captured {
        text: Mutex<Vec<String>>,
        binary: Mutex<Vec<Vec<u8>>>,
    }

    impl AccessLogWriter for Captured {
        fn write_text(&self, record: &[u8]) {
            self.text
                .lock()
                .unwrap()
                .push(String::from_utf8(record.to_vec()).unwrap());
        }
        fn write_binary(&self, record: &[u8]) {
            self.binary.lock().unwrap().push(record.to_vec());
        }
    }

    fn capture(format: AccessLogFormat, emit: impl FnOnce()) -> Arc<Captured> {
        let captured = Arc::new(Captured::default());
        let layer = AccessLogLayer::new(format, captured.clone(), "worker-0");
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, emit);
        captured
    }

    fn request() {
        tracing::info!(
            target: "access",
            request_id = "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            client = %"127.0.0.1:4000",
            cluster = "app",
            backend = "app-0",
            backend_address = "127.0.0.1:8000",
            method = "GET",
            route = "app.test/a\u{1b}[31mb?q=1",
            status = 200u16,
            bytes_in = 10u64,
            bytes_out = 20u64,
            service_ms = 1.5,
            "request"
        );
        tracing::info!(target: "other", "not an access record");
    }

    #[test]
    fn ascii_lines_carry_every_field_and_escape_control_characters() {
        let captured = capture(AccessLogFormat::Ascii, request);
        let lines = captured.text.lock().unwrap();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert!(
            line.contains("[01ARZ3NDEKTSV4RRFFQ69G5FAV 01ARZ3NDEKTSV4RRFFQ69G5FAV app app-0]"),
            "{line}"
        );
        assert!(line.contains("127.0.0.1:4000 127.0.0.1:8000"), "{line}");
        assert!(line.contains(" 10 20 "), "{line}");
        assert!(line.contains("GET app.test /a\\x1b[31mb?q=1 200"), "{line}");
        assert!(!line.contains('\u{1b}'), "{line}");
    }

    #[test]
    fn json_lines_split_the_route_and_keep_numbers() {
        let captured = capture(AccessLogFormat::Json, request);
        let lines = captured.text.lock().unwrap();
        let line = &lines[0];
        assert!(line.starts_with("{\"time\":\""), "{line}");
        assert!(line.contains("\"host\":\"app.test\""), "{line}");
        assert!(line.contains("\"path\":\"/a\\u001b[31mb?q=1\""), "{line}");
        assert!(line.contains("\"status\":200"), "{line}");
        assert!(line.contains("\"service_ms\":1.5"), "{line}");
        assert!(line.contains("\"tag\":\"worker-0\""), "{line}");
    }

    #[test]
    fn protobuf_records_are_length_delimited_with_two_zero_bytes_after() {
        let captured = capture(AccessLogFormat::Protobuf, request);
        let records = captured.binary.lock().unwrap();
        assert_eq!(records.len(), 1);
        let record = &records[0];
        assert_eq!(&record[record.len() - 2..], &[0, 0]);
        let decoded =
            ProtobufAccessLog::decode_length_delimited(&record[..record.len() - 2]).unwrap();
        assert_eq!(decoded.cluster_id.as_deref(), Some("app"));
        assert_eq!(decoded.service_time, 1500);
        assert_eq!(decoded.bytes_out, 20);
        assert_eq!(decoded.protocol, "http");
        assert_eq!(
            decoded.session_address.unwrap().to_socket_addr(),
            "127.0.0.1:4000".parse().unwrap()
        );
        let id = ulid::Ulid::from_string("01ARZ3NDEKTSV4RRFFQ69G5FAV")
            .unwrap()
            .0;
        assert_eq!(decoded.request_id, uint128(id));
        match decoded.endpoint.inner {
            Some(protobuf_endpoint::Inner::Http(http)) => {
                assert_eq!(http.status, Some(200));
                assert_eq!(http.authority.as_deref(), Some("app.test"));
                assert_eq!(http.path.as_deref(), Some("/a\u{1b}[31mb?q=1"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_control_character_is_escaped_and_other_text_kept() {
        assert_eq!(escaped("plain text/é"), "plain text/é");
        assert_eq!(escaped("a\u{1b}b\u{7f}"), "a\\x1bb\\x7f");
        // C1 controls (UTF-8 0xc2 0x80..0x9f) too; other 0xc2 characters
        // are kept.
        assert_eq!(escaped("a\u{85}b\u{a9}"), "a\\x85b\u{a9}");
    }

    #[test]
    fn durations_print_as_sozu_does() {
        assert_eq!(duration(None), "-");
        assert_eq!(duration(Some(0.25)), "250μs");
        assert_eq!(duration(Some(12.4)), "12ms");
        assert_eq!(json_string("a\"b\\c\u{7}"), "\"a\\\"b\\\\c\\u0007\"");
        let time = UNIX_EPOCH + std::time::Duration::from_micros(1_796_278_225_123_456);
        assert_eq!(rfc3339(time), "2026-12-03T06:10:25.123456Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let leap = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000000Z");
    }
}
