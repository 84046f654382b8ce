//! "One reading" of every message: random and mutated byte streams are fed
//! to the codec (head parsing, then body framing, message after message) at
//! random read splits, the way the relay receives them. For every input:
//!
//! - nothing panics;
//! - memory stays bounded: a head still incomplete never needs more than
//!   `max_head` buffered bytes (the codec refuses first), and the chunked
//!   decoder keeps a fixed-size state;
//! - the reading does not depend on where the reads were split: the
//!   messages (head and body boundaries) and the verdict equal those of one
//!   read of the whole stream;
//! - what the codec decided to forward, read again by an independent
//!   reader (httparse directly for the heads, with the framing and chunked
//!   bodies decoded by a whole-buffer reader written here from RFC 9112
//!   §6.3 and §7.1, not from the codec), has the same message boundaries.
//!
//! The inputs come from a seeded xorshift generator: `SOZU_FUZZ_CASES`
//! inputs (2,000 by default, for CI), `SOZU_FUZZ_SEED` to start elsewhere.
//! A long run is documented in doc/testing.md:
//! `SOZU_FUZZ_CASES=1000000 cargo test --release -p sozu-proxy --lib http1::one_reading`.

use std::ops::Range;

use super::chunked::ChunkedDecoder;
use super::framing::Framing;
use super::head::{self, Answering, Parsed, parse_request, parse_response};
use super::{Refusal, Side};

const MAX_HEAD: usize = 2048;
const SLOTS: usize = 32;

/// A small xorshift64* generator: deterministic per seed, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One message as the codec delimited it, in offsets of the whole stream.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Message {
    head: Range<usize>,
    framing: Framing,
    /// Where the body ends; `None` when the stream ended first.
    body_end: Option<usize>,
    /// The chunk data bytes (the body length for Content-Length).
    data: u64,
}

/// How reading the stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// Every byte was read into complete messages (or a body until close).
    Clean,
    /// The stream ended inside a head or a body.
    Incomplete,
    /// The codec refused a message starting at this offset, with this status.
    Refused { at: usize, status: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Reading {
    messages: Vec<Message>,
    end: End,
}

/// The part of the stream the "network" has delivered so far, grown by
/// random read sizes (all at once when `splits` is `None`).
struct Delivery<'a> {
    stream: &'a [u8],
    available: usize,
    splits: Option<Rng>,
}

impl Delivery<'_> {
    /// Delivers one more read; false when the stream is exhausted.
    fn read(&mut self) -> bool {
        if self.available == self.stream.len() {
            return false;
        }
        let size = match self.splits.as_mut() {
            None => self.stream.len(),
            Some(rng) => match rng.below(4) {
                0 => 1,
                1 => 1 + rng.below(8),
                2 => 1 + rng.below(64),
                _ => 1 + rng.below(1024),
            },
        };
        self.available = (self.available + size).min(self.stream.len());
        true
    }
}

/// Parses one head at `start`, reading more until it is complete. Returns
/// the head's length and framing, or how reading ended.
fn read_head(
    delivery: &mut Delivery<'_>,
    start: usize,
    side: Side,
    answering: Answering,
) -> Result<(usize, Framing), End> {
    loop {
        let buffered = &delivery.stream[start..delivery.available];
        let mut headers = head::slots::<SLOTS>();
        let parsed = match side {
            Side::Request => parse_request(buffered, &mut headers, MAX_HEAD)
                .map(|p| map_parsed(p, |h| (h.len, h.framing))),
            Side::Response => parse_response(buffered, &mut headers, MAX_HEAD, answering)
                .map(|p| map_parsed(p, |h| (h.len, h.framing))),
        };
        match parsed {
            Err(refusal) => return Err(refused(start, refusal, side)),
            Ok(Some(head)) => return Ok(head),
            Ok(None) => {
                assert!(
                    buffered.len() < MAX_HEAD,
                    "an incomplete head of {} bytes is still buffered (limit {MAX_HEAD})",
                    buffered.len()
                );
                if !delivery.read() {
                    return Err(if buffered.is_empty() {
                        End::Clean
                    } else {
                        End::Incomplete
                    });
                }
            }
        }
    }
}

fn map_parsed<T, U>(parsed: Parsed<T>, f: impl FnOnce(T) -> U) -> Option<U> {
    match parsed {
        Parsed::Partial => None,
        Parsed::Complete(head) => Some(f(head)),
    }
}

