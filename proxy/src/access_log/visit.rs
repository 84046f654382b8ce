//! Access events read into an [`Entry`]: the fields of a `tracing` event,
//! looked up by name.

use std::fmt::Write as _;
use std::ops::Range;

use tracing::field::{Field, Visit};

use super::format::{push_integer, push_json_float, push_json_name, push_json_string};
use super::{Elapsed, Entry};

/// One field value as the event gave it.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Text,
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Bool(bool),
}

/// The fields of one access event, in the order they came, each with its
/// text in [`Record::texts`] (a number's only when it stands for a text).
#[derive(Debug, Default)]
pub(crate) struct Record {
    fields: Vec<(&'static str, Value, Range<usize>)>,
    /// The text of every field, one after the other.
    texts: String,
}

/// The fields an [`Entry`] takes as text: a number given for one of them is
/// written out (any other number is kept as a number only).
const TEXTS: [&str; 12] = [
    "session_id",
    "request_id",
    "client",
    "cluster",
    "backend",
    "backend_address",
    "method",
    "user_agent",
    "error",
    "end",
    "host",
    "path",
];

impl Record {
    /// Appends a field whose text `write` puts at the end of the texts.
    fn push(&mut self, field: &Field, value: Value, write: impl FnOnce(&mut String)) {
        let start = self.texts.len();
        if value == Value::Text || TEXTS.contains(&field.name()) {
            write(&mut self.texts);
        }
        let end = self.texts.len();
        self.fields.push((field.name(), value, start..end));
    }
}

/// A value as a number (a text parsed as one).
fn number(value: &Value, text: &str) -> Option<f64> {
    match value {
        Value::Unsigned(value) => Some(*value as f64),
        Value::Signed(value) => Some(*value as f64),
        Value::Float(value) => Some(*value),
        Value::Text => text.parse().ok(),
        Value::Bool(_) => None,
    }
}

/// A value as a count: exact for integers (a count past 2^53 would not
/// survive a float), else a non-negative number truncated.
fn unsigned(value: &Value, text: &str) -> Option<u64> {
    let truncated = || {
        number(value, text)
            .filter(|value| *value >= 0.0)
            .map(|value| value as u64)
    };
    match value {
        Value::Unsigned(value) => Some(*value),
        Value::Signed(value) => u64::try_from(*value).ok(),
        Value::Text => text.parse().ok().or_else(truncated),
        _ => truncated(),
    }
}

fn elapsed(value: &Value, text: &str) -> Elapsed {
    number(value, text).map_or(Elapsed::Absent, Elapsed::from_millis)
}

impl Visit for Record {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.push(field, Value::Text, |texts| {
            let _ = write!(texts, "{value:?}");
        });
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, Value::Text, |texts| texts.push_str(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Value::Unsigned(value), |texts| {
            push_integer(texts, value)
        });
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::Signed(value), |texts| {
            push_integer(texts, value)
        });
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Value::Float(value), |texts| {
            let _ = write!(texts, "{value}");
        });
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bool(value), |texts| {
            let _ = write!(texts, "{value}");
        });
    }
}

impl Record {
    pub(super) fn clear(&mut self) {
        self.fields.clear();
        self.texts.clear();
    }

    fn get(&self, name: &str) -> Option<(&Value, &str)> {
        // Many field names have the same length: their first and last
        // bytes tell most of them apart before a full comparison.
        let (first, last) = (name.bytes().next(), name.bytes().last());
        self.fields
            .iter()
            .find(|(field, _, _)| {
                field.len() == name.len()
                    && field.bytes().next() == first
                    && field.bytes().last() == last
                    && *field == name
            })
            .map(|(_, value, range)| (value, self.texts.get(range.clone()).unwrap_or_default()))
    }

    /// A field as text (numbers written out, for the fields in [`TEXTS`]);
    /// `-` and an empty text count as missing.
    pub(super) fn text(&self, name: &str) -> Option<&str> {
        self.get(name)
            .map(|(_, text)| text)
            .filter(|text| *text != "-" && !text.is_empty())
    }

    /// The entry this event makes, in one pass over its fields: `host` and
    /// `path`, or else the two parts of `route` (host and path together);
    /// `error`, or else `end`. A text (`host`, `path`, `route`,
    /// `protocol`) given as a number does not count.
    pub(super) fn entry(&self) -> Entry<'_> {
        let mut entry = Entry::default();
        let (mut route, mut end) = (None, None);
        for (name, value, range) in &self.fields {
            let text = self.texts.get(range.clone()).unwrap_or_default();
            let given = Some(text).filter(|text| *text != "-" && !text.is_empty());
            let only_text = given.filter(|_| *value == Value::Text);
            match *name {
                "session_id" => entry.session_id = given,
                "request_id" => entry.request_id = given,
                "client" => entry.client = given,
                "cluster" => entry.cluster = given,
                "backend" => entry.backend = given,
                "backend_address" => entry.backend_address = given,
                "method" => entry.method = given,
                "host" => entry.host = only_text,
                "path" => entry.path = only_text,
                "route" => route = only_text,
                "protocol" => entry.protocol = only_text,
                "user_agent" => entry.user_agent = given,
                "status" => {
                    entry.status = unsigned(value, text).and_then(|status| status.try_into().ok())
                }
                "bytes_in" => entry.bytes_in = unsigned(value, text),
                "bytes_out" => entry.bytes_out = unsigned(value, text),
                "service_ms" => entry.service = elapsed(value, text),
                "response_ms" => entry.response = elapsed(value, text),
                "connect_ms" => entry.connect = elapsed(value, text),
                "duration_ms" => entry.duration = elapsed(value, text),
                "error" => entry.error = given,
                "end" => end = given,
                _ => {}
            }
        }
        entry.error = entry.error.or(end);
        if let Some(route) = route {
            let (host, path) = route.split_at(route.find('/').unwrap_or(route.len()));
            entry.host = entry.host.or(Some(host));
            entry.path = entry.path.or(Some(path).filter(|path| !path.is_empty()));
        }
        entry
    }

    /// Writes every field of the event, `message` and `protocol` aside, as
    /// `,"name":value` (a `-` text is `null`).
    pub(super) fn push_json_fields(&self, line: &mut String) {
        for (name, value, range) in &self.fields {
            if matches!(*name, "message" | "protocol") {
                continue;
            }
            push_json_name(line, name);
            let text = self.texts.get(range.clone()).unwrap_or_default();
            match value {
                Value::Text if text == "-" => line.push_str("null"),
                Value::Text => push_json_string(line, text),
                Value::Float(value) => push_json_float(line, *value),
                Value::Unsigned(value) => push_integer(line, *value),
                Value::Signed(value) => push_integer(line, *value),
                Value::Bool(value) => line.push_str(if *value { "true" } else { "false" }),
            }
        }
    }
}
