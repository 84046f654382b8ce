//! The access log's formats, its two paths (events and direct request
//! records) writing the same bytes, and the filter deciding for both.
use super::format::{duration, uint128};
use super::*;
use proptest::prelude::*;
use sozu_command::proto::command::{ProtobufAccessLog, protobuf_endpoint};
use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::UNIX_EPOCH;
use tracing_subscriber::prelude::*;

#[derive(Default)]
struct Captured {
    text: Mutex<Vec<String>>,
    binary: Mutex<Vec<Vec<u8>>>,
}

impl AccessLogWriter for Captured {
    fn write_text(&self, record: &[u8]) {
        self.text
            .lock()
            .unwrap()
            .push(String::from_utf8(record.to_vec()).unwrap());
    }
    fn write_binary(&self, record: &[u8]) {
        self.binary.lock().unwrap().push(record.to_vec());
    }
}

fn capture(format: AccessLogFormat, emit: impl FnOnce()) -> Arc<Captured> {
    let captured = Arc::new(Captured::default());
    let layer = AccessLogLayer::new(format, captured.clone(), "worker-0");
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, emit);
    captured
}

fn request() {
    tracing::info!(
        target: "access",
        request_id = "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        client = %"127.0.0.1:4000",
        cluster = "app",
        backend = "app-0",
        backend_address = "127.0.0.1:8000",
        method = "GET",
        route = "app.test/a\u{1b}[31mb?q=1",
        status = 200u16,
        bytes_in = 10u64,
        bytes_out = 20u64,
        service_ms = 1.5,
        "request"
    );
    tracing::info!(target: "other", "not an access record");
}

#[test]
fn ascii_lines_carry_every_field_and_escape_control_characters() {
    let captured = capture(AccessLogFormat::Ascii, request);
    let lines = captured.text.lock().unwrap();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert!(
        line.contains("[01ARZ3NDEKTSV4RRFFQ69G5FAV 01ARZ3NDEKTSV4RRFFQ69G5FAV app app-0]"),
        "{line}"
    );
    assert!(line.contains("127.0.0.1:4000 127.0.0.1:8000"), "{line}");
    assert!(line.contains(" 10 20 "), "{line}");
    assert!(line.contains("GET app.test /a\\x1b[31mb?q=1 200"), "{line}");
    assert!(!line.contains('\u{1b}'), "{line}");
}

#[test]
fn json_lines_split_the_route_and_keep_numbers() {
    let captured = capture(AccessLogFormat::Json, request);
    let lines = captured.text.lock().unwrap();
    let line = &lines[0];
    assert!(line.starts_with("{\"time\":\""), "{line}");
    assert!(line.contains("\"host\":\"app.test\""), "{line}");
    assert!(line.contains("\"path\":\"/a\\u001b[31mb?q=1\""), "{line}");
    assert!(line.contains("\"status\":200"), "{line}");
    assert!(line.contains("\"service_ms\":1.5"), "{line}");
    assert!(line.contains("\"tag\":\"worker-0\""), "{line}");
}

