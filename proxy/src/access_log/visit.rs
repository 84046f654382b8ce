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
/// text (numbers written out) in [`Record::texts`].
#[derive(Debug, Default)]
pub(crate) struct Record {
    fields: Vec<(&'static str, Value, Range<usize>)>,
    /// The text of every field, one after the other.
    texts: String,
}

impl Record {
    /// Appends a field whose text `write` puts at the end of the texts.
    fn push(&mut self, field: &Field, value: Value, write: impl FnOnce(&mut String)) {
        let start = self.texts.len();
        write(&mut self.texts);
        let end = self.texts.len();
        self.fields.push((field.name(), value, start..end));
    }
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

    /// A field as text (numbers written out); `-` and an empty text count
    /// as missing.
    pub(super) fn text(&self, name: &str) -> Option<&str> {
        self.get(name)
            .map(|(_, text)| text)
            .filter(|text| *text != "-" && !text.is_empty())
    }

    /// A text field as given; `-` and an empty text count as missing, and
    /// so does a field of another kind.
    fn str(&self, name: &str) -> Option<&str> {
        match self.get(name)? {
            (Value::Text, text) => Some(text).filter(|text| *text != "-" && !text.is_empty()),
            _ => None,
        }
    }

    fn number(&self, name: &str) -> Option<f64> {
        match self.get(name)? {
            (Value::Unsigned(value), _) => Some(*value as f64),
            (Value::Signed(value), _) => Some(*value as f64),
            (Value::Float(value), _) => Some(*value),
            (Value::Text, text) => text.parse().ok(),
            (Value::Bool(_), _) => None,
        }
    }

    fn unsigned(&self, name: &str) -> Option<u64> {
        self.number(name)
            .filter(|value| *value >= 0.0)
            .map(|value| value as u64)
    }

    fn elapsed(&self, name: &str) -> Elapsed {
        self.number(name)
            .map_or(Elapsed::Absent, Elapsed::from_millis)
    }

    /// The route (host and path together), split at its first `/`.
    fn route(&self) -> Option<(&str, &str)> {
        let route = self.str("route")?;
        Some(route.split_at(route.find('/').unwrap_or(route.len())))
    }

    /// The entry this event makes: `host` and `path`, or else the two
    /// parts of `route`; `error`, or else `end`.
    pub(super) fn entry(&self) -> Entry<'_> {
        let route = self.route();
        Entry {
            session_id: self.text("session_id"),
            request_id: self.text("request_id"),
            client: self.text("client"),
            cluster: self.text("cluster"),
            backend: self.text("backend"),
            backend_address: self.text("backend_address"),
            method: self.text("method"),
            host: self.str("host").or(route.map(|(host, _)| host)),
            path: self
                .str("path")
                .or(route.map(|(_, path)| path).filter(|path| !path.is_empty())),
            protocol: self.str("protocol"),
            user_agent: self.text("user_agent"),
            status: self
                .unsigned("status")
                .and_then(|status| u16::try_from(status).ok()),
            bytes_in: self.unsigned("bytes_in"),
            bytes_out: self.unsigned("bytes_out"),
            service: self.elapsed("service_ms"),
            response: self.elapsed("response_ms"),
            connect: self.elapsed("connect_ms"),
            duration: self.elapsed("duration_ms"),
            error: self.text("error").or_else(|| self.text("end")),
        }
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
                Value::Unsigned(_) | Value::Signed(_) | Value::Bool(_) => line.push_str(text),
            }
        }
    }
}
