//! The head a relayed request is sent with: which of the received lines
//! are kept, which the relay writes itself (forwarding headers, request id,
//! a frontend's header edits, rewritten host and path, the sticky cookie
//! taken out), and whether the relay applies a frontend's settings at all
//! or leaves the request to hyper ([`relayable`]).

use super::access::Record;
use super::policy::Admitted;
use super::relay::Plan;
use super::relay_rewrite::{self, Changes};
use crate::forwarding::{self, ForwardingValues};
use crate::http1::edit::EditOptions;
use crate::http1::head::RequestHead;
use crate::http1::names::{Known, Lines};
use crate::router::HeaderEdit;
use crate::settings::ListenerSettings;

/// Names the relay drops itself besides the edits' (forwarding headers,
/// request id, rewritten host, sticky cookie).
const OWN_DROPS: usize = 7;

/// Writes in `out` the head sent to the backend (planned in `plan`): the
/// rewritten request line if any, the lines kept, then (built in `lines`)
/// the forwarding headers, request id and rewritten lines. The sticky cookie's value goes
/// in `sticky` (whether there was one returned).
pub(super) fn plan_request(
    config: &ListenerSettings,
    front: &[u8],
    head: &RequestHead<'_, '_>,
    (values, record): (&ForwardingValues, &Record),
    edits: &[HeaderEdit],
    changes: Changes<'_>,
    (lines, sticky, out, plan): (&mut Vec<u8>, &mut Vec<u8>, &mut Vec<u8>, &mut Plan),
) -> Option<bool> {
    let (x_forwarded, rfc7239) = forwarding::modes(config.forwarded_headers);
    let id_name = config.id_header.as_str();
    let mut dropped = [""; OWN_DROPS + MAX_EDITS];
    let mut count = 0;
    lines.clear();
    let start_len = changes.path.map_or(0, |path| {
        relay_rewrite::push_request_line(lines, head.method, path)
    });
    apply_edits(edits, &mut dropped[OWN_DROPS..], &mut count, lines);
    // The edits' names go after the slots of the relay's own.
    let edited = count;
    count = 0;
    let mut drop_name = |name| {
        dropped[count] = name;
        count += 1;
    };
    if x_forwarded {
        drop_name("x-forwarded-for");
    }
    if rfc7239 {
        drop_name("forwarded");
    }
    if config.elide_x_real_ip || config.send_x_real_ip {
        drop_name("x-real-ip");
    }
    drop_name(id_name);
    let original_host = first((head.headers, &head.lines), Known::Host);
    if changes.host.is_some() {
        drop_name("host");
        if original_host.is_some() {
            drop_name("x-forwarded-host");
        }
    }
    let sticky_name = changes
        .sticky_name
        .filter(|name| relay_rewrite::find_sticky((head.headers, &head.lines), name, sticky));
    if sticky_name.is_some() {
        drop_name("cookie");
    }
    dropped.copy_within(OWN_DROPS..OWN_DROPS + edited, count);
    let options = EditOptions {
        drop: &dropped[..count + edited],
        drop_start_line: start_len > 0,
        // An upgrade keeps its Upgrade line and gets `Connection: upgrade`,
        // as on the hyper path.
        upgrading: head.upgrade,
        ..Default::default()
    };
    plan.refill(front, head.len, (head.headers, &head.lines), &options)
        .ok()?;
    let headers = head.headers;
    let known = (headers, &head.lines);
    if let Some(host) = changes.host {
        relay_rewrite::push_host(lines, host, original_host);
    }
    if let Some(name) = sticky_name {
        relay_rewrite::push_other_cookies(lines, headers, name, edits);
    }
    let own_forwarding = [
        Known::XForwardedFor,
        Known::XForwardedProto,
        Known::XForwardedPort,
    ];
    if x_forwarded && !own_forwarding.iter().any(|&known| head.lines.has(known)) {
        // The common case: the three lines written once per connection.
        lines.extend_from_slice(values.x_forwarded_lines());
    } else if x_forwarded {
        let existing = first(known, Known::XForwardedFor);
        push_list_line(lines, b"X-Forwarded-For", existing, values.client_ip());
        if !head.lines.has(Known::XForwardedProto) {
            push_line(lines, b"X-Forwarded-Proto", values.proto());
        }
        if !head.lines.has(Known::XForwardedPort) {
            push_line(lines, b"X-Forwarded-Port", values.port());
        }
    }
    if rfc7239 {
        let existing = first(known, Known::Forwarded);
        push_list_line(lines, b"Forwarded", existing, values.forwarded());
    }
    if config.send_x_real_ip {
        push_line(lines, b"X-Real-IP", values.client_ip());
    }
    let id = &record.id;
    if !id_name.eq_ignore_ascii_case("x-request-id") && !head.lines.has(Known::XRequestId) {
        push_line(lines, b"X-Request-Id", id);
    }
    push_line(lines, id_name.as_bytes(), id);
    let (start, lines) = lines.split_at(start_len);
    out.clear();
    plan.extend_into(start, front, lines, out);
    Some(sticky_name.is_some())
}

