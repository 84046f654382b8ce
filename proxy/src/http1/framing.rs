//! How a message body is delimited (RFC 9112 §6.3), decided from the parsed
//! head alone, and the options of its Connection header (§9.3, §9.6).

use super::Rule;
use super::names::{Known, Lines};

/// How the body of a message is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: a request with neither Content-Length nor Transfer-Encoding,
    /// or a response to HEAD, a 1xx (other than 101), 204 or 304 (§6.3 (1)).
    Empty,
    /// Exactly this many bytes follow the head (§6.3 (5)).
    Length(u64),
    /// A chunked body follows: walk it with [`super::chunked::ChunkedDecoder`]
    /// (§6.3 (4), §7.1).
    Chunked,
    /// Responses only: the body runs until the backend closes (§6.3 (7)).
    UntilClose,
    /// Responses only: a 101 answering a request that asked for an upgrade;
    /// after the head the connection is a tunnel (RFC 9110 §15.2.2).
    Switch,
}

/// The options a message's Connection lines carry (§9.3, §9.6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionOptions {
    /// `close`: the connection ends after this message.
    pub close: bool,
    /// `keep-alive`: an HTTP/1.0 peer asks to keep the connection.
    pub keep_alive: bool,
    /// `upgrade`: the Upgrade header is meant for the next hop.
    pub upgrade: bool,
}

impl ConnectionOptions {
    /// Reads the options of every Connection line of `headers` (whose
    /// known names are in `lines`).
    pub fn of(headers: &[httparse::Header<'_>], lines: &Lines) -> Self {
        let mut options = ConnectionOptions::default();
        for header in lines.all(Known::Connection, headers) {
            for token in list_members(header.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    options.close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    options.keep_alive = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    options.upgrade = true;
                }
            }
        }
        options
    }

    /// Whether the connection may carry another message after this one, for
    /// a message of HTTP/1.`minor_version` (§9.3).
    pub fn persistent(&self, minor_version: u8) -> bool {
        !self.close && (minor_version >= 1 || self.keep_alive)
    }
}

/// The non-empty members of a comma-separated list value, trimmed of
/// optional whitespace (RFC 9110 §5.6.1: empty members are ignored).
pub fn list_members(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|member| !member.is_empty())
}

/// `bytes` without leading and trailing spaces and tabs.
pub fn trim_ows(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |last| last + 1);
    &bytes[start..end]
}

/// What the Content-Length and Transfer-Encoding lines of a head say,
/// before the side-specific decision.
#[derive(Debug, Default)]
struct Lengths {
    content_length: Option<u64>,
    transfer_encoding: bool,
    chunked_seen: bool,
    last_is_chunked: bool,
}

/// The largest Content-Length accepted: 18 decimal digits fit in an i64.
const MAX_LENGTH_DIGITS: usize = 18;