fn refused(at: usize, refusal: Refusal, side: Side) -> End {
    assert_eq!(refusal.side, side, "a refusal names the side that sent");
    End::Refused {
        at,
        status: refusal.status(),
    }
}

/// Reads a body of `framing` starting at `start`: its end (when reached)
/// and its data bytes, or how reading ended.
fn read_body(
    delivery: &mut Delivery<'_>,
    start: usize,
    framing: Framing,
    side: Side,
) -> Result<(Option<usize>, u64), End> {
    match framing {
        Framing::Empty | Framing::Switch => Ok((Some(start), 0)),
        Framing::Length(length) => {
            let end = (start as u64).saturating_add(length);
            while (delivery.available as u64) < end && delivery.read() {}
            if (delivery.available as u64) < end {
                return Ok((None, (delivery.available - start) as u64));
            }
            Ok((Some(end as usize), length))
        }
        Framing::UntilClose => {
            while delivery.read() {}
            Ok((None, (delivery.stream.len() - start) as u64))
        }
        Framing::Chunked => {
            let mut decoder = ChunkedDecoder::new(side);
            let mut position = start;
            let mut data = 0u64;
            loop {
                let step = decoder
                    .step(&delivery.stream[position..delivery.available])
                    .map_err(|refusal| refused(start, refusal, side))?;
                assert!(step.data.end <= step.consumed && step.data.start <= step.data.end);
                data += step.data.len() as u64;
                position += step.consumed;
                if step.done {
                    return Ok((Some(position), data));
                }
                if position == delivery.available && !delivery.read() {
                    return Ok((None, data));
                }
            }
        }
    }
}

/// Reads `stream` as the codec does, message after message, with reads
/// split by `splits` (`None`: one read of everything).
fn read_stream(stream: &[u8], side: Side, answering: Answering, splits: Option<Rng>) -> Reading {
    let mut delivery = Delivery {
        stream,
        available: 0,
        splits,
    };
    delivery.read();
    let mut messages = Vec::new();
    let mut start = 0;
    let end = loop {
        let (len, framing) = match read_head(&mut delivery, start, side, answering) {
            Ok(head) => head,
            Err(end) => break end,
        };
        let body_start = start + len;
        let (body_end, data) = match read_body(&mut delivery, body_start, framing, side) {
            Ok(body) => body,
            Err(end) => {
                messages.push(Message {
                    head: start..body_start,
                    framing,
                    body_end: None,
                    data: 0,
                });
                break end;
            }
        };
        messages.push(Message {
            head: start..body_start,
            framing,
            body_end,
            data,
        });
        match body_end {
            None if framing == Framing::UntilClose => break End::Clean,
            None => break End::Incomplete,
            // After a switch the bytes are a tunnel's, not HTTP.
            Some(_) if framing == Framing::Switch => break End::Clean,
            Some(end) => start = end,
        }
        if start == stream.len() {
            break End::Clean;
        }
    };
    Reading { messages, end }
}

// ---------------------------------------------------------------------------
// The independent reader: httparse for the head, then RFC 9112 §6.3 and §7.1
// applied to the whole buffer at once.

/// The framing RFC 9112 §6.3 gives the head in `head` (which the codec
/// accepted): `None` when the independent reading finds it ambiguous.
fn independent_framing(head: &[u8], side: Side, answering: Answering) -> Option<(usize, Framing)> {
    let mut slots = [httparse::EMPTY_HEADER; SLOTS];
    let (len, status, headers) = match side {
        Side::Request => {
            let mut request = httparse::Request::new(&mut slots);
            let httparse::Status::Complete(len) = request.parse(head).ok()? else {
                return None;
            };
            (len, None, request.headers.to_vec())
        }
        Side::Response => {
            let mut response = httparse::Response::new(&mut slots);
            let httparse::Status::Complete(len) = response.parse(head).ok()? else {
                return None;
            };
            (len, response.code, response.headers.to_vec())
        }
    };
    let values = |name: &str| {
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .flat_map(|h| {
                String::from_utf8_lossy(h.value)
                    .split(',')
                    .map(|v| v.trim_matches([' ', '\t']).to_ascii_lowercase())
                    .collect::<Vec<String>>()
            })
            .collect::<Vec<String>>()
    };
    let codings = values("transfer-encoding");
    let lengths = values("content-length");
    if !codings.is_empty() && !lengths.is_empty() {
        return None;
    }
    if let Some(status) = status {
        if status == 101 {
            return Some((len, Framing::Switch));
        }
        if answering.head_request || (100..200).contains(&status) || status == 204 || status == 304
        {
            return Some((len, Framing::Empty));
        }
    }
    let framing = if let Some(last) = codings.iter().rev().find(|c| !c.is_empty()) {
        if last == "chunked" {
            Framing::Chunked
        } else if side == Side::Response {
            Framing::UntilClose
        } else {
            return None;
        }
    } else if !lengths.is_empty() {
        // RFC 9110 §8.6: a list of the same decimal value is that value
        // ("5, 05" included: both read 5).
        let mut values = lengths.iter().map(|l| l.parse::<u64>().ok());
        let first = values.next()??;
        if values.any(|value| value != Some(first)) {
            return None;
        }
        Framing::Length(first)
    } else if side == Side::Request {
        Framing::Empty
    } else {
        Framing::UntilClose
    };
    Some((len, framing))
}

