//! The three formats an [`Entry`] is written in, and the text helpers they
//! share with the audit log and the log sinks.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use sozu_command::proto::command::{
    HttpEndpoint, ProtobufAccessLog, SocketAddress, TcpEndpoint, Uint128, protobuf_endpoint,
};

use super::visit::Record;
use super::{Elapsed, Entry};

/// Where the JSON format finds the fields it lists after the known ones.
#[derive(Clone, Copy)]
pub(super) enum Fields<'a> {
    /// A request record written directly: the fields its event would have
    /// carried, in that event's order.
    Request,
    /// An event: every field it carried, in its order.
    Visited(&'a Record),
}

/// A text that is there: not `None`, `-` or empty.
fn given(text: Option<&str>) -> Option<&str> {
    text.filter(|text| !text.is_empty() && *text != "-")
}

impl Entry<'_> {
    fn protocol_or_http(&self) -> &str {
        given(self.protocol).unwrap_or("http")
    }

    fn is_tcp(&self) -> bool {
        given(self.protocol) == Some("tcp")
    }

    /// The whole time of the request or session, milliseconds.
    fn total_ms(&self) -> Option<f64> {
        self.duration
            .millis()
            .or_else(|| self.response.millis())
            .or_else(|| self.service.millis())
    }
}

/// Writes a text field escaped, or `-` when it is missing.
fn put(line: &mut String, text: Option<&str>) {
    push_escaped_or_dash(line, text.unwrap_or(""));
}

/// Writes `entry` as one Sozu-style text line into `line`.
pub(super) fn ascii(line: &mut String, entry: &Entry<'_>, now: SystemTime, pid: u32, tag: &str) {
    push_rfc3339(line, now);
    line.push(' ');
    // Nanoseconds since the epoch fit 64 bits until 2554.
    push_integer(line, u64::try_from(nanos(now)).unwrap_or(u64::MAX));
    line.push(' ');
    push_integer(line, pid);
    line.push_str(" INFO ");
    line.push_str(tag);
    line.push_str(" [");
    put(line, given(entry.session_id).or(entry.request_id));
    for text in [entry.request_id, entry.cluster, entry.backend] {
        line.push(' ');
        put(line, text);
    }
    line.push_str("] ");
    put(line, entry.client);
    line.push(' ');
    put(line, entry.backend_address);
    line.push(' ');
    push_duration(line, entry.total_ms());
    line.push('/');
    push_duration(line, entry.service.millis());
    line.push('/');
    push_duration(line, entry.response.millis());
    line.push_str("/-/- ");
    push_integer(line, entry.bytes_in.unwrap_or(0));
    line.push(' ');
    push_integer(line, entry.bytes_out.unwrap_or(0));
    line.push_str(" [");
    put(line, entry.user_agent);
    line.push_str("] - ");
    push_escaped_or_dash(line, entry.protocol_or_http());
    line.push(' ');
    if entry.is_tcp() {
        line.push_str("TCP");
    } else {
        put(line, entry.method);
        line.push(' ');
        put(line, given(entry.host));
        line.push(' ');
        put(line, given(entry.path));
        line.push(' ');
        match entry.status {
            Some(status) => push_integer(line, status),
            None => line.push('-'),
        }
    }
    if let Some(error) = given(entry.error) {
        line.push_str(" | ");
        push_escaped(line, error);
    }
}

/// Writes `entry` as one JSON object into `line`: the time, pid, tag and
/// protocol, the host and path when the event gave them as a route only,
/// then `fields`.
pub(super) fn json(
    line: &mut String,
    entry: &Entry<'_>,
    fields: Fields<'_>,
    now: SystemTime,
    pid: u32,
    tag: &str,
) {
    line.push_str("{\"time\":\"");
    push_rfc3339(line, now);
    line.push_str("\",\"pid\":");
    push_integer(line, pid);
    line.push_str(",\"tag\":");
    push_json_string(line, tag);
    line.push_str(",\"protocol\":");
    push_json_string(line, entry.protocol_or_http());
    match fields {
        Fields::Request => {
            for (name, text) in [
                ("request_id", entry.request_id),
                ("client", entry.client),
                ("cluster", entry.cluster),
                ("backend", entry.backend),
                ("backend_address", entry.backend_address),
                ("method", entry.method),
                ("host", entry.host),
                ("path", entry.path),
                ("user_agent", entry.user_agent),
            ] {
                push_json_name(line, name);
                match text {
                    None | Some("-") => line.push_str("null"),
                    Some(text) => push_json_string(line, text),
                }
            }
            for (name, number) in [
                ("status", entry.status.map(u64::from)),
                ("bytes_in", entry.bytes_in),
                ("bytes_out", entry.bytes_out),
            ] {
                push_json_name(line, name);
                match number {
                    Some(number) => push_integer(line, number),
                    None => line.push_str("null"),
                }
            }
            for (name, time) in [
                ("service_ms", entry.service),
                ("response_ms", entry.response),
                ("connect_ms", entry.connect),
            ] {
                push_json_name(line, name);
                push_json_float(line, time.millis().unwrap_or(f64::NAN));
            }
        }
        Fields::Visited(record) => {
            for (name, text) in [("host", entry.host), ("path", entry.path)] {
                if record.text(name).is_none()
                    && let Some(text) = given(text)
                {
                    push_json_name(line, name);
                    push_json_string(line, text);
                }
            }
            record.push_json_fields(line);
        }
    }
    line.push('}');
}

