//! The frame format, and the only code in the project that reads or writes it.
//!
//! A frame is an 8-byte little-endian length followed by a protobuf payload.
//! The length counts the whole frame, its own 8 bytes included, so an empty
//! message travels as the frame `08 00 00 00 00 00 00 00`.
//!
//! Reading is split in two steps, as in mini-redis: [`check`] looks at a
//! buffer and says whether a whole frame is there (cheap, allocates nothing,
//! and refuses a bad length prefix before anyone allocates the declared
//! size), then [`parse`] decodes the payload of that frame. [`decode`] chains
//! both for callers that hold the whole input in one slice.

use bytes::BufMut;
use prost::Message;

use super::ChannelError;

/// Size of the length prefix that starts every frame.
pub const LENGTH_PREFIX_SIZE: usize = 8;

/// Sozu's `command_buffer_size` default: how large a daemon's per-connection
/// buffer starts.
pub const DEFAULT_BUFFER_SIZE: usize = 1_000_000;

/// Sozu's `max_command_buffer_size` default, and therefore the largest frame
/// (prefix included) a Sozu peer accepts unless configured otherwise.
pub const DEFAULT_MAX_BUFFER_SIZE: usize = 2_000_000;

/// Where a client's read buffer starts; it grows on demand up to the maximum
/// frame size, so that small exchanges never hold megabytes.
pub const INITIAL_CLIENT_BUFFER_SIZE: usize = 4096;

/// The length of the frame that carries `message`, prefix included.
pub fn frame_len<M: Message>(message: &M) -> usize {
    message.encoded_len().saturating_add(LENGTH_PREFIX_SIZE)
}

/// Refuses with [`ChannelError::MessageTooLarge`] a frame of `len` bytes
/// (length prefix included) above `max_frame_size`.
pub fn check_len(len: usize, max_frame_size: usize) -> Result<(), ChannelError> {
    if len > max_frame_size {
        return Err(ChannelError::MessageTooLarge {
            len,
            max: max_frame_size,
        });
    }
    Ok(())
}

/// Appends `message` to `dst` as one frame and returns the frame's length.
///
/// Refuses with [`ChannelError::MessageTooLarge`] a frame above
/// `max_frame_size`, since a peer with the same limit would drop the
/// connection on it. `dst` is checked for room before anything is written, so
/// on any error it is left untouched. `Vec<u8>` and `BytesMut` grow as needed;
/// call `reserve(frame_len(message))` first to grow them only once.
pub fn encode<M: Message, B: BufMut>(
    message: &M,
    max_frame_size: usize,
    dst: &mut B,
) -> Result<usize, ChannelError> {
    let len = frame_len(message);
    check_len(len, max_frame_size)?;
    if dst.remaining_mut() < len {
        return Err(ChannelError::Io(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            format!(
                "the output buffer has room for {} of the {len} bytes of the frame",
                dst.remaining_mut()
            ),
        )));
    }
    dst.put_u64_le(len as u64);
    // prost fails only when the buffer lacks room, which was ruled out above.
    message
        .encode(dst)
        .map_err(|error| ChannelError::Io(std::io::Error::other(error)))?;
    Ok(len)
}

/// `message` as one frame in a vector of exactly the frame's length.
///
/// Same refusal as [`encode`] for frames above `max_frame_size`.
pub fn encode_to_vec<M: Message>(
    message: &M,
    max_frame_size: usize,
) -> Result<Vec<u8>, ChannelError> {
    let len = frame_len(message);
    check_len(len, max_frame_size)?;
    let mut frame = Vec::with_capacity(len);
    encode(message, max_frame_size, &mut frame)?;
    Ok(frame)
}

/// The validated length of the frame at the start of `buffer`, as soon as its
/// length prefix is complete, whether or not the payload has arrived.
///
/// `Ok(None)` means the prefix itself is incomplete. A declared length below
/// [`LENGTH_PREFIX_SIZE`] or above `max_frame_size` is an error, so a
/// returned length is always safe to allocate.
pub fn peek_frame_len(buffer: &[u8], max_frame_size: usize) -> Result<Option<usize>, ChannelError> {
    let Some(prefix) = buffer.first_chunk::<LENGTH_PREFIX_SIZE>() else {
        return Ok(None);
    };
    let declared = u64::from_le_bytes(*prefix);
    if declared < LENGTH_PREFIX_SIZE as u64 {
        return Err(ChannelError::FrameTooSmall { declared });
    }
    // Compared as u64 so that a huge declared length cannot wrap on a 32-bit
    // usize before the comparison.
    if declared > max_frame_size as u64 {
        return Err(ChannelError::FrameTooLarge {
            declared,
            max: max_frame_size,
        });
    }
    Ok(Some(declared as usize))
}

