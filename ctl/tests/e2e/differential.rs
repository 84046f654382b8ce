//! The differential suite (issue 15): a corpus of requests and backend
//! responses (`differential/corpus.rs`: valid, odd-but-valid, and every
//! smuggling shape RFC 9112 forbids) sent as raw bytes through the real
//! proxy to a raw backend that records exactly what it received
//! (`differential/wire.rs`). Each case states this proxy's verdict: the
//! statuses the client gets and the requests the backend sees, or 502 for a
//! bad response, with the RFC 9112 section behind it.
//!
//! `KNOWN_DIFFERENT_TODAY` lists the cases the proxy answers otherwise,
//! with why; the test asserts every other case, and that each listed case
//! still differs (a case that gets fixed must leave the list). `scripts/differential.sh` runs the same corpus through nginx and
//! HAProxy too ([`table_against_nginx_and_haproxy`], ignored here).

use crate::harness;

mod corpus;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use corpus::{Case, END, Kind, Outcome, Seen};
use harness::Daemon;
use wire::Recorder;

/// The cases the proxy answers otherwise than the verdict, and why: with
/// the relay serving HTTP/1, only bodies found malformed after the response
/// head was sent remain.
const KNOWN_DIFFERENT_TODAY: &[(&str, &str)] = &[
    ("bad-response-chunk-size-bad", CUT),
    ("bad-response-chunk-size-overflow", CUT),
    ("bad-response-chunk-data-no-crlf", CUT),
    ("bad-response-chunk-trailer-bad", CUT),
    ("bad-response-chunk-ext-bad", CUT),
];

const CUT: &str = "the response head has gone to the client when the body turns out malformed: the client gets a cut response and a closed connection, not 502 (nginx and HAProxy cut it too)";

/// How long a proxy may take to answer a case before it counts as timed
/// out (the daemon's request timeout is 3 s).
const DEADLINE: Duration = Duration::from_secs(8);

/// Sends case `index` through the proxy at `port`, with `tag` naming the
/// recording, and returns what happened.
fn run_case(case: &Case, index: usize, port: u16, recorder: &Recorder, tag: usize) -> Outcome {
    recorder.begin(tag);
    let mut bytes = match case.kind {
        Kind::Request => case.bytes.clone(),
        Kind::Response => format!("GET /r/{index} HTTP/1.1\r\nHost: app.test\r\n\r\n").into_bytes(),
    };
    bytes.extend_from_slice(END);
    let received = wire::exchange(port, &bytes, DEADLINE);
    // A marker request on a new connection: once the backend has it, what
    // the case sent to the backend has arrived too.
    let marker = format!("/marker/{tag}");
    let request = format!("GET {marker} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n");
    let _ = wire::exchange(port, request.as_bytes(), DEADLINE);
    let marked = harness::wait_until(Duration::from_secs(5), || recorder.saw(tag, &marker));
    assert!(
        marked,
        "{}: the marker request did not reach the backend",
        case.name
    );

    let (answers, _) = wire::read_all(&received.bytes, true);
    let mut statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    // A request the backend received only in part (the head and some of
    // a body, before the proxy found the body malformed and closed) can
    // never complete: it counts as not received.
    let (requests, _partial) = recorder.requests(tag);
    let mut seen: Vec<Seen> = requests
        .iter()
        .filter(|r| r.target != "/end" && r.target != marker)
        .map(|r| Seen {
            method: r.line.split(' ').next().unwrap_or_default().to_owned(),
            target: if r.ambiguous {
                format!("{} (ambiguous framing)", r.target)
            } else {
                r.target.clone()
            },
            body: r.body.clone(),
        })
        .collect();
    let mut body = None;
    if case.kind == Kind::Response {
        statuses.truncate(1);
        seen.clear();
        if case.verdict.body.is_some() {
            body = answers.first().map(|a| a.body.clone());
        }
    }
    Outcome {
        statuses,
        seen,
        body,
        timed_out: received.timed_out,
    }
}

/// The raw responses of the response cases, by case index.
fn canned(cases: &[Case]) -> Arc<Vec<Vec<u8>>> {
    Arc::new(cases.iter().map(|c| c.bytes.clone()).collect())
}

/// A daemon with one worker whose listener sends `app.test` to the
/// recording backend.
fn daemon(backend: SocketAddr) -> (Daemon, u16) {
    let port = harness::free_port();
    let daemon = Daemon::start(&harness::config(port, 1, "request_timeout = 3", ""));
    daemon.add_cluster(harness::cluster("app"));
    daemon.add_frontend(harness::frontend(port, "app.test", Some("app")));
    daemon.add_backend(harness::backend("app", "recorder", backend));
    (daemon, port)
}