/// Writes `,"name":`.
pub(super) fn push_json_name(line: &mut String, name: &str) {
    line.push(',');
    push_json_string(line, name);
    line.push(':');
}

/// Writes a number as Rust prints it, `null` when it is not finite.
pub(super) fn push_json_float(line: &mut String, value: f64) {
    if value.is_finite() {
        let _ = write!(line, "{value}");
    } else {
        line.push_str("null");
    }
}

/// Writes `entry` into `message`, Sozu's protobuf access log message,
/// reusing its strings (no allocation once they have grown, as long as a
/// field that was there stays there).
pub(super) fn protobuf(
    message: &mut ProtobufAccessLog,
    entry: &Entry<'_>,
    now: SystemTime,
    tag: &str,
) {
    let micros = |time: Elapsed| time.millis().map(|ms| (ms * 1000.0).max(0.0) as u64);
    let address = |text: Option<&str>| {
        given(text)
            .and_then(|text| text.parse::<std::net::SocketAddr>().ok())
            .map(SocketAddress::from)
    };
    let ulid = |text: Option<&str>| {
        given(text)
            .and_then(|text| ulid::Ulid::from_string(text).ok())
            .map(|id| uint128(id.0))
    };
    if entry.is_tcp() {
        message.endpoint.inner = Some(protobuf_endpoint::Inner::Tcp(TcpEndpoint {}));
    } else {
        if !matches!(
            message.endpoint.inner,
            Some(protobuf_endpoint::Inner::Http(_))
        ) {
            message.endpoint.inner = Some(protobuf_endpoint::Inner::Http(HttpEndpoint::default()));
        }
        if let Some(protobuf_endpoint::Inner::Http(http)) = &mut message.endpoint.inner {
            set(&mut http.method, entry.method);
            set(&mut http.authority, entry.host);
            set(&mut http.path, entry.path);
            http.status = entry.status.map(u32::from);
            http.reason = None;
        }
    }
    let session_id = ulid(entry.session_id);
    set(&mut message.message, entry.error);
    message.request_id = ulid(entry.request_id)
        .or(session_id)
        .unwrap_or_else(|| uint128(0));
    set(&mut message.cluster_id, entry.cluster);
    set(&mut message.backend_id, entry.backend);
    message.session_address = address(entry.client);
    message.backend_address = address(entry.backend_address);
    message.protocol.clear();
    message.protocol.push_str(entry.protocol_or_http());
    message.service_time = micros(entry.service)
        .or_else(|| micros(entry.duration))
        .unwrap_or(0);
    message.bytes_in = entry.bytes_in.unwrap_or(0);
    message.bytes_out = entry.bytes_out.unwrap_or(0);
    set(&mut message.user_agent, entry.user_agent);
    message.tag.clear();
    message.tag.push_str(tag);
    message.time = uint128(nanos(now));
    message.request_time = entry.total_ms().map(|ms| (ms * 1000.0).max(0.0) as u64);
    message.response_time = micros(entry.response);
    message.session_id = session_id;
    // Not measured or not known here; the message is reused, so they are
    // set every time.
    message.client_rtt = None;
    message.server_rtt = None;
    message.tags.clear();
    message.otel = None;
    message.x_request_id = None;
    message.tls_version = None;
    message.tls_cipher = None;
    message.tls_sni = None;
    message.tls_alpn = None;
    message.xff_chain = None;
    message.start_time = None;
}

/// Sets a text field of a message to `text` when it is given, reusing the
/// string it holds.
fn set(field: &mut Option<String>, text: Option<&str>) {
    match given(text) {
        Some(text) => {
            let field = field.get_or_insert_with(String::new);
            field.clear();
            field.push_str(text);
        }
        None => *field = None,
    }
}

pub(super) fn uint128(value: u128) -> Uint128 {
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
pub(super) fn push_integer(line: &mut String, value: impl itoa::Integer) {
    line.push_str(itoa::Buffer::new().format(value));
}

/// A duration in milliseconds, as Sozu prints them (`-` when unknown).
#[cfg(test)]
pub(super) fn duration(ms: Option<f64>) -> String {
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
    let special = |b: u8| (b < 0x20) | (b == 0x7f) | (b == 0xc2);
    if !any_byte(text.as_bytes(), special) || !text.chars().any(char::is_control) {
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

/// Whether any byte of `bytes` is `special`: a reduction without an early
/// exit, which compilers turn into vector instructions (most texts have no
/// such byte and are read whole).
fn any_byte(bytes: &[u8], special: impl Fn(u8) -> bool) -> bool {
    bytes
        .iter()
        .fold(0u8, |found, &b| found | u8::from(special(b)))
        != 0
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
    push_json_string(&mut out, text);
    out
}

/// Writes `text` as a JSON string.
pub(super) fn push_json_string(line: &mut String, text: &str) {
    line.push('"');
    let special = |b: u8| (b < 0x20) | (b == b'"') | (b == b'\\') | (b == 0x7f) | (b == 0xc2);
    if !any_byte(text.as_bytes(), special) {
        line.push_str(text);
        line.push('"');
        return;
    }
    for c in text.chars() {
        match c {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            '\t' => line.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(line, "\\u{:04x}", u32::from(c));
            }
            c => line.push(c),
        }
    }
    line.push('"');
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
    // The microseconds on six digits: a leading 1 to keep the zeros, then
    // dropped.
    let micros = 1_000_000 + since.subsec_micros();
    line.push('.');
    line.push_str(&itoa::Buffer::new().format(micros)[1..]);
    line.push('Z');
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