fn parse_content_length(value: &[u8], seen: &mut Option<u64>) -> Result<(), Rule> {
    for member in value.split(|&b| b == b',') {
        let member = trim_ows(member);
        if member.is_empty()
            || member.len() > MAX_LENGTH_DIGITS
            || !member.iter().all(u8::is_ascii_digit)
        {
            return Err(Rule::InvalidContentLength);
        }
        let length = member
            .iter()
            .fold(0u64, |sum, digit| sum * 10 + u64::from(digit - b'0'));
        match *seen {
            Some(previous) if previous != length => return Err(Rule::ConflictingContentLength),
            _ => *seen = Some(length),
        }
    }
    Ok(())
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks one transfer-coding (`token *( OWS ";" OWS token BWS "=" BWS
/// ( token / quoted-string ) )`, RFC 9112 §7, RFC 9110 §10.1.4) and says
/// whether it is `chunked` (which takes no parameter).
fn parse_coding(coding: &[u8]) -> Result<bool, Rule> {
    let name_end = coding
        .iter()
        .position(|&b| !is_tchar(b))
        .unwrap_or(coding.len());
    if name_end == 0 {
        return Err(Rule::InvalidTransferEncoding);
    }
    let chunked = coding[..name_end].eq_ignore_ascii_case(b"chunked");
    let mut rest = trim_ows(&coding[name_end..]);
    while !rest.is_empty() {
        if chunked || rest[0] != b';' {
            return Err(Rule::InvalidTransferEncoding);
        }
        rest = parse_parameter(trim_ows(&rest[1..]))?;
    }
    Ok(chunked)
}

/// Parses `token BWS "=" BWS ( token / quoted-string )` at the start of
/// `bytes`, returning what follows (trimmed).
fn parse_parameter(bytes: &[u8]) -> Result<&[u8], Rule> {
    let bad = Rule::InvalidTransferEncoding;
    let name_end = bytes
        .iter()
        .position(|&b| !is_tchar(b))
        .unwrap_or(bytes.len());
    if name_end == 0 {
        return Err(bad);
    }
    let rest = trim_ows(&bytes[name_end..]);
    let Some(rest) = rest.strip_prefix(b"=") else {
        return Err(bad);
    };
    let rest = trim_ows(rest);
    let value_end = if rest.first() == Some(&b'"') {
        quoted_string_len(rest).ok_or(bad)?
    } else {
        rest.iter()
            .position(|&b| !is_tchar(b))
            .unwrap_or(rest.len())
    };
    if value_end == 0 {
        return Err(bad);
    }
    Ok(trim_ows(&rest[value_end..]))
}

/// The length of the quoted-string at the start of `bytes`, if it is one.
fn quoted_string_len(bytes: &[u8]) -> Option<usize> {
    let mut index = 1;
    while index < bytes.len() {
        match bytes[index] {
            b'"' => return Some(index + 1),
            b'\\' => index += 2,
            b'\t' | b' '..=b'~' | 0x80..=0xff => index += 1,
            _ => return None,
        }
    }
    None
}

fn parse_transfer_encoding(value: &[u8], lengths: &mut Lengths) -> Result<(), Rule> {
    let mut any = false;
    for coding in list_members(value) {
        let chunked = parse_coding(coding)?;
        if chunked && lengths.chunked_seen {
            // Applied twice (§7.1): the second decoding would read the
            // first one's bytes as framing.
            return Err(Rule::InvalidTransferEncoding);
        }
        lengths.chunked_seen |= chunked;
        lengths.last_is_chunked = chunked;
        any = true;
    }
    if !any {
        return Err(Rule::InvalidTransferEncoding);
    }
    lengths.transfer_encoding = true;
    Ok(())
}

/// Reads the Content-Length and Transfer-Encoding lines of a head of
/// HTTP/1.`minor_version`, refusing the combinations no side may send.
fn lengths(
    headers: &[httparse::Header<'_>],
    lines: &Lines,
    minor_version: u8,
) -> Result<Lengths, Rule> {
    let mut lengths = Lengths::default();
    // Most heads have neither name: nothing to look at then. Otherwise the
    // lines are read in order from the first of either.
    let start = match (
        lines.first_index(Known::ContentLength),
        lines.first_index(Known::TransferEncoding),
    ) {
        (None, None) => return Ok(lengths),
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
    };
    let mut content_length_lines = false;
    let mut left = lines.count(Known::ContentLength) + lines.count(Known::TransferEncoding);
    for header in &headers[start..] {
        if left == 0 {
            break;
        }
        if Known::ContentLength.is(header.name) {
            left -= 1;
            content_length_lines = true;
            parse_content_length(header.value, &mut lengths.content_length)?;
        } else if Known::TransferEncoding.is(header.name) {
            left -= 1;
            if minor_version == 0 {
                return Err(Rule::TransferEncodingInHttp10);
            }
            parse_transfer_encoding(header.value, &mut lengths)?;
        }
    }
    if lengths.transfer_encoding && content_length_lines {
        return Err(Rule::TransferEncodingWithContentLength);
    }
    Ok(lengths)
}

/// The framing of a request's body (RFC 9112 §6.3): Transfer-Encoding must
/// end with `chunked`, Content-Length must be one number, neither means no
/// body. CONNECT is refused (this proxy tunnels nothing but upgrades).
pub fn request_framing(
    method: &str,
    (headers, lines): (&[httparse::Header<'_>], &Lines),
    minor_version: u8,
) -> Result<Framing, Rule> {
    if method == "CONNECT" {
        return Err(Rule::ConnectUnsupported);
    }
    let lengths = lengths(headers, lines, minor_version)?;
    if lengths.transfer_encoding {
        if !lengths.last_is_chunked {
            return Err(Rule::TransferEncodingNotChunked);
        }
        return Ok(Framing::Chunked);
    }
    Ok(match lengths.content_length {
        Some(length) => Framing::Length(length),
        None => Framing::Empty,
    })
}

/// Whether a status is interim (1xx other than 101): another response head
/// follows it for the same request (RFC 9110 §15.2).
pub fn is_interim(status: u16) -> bool {
    (100..200).contains(&status) && status != 101
}

/// The framing of a response's body (RFC 9112 §6.3), given the request it
/// answers: `head_request` for HEAD, `upgrade_requested` when the request
/// asked for an upgrade (a 101 is refused otherwise). The Content-Length and
/// Transfer-Encoding lines are checked as strictly as a request's even where
/// the status says there is no body.
pub fn response_framing(
    status: u16,
    (headers, lines): (&[httparse::Header<'_>], &Lines),
    minor_version: u8,
    head_request: bool,
    upgrade_requested: bool,
) -> Result<Framing, Rule> {
    let lengths = lengths(headers, lines, minor_version)?;
    if status == 101 {
        return if upgrade_requested && minor_version >= 1 {
            Ok(Framing::Switch)
        } else {
            Err(Rule::UnexpectedSwitch)
        };
    }
    if head_request || is_interim(status) || status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    if lengths.transfer_encoding {
        return Ok(if lengths.last_is_chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    Ok(match lengths.content_length {
        Some(length) => Framing::Length(length),
        None => Framing::UntilClose,
    })
}