/// Whether a whole frame sits at the start of `buffer`.
///
/// `Ok(Some(len))`: the first `len` bytes are one complete frame, ready for
/// [`parse`]. `Ok(None)`: more bytes are needed; this is the normal state of a
/// reader between reads, not an error. An error means the length prefix is
/// invalid (see [`peek_frame_len`]) and the stream cannot be resynchronised.
/// Never allocates.
pub fn check(buffer: &[u8], max_frame_size: usize) -> Result<Option<usize>, ChannelError> {
    Ok(peek_frame_len(buffer, max_frame_size)?.filter(|len| buffer.len() >= *len))
}

/// Decodes the payload of one complete frame, prefix included, as returned by
/// [`check`].
///
/// A payload that is not a valid `M` gives [`ChannelError::Undecodable`]
/// carrying `frame.len()`, which is how far to advance to the next frame.
/// This function does not look at the prefix: call [`check`] first.
pub fn parse<M: Message + Default>(frame: &[u8]) -> Result<M, ChannelError> {
    let payload = frame.get(LENGTH_PREFIX_SIZE..).unwrap_or_default();
    M::decode(payload).map_err(|source| ChannelError::Undecodable {
        frame_len: frame.len(),
        source,
    })
}

/// [`check`] then [`parse`]: the message at the start of `buffer` and the
/// number of bytes its frame occupied, or `Ok(None)` if more bytes are needed.
///
/// On [`ChannelError::Undecodable`], [`ChannelError::frame_len`] tells how
/// many bytes to skip; every other error leaves the stream unusable.
pub fn decode<M: Message + Default>(
    buffer: &[u8],
    max_frame_size: usize,
) -> Result<Option<(M, usize)>, ChannelError> {
    match check(buffer, max_frame_size)? {
        Some(len) => parse(&buffer[..len]).map(|message| Some((message, len))),
        None => Ok(None),
    }
}

