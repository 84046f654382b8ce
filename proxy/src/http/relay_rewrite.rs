//! What the relay changes in a head for a frontend's host and path
//! rewrites and for a sticky cluster, the way the hyper path does
//! (`hyper_policy::prepare`, `forwarding::take_sticky_cookie`,
//! `hyper_forward::relay_response`), written into the connection's own
//! buffers: nothing is allocated per request.
//!
//! - `rewrite_path`: the request line becomes `METHOD PATH HTTP/1.1`.
//! - `rewrite_host`: `Host` becomes the rewritten host, and the received
//!   one, if any, goes in `X-Forwarded-Host` (replacing any received).
//! - sticky sessions: the listener's `sticky_name` cookie is taken out of
//!   the `Cookie` lines (the others are kept, each line rebuilt from its
//!   remaining pairs, `; `-separated; a line left empty goes), its value
//!   picks the backend, and the response gets `Set-Cookie: NAME=VALUE;
//!   Path=/` when the chosen backend's value differs.

use crate::balancer::Backend;
use crate::http1::edit::Named;
use crate::http1::framing::list_members;
use crate::http1::names::Known;
use crate::router::{HeaderEdit, Route};
use crate::settings::ListenerSettings;

use super::relay::Prepared;
use super::relay_plan::push_line;

/// What a frontend and cluster change in a request head besides the
/// forwarding headers and header edits.
#[derive(Clone, Copy)]
pub(super) struct Changes<'a> {
    /// `rewrite_host`.
    pub(super) host: Option<&'a str>,
    /// `rewrite_path`.
    pub(super) path: Option<&'a str>,
    /// The sticky cookie's name, when the cluster has sticky sessions.
    pub(super) sticky_name: Option<&'a str>,
}

/// Whether the relay applies this frontend's rewrites exactly as the
/// hyper path would; when not, the request goes to hyper. A rewritten host
/// must be a valid header value (hyper skips one that is not), and no
/// request edit may name `X-Forwarded-Host` (hyper writes the received
/// host over it); a rewritten path must be an origin-form target made of
/// the characters RFC 3986 allows in a path and query (hyper parses it as
/// a URI and sends `/` when that fails).
pub(super) fn relayable(route: &Route) -> bool {
    let host_ok = route.rewrite_host().is_none_or(|host| {
        host.bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
            && !route
                .request_headers()
                .iter()
                .any(|edit| edit.name.eq_ignore_ascii_case("x-forwarded-host"))
    });
    host_ok && route.rewrite_path().is_none_or(path_relayable)
}

/// An origin-form target of RFC 3986 path and query characters, which
/// hyper's URI parser takes as it is.
fn path_relayable(path: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b);
    path.starts_with('/') && path.len() < usize::from(u16::MAX) - 1 && path.bytes().all(allowed)
}

/// Appends the rewritten request line; returns its length.
pub(super) fn push_request_line(lines: &mut Vec<u8>, method: &str, path: &str) -> usize {
    let before = lines.len();
    lines.extend_from_slice(method.as_bytes());
    lines.push(b' ');
    lines.extend_from_slice(path.as_bytes());
    lines.extend_from_slice(b" HTTP/1.1\r\n");
    lines.len() - before
}

/// Appends `Host: HOST` and, when the request had a Host line,
/// `X-Forwarded-Host` with its value.
pub(super) fn push_host(lines: &mut Vec<u8>, host: &str, original: Option<&[u8]>) {
    if let Some(original) = original {
        push_line(lines, b"X-Forwarded-Host", original);
    }
    push_line(lines, b"Host", host.as_bytes());
}

/// A Cookie line hyper reads (`HeaderValue::to_str`): visible ASCII and
/// tabs only. The others are neither searched nor kept.
fn readable(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// The `;`-separated pairs of a Cookie line, trimmed.
fn pairs(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b';').map(<[u8]>::trim_ascii)
}

/// Whether `pair` is the cookie `name`, and its value.
fn named<'v>(pair: &'v [u8], name: &str) -> Option<&'v [u8]> {
    let equals = pair.iter().position(|&b| b == b'=')?;
    (pair[..equals].trim_ascii() == name.as_bytes()).then(|| pair[equals + 1..].trim_ascii())
}

/// Finds the cookie `name` in the Cookie lines (the last one wins, as on
/// the hyper path) and copies its value into `value`; whether it was found.
pub(super) fn find_sticky(
    (headers, lines): Named<'_, '_, '_>,
    name: &str,
    value: &mut Vec<u8>,
) -> bool {
    let mut found = false;
    let cookies = lines
        .all(Known::Cookie, headers)
        .filter(|h| readable(h.value));
    for header in cookies {
        for pair in pairs(header.value) {
            if let Some(sticky) = named(pair, name) {
                value.clear();
                value.extend_from_slice(sticky);
                found = true;
            }
        }
    }
    found
}

/// Appends the Cookie lines that remain once the cookie `name` is taken
/// out: one per readable received line that keeps a pair. Nothing is
/// appended when a request edit or the Connection line removes Cookie
/// (the hyper path takes the cookie out first, then removes them all).
pub(super) fn push_other_cookies(
    lines: &mut Vec<u8>,
    headers: &[httparse::Header<'_>],
    name: &str,
    edits: &[HeaderEdit],
) {
    let edited = edits
        .iter()
        .any(|edit| edit.name.eq_ignore_ascii_case("cookie"));
    let hop_by_hop = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .any(|h| list_members(h.value).any(|token| token.eq_ignore_ascii_case(b"cookie")));
    if edited || hop_by_hop {
        return;
    }
    let cookies = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("cookie") && readable(h.value));
    for header in cookies {
        let start = lines.len();
        lines.extend_from_slice(b"Cookie: ");
        let mut kept = 0;
        for pair in pairs(header.value) {
            if pair.is_empty() || named(pair, name).is_some() {
                continue;
            }
            if kept > 0 {
                lines.extend_from_slice(b"; ");
            }
            lines.extend_from_slice(pair);
            kept += 1;
        }
        if kept == 0 {
            lines.truncate(start);
        } else {
            lines.extend_from_slice(b"\r\n");
        }
    }
}

