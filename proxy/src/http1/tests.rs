//! The codec's corpus and property tests.
//!
//! The property tests run `PROPTEST_CASES` cases each (256 by default, a
//! few seconds); a long run, millions of inputs:
//! `PROPTEST_CASES=1000000 cargo test -p sozu-proxy --release http1::tests::prop`.

use proptest::prelude::*;

use super::chunked::ChunkedDecoder;
use super::edit::{EditOptions, EditPlan};
use super::framing::Framing;
use super::head::{self, Answering, Parsed, parse_request, parse_response};
use super::{Refusal, Rule, Side};

const MAX_HEAD: usize = 4096;
const SLOTS: usize = 32;

/// A verdict on a request or response head, comparable across parses.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Partial,
    /// The head's length, framing and (requests) host.
    Accepted(usize, Framing, Option<String>),
    Refused(Rule),
}

use Verdict::{Accepted, Partial, Refused};

fn request(bytes: &[u8]) -> Verdict {
    let mut headers = head::slots::<SLOTS>();
    match parse_request(bytes, &mut headers, MAX_HEAD) {
        Ok(Parsed::Partial) => Partial,
        Ok(Parsed::Complete(head)) => {
            Accepted(head.len, head.framing, head.host.map(str::to_owned))
        }
        Err(refusal) => {
            assert_eq!(refusal.side, Side::Request);
            Refused(refusal.rule)
        }
    }
}

fn response_to(bytes: &[u8], answering: Answering) -> Verdict {
    let mut headers = head::slots::<SLOTS>();
    match parse_response(bytes, &mut headers, MAX_HEAD, answering) {
        Ok(Parsed::Partial) => Partial,
        Ok(Parsed::Complete(head)) => Accepted(head.len, head.framing, None),
        Err(refusal) => {
            assert_eq!(refusal.status(), 502);
            Refused(refusal.rule)
        }
    }
}

fn response(bytes: &[u8]) -> Verdict {
    response_to(bytes, Answering::default())
}

