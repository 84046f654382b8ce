//! The mover on real loopback sockets.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use std::os::fd::AsRawFd;

use super::{DEFAULT_CAPACITY, KEPT, Pipe, Splicer, Stopped, kept, within_max, write_all};
use crate::deadline::Deadline;

/// Two ends of one loopback connection.
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (connected, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
    (connected.expect("connect"), accepted.expect("accept").0)
}

/// Bytes that show where each one came from.
fn pattern(length: usize) -> Vec<u8> {
    (0..length).map(|i| (i % 251) as u8).collect()
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn moves_exactly_the_bytes_asked_for() {
    let (mut writer, source) = pair().await;
    let (destination, mut reader) = pair().await;
    let body = pattern(3 << 20);
    let sent = body.clone();
    let writing = tokio::spawn(async move {
        writer.write_all(&sent).await.expect("write");
        writer
    });
    let reading = tokio::spawn(async move {
        let mut got = vec![0; 3 << 20];
        reader.read_exact(&mut got).await.expect("read");
        got
    });
    let mut pipe = Pipe::open(None).expect("pipe");
    let mut deadline = Deadline::new(SECOND);
    let mut moved = 0;
    let length = body.len() as u64;
    let ends = (&source, &destination);
    let relayed = pipe
        .relay(
            ends,
            length,
            &mut deadline,
            (5 * SECOND, 5 * SECOND),
            &mut moved,
        )
        .await;
    assert!(relayed.is_ok(), "{relayed:?}");
    assert_eq!(moved, length);
    assert_eq!(pipe.held(), 0);
    assert_eq!(reading.await.expect("reader"), body);
    drop(writing.await.expect("writer"));
}

#[tokio::test]
async fn takes_no_byte_beyond_the_length() {
    let (mut writer, mut source) = pair().await;
    let (destination, mut reader) = pair().await;
    let body = pattern(100_000);
    writer.write_all(&body).await.expect("write");
    let mut pipe = Pipe::open(Some(16 * 4096)).expect("pipe");
    let mut deadline = Deadline::new(SECOND);
    let timeouts = (5 * SECOND, 5 * SECOND);
    let ends = (&source, &destination);
    let mut moved = 0;
    let first = pipe.relay(ends, 40_000, &mut deadline, timeouts, &mut moved);
    assert!(first.await.is_ok());
    assert_eq!(moved, 40_000);
    let mut got = vec![0; 40_000];
    reader.read_exact(&mut got).await.expect("read");
    assert_eq!(got, body[..40_000]);
    // The rest is still the source's, for a copy to read.
    let mut rest = vec![0; 60_000];
    source.read_exact(&mut rest).await.expect("rest");
    assert_eq!(rest, body[40_000..]);
    // And a length of one byte moves one byte.
    writer.write_all(b"xy").await.expect("write");
    let mut one = 0;
    let ends = (&source, &destination);
    let single = pipe.relay(ends, 1, &mut deadline, timeouts, &mut one);
    assert!(single.await.is_ok());
    assert_eq!(one, 1);
    let mut byte = [0; 1];
    reader.read_exact(&mut byte).await.expect("read");
    assert_eq!(&byte, b"x");
}

#[tokio::test]
async fn a_destination_that_stops_reading_times_out() {
    let (mut writer, source) = pair().await;
    let (destination, _reader) = pair().await;
    let length: u64 = 256 << 20;
    tokio::spawn(async move {
        let block = vec![7; 1 << 20];
        for _ in 0..256 {
            if writer.write_all(&block).await.is_err() {
                return;
            }
        }
    });
    let mut splicer = Splicer::new(None);
    let pipe = splicer.pipe().expect("pipe");
    let mut deadline = Deadline::new(SECOND);
    let mut moved = 0;
    let started = std::time::Instant::now();
    let timeouts = (5 * SECOND, Duration::from_millis(300));
    let ends = (&source, &destination);
    let relayed = pipe
        .relay(ends, length, &mut deadline, timeouts, &mut moved)
        .await;
    match relayed {
        Err(Stopped::Destination(error)) => {
            assert_eq!(error.kind(), std::io::ErrorKind::TimedOut)
        }
        other => panic!("expected a write timeout, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(started.elapsed() < 5 * SECOND, "{:?}", started.elapsed());
    assert!(moved > 0 && moved < length, "{moved}");
    // The bytes left in the pipe never reach another body.
    assert!(splicer.pipe.as_ref().expect("pipe").held() > 0);
    assert_eq!(splicer.pipe().expect("a new pipe").held(), 0);
}

#[tokio::test]
async fn a_source_that_closes_early_is_an_error() {
    let (mut writer, source) = pair().await;
    let (destination, mut reader) = pair().await;
    writer.write_all(&pattern(1000)).await.expect("write");
    drop(writer);
    let mut pipe = Pipe::open(None).expect("pipe");
    let mut deadline = Deadline::new(SECOND);
    let mut moved = 0;
    let ends = (&source, &destination);
    let relayed = pipe
        .relay(
            ends,
            5000,
            &mut deadline,
            (5 * SECOND, 5 * SECOND),
            &mut moved,
        )
        .await;
    assert!(matches!(relayed, Err(Stopped::Ended)), "{relayed:?}");
    assert_eq!(moved, 1000);
    let mut got = vec![0; 1000];
    reader.read_exact(&mut got).await.expect("read");
    assert_eq!(got, pattern(1000));
}

#[tokio::test]
async fn a_silent_source_times_out() {
    let (_writer, source) = pair().await;
    let (destination, _reader) = pair().await;
    let mut pipe = Pipe::open(None).expect("pipe");
    let mut deadline = Deadline::new(SECOND);
    let mut moved = 0;
    let ends = (&source, &destination);
    let timeouts = (Duration::from_millis(200), 5 * SECOND);
    let relayed = pipe
        .relay(ends, 10, &mut deadline, timeouts, &mut moved)
        .await;
    match relayed {
        Err(Stopped::Source(error)) => assert_eq!(error.kind(), std::io::ErrorKind::TimedOut),
        other => panic!("expected a read timeout, got {other:?}"),
    }
    assert_eq!(moved, 0);
}

#[tokio::test]
async fn framing_goes_between_spliced_data() {
    let (mut writer, source) = pair().await;
    let (destination, mut reader) = pair().await;
    writer.write_all(b"hello").await.expect("write");
    let mut pipe = Pipe::open(None).expect("pipe");
    let mut deadline = Deadline::new(SECOND);
    let filled = pipe.fill(&source, 64, (&mut deadline, SECOND)).await;
    assert_eq!(filled.expect("fill"), 5);
    let framing = write_all(&destination, b"5\r\n", (&mut deadline, SECOND)).await;
    assert!(framing.is_ok());
    let mut written = 0;
    let drained = pipe.drain(&destination, (&mut deadline, SECOND), &mut written);
    assert!(drained.await.is_ok());
    assert!(
        write_all(&destination, b"\r\n", (&mut deadline, SECOND))
            .await
            .is_ok()
    );
    assert_eq!(written, 5);
    let mut got = [0; 10];
    reader.read_exact(&mut got).await.expect("read");
    assert_eq!(&got, b"5\r\nhello\r\n");
}

#[test]
fn a_pipe_takes_the_capacity_asked_for() {
    let pipe = Pipe::open(Some(256 << 10)).expect("pipe");
    // Within /proc/sys/fs/pipe-max-size (1 MiB by default) for anyone.
    assert_eq!(pipe.capacity(), 256 << 10);
    // Unset: 1 MiB, or the system's pipe-max-size when lower.
    let max: usize = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .expect("pipe-max-size")
        .trim()
        .parse()
        .expect("a number");
    let default = Pipe::open(None).expect("pipe").capacity();
    assert_eq!(default, (1 << 20).min(max));
}

#[test]
fn the_default_capacity_stays_within_pipe_max_size() {
    assert_eq!(within_max(Some("262144\n".into())), 256 << 10);
    assert_eq!(within_max(Some("4194304\n".into())), DEFAULT_CAPACITY);
    assert_eq!(within_max(None), DEFAULT_CAPACITY);
    assert_eq!(within_max(Some("many".into())), DEFAULT_CAPACITY);
}

#[test]
fn empty_pipes_go_back_to_the_thread_and_busy_ones_are_closed() {
    // A capacity no other test asks for: this test's pipes only.
    let capacity = Some(3 * 4096);
    let mut first = Splicer::new(capacity);
    let fd = first.pipe().expect("pipe").read.as_raw_fd();
    let before = kept();
    first.release();
    assert_eq!(kept(), before + 1);
    // The next connection takes the same pipe, not a new one.
    let mut second = Splicer::new(capacity);
    assert_eq!(second.pipe().expect("pipe").read.as_raw_fd(), fd);
    assert_eq!(kept(), before);
    // One of another capacity is not taken for it.
    let mut other = Splicer::new(Some(5 * 4096));
    let other_fd = other.pipe().expect("pipe").read.as_raw_fd();
    assert_ne!(other_fd, fd);
    drop(other);
    // A pipe holding bytes is closed, never kept.
    second.pipe.as_mut().expect("pipe").held = 10;
    let kept_now = kept();
    second.release();
    assert_eq!(kept(), kept_now);
    assert!(second.pipe.is_none());
    // No more than KEPT wait.
    let mut many: Vec<Splicer> = (0..KEPT + 3).map(|_| Splicer::new(capacity)).collect();
    for splicer in &mut many {
        splicer.pipe().expect("pipe");
    }
    drop(many);
    assert_eq!(kept(), KEPT);
}

/// Sets a socket's send or receive buffer (`option`), in bytes.
fn shrink(socket: &TcpStream, option: libc::c_int, bytes: libc::c_int) {
    // SAFETY: setsockopt on a live socket with an integer value.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0, "{}", std::io::Error::last_os_error());
}

/// Bytes waiting to be read on `socket`.
fn queued(socket: &TcpStream) -> usize {
    let mut count: libc::c_int = 0;
    // SAFETY: FIONREAD on a live socket into an integer.
    let result = unsafe { libc::ioctl(socket.as_raw_fd(), libc::FIONREAD, &mut count) };
    assert_eq!(result, 0, "{}", std::io::Error::last_os_error());
    count as usize
}

#[tokio::test]
async fn the_pipe_fills_while_the_destination_is_full() {
    let (mut writer, source) = pair().await;
    let (destination, reader) = pair().await;
    // A destination that takes a few KiB and no more: its reader never
    // reads.
    shrink(&destination, libc::SO_SNDBUF, 4096);
    shrink(&reader, libc::SO_RCVBUF, 4096);
    let first = pattern(100_000);
    writer.write_all(&first).await.expect("write");
    let mut pipe = Pipe::open(Some(1 << 20)).expect("pipe");
    let mut deadline = Deadline::new(SECOND);
    let mut moved = 0;
    let ends = (&source, &destination);
    let timeouts = (10 * SECOND, SECOND);
    let relay = pipe.relay(ends, 1 << 20, &mut deadline, timeouts, &mut moved);
    let more = async {
        // Once the relay has taken the first bytes (and is held up by the
        // destination), more come.
        let until = std::time::Instant::now() + 5 * SECOND;
        while queued(&source) > 0 {
            assert!(std::time::Instant::now() < until, "the relay took nothing");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        writer.write_all(&pattern(100_000)).await.expect("write");
        writer
    };
    let (relayed, _writer) = tokio::join!(relay, more);
    match relayed {
        Err(Stopped::Destination(error)) => {
            assert_eq!(error.kind(), std::io::ErrorKind::TimedOut)
        }
        other => panic!("expected a write timeout, got {other:?}"),
    }
    // The second part went into the pipe while the destination was full:
    // nothing is left in the source, all of it is in the pipe or written.
    assert_eq!(queued(&source), 0);
    assert!(moved < 100_000, "the destination took {moved}");
    assert_eq!(moved + pipe.held() as u64, 200_000);
    drop(reader);
}

#[tokio::test]
async fn a_source_that_trickles_does_not_extend_the_write_timeout() {
    let (mut writer, source) = pair().await;
    let (destination, reader) = pair().await;
    shrink(&destination, libc::SO_SNDBUF, 4096);
    shrink(&reader, libc::SO_RCVBUF, 4096);
    // Enough to fill what the destination takes, then a byte every 20 ms
    // for 4 s: each wakes the relay, none may restart the write timeout.
    writer.write_all(&pattern(200_000)).await.expect("write");
    let trickle = tokio::spawn(async move {
        for _ in 0..200 {
            if writer.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let mut pipe = Pipe::open(Some(1 << 20)).expect("pipe");
    let mut deadline = Deadline::new(SECOND);
    let mut moved = 0;
    let started = std::time::Instant::now();
    let ends = (&source, &destination);
    let timeouts = (10 * SECOND, Duration::from_millis(300));
    let relayed = pipe
        .relay(ends, 1 << 20, &mut deadline, timeouts, &mut moved)
        .await;
    match relayed {
        Err(Stopped::Destination(error)) => {
            assert_eq!(error.kind(), std::io::ErrorKind::TimedOut)
        }
        other => panic!("expected a write timeout, got {other:?}"),
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < 2 * SECOND, "{elapsed:?}");
    trickle.abort();
    drop(reader);
}
