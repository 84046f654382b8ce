//! Request and response heads, parsed in place with `httparse`: the strict
//! rules `httparse` does not apply itself (bare LF, obsolete folding named as
//! such, whitespace before a colon, control characters, size limits, Host)
//! are checked here, so that every refusal names its rule.

use std::mem::MaybeUninit;

use super::framing::{self, ConnectionOptions, Framing};
use super::names::{Known, Lines};
use super::{Refusal, Rule, Side};

/// The outcome of parsing a head from the bytes received so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<T> {
    /// The head is not complete yet (and within the size limit): read more.
    Partial,
    /// The head, which takes the first `len` bytes of the buffer.
    Complete(T),
}

/// A request head, borrowing the caller's buffer and header array.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestHead<'b, 'h> {
    /// The method, as received (case-sensitive, RFC 9110 §9.1).
    pub method: &'b str,
    /// The request target, as received.
    pub target: &'b str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// The header lines, in order.
    pub headers: &'h [httparse::Header<'b>],
    /// The head's length in bytes, final empty line included: the body (or
    /// the next request) starts there.
    pub len: usize,
    /// How the body is delimited.
    pub framing: Framing,
    /// The host to route on, without its port: the absolute-form target's
    /// authority, else the Host line's; `None` when there is neither (the
    /// caller answers 400 as for a bad host).
    pub host: Option<&'b str>,
    /// The options of the Connection lines.
    pub connection: ConnectionOptions,
    /// An HTTP/1.1 request with an Upgrade line named by Connection.
    pub upgrade: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
    /// Where the header names the relay looks for are.
    pub lines: Lines,
}

/// A response head, borrowing the caller's buffer and header array.
#[derive(Debug, PartialEq, Eq)]
pub struct ResponseHead<'b, 'h> {
    /// The status code, 100 to 999.
    pub status: u16,
    /// The reason phrase, as received.
    pub reason: &'b str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// The header lines, in order.
    pub headers: &'h [httparse::Header<'b>],
    /// The head's length in bytes, final empty line included.
    pub len: usize,
    /// How the body is delimited ([`Framing::Empty`] for an interim 1xx,
    /// after which another head follows).
    pub framing: Framing,
    /// The options of the Connection lines.
    pub connection: ConnectionOptions,
    /// Where the header names the relay looks for are.
    pub lines: Lines,
}

/// What the request a response answers says about that response's framing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Answering {
    /// The request was a HEAD: the response has no body.
    pub head_request: bool,
    /// The request asked for an upgrade: a 101 is accepted.
    pub upgrade_requested: bool,
}

/// What the byte-level scan of a head found.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// A rule broken on the line starting at `line`.
    Broken { rule: Rule, line: usize },
    /// The head ends after `len` bytes.
    Complete { len: usize },
    /// No end yet; `start_line_done` once the start line has ended.
    Incomplete { start_line_done: bool },
}

