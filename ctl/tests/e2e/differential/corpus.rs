//! The corpus: requests and backend responses, valid, odd-but-valid and
//! malformed, each with this proxy's verdict and the RFC 9112 section
//! behind it (sections are RFC 9112's unless said otherwise).
//!
//! A request case is the bytes a client sends; the runner appends
//! [`END`], a last request asking to close, so that every exchange ends
//! with the proxy closing the connection, and a request that mis-framed a
//! body shows (the end request is eaten, or a smuggled one appears). A
//! response case is the raw bytes a backend answers to `GET /r/N`.

/// A request or a response case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Response,
}

/// What a case leads to: this proxy's verdict, and what a run observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Request cases: the status of every answer the client got, in
    /// order (the end request's included). Response cases: the first one.
    pub statuses: Vec<u16>,
    /// Request cases: the requests the backend received (the end request
    /// left out), as method, target and body data.
    pub seen: Vec<Seen>,
    /// Response cases forwarded: the body data the client received.
    pub body: Option<Vec<u8>>,
    /// The client's connection was neither answered nor closed in time.
    pub timed_out: bool,
}

/// A request as the backend received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub body: Vec<u8>,
}

impl Outcome {
    /// A short text for tables and failure messages.
    pub fn summary(&self) -> String {
        let mut text = self
            .statuses
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",");
        if text.is_empty() {
            text.push_str("closed");
        }
        if self.timed_out {
            text.push_str(" timeout");
        }
        if let Some(body) = &self.body {
            text.push_str(&format!(" body {}", short(body)));
        }
        if !self.seen.is_empty() {
            let seen: Vec<String> = self
                .seen
                .iter()
                .map(|s| format!("{} {} {}", s.method, s.target, short(&s.body)))
                .collect();
            text.push_str(&format!(" => {}", seen.join("; ")));
        }
        text
    }
}

/// Bytes as a short text: escaped when short, else length and a hash.
fn short(bytes: &[u8]) -> String {
    if bytes.len() <= 24 {
        format!("{:?}", String::from_utf8_lossy(bytes))
    } else {
        let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        format!("[{} B #{:08x}]", bytes.len(), hash as u32)
    }
}

/// One case of the corpus.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub kind: Kind,
    pub bytes: Vec<u8>,
    pub verdict: Outcome,
    /// Why the verdict is right.
    pub rfc: &'static str,
}

/// The request the runner appends to every request case.
pub const END: &[u8] = b"GET /end HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n";

/// The host every case asks for.
const HOST: &str = "Host: app.test\r\n";

fn seen(method: &str, target: &str, body: &[u8]) -> Seen {
    Seen {
        method: method.into(),
        target: target.into(),
        body: body.to_vec(),
    }
}