/// The error for a stream that ended after `buffered` bytes of an unfinished
/// frame (non-empty `buffered`), naming how many bytes that frame needed.
pub(crate) fn truncated(buffered: &[u8], max_frame_size: usize) -> ChannelError {
    match peek_frame_len(buffered, max_frame_size) {
        Ok(Some(len)) => ChannelError::Truncated {
            got: buffered.len(),
            expected: len as u64,
        },
        Ok(None) => ChannelError::Truncated {
            got: buffered.len(),
            expected: LENGTH_PREFIX_SIZE as u64,
        },
        // A bad prefix is the more useful report: it is why the frame could
        // never have completed.
        Err(error) => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::command::{Request, Response, Status, SubscribeEvents, request::RequestType};

    fn status_request() -> Request {
        Request::from(RequestType::Status(Status {}))
    }

    #[test]
    fn the_prefix_counts_itself() {
        // The exact bytes Sozu 2.3.3's CLI sends for `sozu status`.
        let frame = encode_to_vec(&status_request(), DEFAULT_MAX_BUFFER_SIZE).unwrap();
        assert_eq!(frame, [10, 0, 0, 0, 0, 0, 0, 0, 0x62, 0x00]);
        assert_eq!(frame_len(&status_request()), 10);
    }

    #[test]
    fn an_empty_message_is_a_bare_prefix() {
        let frame = encode_to_vec(&Request::default(), 100).unwrap();
        assert_eq!(frame, 8u64.to_le_bytes());
        assert_eq!(check(&frame, 100).unwrap(), Some(8));
        assert_eq!(parse::<Request>(&frame).unwrap(), Request::default());
    }

    #[test]
    fn encode_appends_after_existing_bytes() {
        let mut buffer = bytes::BytesMut::from(&b"xy"[..]);
        let len = encode(&status_request(), 100, &mut buffer).unwrap();
        assert_eq!(len, 10);
        assert_eq!(&buffer[..2], b"xy");
        assert_eq!(check(&buffer[2..], 100).unwrap(), Some(10));
    }

    #[test]
    fn incomplete_input_asks_for_more_bytes() {
        let frame = encode_to_vec(&status_request(), 100).unwrap();
        for cut in 0..frame.len() {
            assert_eq!(check(&frame[..cut], 100).unwrap(), None, "cut at {cut}");
            assert!(decode::<Request>(&frame[..cut], 100).unwrap().is_none());
        }
        assert_eq!(peek_frame_len(&frame[..8], 100).unwrap(), Some(10));
        assert_eq!(peek_frame_len(&frame[..7], 100).unwrap(), None);
    }

    #[test]
    fn bad_prefixes_are_refused_before_the_payload_arrives() {
        let huge = u64::MAX.to_le_bytes();
        match check(&huge, DEFAULT_MAX_BUFFER_SIZE) {
            Err(ChannelError::FrameTooLarge { declared, max }) => {
                assert_eq!(declared, u64::MAX);
                assert_eq!(max, DEFAULT_MAX_BUFFER_SIZE);
            }
            other => panic!("expected FrameTooLarge, got {other:?}"),
        }
        // One byte above the limit is already too much.
        assert!(matches!(
            check(&101u64.to_le_bytes(), 100),
            Err(ChannelError::FrameTooLarge { declared: 101, .. })
        ));
        assert_eq!(check(&100u64.to_le_bytes(), 100).unwrap(), None);
        for declared in 0..8u64 {
            assert!(matches!(
                check(&declared.to_le_bytes(), 100),
                Err(ChannelError::FrameTooSmall { declared: d }) if d == declared
            ));
        }
    }

    #[test]
    fn an_undecodable_payload_names_the_bytes_to_skip() {
        // Field 1 as a length-delimited value longer than the payload.
        let mut input = vec![11, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0x7f, 0x00];
        let good = encode_to_vec(&status_request(), 100).unwrap();
        input.extend_from_slice(&good);
        let error = decode::<Request>(&input, 100).unwrap_err();
        assert!(error.is_recoverable());
        assert_eq!(error.frame_len(), Some(11));
        let (request, len) = decode::<Request>(&input[11..], 100).unwrap().unwrap();
        assert_eq!(request, status_request());
        assert_eq!(len, 10);
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        // ResponseContent -> WorkerResponses -> map entry -> ResponseContent
        // ... nested far beyond prost's recursion limit, in one small frame.
        fn wrap(tag: u32, inner: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, &mut out);
            prost::encoding::encode_varint(inner.len() as u64, &mut out);
            out.extend_from_slice(inner);
            out
        }
        let mut content = Vec::new();
        for _ in 0..5_000 {
            let entry = wrap(2, &content);
            let worker_responses = wrap(1, &entry);
            content = wrap(3, &worker_responses);
        }
        let payload = wrap(3, &content);
        let mut input = ((payload.len() + 8) as u64).to_le_bytes().to_vec();
        input.extend_from_slice(&payload);
        assert!(input.len() < DEFAULT_MAX_BUFFER_SIZE);
        let error = decode::<Response>(&input, DEFAULT_MAX_BUFFER_SIZE).unwrap_err();
        assert!(
            matches!(error, ChannelError::Undecodable { .. }),
            "{error:?}"
        );
        assert_eq!(error.frame_len(), Some(input.len()));
    }

    #[test]
    fn frames_above_the_limit_are_not_encoded() {
        let response = Response::failure("x".repeat(200));
        let error = encode_to_vec(&response, 100).unwrap_err();
        assert!(
            matches!(error, ChannelError::MessageTooLarge { len, max: 100 } if len == frame_len(&response))
        );
        assert!(error.is_recoverable());
        let mut buffer = Vec::new();
        assert!(encode(&response, 100, &mut buffer).is_err());
        assert!(buffer.is_empty());
    }

    #[test]
    fn a_full_fixed_buffer_is_an_error_not_a_panic() {
        let mut storage = [0u8; 9];
        let mut slice: &mut [u8] = &mut storage;
        let error = encode(&status_request(), 100, &mut slice).unwrap_err();
        assert!(
            matches!(error, ChannelError::Io(ref e) if e.kind() == std::io::ErrorKind::WriteZero)
        );
        assert_eq!(storage, [0u8; 9]);
    }

    #[test]
    fn two_frames_in_one_buffer_come_out_one_at_a_time() {
        let mut buffer = encode_to_vec(&status_request(), 100).unwrap();
        let events = Request::from(RequestType::SubscribeEvents(SubscribeEvents {}));
        buffer.extend(encode_to_vec(&events, 100).unwrap());
        let (first, len) = decode::<Request>(&buffer, 100).unwrap().unwrap();
        assert_eq!(first, status_request());
        let (second, _) = decode::<Request>(&buffer[len..], 100).unwrap().unwrap();
        assert_eq!(second, events);
    }

    #[test]
    fn truncation_reports_what_was_expected() {
        let frame = encode_to_vec(&Response::processing("working"), 100).unwrap();
        assert!(matches!(
            truncated(&frame[..3], 100),
            ChannelError::Truncated {
                got: 3,
                expected: 8
            }
        ));
        let expected = frame.len() as u64;
        assert!(matches!(
            truncated(&frame[..9], 100),
            ChannelError::Truncated { got: 9, expected: e } if e == expected
        ));
    }
}