/// Decodes a chunked body at the start of `bytes` in one go: its length
/// and data bytes, or `None` when it does not end within `bytes`.
fn independent_chunked(bytes: &[u8]) -> Option<(usize, u64)> {
    let line_end = |from: usize| {
        bytes[from..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|i| from + i)
    };
    let mut at = 0;
    let mut data = 0u64;
    loop {
        let end = line_end(at)?;
        let line = &bytes[at..end];
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        let size = u64::from_str_radix(std::str::from_utf8(&line[..digits]).ok()?, 16).ok()?;
        at = end + 2;
        if size == 0 {
            // The trailer section: lines up to an empty one.
            loop {
                let end = line_end(at)?;
                let empty = end == at;
                at = end + 2;
                if empty {
                    return Some((at, data));
                }
            }
        }
        let data_end = at.checked_add(usize::try_from(size).ok()?)?;
        if bytes.get(data_end..data_end + 2)? != b"\r\n" {
            return None;
        }
        data += size;
        at = data_end + 2;
    }
}

/// Checks every message the codec accepted against the independent reader.
fn check_one_reading(stream: &[u8], reading: &Reading, side: Side, answering: Answering) {
    for message in &reading.messages {
        let head = &stream[message.head.clone()];
        let (len, framing) = independent_framing(head, side, answering).unwrap_or_else(|| {
            panic!(
                "the codec accepted a head the independent reader does not read the same: {:?}",
                String::from_utf8_lossy(head)
            )
        });
        assert_eq!(
            len,
            head.len(),
            "head length of {:?}",
            String::from_utf8_lossy(head)
        );
        assert_eq!(
            framing,
            message.framing,
            "framing of {:?}",
            String::from_utf8_lossy(head)
        );
        if let (Framing::Chunked, Some(end)) = (framing, message.body_end) {
            let body = &stream[message.head.end..];
            let (length, data) = independent_chunked(body).unwrap_or_else(|| {
                panic!(
                    "the codec ended a chunked body the independent reader does not end: {:?}",
                    String::from_utf8_lossy(&body[..end - message.head.end])
                )
            });
            assert_eq!(message.head.end + length, end, "chunked body end");
            assert_eq!(data, message.data, "chunked data bytes");
        }
    }
}

// ---------------------------------------------------------------------------
// Inputs: generated messages, then mutations.

const METHODS: &[&str] = &["GET", "POST", "PUT", "HEAD", "OPTIONS", "DELETE", "PATCH"];
const TARGETS: &[&str] = &["/", "/a?b=c", "http://app.test/x", "*", "/%20"];
const NAMES: &[&str] = &[
    "Host",
    "Content-Length",
    "Transfer-Encoding",
    "Connection",
    "X-A",
    "content-length",
    "TRANSFER-ENCODING",
    "Upgrade",
    "Expect",
];
const VALUES: &[&str] = &[
    "app.test",
    "0",
    "5",
    "12",
    "chunked",
    "gzip, chunked",
    "chunked, gzip",
    "5, 5",
    "5, 6",
    "close",
    "keep-alive",
    " chunked ",
    "identity",
    "100-continue",
    "",
];
/// Bytes that matter to HTTP/1 framing, inserted by mutations.
const SPECIAL: &[u8] = b"\r\n\0 \t:;,=\"0123456789abcdefABCDEF-\x0b\x7f\xff";