#[test]
fn protobuf_records_are_length_delimited_with_two_zero_bytes_after() {
    let captured = capture(AccessLogFormat::Protobuf, request);
    let records = captured.binary.lock().unwrap();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(&record[record.len() - 2..], &[0, 0]);
    let decoded = ProtobufAccessLog::decode_length_delimited(&record[..record.len() - 2]).unwrap();
    assert_eq!(decoded.cluster_id.as_deref(), Some("app"));
    assert_eq!(decoded.service_time, 1500);
    assert_eq!(decoded.bytes_out, 20);
    assert_eq!(decoded.protocol, "http");
    assert_eq!(
        decoded.session_address.unwrap().to_socket_addr(),
        "127.0.0.1:4000".parse().unwrap()
    );
    let id = ulid::Ulid::from_string("01ARZ3NDEKTSV4RRFFQ69G5FAV")
        .unwrap()
        .0;
    assert_eq!(decoded.request_id, uint128(id));
    match decoded.endpoint.inner {
        Some(protobuf_endpoint::Inner::Http(http)) => {
            assert_eq!(http.status, Some(200));
            assert_eq!(http.authority.as_deref(), Some("app.test"));
            assert_eq!(http.path.as_deref(), Some("/a\u{1b}[31mb?q=1"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_control_character_is_escaped_and_other_text_kept() {
    assert_eq!(escaped("plain text/é"), "plain text/é");
    assert_eq!(escaped("a\u{1b}b\u{7f}"), "a\\x1bb\\x7f");
    // C1 controls (UTF-8 0xc2 0x80..0x9f) too; other 0xc2 characters
    // are kept.
    assert_eq!(escaped("a\u{85}b\u{a9}"), "a\\x85b\u{a9}");
}

#[test]
fn durations_print_as_sozu_does() {
    assert_eq!(duration(None), "-");
    assert_eq!(duration(Some(0.25)), "250μs");
    assert_eq!(duration(Some(12.4)), "12ms");
    assert_eq!(json_string("a\"b\\c\u{7}"), "\"a\\\"b\\\\c\\u0007\"");
    let time = UNIX_EPOCH + std::time::Duration::from_micros(1_796_278_225_123_456);
    assert_eq!(rfc3339(time), "2026-12-03T06:10:25.123456Z");
    assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
    let leap = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
    assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000000Z");
}

thread_local! {
    /// The time records are written at, when a test fixes it.
    pub(super) static FIXED_TIME: Cell<Option<SystemTime>> = const { Cell::new(None) };
}

/// Counts the access events that reach the subscriber as events.
#[derive(Clone, Default)]
struct Events(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> Layer<S> for Events {
    fn on_event(&self, event: &tracing::Event<'_>, _context: Context<'_, S>) {
        if event.metadata().target() == TARGET {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Request records as the relay and the hyper path make them, with odd
/// inputs: control characters and quotes in what the client sent, no
/// backend, no response or connection time, an empty user agent, a time
/// under a millisecond, and nothing at all.
fn entries() -> Vec<Entry<'static>> {
    let full = Entry {
        request_id: Some("01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        client: Some("127.0.0.1:4000"),
        cluster: Some("app"),
        backend: Some("app-0"),
        backend_address: Some("127.0.0.1:8000"),
        method: Some("GET"),
        host: Some("app.test"),
        path: Some("/a?q=1"),
        protocol: Some("http"),
        user_agent: Some("curl/8.0"),
        status: Some(200),
        bytes_in: Some(10),
        bytes_out: Some(20),
        service: Elapsed::Measured(Duration::from_nanos(12_345_678)),
        response: Elapsed::Measured(Duration::from_micros(1500)),
        connect: Elapsed::Measured(Duration::from_nanos(250_001)),
        ..Entry::default()
    };
    let odd = Entry {
        client: Some("[::1]:5000"),
        cluster: None,
        backend: None,
        backend_address: Some("-"),
        method: Some("P\u{7f}UT"),
        host: Some("app.test\t\u{85}"),
        path: Some("/a\u{1b}[31mb \"q\"\\\n\r"),
        protocol: Some("https"),
        user_agent: Some("agent\u{0}\u{a9}é"),
        status: Some(502),
        response: Elapsed::Unmeasured,
        connect: Elapsed::Unmeasured,
        service: Elapsed::Measured(Duration::from_nanos(999)),
        ..full
    };
    let sparse = Entry {
        host: Some("-"),
        path: Some(""),
        user_agent: Some(""),
        bytes_in: None,
        status: None,
        connect: Elapsed::Absent,
        service: Elapsed::Measured(Duration::from_secs(7200)),
        // Not part of a request record: left out both ways.
        session_id: Some("01BX5ZZKBKACTAV9WEVGEMMVRY"),
        error: Some("ignored"),
        duration: Elapsed::Measured(Duration::from_secs(1)),
        ..odd
    };
    vec![full, odd, sparse, Entry::default()]
}

/// The records `entries` leave at a fixed time, through a layer that
/// takes them `direct`ly or as events, and how many events went out.
fn through_layer(format: AccessLogFormat, direct: bool) -> (Vec<Vec<u8>>, usize) {
    records_of(format, direct, &entries())
}

fn records_of(
    format: AccessLogFormat,
    direct: bool,
    entries: &[Entry<'_>],
) -> (Vec<Vec<u8>>, usize) {
    let captured = Arc::new(Captured::default());
    let layer = AccessLogLayer::new(format, captured.clone(), "worker-0");
    let layer = if direct { layer.direct() } else { layer };
    let events = Events::default();
    let subscriber = tracing_subscriber::registry()
        .with(layer)
        .with(events.clone());
    FIXED_TIME.set(Some(
        UNIX_EPOCH + Duration::from_nanos(1_796_278_225_123_456_789),
    ));
    tracing::subscriber::with_default(subscriber, || {
        for entry in entries {
            log_request(entry);
        }
    });
    FIXED_TIME.set(None);
    let mut records: Vec<Vec<u8>> = captured
        .text
        .lock()
        .unwrap()
        .iter()
        .map(|text| text.as_bytes().to_vec())
        .collect();
    records.extend(captured.binary.lock().unwrap().iter().cloned());
    (records, events.0.load(Ordering::SeqCst))
}

#[test]
fn direct_records_are_the_bytes_events_give_in_every_format() {
    for format in [
        AccessLogFormat::Ascii,
        AccessLogFormat::Json,
        AccessLogFormat::Protobuf,
    ] {
        let (by_event, events) = through_layer(format, false);
        let (direct, no_events) = through_layer(format, true);
        assert_eq!(events, entries().len(), "{format:?}");
        assert_eq!(
            no_events, 0,
            "{format:?}: a direct record also went out as an event"
        );
        assert_eq!(by_event.len(), entries().len(), "{format:?}");
        for (event, direct) in by_event.iter().zip(&direct) {
            assert_eq!(
                String::from_utf8_lossy(event),
                String::from_utf8_lossy(direct),
                "{format:?}"
            );
            assert_eq!(event, direct, "{format:?}");
        }
        assert_eq!(by_event.len(), direct.len(), "{format:?}");
    }
}

#[test]
fn the_odd_request_records_read_as_before() {
    let (records, _) = through_layer(AccessLogFormat::Ascii, true);
    let lines: Vec<String> = records
        .iter()
        .map(|record| String::from_utf8(record.clone()).unwrap())
        .collect();
    let after_pid = |line: &str| line.split_once(" INFO ").unwrap().1.to_owned();
    assert!(lines[0].starts_with("2026-12-03T06:10:25.123456Z 1796278225123456789 "));
    assert_eq!(
        after_pid(&lines[0]),
        "worker-0 [01ARZ3NDEKTSV4RRFFQ69G5FAV 01ARZ3NDEKTSV4RRFFQ69G5FAV app app-0] \
         127.0.0.1:4000 127.0.0.1:8000 2ms/12ms/2ms/-/- 10 20 [curl/8.0] - http GET app.test /a?q=1 200"
    );
    // No answer: the times read 0μs, as the relay's -1 ms always printed.
    assert_eq!(
        after_pid(&lines[1]),
        "worker-0 [01ARZ3NDEKTSV4RRFFQ69G5FAV 01ARZ3NDEKTSV4RRFFQ69G5FAV - -] \
         [::1]:5000 - 0μs/1μs/0μs/-/- 10 20 [agent\\x00©é] - https P\\x7fUT \
         app.test\\x09\\x85 /a\\x1b[31mb \"q\"\\\\x0a\\x0d 502"
    );
    assert_eq!(
        after_pid(&lines[2]),
        "worker-0 [01ARZ3NDEKTSV4RRFFQ69G5FAV 01ARZ3NDEKTSV4RRFFQ69G5FAV - -] \
         [::1]:5000 - 0μs/7200000ms/0μs/-/- 0 20 [-] - https P\\x7fUT - - 0"
    );
    let (records, _) = through_layer(AccessLogFormat::Json, true);
    let line = String::from_utf8(records[1].clone()).unwrap();
    assert!(
        line.contains(",\"protocol\":\"https\",\"request_id\":"),
        "{line}"
    );
    assert!(
        line.contains("\"cluster\":null,\"backend\":null,\"backend_address\":null"),
        "{line}"
    );
    assert!(
        line.contains("\"path\":\"/a\\u001b[31mb \\\"q\\\"\\\\\\n\\r\""),
        "{line}"
    );
    assert!(
        line.ends_with("\"service_ms\":0.000999,\"response_ms\":-1,\"connect_ms\":-1}"),
        "{line}"
    );
}

#[test]
fn without_the_layer_or_its_direct_mode_request_records_are_events() {
    let events = Events::default();
    let subscriber = tracing_subscriber::registry().with(events.clone());
    tracing::subscriber::with_default(subscriber, || log_request(&entries()[0]));
    assert_eq!(events.0.load(Ordering::SeqCst), 1);
}

/// The filter decides at the time of each request, as it would for an
/// event: a reload (what `sozu logging` does) turns records off and on.
#[test]
fn a_filter_changed_at_run_time_applies_to_direct_records() {
    let captured = Arc::new(Captured::default());
    let layer = AccessLogLayer::new(AccessLogFormat::Ascii, captured.clone(), "w").direct();
    let (filter, handle) =
        tracing_subscriber::reload::Layer::new(tracing_subscriber::EnvFilter::new("access=info"));
    let events = Events::default();
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .with(events.clone());
    let count = || captured.text.lock().unwrap().len();
    tracing::subscriber::with_default(subscriber, || {
        log_request(&entries()[0]);
        assert_eq!(count(), 1);
        handle
            .reload(tracing_subscriber::EnvFilter::new("info,access=off"))
            .unwrap();
        log_request(&entries()[0]);
        assert_eq!(count(), 1, "written with access=off");
        handle
            .reload(tracing_subscriber::EnvFilter::new("warn,access=info"))
            .unwrap();
        log_request(&entries()[0]);
        assert_eq!(count(), 2);
    });
    assert_eq!(events.0.load(Ordering::SeqCst), 0);
}

#[test]
fn times_in_events_come_back_as_the_same_durations() {
    for nanos in [
        0,
        1,
        999,
        250_001,
        1_499_999,
        1_500_000,
        12_345_678,
        987_654_321,
        3_600_000_000_007,
        86_400_123_456_789,
    ] {
        let time = Duration::from_nanos(nanos);
        let ms = time.as_secs_f64() * 1000.0;
        assert_eq!(Elapsed::from_millis(ms), Elapsed::Measured(time), "{nanos}");
    }
    assert_eq!(Elapsed::from_millis(-1.0), Elapsed::Unmeasured);
    assert_eq!(Elapsed::from_millis(f64::NAN), Elapsed::Unmeasured);
    assert_eq!(
        Elapsed::from_millis(f64::INFINITY),
        Elapsed::Measured(Duration::MAX)
    );
}

/// Events keep carrying what they carry: the JSON format lists every field
/// of a refusal, in its order, and ascii ends the line with its error.
#[test]
fn other_access_events_keep_their_own_fields() {
    let captured = capture(AccessLogFormat::Json, || {
        tracing::info!(target: "access", request_id = "r", client = "c", status = 403u16, rule = ?"deny", "request");
    });
    let line = &captured.text.lock().unwrap()[0];
    assert!(
        line.ends_with(",\"protocol\":\"http\",\"request_id\":\"r\",\"client\":\"c\",\"status\":403,\"rule\":\"\\\"deny\\\"\"}"),
        "{line}"
    );
    let captured = capture(AccessLogFormat::Ascii, || {
        tracing::info!(target: "access", client = "c", status = 400u16, error = %"bad\nhead", "request");
    });
    let line = &captured.text.lock().unwrap()[0];
    assert!(
        line.ends_with("[- - - -] c - -/-/-/-/- 0 0 [-] - http - - - 400 | bad\\x0ahead"),
        "{line}"
    );
}

/// A text an entry may carry: missing, `-`, empty, plain, a ULID, an
/// address, or full of control characters, quotes and backslashes.
fn text() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        Just("-".to_owned()),
        Just(String::new()),
        Just("01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned()),
        Just("[::1]:8080".to_owned()),
        "[a-z0-9./:?=]{1,12}",
        "[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}\"\\\\ é©a-z/-]{1,8}",
    ])
}

fn elapsed() -> impl Strategy<Value = Elapsed> {
    prop_oneof![
        Just(Elapsed::Absent),
        Just(Elapsed::Unmeasured),
        (0u64..100_000_000_000_000)
            .prop_map(|nanos| Elapsed::Measured(Duration::from_nanos(nanos))),
    ]
}

proptest! {
    #[test]
    fn prop_any_request_record_is_the_same_both_ways(
        texts in prop::collection::vec(text(), 13),
        numbers in (any::<Option<u16>>(), any::<Option<u64>>(), any::<Option<u64>>()),
        times in (elapsed(), elapsed(), elapsed(), elapsed()),
    ) {
        let t = |index: usize| texts[index].as_deref();
        let entry = Entry {
            session_id: t(0),
            request_id: t(1),
            client: t(2),
            cluster: t(3),
            backend: t(4),
            backend_address: t(5),
            method: t(6),
            host: t(7),
            path: t(8),
            protocol: t(9),
            user_agent: t(10),
            error: t(11),
            status: numbers.0,
            bytes_in: numbers.1,
            bytes_out: numbers.2,
            service: times.0,
            response: times.1,
            connect: times.2,
            duration: times.3,
        };
        for format in [AccessLogFormat::Ascii, AccessLogFormat::Json, AccessLogFormat::Protobuf] {
            let (by_event, _) = records_of(format, false, &[entry]);
            let (direct, _) = records_of(format, true, &[entry]);
            prop_assert_eq!(by_event.len(), 1);
            prop_assert_eq!(&by_event, &direct, "{:?} {:?}", format, entry);
        }
    }
}

/// The protobuf message is reused from record to record: a record written
/// after others (with fields the later one lacks, a TCP one among them) is
/// the bytes it is when written first, on a thread of its own.
#[test]
fn a_reused_protobuf_message_carries_nothing_over() {
    let tcp = Entry {
        session_id: Some("01BX5ZZKBKACTAV9WEVGEMMVRY"),
        protocol: Some("tcp"),
        error: Some("closed"),
        duration: Elapsed::Measured(Duration::from_millis(3)),
        ..entries()[0]
    };
    for last in entries() {
        let after = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let mut written = entries();
                    written.extend([tcp, last]);
                    records_of(AccessLogFormat::Protobuf, true, &written).0
                })
                .join()
                .unwrap()
        });
        let alone = std::thread::scope(|scope| {
            scope
                .spawn(|| records_of(AccessLogFormat::Protobuf, true, &[last]).0)
                .join()
                .unwrap()
        });
        assert_eq!(after.last(), alone.last(), "{last:?}");
    }
    // And events (read into the same message) too.
    let emit = || {
        tracing::info!(target: "access", session_id = "01BX5ZZKBKACTAV9WEVGEMMVRY", protocol = "tcp", end = "closed", "session");
        tracing::info!(target: "access", status = 408u16, "request");
    };
    let both = capture(AccessLogFormat::Protobuf, emit);
    let last = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                capture(
                    AccessLogFormat::Protobuf,
                    || tracing::info!(target: "access", status = 408u16, "request"),
                )
            })
            .join()
            .unwrap()
    });
    let decode = |record: &Vec<u8>| {
        let mut message =
            ProtobufAccessLog::decode_length_delimited(&record[..record.len() - 2]).unwrap();
        message.time = uint128(0);
        message
    };
    let both = both.binary.lock().unwrap();
    let last = last.binary.lock().unwrap();
    assert_eq!(decode(&both[1]), decode(&last[0]));
}
