//! Property tests of the frame reader, through its three doors: the buffer
//! functions (`frame::decode`), the blocking `Channel` fed in random chunks,
//! and the async `FrameCodec` fed in random chunks.
//!
//! Inputs are random bytes and valid frame streams damaged by bit flips,
//! truncation, inserted garbage and tampered length prefixes. For every
//! input, the three readers must agree on the exact sequence of outcomes
//! (messages, skipped frames, the final error or clean end), never panic,
//! report only framing errors (no I/O or timeout errors from in-memory
//! input), and keep their buffers bounded by the frame limit rather than by
//! whatever a length prefix declares.
//!
//! The default run is short. For a long run (millions of inputs), raise the
//! case count, which every property here reads from `PROPTEST_CASES`:
//!
//! ```text
//! PROPTEST_CASES=1000000 cargo test --release -p sozu-command --test frame_properties
//! ```

use std::io::{self, Read};
use std::time::Duration;

use bytes::BytesMut;
use proptest::prelude::*;
use proptest::sample::Index;
use prost::Message;
use tokio_util::codec::Decoder;

use sozu_command::channel::{
    BlockingStream, Channel, ChannelError, FrameCodec, INITIAL_CLIENT_BUFFER_SIZE, frame,
};
use sozu_command::proto::command::{
    AddBackend, Cluster, Event, EventKind, LoadBalancingParams, PathRule, Request,
    RequestHttpFrontend, Response, ResponseContent, ResponseStatus, SocketAddress, Status,
    WorkerInfo, WorkerInfos, WorkerResponses, request::RequestType, response_content::ContentType,
};

/// Used to encode the valid frames before damage; above anything generated.
const ENCODE_LIMIT: usize = 1 << 20;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------- messages

fn socket_address() -> impl Strategy<Value = SocketAddress> {
    (any::<[u8; 4]>(), any::<u16>())
        .prop_map(|(ip, port)| SocketAddress::from(std::net::SocketAddr::from((ip, port))))
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        Just(Request::from(RequestType::Status(Status {}))),
        Just(Request::default()),
        "[a-z0-9-]{0,24}".prop_map(|id| Request::from(RequestType::AddCluster(Cluster {
            cluster_id: id,
            ..Cluster::default()
        }))),
        ("[a-z.]{1,40}", "/[a-z/]{0,20}", socket_address()).prop_map(
            |(hostname, path, address)| {
                Request::from(RequestType::AddHttpFrontend(RequestHttpFrontend {
                    cluster_id: Some("app".into()),
                    address,
                    hostname,
                    path: PathRule {
                        kind: 0,
                        value: path,
                    },
                    position: 2,
                    ..RequestHttpFrontend::default()
                }))
            }
        ),
        (
            "[a-z]{1,12}",
            "[a-z0-9]{1,12}",
            socket_address(),
            any::<i32>()
        )
            .prop_map(|(cluster_id, backend_id, address, weight)| {
                Request::from(RequestType::AddBackend(AddBackend {
                    cluster_id,
                    backend_id,
                    address,
                    load_balancing_parameters: Some(LoadBalancingParams { weight }),
                    ..AddBackend::default()
                }))
            }),
        any::<String>().prop_map(|path| Request::from(RequestType::SaveState(path))),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        any::<String>().prop_map(Response::processing),
        any::<String>().prop_map(|message| Response::ok(message, None)),
        any::<String>().prop_map(Response::failure),
        (0..31i32).prop_map(|kind| Response {
            status: ResponseStatus::Processing as i32,
            message: "main".into(),
            content: Some(ResponseContent::from(ContentType::Event(Event {
                kind,
                ..Event::default()
            }))),
        }),
        prop::collection::vec((any::<u32>(), any::<i32>()), 0..40).prop_map(|workers| {
            let vec = workers
                .into_iter()
                .map(|(id, pid)| WorkerInfo {
                    id,
                    pid,
                    run_state: 0,
                })
                .collect();
            Response::ok("", Some(ContentType::Workers(WorkerInfos { vec })))
        }),
        prop::collection::btree_map("[0-9a-z]{1,6}", any::<String>(), 0..20).prop_map(|map| {
            let map = map
                .into_iter()
                .map(|(worker, message)| {
                    let content = ContentType::Event(Event {
                        kind: EventKind::BackendUp as i32,
                        backend_id: Some(message),
                        ..Event::default()
                    });
                    (worker, ResponseContent::from(content))
                })
                .collect();
            Response::ok(
                "merged",
                Some(ContentType::WorkerResponses(WorkerResponses { map })),
            )
        }),
    ]
}