fn generate_head(rng: &mut Rng, side: Side, out: &mut Vec<u8>) {
    match side {
        Side::Request => {
            let version = if rng.chance(90) { "1.1" } else { "1.0" };
            out.extend_from_slice(
                format!(
                    "{} {} HTTP/{version}\r\n",
                    rng.pick(METHODS),
                    rng.pick(TARGETS)
                )
                .as_bytes(),
            );
            if rng.chance(90) {
                out.extend_from_slice(b"Host: app.test\r\n");
            }
        }
        Side::Response => {
            let status = rng.pick(&[200, 200, 204, 304, 100, 101, 404, 500, 302]);
            out.extend_from_slice(format!("HTTP/1.1 {status} Whatever\r\n").as_bytes());
        }
    }
    for _ in 0..rng.below(4) {
        out.extend_from_slice(format!("{}: {}\r\n", rng.pick(NAMES), rng.pick(VALUES)).as_bytes());
    }
}

/// One message, framed by a Content-Length or chunked body often enough
/// that its body is read.
fn generate_message(rng: &mut Rng, side: Side, out: &mut Vec<u8>) {
    generate_head(rng, side, out);
    let body: Vec<u8> = (0..rng.below(40))
        .map(|_| b'a' + rng.below(26) as u8)
        .collect();
    match rng.below(3) {
        0 => {
            out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            out.extend_from_slice(&body);
        }
        1 => {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for piece in body.chunks(1 + rng.below(16)) {
                out.extend_from_slice(format!("{:x}", piece.len()).as_bytes());
                if rng.chance(20) {
                    out.extend_from_slice(b";ext=\"v\"");
                }
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(piece);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n");
            if rng.chance(20) {
                out.extend_from_slice(b"Trailer-A: 1\r\n");
            }
            out.extend_from_slice(b"\r\n");
        }
        _ => out.extend_from_slice(b"\r\n"),
    }
}

fn mutate(rng: &mut Rng, stream: &mut Vec<u8>) {
    for _ in 0..rng.below(4) {
        let at = rng.below(stream.len() + 1);
        match rng.below(6) {
            0 if at < stream.len() => stream[at] = *rng.pick(SPECIAL),
            1 => stream.insert(at, *rng.pick(SPECIAL)),
            2 if at < stream.len() => {
                let end = (at + 1 + rng.below(8)).min(stream.len());
                stream.drain(at..end);
            }
            3 if at < stream.len() => {
                let end = (at + 1 + rng.below(16)).min(stream.len());
                let copy = stream[at..end].to_vec();
                stream.splice(at..at, copy);
            }
            4 if at < stream.len() => stream[at] ^= 1 << rng.below(8),
            5 => stream.truncate(at),
            _ => {}
        }
    }
}

fn generate(rng: &mut Rng, side: Side) -> Vec<u8> {
    let mut stream = Vec::new();
    match rng.below(10) {
        // Random bytes, from the whole range or from the special ones.
        0 => {
            let special = rng.chance(50);
            for _ in 0..rng.below(200) {
                let byte = if special {
                    *rng.pick(SPECIAL)
                } else {
                    rng.next() as u8
                };
                stream.push(byte);
            }
        }
        // A head too large, to check the limit.
        1 => {
            generate_head(rng, side, &mut stream);
            let filler = rng.below(MAX_HEAD * 2);
            stream.extend_from_slice(b"X-Long: ");
            stream.extend(std::iter::repeat_n(b'v', filler));
            stream.extend_from_slice(b"\r\n\r\n");
        }
        // Pipelined messages, mutated most of the time.
        _ => {
            for _ in 0..1 + rng.below(3) {
                generate_message(rng, side, &mut stream);
            }
            if rng.chance(80) {
                mutate(rng, &mut stream);
            }
        }
    }
    stream
}

fn cases() -> u64 {
    std::env::var("SOZU_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn seed() -> u64 {
    std::env::var("SOZU_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5020_5EED)
}

/// Runs the properties on `cases()` inputs of `side`; returns how many
/// were accepted whole, refused, and incomplete (to show the inputs reach
/// every outcome).
fn run(side: Side) -> [u64; 3] {
    let mut rng = Rng::new(seed() ^ side as u64);
    let mut outcomes = [0u64; 3];
    for case in 0..cases() {
        let stream = generate(&mut rng, side);
        let answering = Answering {
            head_request: rng.chance(10),
            upgrade_requested: rng.chance(30),
        };
        let whole = read_stream(&stream, side, answering, None);
        let split = read_stream(&stream, side, answering, Some(Rng::new(rng.next())));
        assert_eq!(
            whole,
            split,
            "case {case}: the reading depends on the read splits of {:?}",
            String::from_utf8_lossy(&stream)
        );
        check_one_reading(&stream, &whole, side, answering);
        outcomes[match whole.end {
            End::Clean => 0,
            End::Refused { .. } => 1,
            End::Incomplete => 2,
        }] += 1;
    }
    outcomes
}

#[test]
fn requests_have_one_reading_at_any_split() {
    let [clean, refused, incomplete] = run(Side::Request);
    // The generator must reach every outcome, or the property proves little.
    assert!(
        clean > 0 && refused > 0 && incomplete > 0,
        "{clean} {refused} {incomplete}"
    );
}

#[test]
fn responses_have_one_reading_at_any_split() {
    let [clean, refused, incomplete] = run(Side::Response);
    assert!(
        clean > 0 && refused > 0 && incomplete > 0,
        "{clean} {refused} {incomplete}"
    );
}

#[test]
fn the_chunked_decoder_state_is_small() {
    // Bounded memory: the decoder holds a few integers, whatever it reads.
    assert!(std::mem::size_of::<ChunkedDecoder>() <= 64);
}

#[test]
fn the_independent_chunked_reader_reads_what_it_should() {
    assert_eq!(independent_chunked(b"3\r\nabc\r\n0\r\n\r\n"), Some((13, 3)));
    assert_eq!(
        independent_chunked(b"3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n"),
        Some((23, 3))
    );
    assert_eq!(independent_chunked(b"3\r\nabc\r\n0\r\n"), None);
    assert_eq!(independent_chunked(b"3\r\nabcd\r\n0\r\n\r\n"), None);
}

/// Found by the property above: a request line whose version arrived cut
/// ("HTTP/3" of "HTTP/3.1") was refused 400 at once, the whole line 505.
#[test]
fn a_version_cut_by_a_read_waits_for_its_end() {
    let whole = b"HEAD / HTTP/3.1\r\nHost: app.test\r\n\r\n";
    let mut headers = head::slots::<SLOTS>();
    for cut in 7..=15 {
        let parsed = parse_request(&whole[..cut], &mut headers, MAX_HEAD);
        assert!(matches!(parsed, Ok(Parsed::Partial)), "{cut}: {parsed:?}");
    }
    let refusal = parse_request(whole, &mut headers, MAX_HEAD).unwrap_err();
    assert_eq!(refusal.status(), 505);
    // Responses alike.
    let whole = b"HTTP/2.0 200 OK\r\n\r\n";
    for cut in 1..=8 {
        let parsed = parse_response(&whole[..cut], &mut headers, MAX_HEAD, Answering::default());
        assert!(matches!(parsed, Ok(Parsed::Partial)), "{cut}: {parsed:?}");
    }
    // A version that cannot become HTTP/d.d is refused at once.
    for line in [
        &b"GET / HTTQ"[..],
        b"GET / HTTP/1.1x",
        b"GET / HTTP/a",
        b"GET / HATCH / HTTP/",
    ] {
        let parsed = parse_request(line, &mut headers, MAX_HEAD);
        assert!(matches!(parsed, Err(r) if r.status() == 400), "{parsed:?}");
    }
}

/// Found by the property above: a malformed request line with a version
/// that is not 1.x ("GET/ HTTP/1.7") was refused 505 when whole, 400 when
/// cut before its version ended. Now 400 at every cut: 505 is only for a
/// line that is valid but for its version.
#[test]
fn a_malformed_start_line_is_400_at_every_cut() {
    let mut headers = head::slots::<SLOTS>();
    for whole in [
        &b"GET/ HTTP/1.7\r\n\r\x0b"[..],
        b"G(T / HTTP/2.0\r\nHost: a\r\n\r\n",
    ] {
        for cut in 1..=whole.len() {
            match parse_request(&whole[..cut], &mut headers, MAX_HEAD) {
                Ok(Parsed::Partial) => {}
                Err(refusal) => assert_eq!(refusal.status(), 400, "{cut} of {whole:?}"),
                Ok(Parsed::Complete(_)) => panic!("{cut} of {whole:?} accepted"),
            }
        }
    }
    // A line valid but for its version is still 505.
    let refusal = parse_request(b"GET / HTTP/1.7\r\n\r\n", &mut headers, MAX_HEAD).unwrap_err();
    assert_eq!(refusal.status(), 505);
    let refusal = parse_response(
        b"HTTP/2.0 200 OK\r\n\r\n",
        &mut headers,
        MAX_HEAD,
        Answering::default(),
    )
    .unwrap_err();
    assert_eq!(refusal.rule, super::Rule::UnsupportedVersion);
}
