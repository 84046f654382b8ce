//! The async side: a `tokio_util` codec over the same frame functions, for
//! the daemon's command socket and for the channels between the main process
//! and its workers.

use std::fmt;
use std::marker::PhantomData;

use bytes::{Buf, BytesMut};
use prost::Message;
use tokio_util::codec::{Decoder, Encoder};

use super::ChannelError;
use super::frame::{self, DEFAULT_MAX_BUFFER_SIZE};

/// Decodes `In` messages and encodes `Out` messages, one frame each, for
/// `tokio_util::codec::Framed` and friends.
///
/// Decoding yields `Result<In, ChannelError>` items so that a bad payload
/// does not end the stream: an undecodable but well-framed payload comes out
/// as `Ok(Some(Err(ChannelError::Undecodable { .. })))` after exactly that
/// frame was consumed, and the server can answer FAILURE and read on. Only
/// errors that leave the stream out of sync (a bad length prefix, a frame cut
/// by the end of the stream) are returned as `Err`, which ends a `Framed`
/// stream.
///
/// The codec never reserves room for a frame before its declared length was
/// checked against the maximum frame size.
pub struct FrameCodec<In, Out> {
    max_frame_size: usize,
    _messages: PhantomData<fn(Out) -> In>,
}

impl<In, Out> FrameCodec<In, Out> {
    /// A codec with the default maximum frame size
    /// ([`DEFAULT_MAX_BUFFER_SIZE`]).
    pub fn new() -> Self {
        Self::with_max_frame_size(DEFAULT_MAX_BUFFER_SIZE)
    }

    /// A codec that accepts and sends frames of at most `max_frame_size`
    /// bytes, prefix included; a daemon passes its `max_command_buffer_size`.
    pub fn with_max_frame_size(max_frame_size: usize) -> Self {
        FrameCodec {
            max_frame_size,
            _messages: PhantomData,
        }
    }

    /// The largest frame, prefix included, this codec accepts and sends.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }
}

impl<In, Out> Default for FrameCodec<In, Out> {
    fn default() -> Self {
        Self::new()
    }
}

// Derives would demand `In: Clone` and `Out: Debug`, which the codec does not
// need.
impl<In, Out> Clone for FrameCodec<In, Out> {
    fn clone(&self) -> Self {
        Self::with_max_frame_size(self.max_frame_size)
    }
}

impl<In, Out> fmt::Debug for FrameCodec<In, Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameCodec")
            .field("max_frame_size", &self.max_frame_size)
            .finish()
    }
}