/// `start` and `lines` (each ending with CRLF) with the Host line, then an
/// empty line and `body`.
fn request(start: &str, lines: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = format!("{start}\r\n{HOST}{lines}\r\n").into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// `body` chunked in pieces of `size` bytes.
fn chunked(body: &[u8], size: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for piece in body.chunks(size.max(1)) {
        bytes.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        bytes.extend_from_slice(piece);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    bytes
}

struct Builder(Vec<Case>);

impl Builder {
    fn push(
        &mut self,
        name: String,
        kind: Kind,
        bytes: Vec<u8>,
        verdict: Outcome,
        rfc: &'static str,
    ) {
        assert!(
            !self.0.iter().any(|c| c.name == name),
            "two cases named {name}"
        );
        self.0.push(Case {
            name,
            kind,
            bytes,
            verdict,
            rfc,
        });
    }

    /// A request case forwarded: the backend sees `seen`, every request
    /// (and the end one) is answered 200.
    fn forwarded(
        &mut self,
        name: impl Into<String>,
        bytes: Vec<u8>,
        seen: Vec<Seen>,
        rfc: &'static str,
    ) {
        let statuses = vec![200; seen.len() + 1];
        let verdict = Outcome {
            statuses,
            seen,
            body: None,
            timed_out: false,
        };
        self.push(name.into(), Kind::Request, bytes, verdict, rfc);
    }

    /// A request case refused with `status` and closed, after the requests
    /// in `before` (answered 200) went through.
    fn refused_after(
        &mut self,
        name: impl Into<String>,
        bytes: Vec<u8>,
        before: Vec<Seen>,
        status: u16,
        rfc: &'static str,
    ) {
        let mut statuses = vec![200; before.len()];
        statuses.push(status);
        let verdict = Outcome {
            statuses,
            seen: before,
            body: None,
            timed_out: false,
        };
        self.push(name.into(), Kind::Request, bytes, verdict, rfc);
    }

    fn refused(&mut self, name: impl Into<String>, bytes: Vec<u8>, status: u16, rfc: &'static str) {
        self.refused_after(name, bytes, Vec::new(), status, rfc);
    }

    /// A response case: the client gets `status`, and `body` when given.
    fn response(
        &mut self,
        name: impl Into<String>,
        bytes: &[u8],
        status: u16,
        body: Option<&[u8]>,
        rfc: &'static str,
    ) {
        let verdict = Outcome {
            statuses: vec![status],
            seen: Vec::new(),
            body: body.map(<[u8]>::to_vec),
            timed_out: false,
        };
        self.push(name.into(), Kind::Response, bytes.to_vec(), verdict, rfc);
    }
}

/// Every case.
pub fn corpus() -> Vec<Case> {
    let mut cases = Builder(Vec::new());
    valid_requests(&mut cases);
    valid_bodies(&mut cases);
    smuggling(&mut cases);
    chunk_framing(&mut cases);
    head_syntax(&mut cases);
    start_lines(&mut cases);
    sizes(&mut cases);
    responses(&mut cases);
    bad_responses(&mut cases);
    cases.0
}

fn valid_requests(cases: &mut Builder) {
    for method in ["GET", "HEAD", "DELETE", "OPTIONS", "PURGE", "get"] {
        let target = format!("/m/{method}");
        cases.forwarded(
            format!("method-{method}"),
            request(&format!("{method} {target} HTTP/1.1"), "", b""),
            vec![seen(method, &target, b"")],
            "§3.1: a method is a token, case-sensitive",
        );
    }
    for (name, target) in [
        ("query", "/a?b=c&d=%20"),
        ("encoded", "/a%2Fb/%2e%2e/c"),
        ("root", "/"),
        ("long-path", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p"),
        ("odd-chars", "/~!$&'()*+,;=:@"),
    ] {
        cases.forwarded(
            format!("target-{name}"),
            request(&format!("GET {target} HTTP/1.1"), "", b""),
            vec![seen("GET", target, b"")],
            "§3.2.1: origin-form forwarded as received",
        );
    }
    cases.forwarded(
        "target-absolute-form",
        b"GET http://app.test/abs HTTP/1.1\r\nHost: app.test\r\n\r\n".to_vec(),
        vec![seen("GET", "/abs", b"")],
        "§3.2.2: absolute-form accepted, forwarded in origin-form",
    );
    // HTTP/1.0 without keep-alive: answered, then closed (the end request
    // is never read).
    cases.push(
        "http10-with-host".into(),
        Kind::Request,
        b"GET /ten HTTP/1.0\r\nHost: app.test\r\n\r\n".to_vec(),
        Outcome {
            statuses: vec![200],
            seen: vec![seen("GET", "/ten", b"")],
            body: None,
            timed_out: false,
        },
        "§2.3, §9.3: HTTP/1.0 answered, connection closed after",
    );
    let header_lines: [(&str, &str); 9] = [
        (
            "lowercase-names",
            "x-lower: a\r\ncontent-type: text/plain\r\n",
        ),
        ("tab-ows", "X-Tab:\tvalue\t\r\n"),
        ("no-ows", "X-Tight:value\r\n"),
        ("empty-value", "X-Empty:\r\n"),
        ("many-spaces", "X-Spaces:     a   b     \r\n"),
        ("obs-text", "X-Latin: caf\u{e9}\r\n"),
        ("repeated", "X-Rep: 1\r\nX-Rep: 2\r\nX-Rep: 3\r\n"),
        ("quoted", "X-Q: \"a, b\" ; c=\"d\"\r\n"),
        ("connection-keep-alive", "Connection: keep-alive\r\n"),
    ];
    for (name, lines) in header_lines {
        let target = format!("/h/{name}");
        cases.forwarded(
            format!("header-{name}"),
            request(&format!("GET {target} HTTP/1.1"), lines, b""),
            vec![seen("GET", &target, b"")],
            "§5: field-name \":\" OWS field-value OWS",
        );
    }
    cases.forwarded(
        "leading-empty-line",
        [&b"\r\n"[..], &request("GET /lead HTTP/1.1", "", b"")].concat(),
        vec![seen("GET", "/lead", b"")],
        "§2.2: empty lines before the request line are ignored",
    );
    for count in [2, 3, 5] {
        let mut bytes = Vec::new();
        let mut all = Vec::new();
        for index in 0..count {
            let target = format!("/p{count}/{index}");
            bytes.extend(request(&format!("GET {target} HTTP/1.1"), "", b""));
            all.push(seen("GET", &target, b""));
        }
        cases.forwarded(
            format!("pipelined-{count}"),
            bytes,
            all,
            "§9.3.2: pipelined requests answered in order",
        );
    }
    cases.forwarded(
        "host-with-port",
        b"GET /port HTTP/1.1\r\nHost: app.test:80\r\n\r\n".to_vec(),
        vec![seen("GET", "/port", b"")],
        "§3.2: Host is uri-host [ \":\" port ]",
    );
    cases.forwarded(
        "host-upper-case",
        b"GET /upper HTTP/1.1\r\nHost: APP.TEST\r\n\r\n".to_vec(),
        vec![seen("GET", "/upper", b"")],
        "RFC 3986 §3.2.2: host names are case-insensitive",
    );
}

fn valid_bodies(cases: &mut Builder) {
    let body: Vec<u8> = (0..3000u32)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz"[i as usize % 26])
        .collect();
    for size in [0usize, 1, 5, 100, 1000, 3000] {
        let data = &body[..size];
        cases.forwarded(
            format!("content-length-{size}"),
            request(
                "POST /cl HTTP/1.1",
                &format!("Content-Length: {size}\r\n"),
                data,
            ),
            vec![seen("POST", "/cl", data)],
            "§6.2: Content-Length delimits the body",
        );
    }
    for method in ["PUT", "PATCH", "DELETE"] {
        cases.forwarded(
            format!("content-length-{method}"),
            request(
                &format!("{method} /b HTTP/1.1"),
                "Content-Length: 4\r\n",
                b"data",
            ),
            vec![seen(method, "/b", b"data")],
            "§6.2: any method may have a body",
        );
    }
    for (size, piece) in [
        (0usize, 1usize),
        (1, 1),
        (10, 3),
        (100, 7),
        (1000, 100),
        (3000, 1000),
    ] {
        let data = &body[..size];
        cases.forwarded(
            format!("chunked-{size}-by-{piece}"),
            request(
                "POST /ch HTTP/1.1",
                "Transfer-Encoding: chunked\r\n",
                &chunked(data, piece),
            ),
            vec![seen("POST", "/ch", data)],
            "§7.1: a chunked body",
        );
    }
    let odd_chunked: [(&str, &str, &[u8]); 10] = [
        (
            "upper-hex",
            "Transfer-Encoding: chunked\r\n",
            b"A\r\n0123456789\r\n0\r\n\r\n",
        ),
        (
            "leading-zeros",
            "Transfer-Encoding: chunked\r\n",
            b"0005\r\nhello\r\n000\r\n\r\n",
        ),
        (
            "extension-token",
            "Transfer-Encoding: chunked\r\n",
            b"5;name=value\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "extension-quoted",
            "Transfer-Encoding: chunked\r\n",
            b"5;n=\"v; x\"\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "extension-bare",
            "Transfer-Encoding: chunked\r\n",
            b"5;flag\r\nhello\r\n0;last\r\n\r\n",
        ),
        (
            "extension-bws",
            "Transfer-Encoding: chunked\r\n",
            b"5 ; a = b\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "trailers",
            "Transfer-Encoding: chunked\r\n",
            b"5\r\nhello\r\n0\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\n",
        ),
        (
            "te-uppercase",
            "Transfer-Encoding: CHUNKED\r\n",
            b"5\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "te-ows",
            "Transfer-Encoding:  chunked  \r\n",
            b"5\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "te-empty-members",
            "Transfer-Encoding: ,chunked,\r\n",
            b"5\r\nhello\r\n0\r\n\r\n",
        ),
    ];
    for (name, lines, bytes) in odd_chunked {
        cases.forwarded(
            format!("chunked-{name}"),
            request("POST /odd HTTP/1.1", lines, bytes),
            vec![seen(
                "POST",
                "/odd",
                if name.starts_with("upper") {
                    b"0123456789"
                } else {
                    b"hello"
                },
            )],
            "§7.1, §7.1.1, §7.1.2: hex sizes, extensions and trailers",
        );
    }
    cases.forwarded(
        "content-length-leading-zeros",
        request("POST /z HTTP/1.1", "Content-Length: 0005\r\n", b"hello"),
        vec![seen("POST", "/z", b"hello")],
        "RFC 9110 §8.6: Content-Length = 1*DIGIT",
    );
    cases.forwarded(
        "content-length-same-twice",
        request(
            "POST /same HTTP/1.1",
            "Content-Length: 5\r\nContent-Length: 5\r\n",
            b"hello",
        ),
        vec![seen("POST", "/same", b"hello")],
        "§6.3 (5): identical values may be read as one",
    );
    cases.forwarded(
        "content-length-same-list",
        request("POST /list HTTP/1.1", "Content-Length: 5, 5\r\n", b"hello"),
        vec![seen("POST", "/list", b"hello")],
        "§6.3 (5): a list of identical values may be read as one",
    );
    cases.forwarded(
        "pipelined-post-then-get",
        [
            request("POST /first HTTP/1.1", "Content-Length: 5\r\n", b"hello"),
            request("GET /second HTTP/1.1", "", b""),
        ]
        .concat(),
        vec![
            seen("POST", "/first", b"hello"),
            seen("GET", "/second", b""),
        ],
        "§6.3: the body ends where its framing says, the next request follows",
    );
    cases.forwarded(
        "pipelined-chunked-then-get",
        [
            request(
                "POST /first HTTP/1.1",
                "Transfer-Encoding: chunked\r\n",
                b"5\r\nhello\r\n0\r\n\r\n",
            ),
            request("GET /second HTTP/1.1", "", b""),
        ]
        .concat(),
        vec![
            seen("POST", "/first", b"hello"),
            seen("GET", "/second", b""),
        ],
        "§7.1: the chunked body ends at its last chunk and trailers",
    );
    let inner = b"GET /inner HTTP/1.1\r\nHost: app.test\r\n\r\n";
    cases.forwarded(
        "body-looking-like-a-request",
        request(
            "POST /outer HTTP/1.1",
            &format!("Content-Length: {}\r\n", inner.len()),
            inner,
        ),
        vec![seen("POST", "/outer", inner)],
        "§6.2: the body is data, whatever it looks like",
    );
}

/// Transfer-Encoding and Content-Length read two ways: the classic
/// smuggling shapes (CL.TE, TE.CL, TE.TE) and their variants.
fn smuggling(cases: &mut Builder) {
    let te_values = [
        "chunked",
        "Chunked",
        " chunked",
        "gzip, chunked",
        "chunked, chunked",
    ];
    for (index, te) in te_values.iter().enumerate() {
        for (order, cl_first) in [("cl-first", true), ("te-first", false)] {
            let (te_line, cl_line) = (
                format!("Transfer-Encoding: {te}\r\n"),
                "Content-Length: 6\r\n",
            );
            let lines = if cl_first {
                format!("{cl_line}{te_line}")
            } else {
                format!("{te_line}{cl_line}")
            };
            cases.refused(
                format!("te-and-cl-{order}-{index}"),
                request("POST /smuggle HTTP/1.1", &lines, b"0\r\n\r\nG"),
                400,
                "§6.1, §6.3 (3): Transfer-Encoding with Content-Length is refused and closed",
            );
        }
    }
    for (name, lines) in [
        ("two-lines", "Content-Length: 5\r\nContent-Length: 6\r\n"),
        ("list", "Content-Length: 5, 6\r\n"),
        ("list-no-space", "Content-Length: 5,6\r\n"),
        (
            "zero-and-five",
            "Content-Length: 0\r\nContent-Length: 5\r\n",
        ),
        (
            "list-and-line",
            "Content-Length: 5, 5\r\nContent-Length: 6\r\n",
        ),
    ] {
        cases.refused(
            format!("cl-differing-{name}"),
            request("POST /cl HTTP/1.1", lines, b"hello!"),
            400,
            "§6.3 (5): differing Content-Length values are refused",
        );
    }
    for (name, value) in [
        ("plus", "+5"),
        ("minus", "-5"),
        ("hex", "0x5"),
        ("suffix", "5a"),
        ("space-inside", "5 5"),
        ("empty", ""),
        ("exponent", "5e0"),
        ("decimal", "5.0"),
        ("overflow", "99999999999999999999999"),
        ("list-empty-member", "5,"),
    ] {
        cases.refused(
            format!("cl-invalid-{name}"),
            request(
                "POST /cl HTTP/1.1",
                &format!("Content-Length: {value}\r\n"),
                b"hello",
            ),
            400,
            "§6.3 (5), RFC 9110 §8.6: Content-Length = 1*DIGIT",
        );
    }
    for (name, value) in [
        ("gzip", "gzip"),
        ("identity", "identity"),
        ("chunked-gzip", "chunked, gzip"),
        ("chunked-identity", "chunked, identity"),
        ("xchunked", "xchunked"),
        ("chunked-x", "chunkedx"),
        ("quoted", "\"chunked\""),
        ("chunk", "chunk"),
    ] {
        cases.refused(
            format!("te-not-chunked-{name}"),
            request(
                "POST /te HTTP/1.1",
                &format!("Transfer-Encoding: {value}\r\n"),
                b"5\r\nhello\r\n0\r\n\r\n",
            ),
            400,
            "§6.3 (4): a request whose last coding is not chunked is refused",
        );
    }
    for (name, lines) in [
        (
            "chunked-twice-list",
            "Transfer-Encoding: chunked, chunked\r\n",
        ),
        (
            "chunked-twice-lines",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        ),
        ("empty", "Transfer-Encoding: \r\n"),
        ("chunked-parameter", "Transfer-Encoding: chunked;q=1\r\n"),
        ("comma-only", "Transfer-Encoding: ,\r\n"),
    ] {
        cases.refused(
            format!("te-invalid-{name}"),
            request("POST /te HTTP/1.1", lines, b"5\r\nhello\r\n0\r\n\r\n"),
            400,
            "§6.1, §7: chunked at most once, without parameters",
        );
    }
    cases.refused(
        "te-in-http10",
        b"POST /ten HTTP/1.0\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec(),
        400,
        "§6.1: Transfer-Encoding in an HTTP/1.0 request is faulty framing",
    );
    // TE obfuscated so that one reader sees it and another does not.
    for (name, line) in [
        (
            "space-before-colon",
            "Transfer-Encoding : chunked\r\nContent-Length: 6\r\n",
        ),
        (
            "tab-before-colon",
            "Transfer-Encoding\t: chunked\r\nContent-Length: 6\r\n",
        ),
        (
            "folded",
            "Transfer-Encoding:\r\n chunked\r\nContent-Length: 6\r\n",
        ),
        (
            "vertical-tab",
            "Transfer-Encoding:\x0bchunked\r\nContent-Length: 6\r\n",
        ),
        (
            "cr-in-value",
            "Transfer-Encoding: chunked\rX: y\r\nContent-Length: 6\r\n",
        ),
        (
            "lf-line-end",
            "Transfer-Encoding: chunked\nContent-Length: 6\r\n",
        ),
    ] {
        cases.refused(
            format!("te-obfuscated-{name}"),
            request("POST /te HTTP/1.1", line, b"0\r\n\r\nG"),
            400,
            "§5.1, §5.2, §2.2: a field line that could be read two ways is refused",
        );
    }
    // A request after a refused one is never read.
    cases.refused_after(
        "pipelined-then-te-and-cl",
        [
            request("GET /ok HTTP/1.1", "", b""),
            request(
                "POST /bad HTTP/1.1",
                "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
                b"0\r\n\r\n",
            ),
            request("GET /never HTTP/1.1", "", b""),
        ]
        .concat(),
        vec![seen("GET", "/ok", b"")],
        400,
        "§6.3 (3): refused and closed, what follows is never read",
    );
}

fn chunk_framing(cases: &mut Builder) {
    let te = "Transfer-Encoding: chunked\r\n";
    let bad_bodies: [(&str, &[u8]); 22] = [
        ("size-not-hex", b"g\r\nhello\r\n0\r\n\r\n"),
        ("size-negative", b"-5\r\nhello\r\n0\r\n\r\n"),
        ("size-0x", b"0x5\r\nhello\r\n0\r\n\r\n"),
        ("size-empty", b"\r\nhello\r\n0\r\n\r\n"),
        ("size-leading-space", b" 5\r\nhello\r\n0\r\n\r\n"),
        ("size-trailing-space", b"5 \r\nhello\r\n0\r\n\r\n"),
        (
            "size-overflow",
            b"fffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "size-overflow-wraps",
            b"10000000000000005\r\nhello\r\n0\r\n\r\n",
        ),
        ("size-lf-only", b"5\nhello\r\n0\r\n\r\n"),
        ("size-cr-only", b"5\rhello\r\n0\r\n\r\n"),
        ("size-plus", b"+5\r\nhello\r\n0\r\n\r\n"),
        ("size-underscore", b"0_5\r\nhello\r\n0\r\n\r\n"),
        ("data-longer", b"3\r\nhello\r\n0\r\n\r\n"),
        ("data-shorter", b"8\r\nhello\r\n0\r\n\r\n"),
        ("data-no-crlf", b"5\r\nhello0\r\n\r\n"),
        ("data-lf-only", b"5\r\nhello\n0\r\n\r\n"),
        ("ext-empty", b"5;\r\nhello\r\n0\r\n\r\n"),
        ("ext-no-name", b"5;=v\r\nhello\r\n0\r\n\r\n"),
        ("ext-unterminated-quote", b"5;a=\"v\r\nhello\r\n0\r\n\r\n"),
        ("ext-space-in-value", b"5;a=b c\r\nhello\r\n0\r\n\r\n"),
        ("ext-control", b"5;a=\x01\r\nhello\r\n0\r\n\r\n"),
        ("ext-lf-inside", b"5;a\nb\r\nhello\r\n0\r\n\r\n"),
    ];
    for (name, body) in bad_bodies {
        cases.refused(
            format!("chunk-{name}"),
            request("POST /bad-chunk HTTP/1.1", te, body),
            400,
            "§7.1, §7.1.1: chunk-size = 1*HEXDIG, extensions are ; name [= value], CRLF after data",
        );
    }
    let mut long_extension = b"5;a=".to_vec();
    long_extension.extend(std::iter::repeat_n(b'x', 20_000));
    long_extension.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    cases.refused(
        "chunk-ext-too-long",
        request("POST /bad-chunk HTTP/1.1", te, &long_extension),
        400,
        "§7.1.1: a recipient limits extension length (ours 1 KiB per line)",
    );
    for (name, body) in [
        (
            "trailer-no-colon",
            &b"5\r\nhello\r\n0\r\nbad trailer\r\n\r\n"[..],
        ),
        ("trailer-folded", b"5\r\nhello\r\n0\r\nX-A: 1\r\n 2\r\n\r\n"),
        ("trailer-space-name", b"5\r\nhello\r\n0\r\nX A: 1\r\n\r\n"),
        ("trailer-lf-end", b"5\r\nhello\r\n0\r\nX-A: 1\n\r\n"),
    ] {
        cases.refused(
            format!("chunk-{name}"),
            request("POST /bad-chunk HTTP/1.1", te, body),
            400,
            "§7.1.2: trailer fields are field lines",
        );
    }
}

fn head_syntax(cases: &mut Builder) {
    let bad_lines: [(&str, &[u8]); 22] = [
        ("obs-fold-space", b"X-A: a\r\n b\r\n"),
        ("obs-fold-tab", b"X-A: a\r\n\tb\r\n"),
        ("space-first-line", b" X-A: a\r\n"),
        ("nul-in-value", b"X-A: a\0b\r\n"),
        ("nul-in-name", b"X-\0A: a\r\n"),
        ("nul-alone", b"\0\r\n"),
        ("bare-cr-in-value", b"X-A: a\rb\r\n"),
        ("bare-cr-end", b"X-A: a\r\rX-B: b\r\n"),
        ("bare-lf", b"X-A: a\nX-B: b\r\n"),
        ("space-before-colon", b"X-A : a\r\n"),
        ("tab-before-colon", b"X-A\t: a\r\n"),
        ("space-before-colon-host", b"Host : other.test\r\n"),
        ("cl-space-before-colon", b"Content-Length : 5\r\n"),
        ("space-in-name", b"X A: a\r\n"),
        ("no-colon", b"X-A a\r\n"),
        ("empty-name", b": a\r\n"),
        ("control-in-value", b"X-A: a\x01b\r\n"),
        ("del-in-value", b"X-A: a\x7fb\r\n"),
        ("escape-in-value", b"X-A: \x1b[31m\r\n"),
        ("quote-in-name", b"X\"A: a\r\n"),
        ("slash-in-name", b"X/A: a\r\n"),
        ("brace-in-name", b"X{A}: a\r\n"),
    ];
    for (name, lines) in bad_lines {
        let mut bytes = b"GET /head HTTP/1.1\r\nHost: app.test\r\n".to_vec();
        bytes.extend_from_slice(lines);
        bytes.extend_from_slice(b"\r\n");
        cases.refused(
            format!("head-{name}"),
            bytes,
            400,
            "§5, §5.1, §5.2, §2.2: field lines without folding, NUL, bare CR or whitespace before the colon",
        );
    }
    for (name, lines) in [
        ("two-hosts", "Host: app.test\r\nHost: other.test\r\n"),
        ("two-hosts-same", "Host: app.test\r\nHost: app.test\r\n"),
        ("host-bad-port", "Host: app.test:abc\r\n"),
        ("host-port-too-big", "Host: app.test:70000\r\n"),
        ("host-userinfo", "Host: user@app.test\r\n"),
        ("host-space", "Host: app test\r\n"),
    ] {
        cases.refused(
            format!("host-{name}"),
            format!("GET /host HTTP/1.1\r\n{lines}\r\n").into_bytes(),
            400,
            "§3.2: exactly one valid Host",
        );
    }
    cases.refused(
        "host-missing-http11",
        b"GET /nohost HTTP/1.1\r\n\r\n".to_vec(),
        400,
        "§3.2: an HTTP/1.1 request without Host is refused",
    );
}

fn start_lines(cases: &mut Builder) {
    let bad: [(&str, &[u8]); 16] = [
        ("garbage", b"GARBAGE\r\n"),
        ("method-only", b"GET\r\n"),
        ("no-version", b"GET /\r\n"),
        ("extra-part", b"GET / HTTP/1.1 x\r\n"),
        ("two-spaces", b"GET  / HTTP/1.1\r\n"),
        ("tab-separator", b"GET\t/ HTTP/1.1\r\n"),
        ("space-in-target", b"GET /a b HTTP/1.1\r\n"),
        ("lowercase-version", b"GET / http/1.1\r\n"),
        ("version-no-minor", b"GET / HTTP/1\r\n"),
        ("version-garbage", b"GET / HTTP/x.y\r\n"),
        ("nul-in-target", b"GET /a\0b HTTP/1.1\r\n"),
        ("cr-in-target", b"GET /a\rb HTTP/1.1\r\n"),
        ("trailing-space", b"GET / HTTP/1.1 \r\n"),
        ("leading-space", b" GET / HTTP/1.1\r\n"),
        ("bad-method-char", b"G(T / HTTP/1.1\r\n"),
        ("target-scheme-ftp", b"GET ftp://app.test/ HTTP/1.1\r\n"),
    ];
    for (name, line) in bad {
        let mut bytes = line.to_vec();
        bytes.extend_from_slice(b"Host: app.test\r\n\r\n");
        cases.refused(
            format!("line-{name}"),
            bytes,
            400,
            "§3: request-line = method SP request-target SP HTTP-version",
        );
    }
    for version in ["HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/3.0"] {
        cases.refused(
            format!("version-{version}"),
            format!("GET / {version}\r\nHost: app.test\r\n\r\n").into_bytes(),
            505,
            "§2.3: only HTTP/1.0 and HTTP/1.1 on this connection",
        );
    }
    cases.refused(
        "connect",
        b"CONNECT app.test:443 HTTP/1.1\r\nHost: app.test:443\r\n\r\n".to_vec(),
        405,
        "RFC 9110 §9.3.6: this proxy tunnels nothing but upgrades",
    );
}

fn sizes(cases: &mut Builder) {
    for (name, length) in [("70k", 70 * 1024), ("100k", 100 * 1024)] {
        cases.refused(
            format!("request-line-{name}"),
            request(&format!("GET /{} HTTP/1.1", "a".repeat(length)), "", b""),
            414,
            "§3: a request line beyond max_header_size (64 KiB) is answered 414",
        );
    }
    for (name, length) in [("70k", 70 * 1024), ("100k", 100 * 1024)] {
        cases.refused(
            format!("head-field-{name}"),
            request(
                "GET /big HTTP/1.1",
                &format!("X-Big: {}\r\n", "b".repeat(length)),
                b"",
            ),
            431,
            "RFC 6585 §5: a head beyond max_header_size is answered 431",
        );
    }
    let many: String = (0..2000).map(|i| format!("X-Many-{i}: {i}\r\n")).collect();
    cases.refused(
        "head-many-fields",
        request("GET /many HTTP/1.1", &many, b""),
        431,
        "RFC 6585 §5: more field lines than the proxy reads is answered 431",
    );
    let fits = format!("X-Fits: {}\r\n", "f".repeat(6 * 1024));
    cases.forwarded(
        "head-field-6k",
        request("GET /fits HTTP/1.1", &fits, b""),
        vec![seen("GET", "/fits", b"")],
        "§5: a head within max_header_size is forwarded",
    );
}

fn responses(cases: &mut Builder) {
    let valid: [(&str, &[u8], &[u8]); 14] = [
        ("cl", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello"),
        ("cl-zero", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", b""),
        ("chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", b"hello"),
        ("chunked-ext", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\n\r\n", b"hello"),
        ("chunked-trailers", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", b"hello"),
        ("chunked-many", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nh\r\n1\r\ne\r\n3\r\nllo\r\n0\r\n\r\n", b"hello"),
        ("until-close", b"HTTP/1.1 200 OK\r\n\r\nhello until close", b"hello until close"),
        ("until-close-http10", b"HTTP/1.0 200 OK\r\n\r\nten", b"ten"),
        ("te-gzip-until-close", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nnot-really-gzip", b"not-really-gzip"),
        ("cl-same-twice", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", b"hello"),
        ("reason-empty", b"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nhi", b"hi"),
        ("reason-long", b"HTTP/1.1 200 Everything Is Quite Fine Thanks\r\nContent-Length: 2\r\n\r\nhi", b"hi"),
        ("interim-100", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", b"hi"),
        ("lowercase-names", b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-a: b\r\n\r\nhi", b"hi"),
    ];
    for (name, bytes, body) in valid {
        cases.response(
            format!("response-{name}"),
            bytes,
            200,
            Some(body),
            "§6.3: the response body framed by its head, forwarded",
        );
    }
    for (status, name) in [(204, "204"), (304, "304")] {
        let bytes = format!("HTTP/1.1 {status} X\r\nX-A: b\r\n\r\n");
        cases.response(
            format!("response-{name}-no-body"),
            bytes.as_bytes(),
            status,
            Some(b""),
            "§6.3 (1): a 204 or 304 has no body",
        );
    }
    for (status, name) in [(404, "404"), (500, "500"), (302, "302")] {
        let bytes = format!("HTTP/1.1 {status} X\r\nContent-Length: 3\r\n\r\nabc");
        cases.response(
            format!("response-status-{name}"),
            bytes.as_bytes(),
            status,
            Some(b"abc"),
            "RFC 9110 §15: any status is forwarded",
        );
    }
}

fn bad_responses(cases: &mut Builder) {
    let bad: [(&str, &[u8]); 36] = [
        ("te-and-cl", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ("cl-and-te", b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ("cl-differing", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
        ("cl-differing-list", b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!"),
        ("cl-invalid", b"HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello"),
        ("cl-negative", b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello"),
        ("cl-plus", b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello"),
        ("obs-fold", b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 5\r\n\r\nhello"),
        ("nul", b"HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 5\r\n\r\nhello"),
        ("bare-cr", b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 5\r\n\r\nhello"),
        ("space-before-colon", b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello"),
        ("space-in-name", b"HTTP/1.1 200 OK\r\nX A: b\r\nContent-Length: 5\r\n\r\nhello"),
        ("chunk-size-bad", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nz\r\nhello\r\n0\r\n\r\n"),
        ("chunk-size-overflow", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
        ("chunk-data-no-crlf", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n"),
        ("chunk-ext-bad", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;=\r\nhello\r\n0\r\n\r\n"),
        ("te-chunked-twice", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ("te-in-http10", b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ("status-4-digits", b"HTTP/1.1 2000 OK\r\nContent-Length: 5\r\n\r\nhello"),
        ("status-2-digits", b"HTTP/1.1 20 OK\r\nContent-Length: 5\r\n\r\nhello"),
        ("status-letters", b"HTTP/1.1 2x0 OK\r\nContent-Length: 5\r\n\r\nhello"),
        ("version-2", b"HTTP/2.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
        ("no-version", b"200 OK\r\nContent-Length: 5\r\n\r\nhello"),
        ("garbage", b"this is not http at all\r\n\r\n"),
        ("101-unasked", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"),
        ("lf-only", b"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello"),
        ("empty", b""),
        ("cl-overflow", b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nhello"),
        ("cl-space-inside", b"HTTP/1.1 200 OK\r\nContent-Length: 5 5\r\n\r\nhello"),
        ("nul-in-status-line", b"HTTP/1.1 200 O\0K\r\nContent-Length: 5\r\n\r\nhello"),
        ("bare-cr-status-line", b"HTTP/1.1 200 OK\rX\r\nContent-Length: 5\r\n\r\nhello"),
        ("te-space-before-colon", b"HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello"),
        ("obs-fold-first", b"HTTP/1.1 200 OK\r\n X-A: a\r\nContent-Length: 5\r\n\r\nhello"),
        ("chunk-trailer-bad", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nno colon\r\n\r\n"),
        ("control-in-value", b"HTTP/1.1 200 OK\r\nX-A: \x01\r\nContent-Length: 5\r\n\r\nhello"),
        ("head-too-large", b"HTTP/1.1 200 OK\r\nX-Big: "),
    ];
    for (name, bytes) in bad {
        let mut bytes = bytes.to_vec();
        if name == "head-too-large" {
            bytes.extend(std::iter::repeat_n(b'v', 100 * 1024));
            bytes.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
        }
        cases.response(
            format!("bad-response-{name}"),
            &bytes,
            502,
            None,
            "§6.3, §7.1, §5, §4: a response framed ambiguously or malformed is answered 502",
        );
    }
}
