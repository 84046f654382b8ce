//! The one error type of the channel module, shared by the frame functions,
//! the blocking [`Channel`](super::Channel) and the async
//! [`FrameCodec`](super::FrameCodec).

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::frame::LENGTH_PREFIX_SIZE;

/// Everything that can go wrong while framing, sending or receiving messages.
///
/// Callers branch on two questions, answered by methods rather than by
/// matching every variant:
///
/// - [`ChannelError::is_recoverable`]: may the same connection keep being
///   used? A daemon answers FAILURE for a recoverable error and keeps the
///   client; for an unrecoverable one it answers (if it can) and closes.
/// - [`ChannelError::frame_len`]: how many bytes of the stream the failed
///   frame occupied, for readers that manage their own buffer and must skip
///   it to stay in sync.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// A frame's length prefix declares more bytes than the configured
    /// maximum. Nothing of that size was allocated. Where the frame ends is
    /// unknown (the prefix may be garbage), so the stream cannot be
    /// resynchronised.
    #[error(
        "a frame declares {declared} bytes, above the limit of {max} bytes; \
         the stream cannot be resynchronised"
    )]
    FrameTooLarge {
        /// The length read from the prefix, which counts the prefix itself.
        declared: u64,
        /// The configured maximum frame size, prefix included.
        max: usize,
    },

    /// A frame's length prefix declares fewer bytes than the prefix itself
    /// occupies, which no valid frame can do. The stream cannot be
    /// resynchronised.
    #[error(
        "a frame declares {declared} bytes, fewer than its own {LENGTH_PREFIX_SIZE}-byte \
         length prefix; the stream cannot be resynchronised"
    )]
    FrameTooSmall {
        /// The length read from the prefix.
        declared: u64,
    },

    /// The peer closed the connection in the middle of a frame.
    #[error("the connection closed inside a frame: got {got} of {expected} bytes")]
    Truncated {
        /// Bytes of the unfinished frame that arrived.
        got: usize,
        /// Bytes the frame needed: its declared length, or the size of the
        /// length prefix when even the prefix was incomplete.
        expected: u64,
    },

    /// A well-framed payload is not a valid protobuf encoding of the
    /// expected message. Exactly `frame_len` bytes were consumed, so the
    /// next frame can be read normally.
    #[error("could not decode the payload of a {frame_len}-byte frame: {source}")]
    Undecodable {
        /// The whole frame's length, prefix included: what a reader skips.
        frame_len: usize,
        /// What prost found wrong with the payload.
        #[source]
        source: prost::DecodeError,
    },

    /// A message to send would make a frame above the configured maximum,
    /// which the peer would refuse. Nothing was written.
    #[error("a {len}-byte frame is above the limit of {max} bytes; it was not sent")]
    MessageTooLarge {
        /// The frame length the message would need, prefix included.
        len: usize,
        /// The configured maximum frame size, prefix included.
        max: usize,
    },

    /// No answer arrived within the allowed wait. Bytes already received are
    /// kept, so a later read resumes where this one stopped.
    #[error("no answer within {} ms", waited.as_millis())]
    Timeout {
        /// The wait that expired.
        waited: Duration,
    },

    /// The peer closed the connection cleanly, between frames, before the
    /// final answer to a request arrived.
    #[error("the connection closed before the final answer arrived")]
    ConnectionClosed,

    /// Connecting to a unix socket failed (missing socket, no daemon
    /// listening, permission denied...).
    #[error("could not connect to {}: {source}", path.display())]
    Connect {
        /// The socket path that was tried.
        path: PathBuf,
        /// Why the operating system refused.
        #[source]
        source: io::Error,
    },

    /// Reading from or writing to the connection failed.
    #[error("I/O error on the channel: {0}")]
    Io(#[from] io::Error),
}

impl ChannelError {
    /// Whether the connection stays usable after this error.
    ///
    /// True for an undecodable payload (the frame was consumed whole), a
    /// message too large to send (nothing was written) and a timeout (the
    /// partial bytes received are kept). False for everything else: after a
    /// bad length prefix, a truncated frame, a closed connection or an I/O
    /// failure, further reads cannot yield meaningful frames.
    pub fn is_recoverable(&self) -> bool {
        matches!(
            self,
            ChannelError::Undecodable { .. }
                | ChannelError::MessageTooLarge { .. }
                | ChannelError::Timeout { .. }
        )
    }

    /// For an error about one complete frame, that frame's length (prefix
    /// included): the number of bytes to skip in the input to reach the next
    /// frame. `None` when no frame boundary is known.
    pub fn frame_len(&self) -> Option<usize> {
        match self {
            ChannelError::Undecodable { frame_len, .. } => Some(*frame_len),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_in_sync_errors_are_recoverable() {
        // A length-delimited field 1 that claims more bytes than follow.
        let source = <crate::proto::command::Request as prost::Message>::decode(&[0x0a, 0x7f][..])
            .unwrap_err();
        let undecodable = ChannelError::Undecodable {
            frame_len: 12,
            source,
        };
        assert!(undecodable.is_recoverable());
        assert_eq!(undecodable.frame_len(), Some(12));

        let too_large = ChannelError::FrameTooLarge {
            declared: 5_000_000,
            max: 2_000_000,
        };
        assert!(!too_large.is_recoverable());
        assert_eq!(too_large.frame_len(), None);
        assert!(!ChannelError::FrameTooSmall { declared: 3 }.is_recoverable());
        assert!(!ChannelError::ConnectionClosed.is_recoverable());
        assert!(
            ChannelError::Timeout {
                waited: Duration::from_millis(5)
            }
            .is_recoverable()
        );
    }

    #[test]
    fn messages_name_the_numbers_involved() {
        let message = ChannelError::FrameTooLarge {
            declared: 5_000_000,
            max: 2_000_000,
        }
        .to_string();
        assert!(message.contains("5000000") && message.contains("2000000"));
        assert!(message.contains("cannot be resynchronised"));

        let message = ChannelError::Truncated {
            got: 3,
            expected: 10,
        }
        .to_string();
        assert!(message.contains("3 of 10"));

        let message = ChannelError::Timeout {
            waited: Duration::from_millis(1500),
        }
        .to_string();
        assert_eq!(message, "no answer within 1500 ms");

        let message = ChannelError::Connect {
            path: PathBuf::from("/run/sozu/sozu.sock"),
            source: io::Error::from(io::ErrorKind::NotFound),
        }
        .to_string();
        assert!(message.starts_with("could not connect to /run/sozu/sozu.sock: "));
    }
}