/// Whether the relay serves requests of this frontend and cluster (the
/// others go to hyper).
pub(super) fn relayable(admitted: &Admitted, id_name: &str) -> bool {
    let Admitted {
        route,
        cluster_config,
        ..
    } = admitted;
    cluster_config.http2 != Some(true)
        && edits_relayable(route.request_headers(), id_name)
        && edits_relayable(route.response_headers(), id_name)
        && relay_rewrite::relayable(route)
}

/// Header edits of a frontend the relay applies itself.
pub(super) const MAX_EDITS: usize = 8;

/// Whether the relay applies these edits as the hyper path would: few
/// enough, valid (hyper skips invalid ones), and none on a header the
/// relay writes itself, on framing or on hop-by-hop headers.
fn edits_relayable(edits: &[HeaderEdit], id_name: &str) -> bool {
    const OWN: [&str; 14] = [
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-port",
        "forwarded",
        "x-real-ip",
        "x-request-id",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
        "te",
        "trailer",
        "keep-alive",
    ];
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    edits.len() <= MAX_EDITS
        && edits.iter().all(|edit| {
            !edit.name.is_empty()
                && edit.name.bytes().all(tchar)
                && edit
                    .value
                    .bytes()
                    .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
                && !edit.name.eq_ignore_ascii_case(id_name)
                && !OWN.iter().any(|own| edit.name.eq_ignore_ascii_case(own))
        })
}

/// Adds to `dropped` the names of `edits` (each replaced or removed) and to
/// `lines` the lines of those that set a value.
fn apply_edits<'e>(
    edits: &'e [HeaderEdit],
    dropped: &mut [&'e str],
    count: &mut usize,
    lines: &mut Vec<u8>,
) {
    for edit in edits {
        if let Some(slot) = dropped.get_mut(*count) {
            *slot = &edit.name;
            *count += 1;
        }
        if !edit.is_removal() {
            push_line(lines, edit.name.as_bytes(), edit.value.as_bytes());
        }
    }
}

/// Idempotent methods (RFC 9110 §9.2.2).
pub(super) fn idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
    )
}

/// The value of the first header line named `known`, trimmed (`lines`
/// are where the known names of `headers` are).
pub(super) fn first<'b>(
    (headers, lines): (&[httparse::Header<'b>], &Lines),
    known: Known,
) -> Option<&'b [u8]> {
    lines
        .first(known, headers)
        .map(|h| crate::http1::framing::trim_ows(h.value))
}

/// Appends `name: value` and CRLF.
#[inline]
pub(super) fn push_line(lines: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    lines.extend_from_slice(name);
    lines.extend_from_slice(b": ");
    lines.extend_from_slice(value);
    lines.extend_from_slice(b"\r\n");
}

/// Appends a list header: the received value (when not empty), then ours.
fn push_list_line(lines: &mut Vec<u8>, name: &[u8], existing: Option<&[u8]>, value: &[u8]) {
    lines.extend_from_slice(name);
    lines.extend_from_slice(b": ");
    if let Some(existing) = existing.filter(|existing| !existing.is_empty()) {
        lines.extend_from_slice(existing);
        lines.extend_from_slice(b", ");
    }
    lines.extend_from_slice(value);
    lines.extend_from_slice(b"\r\n");
}