/// Scans a head byte by byte for what `httparse` accepts or does not name:
/// NUL and control characters, bare CR and LF, a line starting with
/// whitespace (obsolete folding), whitespace between a name and its colon.
/// Its verdict on a prefix of the bytes is its verdict on the whole.
fn scan(buf: &[u8]) -> Scan {
    #[derive(PartialEq)]
    enum State {
        LineStart,
        Name,
        NameSpace,
        Rest,
    }
    let mut index = 0;
    // Empty lines before the start line are ignored (RFC 9112 §2.2).
    while buf[index..].starts_with(b"\r\n") {
        index += 2;
    }
    let mut line = index;
    let mut start_line_done = false;
    let mut state = State::Rest;
    while index < buf.len() {
        if state == State::LineStart {
            // The common line, a name up to its colon, in one step; a line
            // that starts or goes on otherwise is looked at byte by byte.
            let first = buf[index];
            if first > b' ' && first != b':' && first != 0x7f {
                match first_name_end(&buf[index + 1..]) {
                    None => break,
                    Some(end) if buf[index + 1 + end] == b':' => {
                        index += end + 2;
                        state = State::Rest;
                        continue;
                    }
                    Some(end) => {
                        index += 1 + end;
                        state = State::Name;
                    }
                }
            }
        }
        if state == State::Rest {
            // The fast path: a value or the start line, up to the next byte
            // that needs a look (CR, LF, a control character).
            index += first_control(&buf[index..]).unwrap_or(buf.len() - index);
            if index == buf.len() {
                break;
            }
        } else if state == State::Name {
            // A name, up to its colon or whatever else needs a look.
            index += first_name_end(&buf[index..]).unwrap_or(buf.len() - index);
            if index == buf.len() {
                break;
            }
        }
        let byte = buf[index];
        let broken = |rule| Scan::Broken { rule, line };
        match byte {
            b'\r' => match buf.get(index + 1) {
                None => break,
                Some(b'\n') => {
                    if state == State::LineStart {
                        return Scan::Complete { len: index + 2 };
                    }
                    index += 2;
                    line = index;
                    start_line_done = true;
                    state = State::LineStart;
                    continue;
                }
                Some(_) => return broken(Rule::BareCr),
            },
            b'\n' => return broken(Rule::BareLf),
            0 => return broken(Rule::Nul),
            b'\t' | b' ' => match state {
                State::LineStart => return broken(Rule::ObsoleteLineFolding),
                State::Name => state = State::NameSpace,
                _ => {}
            },
            0x01..=0x1f | 0x7f => return broken(Rule::ControlCharacter),
            b':' if state == State::NameSpace => return broken(Rule::WhitespaceBeforeColon),
            b':' => state = State::Rest,
            _ => match state {
                State::LineStart => state = State::Name,
                State::NameSpace => state = State::Rest,
                _ => {}
            },
        }
        index += 1;
    }
    Scan::Incomplete { start_line_done }
}

/// Where the first control character other than a tab (or DEL) is in
/// `bytes`: the end of a line, or a byte the head may not have.
fn first_control(bytes: &[u8]) -> Option<usize> {
    let control = |b: u8| (b < 0x20 && b != b'\t') || b == 0x7f;
    let mut words = bytes.chunks_exact(8);
    let mut offset = 0;
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let flagged = below(word, 0x20) | equal(word, 0x7f);
        if flagged != 0 {
            let at = offset + first_flagged(flagged);
            if bytes[at] != b'\t' {
                return Some(at);
            }
            // A tab is allowed: the rest of this word byte by byte.
            if let Some(found) = bytes[at + 1..offset + 8].iter().position(|&b| control(b)) {
                return Some(at + 1 + found);
            }
        }
        offset += 8;
    }
    let rest = words.remainder();
    rest.iter().position(|&b| control(b)).map(|at| offset + at)
}

/// Where a header name in `bytes` ends: its colon, or the first byte a
/// name may not have that needs a closer look (whitespace, a control
/// character, DEL).
fn first_name_end(bytes: &[u8]) -> Option<usize> {
    let mut words = bytes.chunks_exact(8);
    let mut offset = 0;
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let flagged = below(word, 0x21) | equal(word, b':') | equal(word, 0x7f);
        if flagged != 0 {
            return Some(offset + first_flagged(flagged));
        }
        offset += 8;
    }
    let rest = words.remainder();
    rest.iter()
        .position(|&b| b <= b' ' || b == b':' || b == 0x7f)
        .map(|at| offset + at)
}

// Eight bytes at a time in a u64 (bytes in memory order from the low end):
// `below` and `equal` set the high bit of the bytes they pick. A byte that
// is picked borrows from the next one up in the subtraction, which may
// then be picked wrongly; the lowest picked byte, the only one read, is
// always right.
const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Picks the bytes of `word` below `limit` (at most 0x80).
fn below(word: u64, limit: u8) -> u64 {
    word.wrapping_sub(ONES * u64::from(limit)) & !word & HIGHS
}

/// Picks the bytes of `word` equal to `byte`.
fn equal(word: u64, byte: u8) -> u64 {
    below(word ^ (ONES * u64::from(byte)), 1)
}

/// The index of the lowest byte picked in `flagged` (not zero).
fn first_flagged(flagged: u64) -> usize {
    (flagged.trailing_zeros() / 8) as usize
}

