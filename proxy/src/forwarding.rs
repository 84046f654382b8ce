//! Header changes on the way to the backend and back.
//!
//! What is added (forwarding headers, request id), what is removed
//! (hop-by-hop headers, the sticky cookie) and what the frontend asks to
//! edit. RFC 9110 wants hop-by-hop headers removed at every hop, in both
//! directions; Sozu only does so towards HTTP/2, we always do.

use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use sozu_command::proto::command::ForwardedHeaders;

/// Headers that only mean something for one connection.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, including those the `Connection` header
/// names. When `keep_upgrade` is set (a protocol upgrade such as WebSocket
/// is being relayed), `Connection: upgrade` and `Upgrade` are kept.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none: one pass over their names is cheaper than
    // seven lookups (and a `Connection` header is one of them).
    if !keep_upgrade && !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        if keep_upgrade && name == header::UPGRADE {
            continue;
        }
        headers.remove(&name);
    }
    for name in &HOP_BY_HOP {
        if keep_upgrade && (*name == header::UPGRADE || *name == header::CONNECTION) {
            continue;
        }
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Where a request came from and on which listener it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The client's address.
    pub peer: SocketAddr,
    /// The public address of the listener (or its bound address).
    pub listener: SocketAddr,
    /// `true` when the client connection is TLS.
    pub secure: bool,
}