/// A request head: the request line, then `lines` (each without CRLF).
fn req(start: &str, lines: &[&str]) -> Vec<u8> {
    let mut head = format!("{start}\r\n");
    for line in lines {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

fn ok(len_of: &[u8], framing: Framing, host: Option<&str>) -> Verdict {
    Accepted(len_of.len(), framing, host.map(str::to_owned))
}

/// The request corpus: (head, expected verdict, RFC 9112 section).
fn request_corpus() -> Vec<(Vec<u8>, Verdict, &'static str)> {
    let mut cases = Vec::new();
    let mut accepted = |start: &str, lines: &[&str], framing: Framing, host: Option<&str>, rfc| {
        let head = req(start, lines);
        let verdict = ok(&head, framing, host);
        cases.push((head, verdict, rfc));
    };
    use Framing::{Chunked, Empty, Length};
    let h = "Host: app.test";
    // Valid.
    accepted("GET / HTTP/1.1", &[h], Empty, Some("app.test"), "§6.3 (7)");
    accepted("GET / HTTP/1.0", &[h], Empty, Some("app.test"), "§2.3");
    accepted("GET / HTTP/1.0", &[], Empty, None, "§3.2 (1.0, no Host)");
    accepted(
        "POST /a?b=c HTTP/1.1",
        &[h, "Content-Length: 5"],
        Length(5),
        Some("app.test"),
        "§6.3 (5)",
    );
    accepted(
        "POST / HTTP/1.1",
        &[h, "Content-Length: 0"],
        Length(0),
        Some("app.test"),
        "§6.3 (5)",
    );
    accepted(
        "POST / HTTP/1.1",
        &[h, "Transfer-Encoding: chunked"],
        Chunked,
        Some("app.test"),
        "§6.3 (4)",
    );
    accepted(
        "POST / HTTP/1.1",
        &[h, "Transfer-Encoding: gzip, chunked"],
        Chunked,
        Some("app.test"),
        "§6.1",
    );
    accepted(
        "POST / HTTP/1.1",
        &[h, "Transfer-Encoding: gzip", "Transfer-Encoding: chunked"],
        Chunked,
        Some("app.test"),
        "§6.1 (list over lines)",
    );
    accepted(
        "GET / HTTP/1.1",
        &["Host: app.test:8080"],
        Empty,
        Some("app.test"),
        "§3.2",
    );
    accepted(
        "GET / HTTP/1.1",
        &["Host: app.test:"],
        Empty,
        Some("app.test"),
        "§3.2 (empty port)",
    );
    accepted(
        "GET / HTTP/1.1",
        &["Host: [::1]:8080"],
        Empty,
        Some("[::1]"),
        "§3.2 (IPv6)",
    );
    accepted(
        "GET / HTTP/1.1",
        &["Host: [::1]"],
        Empty,
        Some("[::1]"),
        "§3.2 (IPv6)",
    );
    accepted(
        "GET / HTTP/1.1",
        &["Host: 127.0.0.1:65535"],
        Empty,
        Some("127.0.0.1"),
        "§3.2",
    );
    accepted(
        "GET http://other.test/x HTTP/1.1",
        &[h],
        Empty,
        Some("other.test"),
        "§3.2.2",
    );
    accepted(
        "GET HTTPS://other.test:443?q HTTP/1.1",
        &[h],
        Empty,
        Some("other.test"),
        "§3.2.2",
    );
    accepted(
        "GET http://other.test HTTP/1.1",
        &[],
        Empty,
        Some("other.test"),
        "§3.2.2",
    );
    accepted(
        "OPTIONS * HTTP/1.1",
        &[h],
        Empty,
        Some("app.test"),
        "§3.2.4",
    );
    // Odd but valid.
    accepted(
        "POST / HTTP/1.1",
        &[h, "Content-Length: 5, 5"],
        Length(5),
        Some("app.test"),
        "§6.3 (5) same values",
    );
    accepted(
        "POST / HTTP/1.1",
        &[h, "Content-Length: 5", "Content-Length: 5"],
        Length(5),
        Some("app.test"),
        "§6.3 (5)",
    );
    accepted(
        "POST / HTTP/1.1",
        &[h, "Content-Length: 005"],
        Length(5),
        Some("app.test"),
        "RFC 9110 §8.6",
    );
    accepted(
        "POST / HTTP/1.1",
        &[h, "content-length:7"],
        Length(7),
        Some("app.test"),
        "§5.1 no OWS",
    );
    accepted(
        "POST / HTTP/1.1",
        &[h, "Content-Length:   9   "],
        Length(9),
        Some("app.test"),
        "§5.1 OWS",
    );
    accepted(
        "POST / HTTP/1.1",
        &[h, "Content-Length: 999999999999999999"],
        Length(999_999_999_999_999_999),
        Some("app.test"),
        "RFC 9110 §8.6",
    );
    accepted(
        "POST / HTTP/1.1",
        &[h, "transfer-encoding: CHUNKED"],
        Chunked,
        Some("app.test"),
        "§7 case-insensitive",
    );
    accepted(
        "POST / HTTP/1.1",
        &[h, "Transfer-Encoding: chunked , "],
        Chunked,
        Some("app.test"),
        "RFC 9110 §5.6.1 empty members",
    );
    accepted(
        "POST / HTTP/1.1",
        &[h, "Transfer-Encoding: x;q=1, chunked"],
        Chunked,
        Some("app.test"),
        "RFC 9110 §10.1.4 parameters",
    );
    accepted(
        "POST / HTTP/1.1",
        &[h, "Transfer-Encoding: x;q=\"a b\", chunked"],
        Chunked,
        Some("app.test"),
        "quoted parameter",
    );
    accepted(
        "GET / HTTP/1.1",
        &["hOsT: App.Test"],
        Empty,
        Some("App.Test"),
        "field names case-insensitive",
    );
    accepted(
        "GET / HTTP/1.1",
        &[h, "X-Empty:"],
        Empty,
        Some("app.test"),
        "§5 empty value",
    );
    accepted(
        "GET / HTTP/1.1",
        &[h, "X-Obs: caf\u{e9}"],
        Empty,
        Some("app.test"),
        "RFC 9110 §5.5 obs-text",
    );
    accepted(
        "GET / HTTP/1.1",
        &[h, "X-Tab:\tv\t"],
        Empty,
        Some("app.test"),
        "§5.1 HTAB OWS",
    );
    accepted(
        "GET / HTTP/1.1",
        &[h, "Connection: keep-alive, Upgrade", "Upgrade: websocket"],
        Empty,
        Some("app.test"),
        "RFC 9110 §7.8",
    );
    accepted(
        "PATCH /%20 HTTP/1.1",
        &[h],
        Empty,
        Some("app.test"),
        "§3.2.1",
    );
    accepted(
        "GET /?a=b/c HTTP/1.1",
        &[h, "Expect: 100-continue"],
        Empty,
        Some("app.test"),
        "RFC 9110 §10.1.1",
    );
    accepted(
        "GET / HTTP/1.1",
        &["Host:app.test"],
        Empty,
        Some("app.test"),
        "§5.1",
    );
    accepted(
        "get / HTTP/1.1",
        &[h],
        Empty,
        Some("app.test"),
        "RFC 9110 §9.1 (any token)",
    );
    let mut refused = |bytes: Vec<u8>, rule: Rule, rfc: &'static str| {
        cases.push((bytes, Refused(rule), rfc));
    };
    let r = |start: &str, lines: &[&str]| req(start, lines);
    let post = "POST / HTTP/1.1";
    use Rule::*;
    // The smuggling shapes.
    refused(
        r(
            post,
            &[h, "Content-Length: 5", "Transfer-Encoding: chunked"],
        ),
        TransferEncodingWithContentLength,
        "§6.1, §6.3 (3)",
    );
    refused(
        r(
            post,
            &[h, "Transfer-Encoding: chunked", "Content-Length: 5"],
        ),
        TransferEncodingWithContentLength,
        "§6.1",
    );
    refused(
        r(
            post,
            &[h, "Transfer-Encoding: chunked", "Content-Length: 0"],
        ),
        TransferEncodingWithContentLength,
        "§6.1",
    );
    refused(
        r(post, &[h, "Content-Length: 5", "Transfer-Encoding: gzip"]),
        TransferEncodingWithContentLength,
        "§6.1",
    );
    refused(
        r(post, &[h, "Content-Length: 5", "Content-Length: 6"]),
        ConflictingContentLength,
        "§6.3 (5)",
    );
    refused(
        r(post, &[h, "Content-Length: 5, 6"]),
        ConflictingContentLength,
        "§6.3 (5)",
    );
    refused(
        r(post, &[h, "Content-Length: 5", "Content-Length: 5, 0"]),
        ConflictingContentLength,
        "§6.3 (5)",
    );
    refused(
        r(post, &[h, "Content-Length: 0", "Content-Length: 00, 1"]),
        ConflictingContentLength,
        "§6.3 (5)",
    );
    refused(
        r(post, &[h, "Content-Length: five"]),
        InvalidContentLength,
        "§6.3 (5)",
    );
    refused(
        r(post, &[h, "Content-Length: -1"]),
        InvalidContentLength,
        "§6.3 (5)",
    );
    refused(
        r(post, &[h, "Content-Length: +5"]),
        InvalidContentLength,
        "§6.3 (5)",
    );
    refused(
        r(post, &[h, "Content-Length: 5 5"]),
        InvalidContentLength,
        "§6.3 (5)",
    );
    refused(
        r(post, &[h, "Content-Length: 0x5"]),
        InvalidContentLength,
        "§6.3 (5)",
    );
    refused(
        r(post, &[h, "Content-Length: 5,"]),
        InvalidContentLength,
        "§6.3 (5) empty member",
    );
    refused(
        r(post, &[h, "Content-Length:"]),
        InvalidContentLength,
        "§6.3 (5) empty",
    );
    refused(
        r(post, &[h, "Content-Length: 1.0"]),
        InvalidContentLength,
        "§6.3 (5)",
    );
    refused(
        r(post, &[h, "Content-Length: 9999999999999999999"]),
        InvalidContentLength,
        "overflow",
    );
    refused(
        r(post, &[h, "Content-Length: 5\u{e9}"]),
        InvalidContentLength,
        "obs-text",
    );
    refused(
        r(post, &[h, "Transfer-Encoding: gzip"]),
        TransferEncodingNotChunked,
        "§6.3 (4)",
    );
    refused(
        r(post, &[h, "Transfer-Encoding: chunked, gzip"]),
        TransferEncodingNotChunked,
        "§6.3 (4)",
    );
    refused(
        r(
            post,
            &[
                h,
                "Transfer-Encoding: chunked",
                "Transfer-Encoding: identity",
            ],
        ),
        TransferEncodingNotChunked,
        "§6.3 (4)",
    );
    refused(
        r(post, &[h, "Transfer-Encoding: chunkedx"]),
        TransferEncodingNotChunked,
        "§7",
    );
    refused(
        r(post, &[h, "Transfer-Encoding: xchunked"]),
        TransferEncodingNotChunked,
        "§7",
    );
    refused(
        r(post, &[h, "Transfer-Encoding: identity"]),
        TransferEncodingNotChunked,
        "§7 (identity is gone)",
    );
    refused(
        r(post, &[h, "Transfer-Encoding: chunked, chunked"]),
        InvalidTransferEncoding,
        "§7.1 twice",
    );
    refused(
        r(
            post,
            &[
                h,
                "Transfer-Encoding: chunked",
                "Transfer-Encoding: chunked",
            ],
        ),
        InvalidTransferEncoding,
        "§7.1 twice",
    );
    refused(
        r(post, &[h, "Transfer-Encoding:"]),
        InvalidTransferEncoding,
        "§6.1 empty",
    );
    refused(
        r(post, &[h, "Transfer-Encoding: ,"]),
        InvalidTransferEncoding,
        "§6.1 empty list",
    );
    refused(
        r(post, &[h, "Transfer-Encoding: \"chunked\""]),
        InvalidTransferEncoding,
        "§7 not a token",
    );
    refused(
        r(post, &[h, "Transfer-Encoding: chunked;q=1"]),
        InvalidTransferEncoding,
        "§7.1 no parameter",
    );
    refused(
        r(post, &[h, "Transfer-Encoding: chunked x"]),
        InvalidTransferEncoding,
        "§7",
    );
    refused(
        r(post, &[h, "Transfer-Encoding: x;=1, chunked"]),
        InvalidTransferEncoding,
        "parameter",
    );
    refused(
        r(post, &[h, "Transfer-Encoding: x;q=\"open, chunked"]),
        InvalidTransferEncoding,
        "quoted",
    );
    refused(
        r(post, &[h, "Transfer-Encoding: x;q, chunked"]),
        InvalidTransferEncoding,
        "parameter",
    );
    refused(
        r(post, &[h, "Transfer-Encoding: x;q=, chunked"]),
        InvalidTransferEncoding,
        "parameter",
    );
    refused(
        r(post, &[h, "Transfer-Encoding: ch\u{fc}nked"]),
        InvalidTransferEncoding,
        "§7",
    );
    refused(
        r("POST / HTTP/1.0", &[h, "Transfer-Encoding: chunked"]),
        TransferEncodingInHttp10,
        "§6.1",
    );
    refused(
        r(
            "POST / HTTP/1.0",
            &[h, "Transfer-Encoding: chunked", "Content-Length: 3"],
        ),
        TransferEncodingInHttp10,
        "§6.1",
    );
    refused(
        r(post, &[h, "Transfer-Encoding : chunked"]),
        WhitespaceBeforeColon,
        "§5.1",
    );
    refused(
        r(post, &[h, "Transfer-Encoding\t: chunked"]),
        WhitespaceBeforeColon,
        "§5.1",
    );
    refused(
        r(post, &[h, "Content-Length : 5"]),
        WhitespaceBeforeColon,
        "§5.1",
    );
    refused(
        r("GET / HTTP/1.1", &["Host : app.test"]),
        WhitespaceBeforeColon,
        "§5.1",
    );
    refused(
        r(post, &[h, "X: y", " Transfer-Encoding: chunked"]),
        ObsoleteLineFolding,
        "§5.2",
    );
    refused(
        r(post, &[h, "X: y", "\tvalue"]),
        ObsoleteLineFolding,
        "§5.2",
    );
    refused(
        r(post, &[" Host: app.test"]),
        ObsoleteLineFolding,
        "§2.2 whitespace before the first field",
    );
    refused(
        r(post, &[h, "Transfer-Encoding:", " chunked"]),
        ObsoleteLineFolding,
        "§5.2",
    );
    refused(
        b"POST / HTTP/1.1\r\nHost: app.test\r\nX: a\rTransfer-Encoding: chunked\r\n\r\n".to_vec(),
        BareCr,
        "§2.2",
    );
    refused(
        b"POST / HTTP/1.1\r\nHost: app.test\r\nX: a\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
        BareLf,
        "§2.2",
    );
    refused(
        b"GET / HTTP/1.1\nHost: app.test\n\n".to_vec(),
        BareLf,
        "§2.2",
    );
    refused(
        b"GET / HTTP/1.1\r\nHost: app.test\r\n\n".to_vec(),
        BareLf,
        "§2.2",
    );
    refused(
        b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\r\n".to_vec(),
        BareCr,
        "§2.2",
    );
    refused(
        b"GET / HTTP/1.1\r\nHost: app.test\r\nX: a\x00b\r\n\r\n".to_vec(),
        Nul,
        "RFC 9110 §5.5",
    );
    refused(
        b"GET /\x00 HTTP/1.1\r\nHost: app.test\r\n\r\n".to_vec(),
        Nul,
        "§3",
    );
    refused(b"\x00\x00\x00\x00\r\n\r\n".to_vec(), Nul, "§3");
    refused(
        b"GET / HTTP/1.1\r\nHost: app.test\r\nX: a\x01b\r\n\r\n".to_vec(),
        ControlCharacter,
        "RFC 9110 §5.5",
    );
    refused(
        b"GET / HTTP/1.1\r\nHost: app.test\r\nX: a\x7fb\r\n\r\n".to_vec(),
        ControlCharacter,
        "RFC 9110 §5.5",
    );
    refused(
        b"GET / HTTP/1.1\r\nHost: app.test\r\nX: \x1b[31m\r\n\r\n".to_vec(),
        ControlCharacter,
        "RFC 9110 §5.5",
    );
    refused(
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
        ControlCharacter,
        "TLS on a plain port",
    );
    // Malformed start lines and headers (the shapes of http_bad_input.rs).
    refused(r("GARBAGE", &[]), MalformedStartLine, "§3");
    refused(r("GET", &[]), MalformedStartLine, "§3");
    refused(r("GET /", &[h]), MalformedStartLine, "§3");
    refused(r("GET / HTTP/1.1 extra", &[h]), MalformedStartLine, "§3");
    refused(r("G ET / HTTP/1.1", &[h]), MalformedStartLine, "§3");
    refused(r("GET /a b HTTP/1.1", &[h]), MalformedStartLine, "§3");
    refused(r("GET  / HTTP/1.1", &[h]), MalformedStartLine, "§3 one SP");
    refused(r("GET / HTTP/1.1 ", &[h]), MalformedStartLine, "§3");
    refused(r("GET\t/ HTTP/1.1", &[h]), MalformedStartLine, "§3");
    refused(
        r("GET / http/1.1", &[h]),
        MalformedStartLine,
        "§2.3 case-sensitive",
    );
    refused(r("GET / HTTP/1", &[h]), MalformedStartLine, "§2.3");
    refused(r("GET / HTTP/9.9", &[h]), UnsupportedVersion, "§2.3");
    refused(r("GET / HTTP/2.0", &[h]), UnsupportedVersion, "§2.3");
    refused(r("GET / HTTP/1.2", &[h]), UnsupportedVersion, "§2.3");
    refused(
        r("GET / HTTP/1.1", &["Host app.test"]),
        MalformedHeader,
        "§5",
    );
    refused(
        r("GET / HTTP/1.1", &[h, "Bad Header: x"]),
        MalformedHeader,
        "§5",
    );
    refused(
        r("GET / HTTP/1.1", &[h, ": empty name"]),
        MalformedHeader,
        "§5",
    );
    refused(
        r("GET / HTTP/1.1", &[h, "X(y): z"]),
        MalformedHeader,
        "§5 token",
    );
    refused(
        r("GET / HTTP/1.1", &[h, "X\u{e9}: z"]),
        MalformedHeader,
        "§5 token",
    );
    // Host.
    refused(
        r(
            "GET / HTTP/1.1",
            &["Host: echo.localhost", "Host: app.test"],
        ),
        DuplicateHost,
        "§3.2",
    );
    refused(
        r("GET / HTTP/1.1", &["Host: a", "X-Other: 1", "host: a"]),
        DuplicateHost,
        "§3.2",
    );
    refused(
        r("GET http://a/ HTTP/1.1", &["Host: a", "Host: a"]),
        DuplicateHost,
        "§3.2",
    );
    refused(r("GET / HTTP/1.1", &["Host: a:abc"]), InvalidHost, "§3.2");
    refused(r("GET / HTTP/1.1", &["Host: a:80a"]), InvalidHost, "§3.2");
    refused(r("GET / HTTP/1.1", &["Host: a:99999"]), InvalidHost, "§3.2");
    refused(r("GET / HTTP/1.1", &["Host: a:+80"]), InvalidHost, "§3.2");
    refused(r("GET / HTTP/1.1", &["Host: [::1]:x"]), InvalidHost, "§3.2");
    refused(
        r("GET / HTTP/1.1", &["Host: user@a"]),
        InvalidHost,
        "§3.2.2 userinfo",
    );
    refused(r("GET / HTTP/1.1", &["Host:"]), InvalidHost, "§3.2 empty");
    refused(r("GET / HTTP/1.1", &["Host: a b"]), InvalidHost, "§3.2");
    refused(r("GET / HTTP/1.1", &["Host: a/b"]), InvalidHost, "§3.2");
    refused(r("GET / HTTP/1.1", &["Host: a:1:2"]), InvalidHost, "§3.2");
    refused(r("GET / HTTP/1.1", &["Host: [::1"]), InvalidHost, "§3.2");
    refused(
        r("GET / HTTP/1.1", &["Host: :80"]),
        InvalidHost,
        "§3.2 empty host",
    );
    refused(
        r("GET http://u@a/ HTTP/1.1", &[h]),
        InvalidHost,
        "§3.2.2 userinfo",
    );
    refused(
        r("GET http:///x HTTP/1.1", &[h]),
        InvalidHost,
        "§3.2.2 empty authority",
    );
    refused(r("GET ftp://a/ HTTP/1.1", &[h]), InvalidTarget, "§3.2.2");
    refused(r("GET a.test HTTP/1.1", &[h]), InvalidTarget, "§3.2");
    refused(
        r("GET * HTTP/1.1", &[h]),
        InvalidTarget,
        "§3.2.4 only OPTIONS",
    );
    refused(
        r("CONNECT app.test:443 HTTP/1.1", &[h]),
        ConnectUnsupported,
        "RFC 9110 §9.3.6",
    );
    // Sizes.
    let mut many = vec![h.to_owned()];
    many.extend((0..SLOTS).map(|i| format!("X-{i}: {i}")));
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    refused(r("GET / HTTP/1.1", &many), TooManyHeaders, "RFC 6585 §5");
    let long_target = format!("GET /{} HTTP/1.1", "a".repeat(MAX_HEAD));
    refused(r(&long_target, &[h]), RequestLineTooLong, "§3 (414)");
    let long_header = format!("X-Large: {}", "b".repeat(MAX_HEAD));
    refused(
        r("GET / HTTP/1.1", &[h, &long_header]),
        HeadTooLarge,
        "RFC 6585 §5 (431)",
    );
    // Incomplete.
    cases.push((
        b"GET / HTTP/1.1\r\nHost: app.test\r\n".to_vec(),
        Partial,
        "§2.1",
    ));
    cases.push((
        b"GET / HTTP/1.1\r\nHost: app.test\r\n\r".to_vec(),
        Partial,
        "§2.1",
    ));
    cases.push((b"GET / HTT".to_vec(), Partial, "§2.1"));
    cases.push((b"".to_vec(), Partial, "§2.1"));
    cases.push((b"\r\n\r\n".to_vec(), Partial, "§2.2 empty lines ignored"));
    cases
}

#[test]
fn the_request_corpus_gets_its_verdicts() {
    let corpus = request_corpus();
    for (bytes, expected, rfc) in &corpus {
        let got = request(bytes);
        assert_eq!(&got, expected, "{} ({rfc})", String::from_utf8_lossy(bytes));
    }
    assert!(corpus.len() >= 100, "{}", corpus.len());
}

#[test]
fn leading_empty_lines_are_skipped_and_counted() {
    let bytes = b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nNEXT";
    assert_eq!(
        request(bytes),
        Accepted(bytes.len() - 4, Framing::Empty, Some("a".into()))
    );
}

#[test]
fn the_head_ends_where_the_body_starts() {
    let bytes = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET";
    assert_eq!(
        request(bytes),
        Accepted(bytes.len() - 6, Framing::Length(3), Some("a".into()))
    );
}

#[test]
fn status_codes_of_the_rules() {
    for (rule, status) in [
        (Rule::RequestLineTooLong, 414),
        (Rule::HeadTooLarge, 431),
        (Rule::TooManyHeaders, 431),
        (Rule::UnsupportedVersion, 505),
        (Rule::ConnectUnsupported, 405),
        (Rule::TransferEncodingWithContentLength, 400),
        (Rule::MalformedChunkSize, 400),
    ] {
        assert_eq!(
            Refusal::new(rule, Side::Request).status(),
            status,
            "{rule:?}"
        );
        assert_eq!(Refusal::new(rule, Side::Response).status(), 502, "{rule:?}");
    }
}

/// The response corpus: (head, answering, expected, RFC 9112 section).
fn response_corpus() -> Vec<(Vec<u8>, Answering, Verdict, &'static str)> {
    use Framing::*;
    let plain = Answering::default();
    let head = Answering {
        head_request: true,
        upgrade_requested: false,
    };
    let upgrade = Answering {
        head_request: false,
        upgrade_requested: true,
    };
    let cases: Vec<(&str, Answering, Result<Framing, Rule>, &str)> = vec![
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 5",
            plain,
            Ok(Length(5)),
            "§6.3 (5)",
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked",
            plain,
            Ok(Chunked),
            "§6.3 (4)",
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip",
            plain,
            Ok(UntilClose),
            "§6.3 (4) response",
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip",
            plain,
            Ok(UntilClose),
            "§6.3 (4)",
        ),
        ("HTTP/1.1 200 OK", plain, Ok(UntilClose), "§6.3 (8)"),
        ("HTTP/1.0 200 OK", plain, Ok(UntilClose), "§6.3 (8)"),
        ("HTTP/1.1 204 No Content", plain, Ok(Empty), "§6.3 (1)"),
        (
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 100",
            plain,
            Ok(Empty),
            "§6.3 (1)",
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 100",
            head,
            Ok(Empty),
            "§6.3 (1) HEAD",
        ),
        (
            "HTTP/1.1 100 Continue",
            plain,
            Ok(Empty),
            "§6.3 (1) interim",
        ),
        (
            "HTTP/1.1 103 Early Hints\r\nLink: </a>",
            plain,
            Ok(Empty),
            "§6.3 (1) interim",
        ),
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade",
            upgrade,
            Ok(Switch),
            "RFC 9110 §15.2.2",
        ),
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket",
            plain,
            Err(Rule::UnexpectedSwitch),
            "RFC 9110 §7.8",
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 5, 5",
            plain,
            Ok(Length(5)),
            "§6.3 (5)",
        ),
        ("HTTP/1.1 999 Odd", plain, Ok(UntilClose), "RFC 9110 §15"),
        ("HTTP/1.1 200 ", plain, Ok(UntilClose), "§4 empty reason"),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked",
            plain,
            Err(Rule::TransferEncodingWithContentLength),
            "§6.1",
        ),
        (
            "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nTransfer-Encoding: chunked",
            plain,
            Err(Rule::TransferEncodingWithContentLength),
            "§6.1 even without body",
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6",
            plain,
            Err(Rule::ConflictingContentLength),
            "§6.3 (5)",
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: x",
            plain,
            Err(Rule::InvalidContentLength),
            "§6.3 (5)",
        ),
        (
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked",
            plain,
            Err(Rule::TransferEncodingInHttp10),
            "§6.1",
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked",
            plain,
            Err(Rule::InvalidTransferEncoding),
            "§7.1",
        ),
        (
            "HTTP/1.1 200 OK\r\nX: a\r\n b",
            plain,
            Err(Rule::ObsoleteLineFolding),
            "§5.2",
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length : 5",
            plain,
            Err(Rule::WhitespaceBeforeColon),
            "§5.1",
        ),
        ("HTTP/1.1 200 OK\r\nX: a\x00", plain, Err(Rule::Nul), "§2.2"),
        (
            "HTTP/1.1 200 OK\r\nX: a\rb",
            plain,
            Err(Rule::BareCr),
            "§2.2",
        ),
        ("HTTP/1.1 200 OK\nX: a", plain, Err(Rule::BareLf), "§2.2"),
        (
            "HTTP/1.1 099 Low",
            plain,
            Err(Rule::MalformedStartLine),
            "§4",
        ),
        ("HTTP/1.1 20 OK", plain, Err(Rule::MalformedStartLine), "§4"),
        (
            "HTTP/1.1 abc OK",
            plain,
            Err(Rule::MalformedStartLine),
            "§4",
        ),
        (
            "HTTP/2.0 200 OK",
            plain,
            Err(Rule::UnsupportedVersion),
            "§2.3",
        ),
        ("ICY 200 OK", plain, Err(Rule::MalformedStartLine), "§4"),
        (
            "HTTP/1.1 200 OK\r\nBad Name: x",
            plain,
            Err(Rule::MalformedHeader),
            "§5",
        ),
    ];
    cases
        .into_iter()
        .map(|(text, answering, expected, rfc)| {
            let bytes = format!("{text}\r\n\r\n").into_bytes();
            let verdict = match expected {
                Ok(framing) => Accepted(bytes.len(), framing, None),
                Err(rule) => Refused(rule),
            };
            (bytes, answering, verdict, rfc)
        })
        .collect()
}