/// The rule an `httparse` error breaks, given the bytes it was parsing:
/// the start line's when it alone fails to parse.
fn rule_of(error: httparse::Error, buf: &[u8], side: Side) -> Rule {
    if error == httparse::Error::TooManyHeaders {
        return Rule::TooManyHeaders;
    }
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line = &buf[start..];
    let line = match line.windows(2).position(|w| w == b"\r\n") {
        Some(end) => &line[..end + 2],
        None => line,
    };
    let start_line_fails = match side {
        Side::Request => httparse::Request::new(&mut []).parse(line).is_err(),
        Side::Response => httparse::Response::new(&mut []).parse(line).is_err(),
    };
    if !start_line_fails {
        Rule::MalformedHeader
    } else if looks_like_other_version(line, side) && valid_as_http11(line, side) {
        Rule::UnsupportedVersion
    } else {
        Rule::MalformedStartLine
    }
}

/// Whether the start line carries a well-formed `HTTP/d.d` version that is
/// not 1.0 or 1.1 (505 rather than 400).
fn looks_like_other_version(buf: &[u8], side: Side) -> bool {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(0);
    let line = &buf[start..];
    let line = &line[..line.iter().position(|&b| b == b'\r').unwrap_or(line.len())];
    let version = match side {
        Side::Request => line.rsplit(|&b| b == b' ').next(),
        Side::Response => line.split(|&b| b == b' ').next(),
    };
    matches!(version, Some([b'H', b'T', b'T', b'P', b'/', major, b'.', minor])
        if major.is_ascii_digit() && minor.is_ascii_digit() && !(*major == b'1' && *minor <= b'1'))
}

/// Whether the start line `line` (its version well-formed, see
/// [`looks_like_other_version`]) parses once its version is HTTP/1.1: only
/// then is the version what is wrong (505); otherwise the line is malformed
/// (400) whatever its version, so that the verdict does not depend on how
/// much of the line has arrived. A refusal path: the copy is fine.
fn valid_as_http11(line: &[u8], side: Side) -> bool {
    let end = line
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(line.len());
    let line = &line[..end];
    if line.len() < 8 {
        return false;
    }
    let mut copy = line.to_vec();
    let version = match side {
        Side::Request => line.len() - 8..line.len(),
        Side::Response => 0..8,
    };
    copy[version].copy_from_slice(b"HTTP/1.1");
    copy.extend_from_slice(b"\r\n");
    match side {
        Side::Request => httparse::Request::new(&mut []).parse(&copy).is_ok(),
        Side::Response => httparse::Response::new(&mut []).parse(&copy).is_ok(),
    }
}

/// Whether the start line has not ended yet and its version so far is the
/// start of a well-formed `HTTP/d.d` (see [`looks_like_other_version`]).
fn version_may_complete(buf: &[u8], side: Side) -> bool {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line = &buf[start..];
    if line.contains(&b'\r') || line.contains(&b'\n') {
        return false;
    }
    // The version is a request line's third part (and last: a fourth can
    // never be valid), a status line's first.
    let mut parts = line.split(|&b| b == b' ');
    let version = match side {
        Side::Request => match (parts.nth(2), parts.next()) {
            (Some(version), None) => version,
            _ => return false,
        },
        Side::Response => parts.next().unwrap_or_default(),
    };
    version.len() <= 8
        && version.iter().enumerate().all(|(index, &b)| match index {
            0..=4 => b == b"HTTP/"[index],
            6 => b == b'.',
            _ => b.is_ascii_digit(),
        })
}

/// The common part of both sides: scans, applies the size limit, and runs
/// `parse` (httparse) on the right prefix. Returns the head length.
fn parse_with<'b, F>(
    buf: &'b [u8],
    max_head: usize,
    side: Side,
    mut parse: F,
) -> Result<Option<usize>, Refusal>
where
    F: FnMut(&'b [u8]) -> httparse::Result<usize>,
{
    let window = &buf[..buf.len().min(max_head)];
    let refuse = |rule| Refusal::new(rule, side);
    let (prefix, pending) = match scan(window) {
        Scan::Broken { rule, line } => (&window[..line], Err(refuse(rule))),
        Scan::Complete { len } => (&window[..len], Ok(Some(len))),
        Scan::Incomplete { start_line_done } => {
            let pending = if buf.len() >= max_head {
                Err(refuse(if start_line_done || side == Side::Response {
                    Rule::HeadTooLarge
                } else {
                    Rule::RequestLineTooLong
                }))
            } else {
                Ok(None)
            };
            (window, pending)
        }
    };
    match parse(prefix) {
        // A version cut by the read ("HTTP/2" of "HTTP/2.0"): httparse
        // refuses it already, but whether it is 400 or 505 depends on the
        // bytes to come, so the verdict waits for them (the size limit
        // still applies).
        Err(httparse::Error::Version)
            if pending == Ok(None) && version_may_complete(prefix, side) =>
        {
            Ok(None)
        }
        Err(error) => Err(refuse(rule_of(error, prefix, side))),
        Ok(httparse::Status::Complete(len)) => {
            debug_assert_eq!(pending, Ok(Some(len)), "httparse and the scan agree");
            pending
        }
        Ok(httparse::Status::Partial) => match pending {
            // The scan saw the end, httparse did not: cannot happen, but
            // refusing is the safe reading.
            Ok(Some(_)) => Err(refuse(Rule::MalformedHeader)),
            other => other,
        },
    }
}

/// Room for `N` header lines, left uninitialized: [`parse_request`] and
/// [`parse_response`] write only the lines a head has (filling a hundred
/// empty slots first cost more than parsing a short head).
#[inline]
pub fn slots<'b, const N: usize>() -> [MaybeUninit<httparse::Header<'b>>; N] {
    [const { MaybeUninit::uninit() }; N]
}

