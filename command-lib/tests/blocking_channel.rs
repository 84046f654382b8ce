//! The blocking `Channel` over real unix sockets: the exchange a CLI runs,
//! its deadlines, and what it reports when the peer misbehaves.

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::thread;
use std::time::{Duration, Instant};

use sozu_command::channel::{
    Channel, ChannelError, CommandChannel, DEFAULT_MAX_BUFFER_SIZE, INITIAL_CLIENT_BUFFER_SIZE,
    frame,
};
use sozu_command::proto::command::{
    ListListeners, Request, Response, ResponseStatus, Status, request::RequestType,
};

/// The daemon's side of a connection, driven by hand.
type PeerChannel = Channel<Response, Request>;

const SHORT: Duration = Duration::from_millis(200);

fn status_request() -> Request {
    Request::from(RequestType::Status(Status {}))
}

fn pair() -> (CommandChannel, UnixStream) {
    let (client, peer) = UnixStream::pair().unwrap();
    (Channel::new(client), peer)
}

/// Runs `serve` on the daemon's end in a thread; the thread's result is
/// joined by the caller to surface its assertions.
fn serve(
    peer: UnixStream,
    serve: impl FnOnce(&mut PeerChannel) + Send + 'static,
) -> thread::JoinHandle<()> {
    thread::spawn(move || serve(&mut Channel::new(peer)))
}

#[test]
fn an_exchange_reads_until_the_final_answer() {
    let (mut client, peer) = pair();
    let daemon = serve(peer, |daemon| {
        let request = daemon.read_message(Some(Duration::from_secs(10))).unwrap();
        assert_eq!(request, Some(status_request()));
        daemon
            .write_message(&Response::processing("worker 0"))
            .unwrap();
        daemon
            .write_message(&Response::processing("worker 1"))
            .unwrap();
        daemon.write_message(&Response::ok("done", None)).unwrap();
        // A second request on the same connection works the same way.
        let request = daemon.read_message(Some(Duration::from_secs(10))).unwrap();
        assert_eq!(
            request,
            Some(Request::from(RequestType::ListListeners(ListListeners {})))
        );
        daemon.write_message(&Response::failure("no")).unwrap();
    });

    let mut progress = Vec::new();
    let answer = client
        .exchange(&status_request(), Some(SHORT * 10), |answer| {
            progress.push(answer.message.clone())
        })
        .unwrap();
    assert_eq!(answer, Response::ok("done", None));
    assert_eq!(progress, ["worker 0", "worker 1"]);

    let answer = client
        .exchange(
            &Request::from(RequestType::ListListeners(ListListeners {})),
            Some(SHORT * 10),
            |_| panic!("no progress expected"),
        )
        .unwrap();
    assert_eq!(answer.status, ResponseStatus::Failure as i32);
    daemon.join().unwrap();
}

#[test]
fn connect_to_a_listening_socket() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("sozu.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let daemon = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut daemon: PeerChannel = Channel::new(stream);
        let request = daemon.read_message(None).unwrap().unwrap();
        daemon
            .write_message(&Response::ok(request.kind_name(), None))
            .unwrap();
    });

    let mut client = CommandChannel::connect(&path).unwrap();
    let answer = client
        .exchange(&status_request(), Some(SHORT * 10), |_| {})
        .unwrap();
    assert_eq!(answer.message, "STATUS");
    daemon.join().unwrap();
}

#[test]
fn connecting_to_nothing_names_the_path() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("no-daemon-here.sock");
    let error = CommandChannel::connect(&path).unwrap_err();
    match &error {
        ChannelError::Connect {
            path: tried,
            source,
        } => {
            assert_eq!(tried, &path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Connect, got {other:?}"),
    }
    assert!(error.to_string().contains("no-daemon-here.sock"));
    assert!(!error.is_recoverable());
}

#[test]
fn the_deadline_fires_on_a_silent_peer() {
    // The peer end stays open and says nothing.
    let (mut client, _silent_peer) = pair();
    let started = Instant::now();
    let error = client.read_message(Some(SHORT)).unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(error, ChannelError::Timeout { waited } if waited == SHORT),
        "{error:?}"
    );
    assert!(error.is_recoverable());
    assert!(waited >= SHORT, "fired early, after {waited:?}");
    assert!(waited < SHORT * 10, "fired late, after {waited:?}");
}