/// The request's sticky cookie value, kept in the connection's `sticky`
/// buffer, when it had one.
pub(super) fn sticky_value<'v>(prepared: &Prepared, sticky: &'v [u8]) -> Option<&'v str> {
    if !prepared.sticky {
        return None;
    }
    std::str::from_utf8(sticky).ok()
}

/// Appends `Set-Cookie: NAME=VALUE; Path=/` to the response of a sticky
/// cluster when `backend`'s sticky value is not the one the request gave.
pub(super) fn push_set_cookie(
    lines: &mut Vec<u8>,
    prepared: &Prepared,
    sticky: &[u8],
    backend: &Backend,
    config: &ListenerSettings,
) {
    if !prepared.admitted.cluster_config.sticky_session {
        return;
    }
    let settings = backend.settings();
    let value = settings.sticky_value.as_str();
    if sticky_value(prepared, sticky) == Some(value) {
        return;
    }
    let name = config.sticky_name.as_bytes();
    // The hyper path drops a cookie that is not a valid header value.
    if !readable(name) || !readable(value.as_bytes()) {
        return;
    }
    lines.extend_from_slice(b"Set-Cookie: ");
    lines.extend_from_slice(name);
    lines.push(b'=');
    lines.extend_from_slice(value.as_bytes());
    lines.extend_from_slice(b"; Path=/\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    /// The hyper path's result for the same Cookie lines.
    fn hyper_path(lines: &[&str], name: &str) -> (Option<String>, Vec<String>) {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append("cookie", line.parse().unwrap());
        }
        let found = crate::forwarding::take_sticky_cookie(&mut headers, name);
        let kept = headers
            .get_all("cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        (found, kept)
    }

    fn relay(lines: &[&str], name: &str) -> (Option<String>, Vec<String>) {
        let headers: Vec<httparse::Header<'_>> = lines
            .iter()
            .map(|line| httparse::Header {
                name: "Cookie",
                value: line.as_bytes(),
            })
            .collect();
        let mut value = Vec::new();
        let known = crate::http1::names::Lines::of(&headers);
        if !find_sticky((&headers, &known), name, &mut value) {
            // Untouched: every line goes on as received.
            return (None, lines.iter().map(|l| (*l).to_owned()).collect());
        }
        let mut out = Vec::new();
        push_other_cookies(&mut out, &headers, name, &[]);
        let text = String::from_utf8(out).unwrap();
        let kept = text
            .split_terminator("\r\n")
            .map(|line| line.strip_prefix("Cookie: ").unwrap().to_owned())
            .collect();
        (Some(String::from_utf8(value).unwrap()), kept)
    }

    #[test]
    fn the_sticky_cookie_comes_out_as_on_the_hyper_path() {
        let cases: &[&[&str]] = &[
            &["a=1; LB=b2; c=3"],
            &["LB=b2"],
            &["a=1", "LB=x; d=4", "e=5"],
            &[" LB = spaced ;; a=1 ;"],
            &["LB=first", "LB=second"],
            &["lb=case; a=1"],
            &["a=1; b"],
            &["a=1; LB=", "x=y"],
            &["LB=1; LBX=2; XLB=3"],
            &["a=\t1\t; LB=2"],
            &[""],
        ];
        for lines in cases {
            assert_eq!(relay(lines, "LB"), hyper_path(lines, "LB"), "{lines:?}");
        }
    }

    #[test]
    fn a_cookie_edit_or_connection_line_keeps_the_other_cookies_out() {
        let headers = [
            httparse::Header {
                name: "Cookie",
                value: b"a=1; LB=2",
            },
            httparse::Header {
                name: "Connection",
                value: b"close, cookie",
            },
        ];
        let mut out = Vec::new();
        push_other_cookies(&mut out, &headers, "LB", &[]);
        assert!(out.is_empty());
        let edit = HeaderEdit {
            name: "Cookie".into(),
            value: "fixed=1".into(),
        };
        push_other_cookies(&mut out, &headers[..1], "LB", &[edit]);
        assert!(out.is_empty());
        push_other_cookies(&mut out, &headers[..1], "LB", &[]);
        assert_eq!(out, b"Cookie: a=1\r\n");
    }

    #[test]
    fn a_path_the_relay_writes_is_one_the_hyper_path_sends_unchanged() {
        let every = "/azAZ09-._~!$&'()*+,;=:@/?%2F?x=/y";
        for path in ["/", "/inner?x=1", every, "/a%zz"] {
            assert!(path_relayable(path), "{path}");
            let uri: http::Uri = path.parse().unwrap();
            assert_eq!(uri.path_and_query().unwrap().as_str(), path);
        }
        for path in [
            "",
            "inner",
            "http://a/b",
            "/a b",
            "/a|b",
            "/a#b",
            "/é",
            "/a\"b",
        ] {
            assert!(!path_relayable(path), "{path}");
        }
    }

    #[test]
    fn the_rewritten_request_line_and_host() {
        let mut lines = Vec::new();
        assert_eq!(push_request_line(&mut lines, "POST", "/new?x=1"), 24);
        push_host(&mut lines, "internal", Some(b"app.test:8080"));
        assert_eq!(
            String::from_utf8(lines).unwrap(),
            "POST /new?x=1 HTTP/1.1\r\nX-Forwarded-Host: app.test:8080\r\nHost: internal\r\n"
        );
    }
}