/// Parses a request head at the start of `buf`, the header lines going to
/// `headers` (its length caps their number: more is 431). `max_head` caps
/// the head's size (414 when the request line alone is longer, else 431).
pub fn parse_request<'b, 'h>(
    buf: &'b [u8],
    headers: &'h mut [MaybeUninit<httparse::Header<'b>>],
    max_head: usize,
) -> Result<Parsed<RequestHead<'b, 'h>>, Refusal> {
    let mut request = httparse::Request::new(&mut []);
    let mut slots = Some(headers);
    let len = parse_with(buf, max_head, Side::Request, |prefix| {
        let mut attempt = httparse::Request::new(&mut []);
        let slots = slots.take().expect("parsed once");
        let result = attempt.parse_with_uninit_headers(prefix, slots);
        request = attempt;
        result
    })?;
    let Some(len) = len else {
        return Ok(Parsed::Partial);
    };
    let (Some(method), Some(target), Some(minor_version)) =
        (request.method, request.path, request.version)
    else {
        return Err(Refusal::request(Rule::MalformedStartLine));
    };
    let headers: &'h [httparse::Header<'b>] = request.headers;
    let lines = Lines::of(headers);
    let framing = framing::request_framing(method, (headers, &lines), minor_version)
        .map_err(Refusal::request)?;
    let host = route_host(target, method, (headers, &lines)).map_err(Refusal::request)?;
    let connection = ConnectionOptions::of(headers, &lines);
    let upgrade = minor_version >= 1 && connection.upgrade && lines.has(Known::Upgrade);
    let expect_continue = lines
        .all(Known::Expect, headers)
        .any(|h| h.value.eq_ignore_ascii_case(b"100-continue"));
    Ok(Parsed::Complete(RequestHead {
        method,
        target,
        minor_version,
        headers,
        len,
        framing,
        host,
        connection,
        upgrade,
        expect_continue,
        lines,
    }))
}

/// Parses a response head at the start of `buf`, answering the request
/// `answering` describes. Any refusal is the backend's: answered 502.
pub fn parse_response<'b, 'h>(
    buf: &'b [u8],
    headers: &'h mut [MaybeUninit<httparse::Header<'b>>],
    max_head: usize,
    answering: Answering,
) -> Result<Parsed<ResponseHead<'b, 'h>>, Refusal> {
    let refuse = |rule| Refusal::new(rule, Side::Response);
    let mut response = httparse::Response::new(&mut []);
    let mut slots = Some(headers);
    let len = parse_with(buf, max_head, Side::Response, |prefix| {
        let mut attempt = httparse::Response::new(&mut []);
        let slots = slots.take().expect("parsed once");
        let result = httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut attempt,
            prefix,
            slots,
        );
        response = attempt;
        result
    })?;
    let Some(len) = len else {
        return Ok(Parsed::Partial);
    };
    let (Some(status), Some(minor_version)) = (response.code, response.version) else {
        return Err(refuse(Rule::MalformedStartLine));
    };
    if status < 100 {
        return Err(refuse(Rule::MalformedStartLine));
    }
    let headers: &'h [httparse::Header<'b>] = response.headers;
    let lines = Lines::of(headers);
    let framing = framing::response_framing(
        status,
        (headers, &lines),
        minor_version,
        answering.head_request,
        answering.upgrade_requested,
    )
    .map_err(refuse)?;
    Ok(Parsed::Complete(ResponseHead {
        status,
        reason: response.reason.unwrap_or(""),
        minor_version,
        headers,
        len,
        framing,
        connection: ConnectionOptions::of(headers, &lines),
        lines,
    }))
}