#[test]
fn an_exchange_times_out_when_the_daemon_never_answers() {
    let (mut client, silent_peer) = pair();
    let started = Instant::now();
    let error = client
        .exchange(&status_request(), Some(SHORT), |_| {})
        .unwrap_err();
    assert!(matches!(error, ChannelError::Timeout { .. }), "{error:?}");
    assert!(started.elapsed() >= SHORT);
    // The request itself did go out.
    let mut daemon: PeerChannel = Channel::new(silent_peer);
    assert_eq!(daemon.read_message(None).unwrap(), Some(status_request()));
}

#[test]
fn every_progress_answer_restarts_the_wait() {
    let (mut client, peer) = pair();
    let timeout = Duration::from_millis(300);
    let gap = Duration::from_millis(100);
    let steps = 6;
    let daemon = serve(peer, move |daemon| {
        daemon.read_message(None).unwrap().unwrap();
        for step in 0..steps {
            // Slow work that reports progress: the pause is what is tested.
            thread::sleep(gap);
            daemon
                .write_message(&Response::processing(format!("step {step}")))
                .unwrap();
        }
        thread::sleep(gap);
        daemon.write_message(&Response::ok("done", None)).unwrap();
    });

    let started = Instant::now();
    let mut seen = 0;
    let answer = client
        .exchange(&status_request(), Some(timeout), |_| seen += 1)
        .unwrap();
    assert_eq!(answer.message, "done");
    assert_eq!(seen, steps);
    // The whole exchange lasted well beyond one timeout.
    assert!(started.elapsed() > timeout);
    daemon.join().unwrap();
}

#[test]
fn the_wait_after_the_last_progress_answer_is_bounded() {
    let (mut client, peer) = pair();
    let daemon = serve(peer, |daemon| {
        daemon.read_message(None).unwrap().unwrap();
        daemon
            .write_message(&Response::processing("started"))
            .unwrap();
        // Then silence, with the connection held open until the client is
        // done.
        let _ = daemon.read_message(None);
    });
    let mut progress_at = None;
    let error = client
        .exchange(&status_request(), Some(SHORT), |_| {
            progress_at = Some(Instant::now())
        })
        .unwrap_err();
    assert!(matches!(error, ChannelError::Timeout { .. }), "{error:?}");
    let since_progress = progress_at.expect("one progress answer").elapsed();
    assert!(since_progress >= SHORT);
    drop(client);
    daemon.join().unwrap();
}

#[test]
fn a_partial_frame_survives_a_timeout() {
    let (mut client, mut peer) = pair();
    let whole = frame::encode_to_vec(&Response::ok("patience", None), 1000).unwrap();
    peer.write_all(&whole[..5]).unwrap();
    let error = client.read_message(Some(SHORT)).unwrap_err();
    assert!(matches!(error, ChannelError::Timeout { .. }));
    assert_eq!(client.buffered_len(), 5);
    peer.write_all(&whole[5..]).unwrap();
    let answer = client.read_message(Some(SHORT * 10)).unwrap().unwrap();
    assert_eq!(answer.message, "patience");
}

#[test]
fn a_frame_written_byte_by_byte_arrives_whole() {
    let (mut client, mut peer) = pair();
    let answer = Response::ok("x".repeat(10_000), None);
    let bytes = frame::encode_to_vec(&answer, DEFAULT_MAX_BUFFER_SIZE).unwrap();
    let writer = thread::spawn(move || {
        for byte in bytes {
            peer.write_all(&[byte]).unwrap();
        }
        peer
    });
    assert_eq!(client.read_message(Some(SHORT * 25)).unwrap(), Some(answer));
    let _peer = writer.join().unwrap();
}