fn stream_of<M: Message>(messages: &[M]) -> Vec<u8> {
    messages
        .iter()
        .flat_map(|message| frame::encode_to_vec(message, ENCODE_LIMIT).unwrap())
        .collect()
}

// ---------------------------------------------------------------- damage

#[derive(Debug, Clone)]
enum Damage {
    FlipBit(Index, u8),
    Truncate(Index),
    Insert(Index, Vec<u8>),
    /// Overwrite the length prefix of the frame starting at the n-th frame
    /// boundary.
    SetLength(Index, u64),
    /// Shift the length prefix of a frame by a small amount.
    NudgeLength(Index, i8),
}

fn damage() -> impl Strategy<Value = Damage> {
    let declared = prop_oneof![
        0..16u64,
        any::<u64>(),
        (u64::MAX - 16)..=u64::MAX,
        (4000..70_000u64),
    ];
    prop_oneof![
        (any::<Index>(), 0..8u8).prop_map(|(at, bit)| Damage::FlipBit(at, bit)),
        any::<Index>().prop_map(Damage::Truncate),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..12))
            .prop_map(|(at, bytes)| Damage::Insert(at, bytes)),
        (any::<Index>(), declared).prop_map(|(at, value)| Damage::SetLength(at, value)),
        (any::<Index>(), any::<i8>()).prop_map(|(at, delta)| Damage::NudgeLength(at, delta)),
    ]
}

fn apply(bytes: &mut Vec<u8>, boundaries: &[usize], damage: &Damage) {
    match damage {
        Damage::FlipBit(at, bit) if !bytes.is_empty() => {
            let at = at.index(bytes.len());
            bytes[at] ^= 1 << bit;
        }
        Damage::Truncate(at) => {
            let at = at.index(bytes.len() + 1);
            bytes.truncate(at);
        }
        Damage::Insert(at, garbage) => {
            let at = at.index(bytes.len() + 1);
            bytes.splice(at..at, garbage.iter().copied());
        }
        Damage::SetLength(at, value) if !boundaries.is_empty() => {
            let start = boundaries[at.index(boundaries.len())];
            if let Some(prefix) = bytes.get_mut(start..start + 8) {
                prefix.copy_from_slice(&value.to_le_bytes());
            }
        }
        Damage::NudgeLength(at, delta) if !boundaries.is_empty() => {
            let start = boundaries[at.index(boundaries.len())];
            if let Some(prefix) = bytes.get_mut(start..start + 8) {
                let declared = u64::from_le_bytes(prefix.try_into().unwrap());
                let nudged = declared.wrapping_add_signed(i64::from(*delta));
                prefix.copy_from_slice(&nudged.to_le_bytes());
            }
        }
        _ => {}
    }
}

fn frame_starts<M: Message>(messages: &[M]) -> Vec<usize> {
    messages
        .iter()
        .scan(0, |start, message| {
            let this = *start;
            *start += frame::frame_len(message);
            Some(this)
        })
        .collect()
}

// ---------------------------------------------------------------- readers

#[derive(Debug, PartialEq)]
enum Outcome<M> {
    Message(M),
    Skipped(usize),
    TooLarge(u64),
    TooSmall(u64),
    Truncated { got: usize, expected: u64 },
    End,
}

/// Every error from in-memory input must be one of the framing errors.
fn final_outcome<M>(error: ChannelError) -> Outcome<M> {
    match error {
        ChannelError::FrameTooLarge { declared, .. } => Outcome::TooLarge(declared),
        ChannelError::FrameTooSmall { declared } => Outcome::TooSmall(declared),
        ChannelError::Truncated { got, expected } => Outcome::Truncated { got, expected },
        other => panic!("unexpected error from in-memory input: {other:?}"),
    }
}