/// The host to route on (see [`RequestHead::host`]), refusing two Host
/// lines, a target of no known form, and an authority that is not
/// `host[:port]` with a numeric port or that has userinfo (RFC 9112 §3.2).
fn route_host<'b>(
    target: &'b str,
    method: &str,
    (headers, lines): (&[httparse::Header<'b>], &Lines),
) -> Result<Option<&'b str>, Rule> {
    if lines.count(Known::Host) > 1 {
        return Err(Rule::DuplicateHost);
    }
    let host_line = lines.first(Known::Host, headers);
    let authority = if target.starts_with('/') || (target == "*" && method == "OPTIONS") {
        match host_line {
            None => return Ok(None),
            Some(line) => {
                std::str::from_utf8(framing::trim_ows(line.value)).map_err(|_| Rule::InvalidHost)?
            }
        }
    } else {
        absolute_authority(target).ok_or(Rule::InvalidTarget)?
    };
    host_of(authority).map(Some).ok_or(Rule::InvalidHost)
}

/// The authority of an absolute-form `http://` or `https://` target.
fn absolute_authority(target: &str) -> Option<&str> {
    let (scheme, rest) = target.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// The host of a `host[:port]` authority: `None` when it is empty, has
/// userinfo or characters an authority cannot have, or a port that is not a
/// number up to 65535 (an empty port counts as none). The same reading as
/// the hyper path's `request_host`.
pub fn host_of(authority: &str) -> Option<&str> {
    let bytes = authority.as_bytes();
    if bytes.is_empty() {
        return None;
    }
    // One pass: every byte allowed, and where the brackets and colons are.
    let (mut opens, mut closes, mut colons) = (0, 0, 0);
    let (mut close_at, mut last_colon) = (0, None);
    for (index, &b) in bytes.iter().enumerate() {
        if !AUTHORITY_BYTES[usize::from(b)] {
            return None;
        }
        match b {
            b'[' => opens += 1,
            b']' => {
                closes += 1;
                close_at = index;
            }
            b':' => {
                colons += 1;
                last_colon = Some(index);
            }
            _ => {}
        }
    }
    // An IPv6 literal is bracketed, and its colons are not a port's.
    let port_start = if closes > 0 {
        if bytes[0] != b'[' || opens != 1 || closes != 1 {
            return None;
        }
        bytes[close_at..]
            .iter()
            .position(|&b| b == b':')
            .map(|colon| close_at + colon)
    } else if opens > 0 || colons > 1 {
        return None;
    } else {
        last_colon
    };
    let (host, port) = match port_start {
        Some(colon) => (&authority[..colon], &authority[colon + 1..]),
        None => (authority, ""),
    };
    let numeric = port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok();
    (!host.is_empty() && (port.is_empty() || numeric)).then_some(host)
}

/// The bytes an authority may have: unreserved, sub-delims, `:`, `[`, `]`.
const AUTHORITY_BYTES: [bool; 256] = {
    let mut allowed = [false; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        allowed[b] = byte.is_ascii_alphanumeric();
        b += 1;
    }
    let others = b"-._~!$&'()*+,;=:[]";
    let mut i = 0;
    while i < others.len() {
        allowed[others[i] as usize] = true;
        i += 1;
    }
    allowed
};

/// The byte range of `header`'s whole line in `buf` (name to LF included),
/// for [`super::edit`]. `header` must come from parsing `buf`.
pub fn line_range(buf: &[u8], header: &httparse::Header<'_>) -> std::ops::Range<usize> {
    let start = header.name.as_ptr() as usize - buf.as_ptr() as usize;
    let name_end = start + header.name.len();
    let end = buf[name_end..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(buf.len(), |lf| name_end + lf + 1);
    start..end
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{Rule, Scan, first_control, first_name_end, scan};

    /// The scan as first written, a byte at a time: the reference the
    /// faster one must agree with.
    fn byte_by_byte_scan(buf: &[u8]) -> Scan {
        #[derive(PartialEq)]
        enum State {
            LineStart,
            Name,
            NameSpace,
            Rest,
        }
        let mut index = 0;
        // Empty lines before the start line are ignored (RFC 9112 §2.2).
        while buf[index..].starts_with(b"\r\n") {
            index += 2;
        }
        let mut line = index;
        let mut start_line_done = false;
        let mut state = State::Rest;
        while index < buf.len() {
            if state == State::Rest {
                // The fast path: a value or the start line, up to the next byte
                // that needs a look (CR, LF, a control character).
                index += buf[index..]
                    .iter()
                    .position(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
                    .unwrap_or(buf.len() - index);
                if index == buf.len() {
                    break;
                }
            } else if state == State::Name {
                // A name, up to its colon or whatever else needs a look.
                index += buf[index..]
                    .iter()
                    .position(|&b| b <= b' ' || b == b':' || b == 0x7f)
                    .unwrap_or(buf.len() - index);
                if index == buf.len() {
                    break;
                }
            }
            let byte = buf[index];
            let broken = |rule| Scan::Broken { rule, line };
            match byte {
                b'\r' => match buf.get(index + 1) {
                    None => break,
                    Some(b'\n') => {
                        if state == State::LineStart {
                            return Scan::Complete { len: index + 2 };
                        }
                        index += 2;
                        line = index;
                        start_line_done = true;
                        state = State::LineStart;
                        continue;
                    }
                    Some(_) => return broken(Rule::BareCr),
                },
                b'\n' => return broken(Rule::BareLf),
                0 => return broken(Rule::Nul),
                b'\t' | b' ' => match state {
                    State::LineStart => return broken(Rule::ObsoleteLineFolding),
                    State::Name => state = State::NameSpace,
                    _ => {}
                },
                0x01..=0x1f | 0x7f => return broken(Rule::ControlCharacter),
                b':' if state == State::NameSpace => return broken(Rule::WhitespaceBeforeColon),
                b':' => state = State::Rest,
                _ => match state {
                    State::LineStart => state = State::Name,
                    State::NameSpace => state = State::Rest,
                    _ => {}
                },
            }
            index += 1;
        }
        Scan::Incomplete { start_line_done }
    }

    /// Heads made of the pieces the scan tells apart.
    fn head_bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            6 => proptest::sample::select(vec![
                &b"GET / HTTP/1.1\r\n"[..],
                b"Host: example.com\r\n",
                b"X-Long-Header-Name: value\r\n",
                b"A:b\r\n",
                b"\r\n",
                b"\r",
                b"\n",
                b" ",
                b"\t",
                b":",
                b"Name",
                b"Name :",
                b"\x00",
                b"\x7f",
                b"\x01",
                b"\xc3\xa9",
                b"0123456789abcdef",
            ])
            .prop_map(<[u8]>::to_vec),
            1 => proptest::collection::vec(any::<u8>(), 0..12),
        ];
        proptest::collection::vec(piece, 0..16).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        /// The blockwise search finds what a byte-by-byte one does, at
        /// every length and position.
        #[test]
        fn first_control_agrees_with_a_plain_search(
            bytes in proptest::collection::vec(
                prop_oneof![8 => 0x20u8..0x7f, 1 => any::<u8>(), 1 => Just(b'\t')],
                0..80,
            )
        ) {
            let plain = bytes
                .iter()
                .position(|&b| (b < 0x20 && b != b'\t') || b == 0x7f);
            prop_assert_eq!(first_control(&bytes), plain);
        }

        /// The scan's verdict is the byte-by-byte one's, on every head and
        /// every prefix of it.
        #[test]
        fn the_scan_agrees_with_a_byte_by_byte_one(bytes in head_bytes()) {
            for end in 0..=bytes.len() {
                let prefix = &bytes[..end];
                prop_assert_eq!(scan(prefix), byte_by_byte_scan(prefix), "{:?}", prefix);
            }
        }

        /// The same for the end of a header name.
        #[test]
        fn first_name_end_agrees_with_a_plain_search(
            bytes in proptest::collection::vec(
                prop_oneof![8 => 0x21u8..0x7f, 1 => any::<u8>(), 1 => Just(b':')],
                0..80,
            )
        ) {
            let plain = bytes
                .iter()
                .position(|&b| b <= b' ' || b == b':' || b == 0x7f);
            prop_assert_eq!(first_name_end(&bytes), plain);
        }
    }
}