impl<In: Message + Default, Out> Decoder for FrameCodec<In, Out> {
    type Item = Result<In, ChannelError>;
    type Error = ChannelError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, ChannelError> {
        match frame::decode::<In>(src, self.max_frame_size) {
            Ok(Some((message, len))) => {
                src.advance(len);
                Ok(Some(Ok(message)))
            }
            Ok(None) => {
                // The length is validated by now, so reserving it is safe and
                // spares the reader repeated small reallocations.
                if let Some(len) = frame::peek_frame_len(src, self.max_frame_size)? {
                    src.reserve(len - src.len());
                }
                Ok(None)
            }
            Err(error) => match error.frame_len() {
                Some(len) => {
                    src.advance(len);
                    Ok(Some(Err(error)))
                }
                None => Err(error),
            },
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, ChannelError> {
        match self.decode(src)? {
            Some(item) => Ok(Some(item)),
            None if src.is_empty() => Ok(None),
            None => Err(frame::truncated(src, self.max_frame_size)),
        }
    }
}

impl<In, Out: Message> FrameCodec<In, Out> {
    /// Appends one frame, growing `dst` once; see [`Encoder::encode`].
    fn append(&self, message: &Out, dst: &mut BytesMut) -> Result<(), ChannelError> {
        let len = frame::frame_len(message);
        if len <= self.max_frame_size {
            dst.reserve(len);
        }
        frame::encode(message, self.max_frame_size, dst).map(drop)
    }
}

impl<In, Out: Message> Encoder<Out> for FrameCodec<In, Out> {
    type Error = ChannelError;

    /// Appends one frame. A message above the maximum frame size is refused
    /// with [`ChannelError::MessageTooLarge`] and nothing is appended, so the
    /// caller may send a smaller answer (a FAILURE) instead.
    fn encode(&mut self, message: Out, dst: &mut BytesMut) -> Result<(), ChannelError> {
        self.append(&message, dst)
    }
}

/// Boxed messages encode as the message itself; senders that queue large
/// messages box them to avoid copying them along the way.
impl<In, Out: Message> Encoder<Box<Out>> for FrameCodec<In, Out> {
    type Error = ChannelError;

    fn encode(&mut self, message: Box<Out>, dst: &mut BytesMut) -> Result<(), ChannelError> {
        self.append(&message, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::command::{Request, Response, Status, request::RequestType};

    type ServerCodec = FrameCodec<Request, Response>;

    fn status_frame() -> Vec<u8> {
        frame::encode_to_vec(&Request::from(RequestType::Status(Status {})), 100).unwrap()
    }

    #[test]
    fn decodes_once_the_whole_frame_arrived() {
        let mut codec = ServerCodec::new();
        let mut buffer = BytesMut::new();
        let frame = status_frame();
        for byte in &frame[..frame.len() - 1] {
            buffer.extend_from_slice(&[*byte]);
            assert!(codec.decode(&mut buffer).unwrap().is_none());
        }
        buffer.extend_from_slice(&frame[frame.len() - 1..]);
        let request = codec.decode(&mut buffer).unwrap().unwrap().unwrap();
        assert_eq!(request.kind_name(), "STATUS");
        assert!(buffer.is_empty());
    }

    #[test]
    fn a_bad_payload_is_an_item_and_the_next_frame_follows() {
        let mut codec = ServerCodec::new();
        // save_state (field 1, a string) declared longer than the payload.
        let mut buffer = BytesMut::from(&[11u8, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0x7f, 0x00][..]);
        buffer.extend_from_slice(&status_frame());
        let item = codec.decode(&mut buffer).unwrap().unwrap();
        assert!(matches!(
            item,
            Err(ChannelError::Undecodable { frame_len: 11, .. })
        ));
        let next = codec.decode(&mut buffer).unwrap().unwrap().unwrap();
        assert_eq!(next.kind_name(), "STATUS");
    }

    #[test]
    fn a_bad_prefix_ends_the_stream_without_reserving_it() {
        let mut codec = ServerCodec::with_max_frame_size(1000);
        let mut buffer = BytesMut::from(&1001u64.to_le_bytes()[..]);
        let capacity = buffer.capacity();
        let error = codec.decode(&mut buffer).unwrap_err();
        assert!(matches!(
            error,
            ChannelError::FrameTooLarge {
                declared: 1001,
                max: 1000
            }
        ));
        assert_eq!(buffer.capacity(), capacity);
    }

    #[test]
    fn the_end_of_stream_inside_a_frame_is_truncation() {
        let mut codec = ServerCodec::new();
        let frame = status_frame();
        let mut buffer = BytesMut::from(&frame[..9]);
        let error = codec.decode_eof(&mut buffer).unwrap_err();
        assert!(matches!(
            error,
            ChannelError::Truncated {
                got: 9,
                expected: 10
            }
        ));
        let mut empty = BytesMut::new();
        assert!(codec.decode_eof(&mut empty).unwrap().is_none());
    }

    #[test]
    fn encoding_refuses_oversized_answers_and_appends_nothing() {
        let mut codec = ServerCodec::with_max_frame_size(64);
        let mut buffer = BytesMut::new();
        codec
            .encode(Response::ok("fine", None), &mut buffer)
            .unwrap();
        let written = buffer.len();
        let error = codec
            .encode(Response::ok("y".repeat(100), None), &mut buffer)
            .unwrap_err();
        assert!(matches!(
            error,
            ChannelError::MessageTooLarge { max: 64, .. }
        ));
        assert_eq!(buffer.len(), written);
    }
}