fn via_buffer<M: Message + Default>(input: &[u8], max: usize) -> Vec<Outcome<M>> {
    let mut outcomes = Vec::new();
    let mut rest = input;
    loop {
        match frame::decode::<M>(rest, max) {
            Ok(Some((message, len))) => {
                assert!((frame::LENGTH_PREFIX_SIZE..=max).contains(&len) && len <= rest.len());
                outcomes.push(Outcome::Message(message));
                rest = &rest[len..];
            }
            Ok(None) if rest.is_empty() => {
                outcomes.push(Outcome::End);
                return outcomes;
            }
            Ok(None) => {
                let expected = frame::peek_frame_len(rest, max)
                    .unwrap()
                    .unwrap_or(frame::LENGTH_PREFIX_SIZE);
                assert!(expected > rest.len());
                outcomes.push(Outcome::Truncated {
                    got: rest.len(),
                    expected: expected as u64,
                });
                return outcomes;
            }
            Err(error) => match error.frame_len() {
                Some(len) => {
                    assert!(error.is_recoverable());
                    assert!(matches!(error, ChannelError::Undecodable { .. }));
                    outcomes.push(Outcome::Skipped(len));
                    rest = &rest[len..];
                }
                None => {
                    assert!(!error.is_recoverable());
                    outcomes.push(final_outcome(error));
                    return outcomes;
                }
            },
        }
    }
}

/// A reader that hands out its input in chunks of the given sizes (cycled),
/// as a socket may.
struct Trickle {
    input: Vec<u8>,
    position: usize,
    chunks: Vec<usize>,
    next_chunk: usize,
}

impl Trickle {
    fn new(input: Vec<u8>, chunks: Vec<usize>) -> Self {
        Trickle {
            input,
            position: 0,
            chunks,
            next_chunk: 0,
        }
    }
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let chunk = self.chunks[self.next_chunk % self.chunks.len()];
        self.next_chunk += 1;
        let len = chunk.min(buf.len()).min(self.input.len() - self.position);
        buf[..len].copy_from_slice(&self.input[self.position..self.position + len]);
        self.position += len;
        Ok(len)
    }
}

impl BlockingStream for Trickle {
    fn set_read_timeout(&mut self, _timeout: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

fn via_channel<M: Message + Default>(
    input: &[u8],
    max: usize,
    chunks: &[usize],
) -> Vec<Outcome<M>> {
    let mut channel: Channel<M, M, Trickle> =
        Channel::new(Trickle::new(input.to_vec(), chunks.to_vec())).with_max_frame_size(max);
    let capacity_bound = max.max(INITIAL_CLIENT_BUFFER_SIZE);
    let mut outcomes = Vec::new();
    loop {
        // A timeout is irrelevant to in-memory input but exercises the
        // deadline arithmetic on every read.
        let read = channel.read_message(Some(Duration::from_secs(60)));
        assert!(channel.read_capacity() <= capacity_bound);
        match read {
            Ok(Some(message)) => outcomes.push(Outcome::Message(message)),
            Ok(None) => {
                outcomes.push(Outcome::End);
                return outcomes;
            }
            Err(ChannelError::Undecodable { frame_len, .. }) => {
                outcomes.push(Outcome::Skipped(frame_len));
            }
            Err(error) => {
                outcomes.push(final_outcome(error));
                return outcomes;
            }
        }
    }
}

fn via_codec<M: Message + Default>(input: &[u8], max: usize, chunks: &[usize]) -> Vec<Outcome<M>> {
    let mut codec = FrameCodec::<M, M>::with_max_frame_size(max);
    // Vec-style doubling inside BytesMut may double whatever the codec asks
    // for, which is at most one frame (bounded by `max`) plus one chunk.
    let capacity_bound = 2 * (max + 64);
    let mut pieces = chunks.iter().cycle().scan(input, |rest, &chunk| {
        if rest.is_empty() {
            return None;
        }
        let (piece, tail) = rest.split_at(chunk.min(rest.len()));
        *rest = tail;
        Some(piece)
    });
    let mut buffer = BytesMut::new();
    let mut outcomes = Vec::new();
    loop {
        let decoded = codec.decode(&mut buffer);
        assert!(buffer.capacity() <= capacity_bound);
        match decoded {
            Ok(Some(Ok(message))) => outcomes.push(Outcome::Message(message)),
            Ok(Some(Err(error))) => {
                assert!(error.is_recoverable());
                outcomes.push(Outcome::Skipped(error.frame_len().unwrap()));
            }
            Ok(None) => match pieces.next() {
                Some(piece) => buffer.extend_from_slice(piece),
                None => {
                    match codec.decode_eof(&mut buffer) {
                        Ok(None) => outcomes.push(Outcome::End),
                        Ok(Some(_)) => panic!("decode_eof found a frame decode had missed"),
                        Err(error) => outcomes.push(final_outcome(error)),
                    }
                    return outcomes;
                }
            },
            Err(error) => {
                assert!(!error.is_recoverable());
                outcomes.push(final_outcome(error));
                return outcomes;
            }
        }
    }
}

fn all_readers_agree<M: Message + Default + PartialEq + std::fmt::Debug>(
    input: &[u8],
    max: usize,
    chunks: &[usize],
) -> Vec<Outcome<M>> {
    let by_buffer = via_buffer::<M>(input, max);
    let by_channel = via_channel::<M>(input, max, chunks);
    assert_eq!(by_channel, by_buffer, "the blocking channel disagrees");
    let by_codec = via_codec::<M>(input, max, chunks);
    assert_eq!(by_codec, by_buffer, "the codec disagrees");
    by_buffer
}

fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1..64usize, 1..8)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn intact_streams_come_back_whole(
        responses in prop::collection::vec(response(), 0..6),
        chunks in chunk_sizes(),
    ) {
        let input = stream_of(&responses);
        let outcomes = all_readers_agree::<Response>(&input, ENCODE_LIMIT, &chunks);
        let mut expected: Vec<_> = responses.into_iter().map(Outcome::Message).collect();
        expected.push(Outcome::End);
        prop_assert_eq!(outcomes, expected);
    }