#[test]
fn the_response_corpus_gets_its_verdicts() {
    for (bytes, answering, expected, rfc) in response_corpus() {
        let got = response_to(&bytes, answering);
        assert_eq!(got, expected, "{} ({rfc})", String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn the_corpora_hold_enough_cases() {
    let total = request_corpus().len() + response_corpus().len() + chunked_corpus().len();
    assert!(total >= 120, "{total}");
}

/// The hyper path's reading of a Host value: `http::uri::Authority`, no
/// userinfo, then http.rs's port check (which `host_of` shares).
fn hyper_path(value: &str) -> Option<String> {
    let authority = value.parse::<http::uri::Authority>().ok()?;
    let authority = authority.as_str();
    if authority.contains('@') {
        return None;
    }
    let host = super::head::host_of(authority)?;
    (!host.is_empty()).then(|| host.to_owned())
}

#[test]
fn the_host_reading_is_the_hyper_paths() {
    for host in [
        "a",
        "a:1",
        "a:",
        "[::1]",
        "[::1]:80",
        "a:x",
        "a:65536",
        "a.b-c_d~e",
        "a!$&'()*+,;=",
        "[::1",
        "::1]",
        "a:1:2",
        ":80",
        "a@b",
        "a b",
        "",
        "a%20",
        "[::1]x",
    ] {
        let ours = super::head::host_of(host).map(str::to_owned);
        let theirs = hyper_path(host);
        assert!(
            ours == theirs,
            "{host:?}: ours {ours:?}, hyper path {theirs:?}"
        );
    }
}

#[test]
fn the_edit_plan_drops_hop_by_hop_lines_and_appends() {
    let buf = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nUpgrade: h2c\r\nProxy-Connection: x\r\nX-Kept: 2\r\nX-Forwarded-For: 9.9.9.9\r\n\r\nBODY";
    let mut headers = head::slots::<SLOTS>();
    let Ok(Parsed::Complete(head)) = parse_request(buf, &mut headers, MAX_HEAD) else {
        panic!("parsed");
    };
    let options = EditOptions {
        drop: &["x-forwarded-for"],
        ..EditOptions::default()
    };
    let plan: EditPlan<{ SLOTS + 1 }> =
        EditPlan::new(buf, head.len, (head.headers, &head.lines), &options).unwrap();
    let appended: [&[u8]; 1] = [b"X-Forwarded-For: 1.2.3.4\r\n"];
    let mut slices = [std::io::IoSlice::new(&[]); SLOTS + 4];
    let count = plan.slices(buf, &appended, &mut slices).unwrap();
    let written: Vec<u8> = slices[..count]
        .iter()
        .flat_map(|s| s.iter().copied())
        .collect();
    assert_eq!(
        String::from_utf8(written.clone()).unwrap(),
        "GET / HTTP/1.1\r\nHost: a\r\nX-Kept: 2\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n"
    );
    // The copy says the same as the slices.
    let mut copied = b"before".to_vec();
    plan.extend_into(b"", buf, appended[0], &mut copied);
    assert_eq!(copied[..6], *b"before");
    assert_eq!(copied[6..], written[..]);
}

#[test]
fn the_edit_plan_replaces_a_dropped_request_line_with_the_callers() {
    let buf = b"GET /old?q=1 HTTP/1.1\r\nHost: a\r\nX-Kept: 2\r\n\r\n";
    let mut headers = head::slots::<SLOTS>();
    let Ok(Parsed::Complete(head)) = parse_request(buf, &mut headers, MAX_HEAD) else {
        panic!("parsed");
    };
    let options = EditOptions {
        drop: &["host"],
        drop_start_line: true,
        ..EditOptions::default()
    };
    let plan: EditPlan<{ SLOTS + 1 }> =
        EditPlan::new(buf, head.len, (head.headers, &head.lines), &options).unwrap();
    let appended: [&[u8]; 1] = [b"Host: b\r\n"];
    let mut slices = [std::io::IoSlice::new(&[]); SLOTS + 4];
    let start = b"GET /new HTTP/1.1\r\n";
    let count = plan
        .slices_with_start(start, buf, &appended, &mut slices)
        .unwrap();
    assert_eq!(count, plan.slice_count(1));
    let written: Vec<u8> = slices[..count]
        .iter()
        .flat_map(|s| s.iter().copied())
        .collect();
    assert_eq!(
        String::from_utf8(written).unwrap(),
        "GET /new HTTP/1.1\r\nX-Kept: 2\r\nHost: b\r\n\r\n"
    );
    // Without the option, the start line given is ignored.
    let kept: EditPlan<{ SLOTS + 1 }> = EditPlan::new(
        buf,
        head.len,
        (head.headers, &head.lines),
        &EditOptions::default(),
    )
    .unwrap();
    let count = kept
        .slices_with_start(start, buf, &[], &mut slices)
        .unwrap();
    let written: Vec<u8> = slices[..count]
        .iter()
        .flat_map(|s| s.iter().copied())
        .collect();
    assert_eq!(&written[..], &buf[..]);
}

#[test]
fn an_upgrade_keeps_upgrade_and_connection_cannot_drop_host() {
    let buf = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, Host, Content-Length\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n";
    let mut headers = head::slots::<SLOTS>();
    let Ok(Parsed::Complete(head)) = parse_request(buf, &mut headers, MAX_HEAD) else {
        panic!("parsed");
    };
    assert!(head.upgrade);
    let options = EditOptions {
        upgrading: true,
        ..EditOptions::default()
    };
    let plan: EditPlan<4> =
        EditPlan::new(buf, head.len, (head.headers, &head.lines), &options).unwrap();
    let mut slices = [std::io::IoSlice::new(&[]); 8];
    let count = plan.slices(buf, &[], &mut slices).unwrap();
    let written: Vec<u8> = slices[..count]
        .iter()
        .flat_map(|s| s.iter().copied())
        .collect();
    assert_eq!(
        String::from_utf8(written.clone()).unwrap(),
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nContent-Length: 0\r\nConnection: upgrade\r\n\r\n"
    );
    let mut copied = Vec::new();
    plan.extend_into(b"", buf, b"", &mut copied);
    assert_eq!(copied, written);
}

/// A simple reference reading of a chunked body, written apart from the
/// decoder: sizes in hex up to `;` or CRLF, data, CRLF, trailer lines until
/// an empty one. Returns (end, data) or `None`.
fn reference_chunked(bytes: &[u8]) -> Option<(usize, Vec<u8>)> {
    let line_end = |from: usize| -> Option<usize> {
        bytes[from..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|at| from + at)
    };
    let mut at = 0;
    let mut data = Vec::new();
    loop {
        let end = line_end(at)?;
        let line = &bytes[at..end];
        let size_text = line.split(|&b| b == b';').next()?;
        let size_text = std::str::from_utf8(size_text)
            .ok()?
            .trim_end_matches([' ', '\t']);
        let size = usize::from_str_radix(size_text, 16).ok()?;
        if size_text.starts_with('+') {
            return None;
        }
        at = end + 2;
        if size == 0 {
            break;
        }
        data.extend_from_slice(bytes.get(at..at + size)?);
        at += size;
        if bytes.get(at..at + 2)? != b"\r\n" {
            return None;
        }
        at += 2;
    }
    // Trailer lines until an empty one.
    loop {
        let end = line_end(at)?;
        let empty = end == at;
        at = end + 2;
        if empty {
            return Some((at, data));
        }
    }
}

/// Decodes `bytes` fed in pieces cut at `cuts`: (consumed, data, done) or
/// the rule broken.
fn decode_split(bytes: &[u8], cuts: &[usize]) -> Result<(usize, Vec<u8>, bool), Rule> {
    let mut decoder = ChunkedDecoder::with_limits(Side::Request, 64, 256);
    let mut data = Vec::new();
    let mut fed = 0;
    let mut bounds: Vec<usize> = cuts.iter().map(|&c| c.min(bytes.len())).collect();
    bounds.push(bytes.len());
    bounds.sort_unstable();
    for bound in bounds {
        while fed < bound {
            let step = decoder.step(&bytes[fed..bound]).map_err(|r| r.rule)?;
            data.extend_from_slice(&bytes[fed..bound][step.data.clone()]);
            fed += step.consumed;
            if step.done {
                return Ok((fed, data, true));
            }
            if step.consumed == 0 {
                break;
            }
        }
    }
    Ok((fed, data, false))
}

/// The chunked corpus: (body, expected (end, data) or rule, RFC section).
/// A chunked body, its data or the rule it breaks, and the RFC section.
type ChunkedCase = (&'static [u8], Result<&'static [u8], Rule>, &'static str);

fn chunked_corpus() -> Vec<ChunkedCase> {
    use Rule::*;
    vec![
        (b"0\r\n\r\n", Ok(b""), "§7.1"),
        (b"3\r\nabc\r\n0\r\n\r\n", Ok(b"abc"), "§7.1"),
        (b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", Ok(b"abcde"), "§7.1"),
        (
            b"A\r\n0123456789\r\n0\r\n\r\n",
            Ok(b"0123456789"),
            "§7.1 hex",
        ),
        (
            b"a\r\n0123456789\r\n0\r\n\r\n",
            Ok(b"0123456789"),
            "§7.1 lower hex",
        ),
        (b"003\r\nabc\r\n0\r\n\r\n", Ok(b"abc"), "§7.1 leading zeros"),
        (b"3;x=y\r\nabc\r\n0\r\n\r\n", Ok(b"abc"), "§7.1.1"),
        (b"3;x\r\nabc\r\n0\r\n\r\n", Ok(b"abc"), "§7.1.1 no value"),
        (
            b"3 ;x=\"a;b\"\r\nabc\r\n0\r\n\r\n",
            Ok(b"abc"),
            "§7.1.1 BWS, quoted",
        ),
        (b"3;a=1;b=2\r\nabc\r\n0\r\n\r\n", Ok(b"abc"), "§7.1.1"),
        (b"0\r\nX-Sum: 1\r\n\r\n", Ok(b""), "§7.1.2"),
        (b"0\r\nA: 1\r\nB:\r\n\r\n", Ok(b""), "§7.1.2"),
        (b"\r\n", Err(MalformedChunkSize), "§7.1 empty size"),
        (b"g\r\n", Err(MalformedChunkSize), "§7.1"),
        (b"-1\r\n", Err(MalformedChunkSize), "§7.1"),
        (b"+3\r\nabc\r\n", Err(MalformedChunkSize), "§7.1"),
        (b"0x3\r\nabc\r\n", Err(MalformedChunkSize), "§7.1"),
        (
            b"3 \r\nabc\r\n",
            Err(MalformedChunkSize),
            "§7.1 space without extension",
        ),
        (b" 3\r\nabc\r\n", Err(MalformedChunkSize), "§7.1"),
        (b"3\nabc\r\n", Err(MalformedChunkSize), "§7.1 bare LF"),
        (b"3\rabc\r\n", Err(MalformedChunkSize), "§7.1 bare CR"),
        (
            b"1000000000000000\r\n",
            Err(MalformedChunkSize),
            "§7.1 too large",
        ),
        (
            b"00000000000000000000000000000000003\r\n",
            Err(MalformedChunkSize),
            "§7.1 too many digits",
        ),
        (
            b"3;\r\nabc\r\n",
            Err(MalformedChunkExtension),
            "§7.1.1 empty name",
        ),
        (b"3;=1\r\nabc\r\n", Err(MalformedChunkExtension), "§7.1.1"),
        (
            b"3;x=\r\nabc\r\n",
            Err(MalformedChunkExtension),
            "§7.1.1 empty value",
        ),
        (
            b"3;x=\"a\r\nabc\r\n",
            Err(MalformedChunkExtension),
            "§7.1.1 open quote",
        ),
        (
            b"3;x\nabc\r\n",
            Err(MalformedChunkExtension),
            "§7.1.1 bare LF",
        ),
        (
            b"3;x\x00\r\nabc\r\n",
            Err(MalformedChunkExtension),
            "§7.1.1 NUL",
        ),
        (
            b"3;xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n",
            Err(MalformedChunkExtension),
            "§7.1.1 too long",
        ),
        (
            b"3\r\nabcd\r\n",
            Err(MalformedChunkData),
            "§7.1 data longer than size",
        ),
        (b"3\r\nabc\n0\r\n\r\n", Err(MalformedChunkData), "§7.1"),
        (b"3\r\nab\r\n\r\n", Err(MalformedChunkData), "§7.1 shorter"),
        (b"0\r\n \r\n\r\n", Err(MalformedTrailer), "§7.1.2 folding"),
        (b"0\r\nX : 1\r\n\r\n", Err(MalformedTrailer), "§7.1.2"),
        (b"0\r\nX: 1\n\r\n", Err(MalformedTrailer), "§7.1.2 bare LF"),
        (b"0\r\nX: \x00\r\n\r\n", Err(MalformedTrailer), "§7.1.2 NUL"),
        (b"0\r\n\n", Err(MalformedTrailer), "§7.1 bare LF at the end"),
        (b"0\r\nNoColon\r\n\r\n", Err(MalformedTrailer), "§7.1.2"),
    ]
}

#[test]
fn the_chunked_corpus_gets_its_verdicts() {
    for (bytes, expected, rfc) in chunked_corpus() {
        let got = decode_split(bytes, &[]);
        let got = got.map(|(end, data, done)| {
            assert!(
                done,
                "{:?} did not end ({rfc})",
                String::from_utf8_lossy(bytes)
            );
            (end, data)
        });
        let expected = expected.map(|data| (bytes.len(), data.to_vec()));
        assert_eq!(
            got,
            expected,
            "{:?} ({rfc})",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn advance_counts_the_body_and_stops_at_its_end() {
    let mut decoder = ChunkedDecoder::new(Side::Response);
    let first = decoder.advance(b"3;x=1\r\nab").unwrap();
    assert_eq!((first.consumed, first.data, first.done), (9, 2, false));
    let rest = decoder.advance(b"c\r\n0\r\nT: 1\r\n\r\nHTTP/1.1").unwrap();
    assert_eq!((rest.consumed, rest.data, rest.done), (14, 1, true));
    const { assert!(super::chunked::MAX_EXTENSIONS > 0 && super::chunked::MAX_TRAILERS > 0) };
}

#[test]
fn persistence_follows_the_version_and_connection() {
    let mut headers = head::slots::<SLOTS>();
    let buf = b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
    let Ok(Parsed::Complete(head)) = parse_request(buf, &mut headers, MAX_HEAD) else {
        panic!("parsed");
    };
    assert!(head.connection.persistent(head.minor_version));
    let mut headers = head::slots::<SLOTS>();
    let buf = b"GET / HTTP/1.1\r\nConnection: x, close\r\n\r\n";
    let Ok(Parsed::Complete(head)) = parse_request(buf, &mut headers, MAX_HEAD) else {
        panic!("parsed");
    };
    assert!(!head.connection.persistent(head.minor_version));
}

#[test]
fn a_long_trailer_section_is_refused() {
    let mut body = b"0\r\n".to_vec();
    for _ in 0..40 {
        body.extend_from_slice(b"X-Trailer: 0123456789\r\n");
    }
    body.extend_from_slice(b"\r\n");
    assert_eq!(decode_split(&body, &[]), Err(Rule::MalformedTrailer));
}

/// Encodes chunks (with an optional extension each) and trailers.
fn encode_chunked(chunks: &[(Vec<u8>, bool)], trailers: &[String]) -> Vec<u8> {
    let mut body = Vec::new();
    for (data, extension) in chunks.iter().filter(|(data, _)| !data.is_empty()) {
        body.extend_from_slice(format!("{:x}", data.len()).as_bytes());
        if *extension {
            body.extend_from_slice(b";name=\"v\"");
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n");
    for trailer in trailers {
        body.extend_from_slice(trailer.as_bytes());
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"\r\n");
    body
}

/// Feeds `bytes` to the request parser in growing prefixes cut at `cuts`,
/// stopping at the first verdict that is not `Partial`, as a relay reading
/// a socket would.
fn request_split(bytes: &[u8], cuts: &[usize]) -> Verdict {
    let mut bounds: Vec<usize> = cuts.iter().map(|&c| c.min(bytes.len())).collect();
    bounds.push(bytes.len());
    bounds.sort_unstable();
    for bound in bounds {
        let verdict = request(&bytes[..bound]);
        if verdict != Partial {
            return verdict;
        }
    }
    Partial
}

fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    const INTERESTING: &[u8] = b"\r\n \t:;,\x00\"0aF-";
    for &(at, kind, byte) in edits {
        if bytes.is_empty() {
            break;
        }
        let at = at % bytes.len();
        let byte = if byte % 2 == 0 {
            INTERESTING[usize::from(byte / 2) % INTERESTING.len()]
        } else {
            byte
        };
        match kind % 3 {
            0 => bytes[at] = byte,
            1 => bytes.insert(at, byte),
            _ => {
                bytes.remove(at);
            }
        }
    }
    bytes
}

fn corpus_bytes() -> Vec<Vec<u8>> {
    request_corpus()
        .into_iter()
        .map(|(bytes, _, _)| bytes)
        .collect()
}

proptest! {
    #[test]
    fn prop_request_heads_read_the_same_whatever_the_split(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..4),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let corpus = corpus_bytes();
        let bytes = mutate(corpus[pick.index(corpus.len())].clone(), &edits);
        let whole = request(&bytes);
        prop_assert_eq!(&request_split(&bytes, &cuts), &whole);
        if let Accepted(len, _, _) = whole {
            // httparse alone finds the same end of the head.
            let mut headers = [httparse::EMPTY_HEADER; SLOTS];
            let mut plain = httparse::Request::new(&mut headers);
            prop_assert_eq!(plain.parse(&bytes), Ok(httparse::Status::Complete(len)));
        }
    }

    #[test]
    fn prop_hosts_read_as_the_hyper_path_reads_them(host in "[a-z0-9.:@%!\\[\\]-]{0,12}") {
        prop_assert_eq!(super::head::host_of(&host).map(str::to_owned), hyper_path(&host));
    }

    #[test]
    fn prop_random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = request(&bytes);
        let _ = response(&bytes);
        let _ = decode_split(&bytes, &[]);
    }

    #[test]
    fn prop_chunked_bodies_read_the_same_whatever_the_split(
        chunks in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..40), any::<bool>()), 0..6),
        trailers in prop::collection::vec("[A-Za-z-]{1,8}: [ -~]{0,10}", 0..3),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..3),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        tail in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut body = mutate(encode_chunked(&chunks, &trailers), &edits);
        let body_len = body.len();
        body.extend_from_slice(&tail);
        let whole = decode_split(&body, &[]);
        prop_assert_eq!(&decode_split(&body, &cuts), &whole);
        if edits.is_empty() {
            let data: Vec<u8> = chunks.iter().flat_map(|(d, _)| d.clone()).collect();
            prop_assert_eq!(&whole, &Ok((body_len, data, true)));
        }
        if let Ok((end, data, true)) = &whole {
            // The reference reading finds the same end and data.
            prop_assert_eq!(reference_chunked(&body), Some((*end, data.clone())));
        }
    }
}

#[test]
fn chunk_data_skipped_unread_leaves_the_decoder_where_reading_it_would() {
    let body = b"a;x=1\r\n0123456789\r\n3\r\nabc\r\n0\r\n\r\n";
    let mut decoder = ChunkedDecoder::new(Side::Request);
    // The size line and four bytes of data: six left.
    let first = decoder.advance(&body[..11]).unwrap();
    assert_eq!((first.consumed, first.data, first.done), (11, 4, false));
    assert_eq!(decoder.data_left(), 6);
    // Two skipped (spliced, say), then the rest read as usual.
    decoder.skip_data(2);
    assert_eq!(decoder.data_left(), 4);
    decoder.skip_data(4);
    assert_eq!(decoder.data_left(), 0);
    let rest = decoder.advance(&body[17..]).unwrap();
    assert_eq!((rest.data, rest.done), (3, true));
    assert_eq!(rest.consumed, body.len() - 17);
    // Outside a chunk's data, skipping does nothing.
    let mut fresh = ChunkedDecoder::new(Side::Request);
    fresh.skip_data(5);
    assert_eq!(fresh.data_left(), 0);
    assert!(fresh.advance(b"0\r\n\r\n").unwrap().done);
}