/// Appends `address` as an RFC 7239 node: a node with a port, or an IPv6
/// address, must be quoted, and IPv6 addresses bracketed.
fn push_quoted_node(text: &mut String, address: SocketAddr) {
    use std::fmt::Write;
    let _ = match address {
        SocketAddr::V4(v4) => write!(text, "\"{}:{}\"", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => write!(text, "\"[{}]:{}\"", v6.ip(), v6.port()),
    };
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// The values of the forwarding headers for one origin, written once per
/// client connection rather than formatted again for each request.
#[derive(Debug, Clone)]
pub struct ForwardingValues {
    origin: Origin,
    /// The client's IP address (`X-Forwarded-For`, `X-Real-IP`).
    client_ip: HeaderValue,
    /// `http` or `https`.
    proto: HeaderValue,
    /// The listener's port (`X-Forwarded-Port`).
    port: HeaderValue,
    /// `proto=…;for="…";by="…"` (`Forwarded`).
    forwarded: HeaderValue,
    /// The three `X-Forwarded-*` lines of a request that has none of its
    /// own, written out whole (CRLF after each).
    x_forwarded_lines: bytes::Bytes,
}

impl ForwardingValues {
    /// The values for requests from `origin`, written into one shared
    /// buffer (this runs for every new client connection).
    pub fn new(origin: &Origin) -> Self {
        use std::fmt::Write;
        let proto = if origin.secure { "https" } else { "http" };
        let mut text = String::with_capacity(256);
        let _ = write!(text, "{}", origin.peer.ip());
        let client_ip = 0..text.len();
        let start = text.len();
        let _ = write!(text, "{}", origin.listener.port());
        let port = start..text.len();
        let start = text.len();
        text.push_str("proto=");
        text.push_str(proto);
        text.push_str(";for=");
        push_quoted_node(&mut text, origin.peer);
        text.push_str(";by=");
        push_quoted_node(&mut text, origin.listener);
        let forwarded = start..text.len();
        let start = text.len();
        let _ = write!(
            text,
            "X-Forwarded-For: {}\r\nX-Forwarded-Proto: {proto}\r\nX-Forwarded-Port: {}\r\n",
            origin.peer.ip(),
            origin.listener.port()
        );
        let x_forwarded_lines = start..text.len();
        let text = bytes::Bytes::from(text);
        let value = |range| {
            HeaderValue::from_maybe_shared(text.slice(range))
                .expect("addresses and ports make valid header values")
        };
        ForwardingValues {
            origin: *origin,
            client_ip: value(client_ip),
            proto: HeaderValue::from_static(proto),
            port: value(port),
            forwarded: value(forwarded),
            x_forwarded_lines: text.slice(x_forwarded_lines),
        }
    }

    /// The origin these values were written for.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The client's IP address, as written in `X-Forwarded-For`.
    pub fn client_ip(&self) -> &[u8] {
        self.client_ip.as_bytes()
    }

    /// `http` or `https`.
    pub fn proto(&self) -> &[u8] {
        self.proto.as_bytes()
    }

    /// The listener's port, as written in `X-Forwarded-Port`.
    pub fn port(&self) -> &[u8] {
        self.port.as_bytes()
    }

    /// The `Forwarded` element for this hop.
    pub fn forwarded(&self) -> &[u8] {
        self.forwarded.as_bytes()
    }

    /// `X-Forwarded-For`, `-Proto` and `-Port` as header lines, each ended
    /// by CRLF: what a request without any of them is sent with.
    pub fn x_forwarded_lines(&self) -> &[u8] {
        &self.x_forwarded_lines
    }
}

/// Appends `addition` to the header's value after `separator`, or sets it.
fn append(headers: &mut HeaderMap, name: HeaderName, addition: &HeaderValue, separator: &str) {
    let existing = headers.get(&name).map(HeaderValue::as_bytes);
    let Some(existing) = existing.filter(|existing| !existing.is_empty()) else {
        headers.insert(name, addition.clone());
        return;
    };
    let mut combined =
        Vec::with_capacity(existing.len() + separator.len() + addition.as_bytes().len());
    combined.extend_from_slice(existing);
    combined.extend_from_slice(separator.as_bytes());
    combined.extend_from_slice(addition.as_bytes());
    if let Ok(value) = HeaderValue::from_bytes(&combined) {
        headers.insert(name, value);
    }
}

/// Adds the forwarding headers the listener asks for: `X-Forwarded-For`
/// (appended), `Forwarded` (appended), `X-Forwarded-Proto` and
/// `X-Forwarded-Port` (added only when absent).
pub fn add_forwarding_headers(headers: &mut HeaderMap, values: &ForwardingValues, mode: i32) {
    let mode = ForwardedHeaders::try_from(mode).unwrap_or(ForwardedHeaders::Both);
    if matches!(mode, ForwardedHeaders::Both | ForwardedHeaders::XForwarded) {
        append(headers, X_FORWARDED_FOR, &values.client_ip, ", ");
        if !headers.contains_key(X_FORWARDED_PROTO) {
            headers.insert(X_FORWARDED_PROTO, values.proto.clone());
        }
        if !headers.contains_key(X_FORWARDED_PORT) {
            headers.insert(X_FORWARDED_PORT, values.port.clone());
        }
    }
    if matches!(mode, ForwardedHeaders::Both | ForwardedHeaders::Rfc7239) {
        append(headers, header::FORWARDED, &values.forwarded, ", ");
    }
}

/// Which forwarding headers a listener's `forwarded_headers` mode asks
/// for: (`X-Forwarded-*`, `Forwarded`).
pub fn modes(mode: i32) -> (bool, bool) {
    let mode = ForwardedHeaders::try_from(mode).unwrap_or(ForwardedHeaders::Both);
    (
        matches!(mode, ForwardedHeaders::Both | ForwardedHeaders::XForwarded),
        matches!(mode, ForwardedHeaders::Both | ForwardedHeaders::Rfc7239),
    )
}

/// Sets or removes `X-Real-IP` as the listener asks.
pub fn apply_real_ip(headers: &mut HeaderMap, values: &ForwardingValues, elide: bool, send: bool) {
    if elide {
        headers.remove(X_REAL_IP);
    }
    if send {
        headers.insert(X_REAL_IP, values.client_ip.clone());
    }
}

/// Applies a frontend's header edits (already sorted by direction by the
/// router): a value replaces the header, an empty value deletes it.
pub fn apply_edits(headers: &mut HeaderMap, edits: &[crate::router::HeaderEdit]) {
    for edit in edits {
        let Ok(name) = HeaderName::from_bytes(edit.name.as_bytes()) else {
            continue;
        };
        if edit.is_removal() {
            headers.remove(&name);
        } else if let Ok(value) = HeaderValue::from_str(&edit.value) {
            headers.insert(name, value);
        }
    }
}

/// Takes the sticky-session cookie out of the request's `Cookie` headers and
/// returns its value.
pub fn take_sticky_cookie(headers: &mut HeaderMap, name: &str) -> Option<String> {
    if !headers.contains_key(header::COOKIE) {
        return None;
    }
    let mut found = None;
    let mut kept: Vec<String> = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        let mut rest = Vec::new();
        for pair in text.split(';') {
            let pair = pair.trim();
            match pair.split_once('=') {
                Some((key, value)) if key.trim() == name => found = Some(value.trim().to_owned()),
                _ if pair.is_empty() => {}
                _ => rest.push(pair),
            }
        }
        if !rest.is_empty() {
            kept.push(rest.join("; "));
        }
    }
    if found.is_some() {
        headers.remove(header::COOKIE);
        for value in kept {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.append(header::COOKIE, value);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_including_the_named_ones() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut headers, false);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }

    #[test]
    fn forwarding_headers_append_and_keep_existing_proto() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let origin = Origin {
            peer: "[::1]:4000".parse().unwrap(),
            listener: "127.0.0.1:8080".parse().unwrap(),
            secure: false,
        };
        add_forwarding_headers(&mut headers, &ForwardingValues::new(&origin), 0);
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, ::1");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["x-forwarded-port"], "8080");
        assert_eq!(
            headers["forwarded"],
            "proto=http;for=\"[::1]:4000\";by=\"127.0.0.1:8080\""
        );
    }

    #[test]
    fn the_written_out_lines_carry_the_same_values() {
        for (peer, listener, secure) in [
            ("[::1]:4000", "127.0.0.1:8080", false),
            ("192.0.2.7:61000", "[2001:db8::1]:443", true),
        ] {
            let origin = Origin {
                peer: peer.parse().unwrap(),
                listener: listener.parse().unwrap(),
                secure,
            };
            let values = ForwardingValues::new(&origin);
            let mut expected = Vec::new();
            for (name, value) in [
                ("X-Forwarded-For", values.client_ip()),
                ("X-Forwarded-Proto", values.proto()),
                ("X-Forwarded-Port", values.port()),
            ] {
                expected.extend_from_slice(name.as_bytes());
                expected.extend_from_slice(b": ");
                expected.extend_from_slice(value);
                expected.extend_from_slice(b"\r\n");
            }
            assert_eq!(
                String::from_utf8_lossy(values.x_forwarded_lines()),
                String::from_utf8_lossy(&expected)
            );
            assert!(values.x_forwarded_lines().starts_with(b"X-Forwarded-For: "));
        }
    }

    #[test]
    fn the_sticky_cookie_is_taken_out_and_others_stay() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "cookie",
            HeaderValue::from_static("a=1; SOZUBALANCEID=b2; c=3"),
        );
        assert_eq!(
            take_sticky_cookie(&mut headers, "SOZUBALANCEID").as_deref(),
            Some("b2")
        );
        assert_eq!(headers["cookie"], "a=1; c=3");
        assert_eq!(take_sticky_cookie(&mut headers, "SOZUBALANCEID"), None);
    }

    #[test]
    fn edits_set_and_delete() {
        let mut headers = HeaderMap::new();
        headers.insert("server", HeaderValue::from_static("backend"));
        let edits = [
            crate::router::HeaderEdit {
                name: "server".into(),
                value: String::new(),
            },
            crate::router::HeaderEdit {
                name: "x-env".into(),
                value: "prod".into(),
            },
        ];
        apply_edits(&mut headers, &edits);
        assert!(!headers.contains_key("server"));
        assert_eq!(headers["x-env"], "prod");
    }
}