    #[test]
    fn damaged_response_streams(
        responses in prop::collection::vec(response(), 1..5),
        damages in prop::collection::vec(damage(), 1..4),
        max in 16..4096usize,
        chunks in chunk_sizes(),
    ) {
        let mut input = stream_of(&responses);
        let starts = frame_starts(&responses);
        for damage in &damages {
            apply(&mut input, &starts, damage);
        }
        all_readers_agree::<Response>(&input, max, &chunks);
    }

    #[test]
    fn damaged_request_streams(
        requests in prop::collection::vec(request(), 1..5),
        damages in prop::collection::vec(damage(), 1..4),
        max in 16..4096usize,
        chunks in chunk_sizes(),
    ) {
        let mut input = stream_of(&requests);
        let starts = frame_starts(&requests);
        for damage in &damages {
            apply(&mut input, &starts, damage);
        }
        all_readers_agree::<Request>(&input, max, &chunks);
    }

    #[test]
    fn random_bytes(
        input in prop::collection::vec(any::<u8>(), 0..512),
        max in 8..1024usize,
        chunks in chunk_sizes(),
    ) {
        all_readers_agree::<Request>(&input, max, &chunks);
        all_readers_agree::<Response>(&input, max, &chunks);
    }

    /// A small valid length prefix followed by random payload bytes: the
    /// payload is what gets tested, and a bad one must cost exactly its
    /// frame.
    #[test]
    fn random_payloads_in_valid_frames(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..6),
        chunks in chunk_sizes(),
    ) {
        let mut input = Vec::new();
        for payload in &payloads {
            input.extend_from_slice(&(payload.len() as u64 + 8).to_le_bytes());
            input.extend_from_slice(payload);
        }
        let outcomes = all_readers_agree::<Response>(&input, 1024, &chunks);
        // Every frame is accounted for, good or skipped, then a clean end.
        prop_assert_eq!(outcomes.len(), payloads.len() + 1);
        prop_assert_eq!(outcomes.last(), Some(&Outcome::End));
        for (outcome, payload) in outcomes.iter().zip(&payloads) {
            match outcome {
                Outcome::Message(_) => {}
                Outcome::Skipped(len) => prop_assert_eq!(*len, payload.len() + 8),
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }
}