#[test]
fn a_clean_close_between_frames() {
    let (mut client, peer) = pair();
    drop(peer);
    assert_eq!(client.read_message(Some(SHORT)).unwrap(), None);

    let (mut client, peer) = pair();
    let daemon = serve(peer, |daemon| {
        daemon.read_message(None).unwrap().unwrap();
        daemon.write_message(&Response::processing("bye")).unwrap();
    });
    let error = client
        .exchange(&status_request(), Some(SHORT * 10), |_| {})
        .unwrap_err();
    assert!(matches!(error, ChannelError::ConnectionClosed), "{error:?}");
    daemon.join().unwrap();
}

#[test]
fn a_close_inside_a_frame_is_truncation() {
    let (mut client, mut peer) = pair();
    let whole = frame::encode_to_vec(&Response::ok("cut short", None), 1000).unwrap();
    peer.write_all(&whole[..whole.len() - 3]).unwrap();
    drop(peer);
    let error = client.read_message(Some(SHORT)).unwrap_err();
    match error {
        ChannelError::Truncated { got, expected } => {
            assert_eq!(got, whole.len() - 3);
            assert_eq!(expected, whole.len() as u64);
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
}

#[test]
fn an_oversized_declared_length_is_refused_unread() {
    let (client, mut peer) = pair();
    let mut client = client.with_max_frame_size(64 * 1024);
    peer.write_all(&(64 * 1024 + 1u64).to_le_bytes()).unwrap();
    // The payload would follow; the reader must not wait for it.
    let error = client.read_message(Some(SHORT * 10)).unwrap_err();
    assert!(matches!(
        error,
        ChannelError::FrameTooLarge {
            declared: 65_537,
            max: 65_536
        }
    ));
    assert!(!error.is_recoverable());
    assert_eq!(client.read_capacity(), INITIAL_CLIENT_BUFFER_SIZE);

    let (mut client, mut peer) = pair();
    peer.write_all(&u64::MAX.to_le_bytes()).unwrap();
    let error = client.read_message(None).unwrap_err();
    assert!(matches!(
        error,
        ChannelError::FrameTooLarge {
            declared: u64::MAX,
            ..
        }
    ));
}

#[test]
fn an_undecodable_answer_is_skipped_and_reading_goes_on() {
    let (mut client, mut peer) = pair();
    // A Response whose field 1 (status, a varint) arrives as bytes.
    peer.write_all(&[10, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0x00])
        .unwrap();
    peer.write_all(&frame::encode_to_vec(&Response::ok("fine", None), 100).unwrap())
        .unwrap();
    let error = client.read_message(Some(SHORT * 10)).unwrap_err();
    assert!(matches!(
        error,
        ChannelError::Undecodable { frame_len: 10, .. }
    ));
    assert!(error.is_recoverable());
    let answer = client.read_message(Some(SHORT * 10)).unwrap().unwrap();
    assert_eq!(answer.message, "fine");
}

#[test]
fn a_large_answer_grows_the_buffer_within_the_limit() {
    let (mut client, peer) = pair();
    let big = Response::ok("y".repeat(1_500_000), None);
    let sent = big.clone();
    let daemon = serve(peer, move |daemon| daemon.write_message(&sent).unwrap());
    assert_eq!(client.read_capacity(), INITIAL_CLIENT_BUFFER_SIZE);
    assert_eq!(client.read_message(Some(SHORT * 25)).unwrap(), Some(big));
    assert!(client.read_capacity() <= DEFAULT_MAX_BUFFER_SIZE);
    daemon.join().unwrap();
}

#[test]
fn a_request_above_the_limit_is_not_sent() {
    let (client, mut peer) = pair();
    let mut client = client.with_max_frame_size(100);
    let error = client
        .write_message(&Request::from(RequestType::SaveState("p".repeat(200))))
        .unwrap_err();
    assert!(matches!(
        error,
        ChannelError::MessageTooLarge { max: 100, .. }
    ));
    // Nothing reached the peer: a small request sent afterwards is the first
    // thing it reads.
    client.write_message(&status_request()).unwrap();
    drop(client);
    let mut received = Vec::new();
    std::io::Read::read_to_end(&mut peer, &mut received).unwrap();
    assert_eq!(
        received,
        frame::encode_to_vec(&status_request(), 100).unwrap()
    );
}
