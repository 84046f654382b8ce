//! The mover on real loopback sockets.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Pipe, Splicer, Stopped, write_all};
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
    let pipe = Pipe::open(Some(1 << 20)).expect("pipe");
    // Within /proc/sys/fs/pipe-max-size (1 MiB by default) for anyone.
    assert_eq!(pipe.capacity(), 1 << 20);
    assert_eq!(Pipe::open(None).expect("pipe").capacity(), 64 * 1024);
}
