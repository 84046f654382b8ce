//! The HTTP/1.1 codec of the relay (issue 15): pure functions and state
//! machines over byte buffers, with no I/O and no allocation.
//!
//! - [`head`] parses a request or response head in place (with `httparse`),
//!   applying the strict rules below before and after it;
//! - [`framing`] decides how the message body is delimited (RFC 9112 §6.3);
//! - [`chunked`] walks a chunked body incrementally, over any split of its
//!   bytes, with bounded state;
//! - [`edit`] plans the rewritten head as a list of `IoSlice`s for one
//!   `writev`, without copying the header bytes that are kept.
//!
//! Every refusal is a [`Refusal`]: the [`Rule`] broken and the [`Side`] that
//! broke it, which give the status to answer ([`Refusal::status`]). A message
//! refused for its framing leaves the connection in an unknown state: the
//! caller answers and closes it. `doc/http.md` ("HTTP/1.1 framing rules")
//! lists the rules.

#![cfg_attr(
    not(test),
    allow(dead_code, reason = "wired in by the HTTP/1 relay (issue 15)")
)]

pub mod chunked;
pub mod edit;
pub mod framing;
pub mod head;
pub mod names;

#[cfg(test)]
mod one_reading;
#[cfg(test)]
mod tests;

use std::fmt;

/// Which side sent the refused message; the status to answer depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A client's request: answered with the rule's 4xx/5xx status.
    Request,
    /// A backend's response: the client is answered 502.
    Response,
}

/// A rule of RFC 9112 (or of this proxy, stricter) that a message broke.
///
/// Each variant names the status answered for a request; a response breaking
/// any of them is answered 502 ([`Refusal::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The request line does not end within `max_header_size` (414; §3).
    RequestLineTooLong,
    /// The head does not end within `max_header_size` (431; RFC 6585 §5).
    HeadTooLarge,
    /// More header lines than the caller's header array holds (431).
    TooManyHeaders,
    /// A malformed request line or status line: method, target, spaces,
    /// status code (400; §3, §4).
    MalformedStartLine,
    /// A version other than HTTP/1.0 and HTTP/1.1 (505; §2.3).
    UnsupportedVersion,
    /// A header line that is not `name ":" OWS value OWS` (400; §5).
    MalformedHeader,
    /// Whitespace between a header name and its colon (400; §5.1).
    WhitespaceBeforeColon,
    /// A line starting with whitespace after the start line: obsolete line
    /// folding, or whitespace before the first header (400; §5.2, §2.2).
    ObsoleteLineFolding,
    /// A NUL byte in the head (400; §2.2, RFC 9110 §5.5).
    Nul,
    /// Another control character (not HTAB) in the head (400; RFC 9110 §5.5).
    ControlCharacter,
    /// A CR not followed by LF (400; §2.2).
    BareCr,
    /// An LF not preceded by CR: refused although §2.2 lets a recipient
    /// accept it, because the head is forwarded as received and a backend
    /// may not read it the same way (400; §2.2).
    BareLf,
    /// Both Transfer-Encoding and Content-Length (400; §6.1, §6.3 (3)).
    TransferEncodingWithContentLength,
    /// Content-Length values (lines or list members) that differ (400; §6.3 (5)).
    ConflictingContentLength,
    /// A Content-Length that is not a decimal number that fits in 63 bits
    /// (400; §6.3 (5), RFC 9110 §8.6).
    InvalidContentLength,
    /// A request Transfer-Encoding whose last coding is not `chunked`
    /// (400; §6.3 (4)).
    TransferEncodingNotChunked,
    /// A malformed Transfer-Encoding list, or `chunked` applied twice
    /// (400; §6.1, §7).
    InvalidTransferEncoding,
    /// Transfer-Encoding in an HTTP/1.0 message (400; §6.1).
    TransferEncodingInHttp10,
    /// More than one Host line (400; §3.2, RFC 9110 §7.2).
    DuplicateHost,
    /// A Host (or absolute-form authority) that is not `host[:port]` with a
    /// numeric port, or that has userinfo (400; §3.2, §3.2.2).
    InvalidHost,
    /// A request target that is not origin-form, absolute-form (http or
    /// https) or `*` (400; §3.2).
    InvalidTarget,
    /// The CONNECT method, which this proxy does not tunnel (405; RFC 9110 §9.3.6).
    ConnectUnsupported,
    /// A malformed chunk size: not hex, empty, or beyond 2^63 (400; §7.1).
    MalformedChunkSize,
    /// A malformed or oversized chunk extension (400; §7.1.1).
    MalformedChunkExtension,
    /// Chunk data not followed by CRLF (400; §7.1).
    MalformedChunkData,
    /// A malformed or oversized trailer section (400; §7.1.2).
    MalformedTrailer,
    /// A 101 answer to a request that asked for no upgrade, or a second
    /// interim answer too many (502 only; §7.8 of RFC 9110).
    UnexpectedSwitch,
}

impl Rule {
    /// The status answered to a client whose request broke this rule.
    pub fn request_status(self) -> u16 {
        match self {
            Rule::RequestLineTooLong => 414,
            Rule::HeadTooLarge | Rule::TooManyHeaders => 431,
            Rule::UnsupportedVersion => 505,
            Rule::ConnectUnsupported => 405,
            Rule::UnexpectedSwitch => 502,
            _ => 400,
        }
    }
}

/// A message refused by the codec. The caller answers [`Refusal::status`]
/// and closes the connection (the message boundaries are unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The rule broken.
    pub rule: Rule,
    /// Who broke it.
    pub side: Side,
}

impl Refusal {
    pub(crate) fn request(rule: Rule) -> Self {
        Refusal {
            rule,
            side: Side::Request,
        }
    }

    pub(crate) fn new(rule: Rule, side: Side) -> Self {
        Refusal { rule, side }
    }

    /// The status to answer the client: the rule's for a request, 502 for a
    /// backend's response.
    pub fn status(&self) -> u16 {
        match self.side {
            Side::Request => self.rule.request_status(),
            Side::Response => 502,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = match self.side {
            Side::Request => "request",
            Side::Response => "response",
        };
        write!(f, "{side} refused ({:?}): {}", self.rule, self.status())
    }
}

impl std::error::Error for Refusal {}