#[test]
fn the_corpus_is_large_and_its_known_differences_exist() {
    let cases = corpus::corpus();
    assert!(cases.len() >= 200, "only {} cases", cases.len());
    for (name, reason) in KNOWN_DIFFERENT_TODAY {
        assert!(
            cases.iter().any(|c| c.name == *name),
            "{name} is not a case"
        );
        assert!(!reason.is_empty(), "{name} has no reason");
    }
    let requests = cases.iter().filter(|c| c.kind == Kind::Request).count();
    assert!(
        requests >= 150 && cases.len() - requests >= 50,
        "{requests} requests"
    );
}

#[test]
fn every_case_gets_our_verdict_but_the_known_differences() {
    let cases = corpus::corpus();
    let recorder = Recorder::start(SocketAddr::from(([127, 0, 0, 1], 0)), canned(&cases));
    let (daemon, port) = daemon(recorder.address);
    let pids = daemon.worker_pids();
    let mut unexpected = Vec::new();
    let mut still_known = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let outcome = run_case(case, index, port, &recorder, index + 1);
        let known = KNOWN_DIFFERENT_TODAY
            .iter()
            .any(|(name, _)| *name == case.name);
        match (outcome == case.verdict, known) {
            (true, true) => still_known.push(case.name.clone()),
            (false, false) => unexpected.push(format!(
                "{}: got {}, verdict {} ({})",
                case.name,
                outcome.summary(),
                case.verdict.summary(),
                case.rfc
            )),
            _ => {}
        }
    }
    assert!(
        unexpected.is_empty(),
        "{} cases differ from their verdict:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
    assert!(
        still_known.is_empty(),
        "these cases now get their verdict: remove them from KNOWN_DIFFERENT_TODAY: {still_known:?}"
    );
    assert_eq!(daemon.worker_pids(), pids, "a worker died on the corpus");
    assert!(!daemon.stderr_text().contains("panicked"));
}

fn port_from(variable: &str) -> Option<u16> {
    std::env::var(variable).ok().and_then(|v| v.parse().ok())
}

/// Run by `scripts/differential.sh`, which starts nginx and HAProxy in
/// front of the recording backend's port (`DIFF_BACKEND_PORT`) and passes
/// their ports (`DIFF_NGINX_PORT`, `DIFF_HAPROXY_PORT`; an absent one is
/// shown as such). Prints the table and the counts, and writes them to
/// `DIFF_TABLE` when set.
#[test]
#[ignore = "run by scripts/differential.sh, with nginx and HAProxy"]
fn table_against_nginx_and_haproxy() {
    let cases = corpus::corpus();
    let backend_port = port_from("DIFF_BACKEND_PORT").unwrap_or(0);
    let recorder = Recorder::start(
        SocketAddr::from(([127, 0, 0, 1], backend_port)),
        canned(&cases),
    );
    let (_daemon, port) = daemon(recorder.address);
    // Ours, nginx, HAProxy: the port of each that runs.
    let proxies = [
        Some(port),
        port_from("DIFF_NGINX_PORT"),
        port_from("DIFF_HAPROXY_PORT"),
    ];
    let mut table = String::from(
        "| case | verdict | ours | nginx | HAProxy | ours differs from both: why (RFC 9112) |\n|---|---|---|---|---|---|\n",
    );
    let mut counts = [0usize; 5];
    for (index, case) in cases.iter().enumerate() {
        let outcomes: Vec<Option<Outcome>> = proxies
            .iter()
            .enumerate()
            .map(|(number, proxy)| {
                let tag = (number + 1) * 100_000 + index;
                proxy.map(|port| run_case(case, index, port, &recorder, tag))
            })
            .collect();
        let ours = outcomes[0].as_ref().unwrap();
        let same = |other: &Option<Outcome>| other.as_ref().map(|o| o == ours);
        let differs_from_both =
            same(&outcomes[1]) == Some(false) && same(&outcomes[2]) == Some(false);
        counts[0] += 1;
        counts[1] += usize::from(*ours == case.verdict);
        counts[2] += usize::from(same(&outcomes[1]) == Some(true));
        counts[3] += usize::from(same(&outcomes[2]) == Some(true));
        counts[4] += usize::from(differs_from_both);
        let cell = |outcome: &Option<Outcome>| {
            outcome
                .as_ref()
                .map_or("(absent)".to_owned(), Outcome::summary)
                .replace('|', "\\|")
        };
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            case.name,
            cell(&Some(case.verdict.clone())),
            cell(&outcomes[0]),
            cell(&outcomes[1]),
            cell(&outcomes[2]),
            if differs_from_both { case.rfc } else { "" }
        ));
    }
    let summary = format!(
        "cases: {}; ours as the verdict: {}; ours = nginx: {}; ours = HAProxy: {}; ours differs from both: {}{}{}\n",
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4],
        if proxies[1].is_none() {
            " (nginx absent)"
        } else {
            ""
        },
        if proxies[2].is_none() {
            " (HAProxy absent)"
        } else {
            ""
        },
    );
    println!("{table}\n{summary}");
    if let Ok(path) = std::env::var("DIFF_TABLE") {
        std::fs::write(path, format!("{table}\n{summary}")).unwrap();
    }
}
