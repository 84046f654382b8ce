//! The blocking client channel: what `sozu` subcommands, `top` and scripts
//! use to talk to a daemon over its command socket.

use std::fmt;
use std::io::{self, Read, Write};
use std::marker::PhantomData;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use prost::Message;

use super::frame::{self, DEFAULT_MAX_BUFFER_SIZE, INITIAL_CLIENT_BUFFER_SIZE, LENGTH_PREFIX_SIZE};
use super::{Answer, ChannelError};

/// How long a client whose request could not be written looks for an
/// answer the peer sent before closing.
const REFUSAL_WAIT: Duration = Duration::from_millis(500);

/// A byte stream whose blocking reads can be bounded in time.
///
/// Implemented for [`UnixStream`] (the command socket) and for in-memory
/// [`io::Cursor`]s, which never block. Implement it for another transport to
/// run a [`Channel`] over it.
pub trait BlockingStream: Read {
    /// Bounds every following `read` to `timeout`; `None` lets reads block
    /// forever. A read that runs out of time must fail with
    /// [`io::ErrorKind::WouldBlock`] or [`io::ErrorKind::TimedOut`].
    /// The channel never passes `Some(Duration::ZERO)`.
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;
}

impl BlockingStream for UnixStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
}

impl<T> BlockingStream for io::Cursor<T>
where
    io::Cursor<T>: Read,
{
    fn set_read_timeout(&mut self, _timeout: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

/// A framed, typed, blocking connection: sends `Tx` messages and receives
/// `Rx` messages over the stream `S`.
///
/// A client of the command socket is a [`CommandChannel`](super::CommandChannel)
/// (`Channel<Request, Response>`). The channel owns a read buffer that starts
/// at [`INITIAL_CLIENT_BUFFER_SIZE`] bytes and grows only when a frame needs
/// it, never beyond the maximum frame size (or the initial size, if that is
/// larger). Bytes read past the end of one frame are kept for the next read.
pub struct Channel<Tx, Rx, S = UnixStream> {
    stream: S,
    read_buffer: ReadBuffer,
    write_buffer: Vec<u8>,
    max_frame_size: usize,
    /// Whether the stream may currently carry a read timeout; lets reads
    /// without a deadline skip a system call once the timeout is cleared.
    read_timeout_armed: bool,
    _messages: PhantomData<fn(Tx) -> Rx>,
}

impl<Tx, Rx> Channel<Tx, Rx, UnixStream> {
    /// Connects to the unix socket at `path`, with the default maximum frame
    /// size ([`DEFAULT_MAX_BUFFER_SIZE`]).
    ///
    /// A failure is [`ChannelError::Connect`], which names the path.
    pub fn connect(path: impl AsRef<Path>) -> Result<Self, ChannelError> {
        let path = path.as_ref();
        match UnixStream::connect(path) {
            Ok(stream) => Ok(Self::new(stream)),
            Err(source) => Err(ChannelError::Connect {
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}

impl<Tx, Rx, S> Channel<Tx, Rx, S> {
    /// Wraps an already connected stream, with the default maximum frame size.
    ///
    /// The stream must be in blocking mode: a non-blocking stream turns
    /// "no data yet" into errors or, with a deadline, into a busy wait.
    pub fn new(stream: S) -> Self {
        Channel {
            stream,
            read_buffer: ReadBuffer::new(initial_buffer_size(DEFAULT_MAX_BUFFER_SIZE)),
            write_buffer: Vec::new(),
            max_frame_size: DEFAULT_MAX_BUFFER_SIZE,
            read_timeout_armed: true,
            _messages: PhantomData,
        }
    }

    /// Sets the largest frame (length prefix included) this channel accepts
    /// and sends; match the peer's `max_command_buffer_size`.
    ///
    /// Meant to be chained right after construction: bytes already buffered
    /// are kept, but the buffer is not shrunk.
    pub fn with_max_frame_size(mut self, max_frame_size: usize) -> Self {
        self.max_frame_size = max_frame_size;
        if self.read_buffer.is_empty() {
            self.read_buffer = ReadBuffer::new(initial_buffer_size(max_frame_size));
        }
        self
    }

    /// The largest frame, prefix included, this channel accepts and sends.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// The underlying stream, for socket options or peer credentials.
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// Gives the stream back. Bytes already read from it but not yet decoded
    /// are lost.
    pub fn into_stream(self) -> S {
        self.stream
    }

    /// How many received bytes wait in the read buffer for the next read.
    pub fn buffered_len(&self) -> usize {
        self.read_buffer.data().len()
    }

    /// How many bytes the read buffer currently holds room for. Never above
    /// the larger of the maximum frame size and [`INITIAL_CLIENT_BUFFER_SIZE`].
    pub fn read_capacity(&self) -> usize {
        self.read_buffer.capacity()
    }
}

impl<Tx: Message, Rx, S: Write> Channel<Tx, Rx, S> {
    /// Sends `message` as one frame and flushes it.
    ///
    /// A message whose frame would exceed the maximum frame size is refused
    /// with [`ChannelError::MessageTooLarge`] before anything is written.
    /// Writes are not bounded in time: a command frame fits in the socket's
    /// send buffer, so only a peer that stops reading for megabytes can block
    /// them.
    pub fn write_message(&mut self, message: &Tx) -> Result<(), ChannelError> {
        self.write_buffer.clear();
        self.write_buffer.reserve(frame::frame_len(message));
        frame::encode(message, self.max_frame_size, &mut self.write_buffer)?;
        self.stream.write_all(&self.write_buffer)?;
        self.stream.flush()?;
        // A one-off large request should not pin its buffer for the whole
        // life of the channel.
        if self.write_buffer.capacity() > INITIAL_CLIENT_BUFFER_SIZE {
            self.write_buffer = Vec::new();
        }
        Ok(())
    }
}

impl<Tx, Rx: Message + Default, S: BlockingStream> Channel<Tx, Rx, S> {
    /// Reads the next message, waiting at most `timeout` for it to arrive in
    /// full. `None` or a zero duration waits forever.
    ///
    /// - `Ok(Some(message))`: one frame was consumed.
    /// - `Ok(None)`: the peer closed the connection cleanly between frames.
    /// - [`ChannelError::Timeout`]: the wait expired; bytes of a partly
    ///   received frame stay buffered and the next call resumes with them.
    /// - [`ChannelError::Undecodable`]: that frame was skipped; the channel
    ///   stays usable.
    /// - [`ChannelError::Truncated`]: the connection closed inside a frame.
    /// - [`ChannelError::FrameTooLarge`] / [`ChannelError::FrameTooSmall`]: a
    ///   bad length prefix; the channel cannot be used any more (every later
    ///   read reports the same error).
    pub fn read_message(&mut self, timeout: Option<Duration>) -> Result<Option<Rx>, ChannelError> {
        let timeout = timeout.filter(|timeout| !timeout.is_zero());
        // A duration too large to add to the clock is, in practice, forever.
        let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
        loop {
            let buffered = self.read_buffer.data();
            match frame::decode::<Rx>(buffered, self.max_frame_size) {
                Ok(Some((message, len))) => {
                    self.read_buffer.consume(len);
                    return Ok(Some(message));
                }
                Ok(None) => {}
                Err(error) => {
                    if let Some(len) = error.frame_len() {
                        self.read_buffer.consume(len);
                    }
                    return Err(error);
                }
            }
            // The prefix, once complete, was validated by `decode` above, so
            // growing to the declared length is safe.
            let needed =
                frame::peek_frame_len(buffered, self.max_frame_size)?.unwrap_or(LENGTH_PREFIX_SIZE);
            self.read_buffer.make_room(needed, self.max_frame_size);
            if self.fill(deadline, timeout)? == 0 {
                let buffered = self.read_buffer.data();
                if buffered.is_empty() {
                    return Ok(None);
                }
                return Err(frame::truncated(buffered, self.max_frame_size));
            }
        }
    }

    /// One read from the stream into the buffer's free room, bounded by the
    /// deadline. Returns the number of bytes read, 0 at end of stream.
    fn fill(
        &mut self,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
    ) -> Result<usize, ChannelError> {
        loop {
            let wait = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(ChannelError::Timeout {
                            waited: timeout.unwrap_or_default(),
                        });
                    }
                    Some(left)
                }
                None => None,
            };
            if wait.is_some() || self.read_timeout_armed {
                self.stream.set_read_timeout(wait)?;
                self.read_timeout_armed = wait.is_some();
            }
            match self.stream.read(self.read_buffer.spare()) {
                Ok(read) => {
                    self.read_buffer.filled(read);
                    return Ok(read);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                // The kernel may wake a timed read a little early; the loop
                // re-checks the deadline rather than trusting it.
                Err(error)
                    if deadline.is_some()
                        && matches!(
                            error.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) => {}
                Err(error) => return Err(ChannelError::Io(error)),
            }
        }
    }
}

impl<Tx: Message, Rx: Message + Default + Answer, S: BlockingStream + Write> Channel<Tx, Rx, S> {
    /// The whole exchange of a client: sends `request`, then reads answers
    /// until one is final (its status is not PROCESSING) and returns it.
    ///
    /// `on_progress` sees every PROCESSING answer, in order, before the final
    /// one. `timeout` bounds the wait for each next answer, not the whole
    /// exchange: every PROCESSING answer starts the wait again, so long work
    /// that reports progress is never cut. `None` or zero waits forever.
    ///
    /// A clean close before the final answer is
    /// [`ChannelError::ConnectionClosed`]; any other error is returned as
    /// [`Channel::read_message`] reports it. For a subscription, which never
    /// sends a final answer, use [`Channel::write_message`] and
    /// [`Channel::read_message`] directly.
    pub fn exchange(
        &mut self,
        request: &Tx,
        timeout: Option<Duration>,
        mut on_progress: impl FnMut(&Rx),
    ) -> Result<Rx, ChannelError> {
        if let Err(error) = self.write_message(request) {
            // The peer may have answered and closed without reading (a
            // daemon refusing this user does): its answer explains more
            // than the broken pipe.
            return match self.read_message(Some(REFUSAL_WAIT)) {
                Ok(Some(answer)) if answer.is_final() => Ok(answer),
                _ => Err(error),
            };
        }
        loop {
            match self.read_message(timeout)? {
                Some(answer) if answer.is_final() => return Ok(answer),
                Some(progress) => on_progress(&progress),
                None => return Err(ChannelError::ConnectionClosed),
            }
        }
    }
}

impl<Tx, Rx, S: fmt::Debug> fmt::Debug for Channel<Tx, Rx, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("stream", &self.stream)
            .field("buffered", &self.read_buffer.data().len())
            .field("read_capacity", &self.read_buffer.capacity())
            .field("max_frame_size", &self.max_frame_size)
            .finish()
    }
}

/// Where the read buffer starts: small, but never below one length prefix
/// (even under an absurd limit, the prefix must fit to be judged).
fn initial_buffer_size(max_frame_size: usize) -> usize {
    INITIAL_CLIENT_BUFFER_SIZE
        .min(max_frame_size)
        .max(LENGTH_PREFIX_SIZE)
}

/// A byte buffer with a consumed front and a filled region, whose size is
/// decided here rather than by `Vec`'s doubling, so that its capacity is
/// bounded by the frame limit.
struct ReadBuffer {
    /// Always fully initialised; `bytes.len()` is the capacity in use.
    bytes: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuffer {
    fn new(size: usize) -> Self {
        ReadBuffer {
            bytes: vec![0; size],
            start: 0,
            end: 0,
        }
    }

    fn data(&self) -> &[u8] {
        &self.bytes[self.start..self.end]
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn capacity(&self) -> usize {
        self.bytes.len()
    }

    fn consume(&mut self, len: usize) {
        self.start = (self.start + len).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    fn spare(&mut self) -> &mut [u8] {
        &mut self.bytes[self.end..]
    }

    fn filled(&mut self, len: usize) {
        self.end = (self.end + len).min(self.bytes.len());
    }

    /// Ensures a frame of `frame_len` bytes starting at the buffered data
    /// fits, moving the data to the front or growing (up to `limit`) only
    /// when it does not. Callers pass a `frame_len` already checked against
    /// the limit and larger than what is buffered, so room to read remains.
    fn make_room(&mut self, frame_len: usize, limit: usize) {
        if self.bytes.len() - self.start >= frame_len {
            return;
        }
        self.bytes.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if self.bytes.len() >= frame_len {
            return;
        }
        // Doubling keeps a series of growing frames from reallocating each
        // time; the limit keeps the doubling from overshooting the maximum.
        let size = self.bytes.len().saturating_mul(2).min(limit).max(frame_len);
        self.bytes.reserve_exact(size - self.bytes.len());
        self.bytes.resize(size, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::command::{Request, Response, ResponseStatus, Status, request::RequestType};
    use std::io::Cursor;

    type Reader = Channel<Request, Response, Cursor<Vec<u8>>>;

    fn frames(messages: &[Response]) -> Vec<u8> {
        messages
            .iter()
            .flat_map(|message| frame::encode_to_vec(message, DEFAULT_MAX_BUFFER_SIZE).unwrap())
            .collect()
    }

    #[test]
    fn reads_frames_then_reports_a_clean_close() {
        let answers = [Response::processing("one"), Response::ok("two", None)];
        let mut channel = Reader::new(Cursor::new(frames(&answers)));
        assert_eq!(channel.read_message(None).unwrap().unwrap(), answers[0]);
        assert_eq!(channel.read_message(None).unwrap().unwrap(), answers[1]);
        assert!(channel.read_message(None).unwrap().is_none());
    }

    #[test]
    fn a_large_frame_grows_the_buffer_only_as_needed() {
        let big = Response::ok("x".repeat(50_000), None);
        let mut channel = Reader::new(Cursor::new(frames(std::slice::from_ref(&big))));
        assert_eq!(channel.read_capacity(), INITIAL_CLIENT_BUFFER_SIZE);
        assert_eq!(channel.read_message(None).unwrap().unwrap(), big);
        assert!(channel.read_capacity() >= frame::frame_len(&big));
        assert!(channel.read_capacity() <= DEFAULT_MAX_BUFFER_SIZE);
        assert_eq!(channel.buffered_len(), 0);
    }

    #[test]
    fn the_buffer_never_outgrows_the_limit() {
        let limit = 10_000;
        let medium = Response::ok("x".repeat(6000), None);
        let big = Response::ok("x".repeat(limit - 20), None);
        let input = frames(&[medium.clone(), big.clone()]);
        let mut channel = Reader::new(Cursor::new(input)).with_max_frame_size(limit);
        assert_eq!(channel.read_message(None).unwrap().unwrap(), medium);
        // Doubled from the initial 4096 bytes.
        assert_eq!(channel.read_capacity(), 8192);
        assert_eq!(channel.read_message(None).unwrap().unwrap(), big);
        // Doubling again would overshoot: the limit caps it.
        assert_eq!(channel.read_capacity(), limit);
    }

    #[test]
    fn eof_inside_a_frame_is_truncation() {
        let bytes = frames(&[Response::ok("complete", None)]);
        for cut in 1..bytes.len() {
            let mut channel = Reader::new(Cursor::new(bytes[..cut].to_vec()));
            match channel.read_message(None) {
                Err(ChannelError::Truncated { got, .. }) => assert_eq!(got, cut),
                other => panic!("cut at {cut}: expected Truncated, got {other:?}"),
            }
        }
    }

    #[test]
    fn an_undecodable_frame_is_skipped() {
        // A Response whose status field has the wrong wire type.
        let mut bytes = vec![10, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0x00];
        bytes.extend(frames(&[Response::ok("after", None)]));
        let mut channel = Reader::new(Cursor::new(bytes));
        let error = channel.read_message(None).unwrap_err();
        assert!(matches!(
            error,
            ChannelError::Undecodable { frame_len: 10, .. }
        ));
        let next = channel.read_message(None).unwrap().unwrap();
        assert_eq!(next.message, "after");
    }

    #[test]
    fn a_bad_prefix_poisons_the_channel() {
        let mut bytes = u64::MAX.to_le_bytes().to_vec();
        bytes.extend(frames(&[Response::ok("unreachable", None)]));
        let mut channel = Reader::new(Cursor::new(bytes));
        for _ in 0..2 {
            let error = channel.read_message(None).unwrap_err();
            assert!(matches!(error, ChannelError::FrameTooLarge { .. }));
            assert!(!error.is_recoverable());
        }
        assert_eq!(channel.read_capacity(), INITIAL_CLIENT_BUFFER_SIZE);
    }

    #[test]
    fn exchange_returns_the_first_final_answer() {
        let answers = [
            Response::processing("a"),
            Response::processing("b"),
            Response::failure("refused"),
            Response::ok("never read", None),
        ];
        let stream = Duplex {
            input: Cursor::new(frames(&answers)),
            output: Vec::new(),
        };
        let mut channel: Channel<Request, Response, Duplex> = Channel::new(stream);
        let mut progress = Vec::new();
        let request = Request::from(RequestType::Status(Status {}));
        let last = channel
            .exchange(&request, None, |answer| {
                progress.push(answer.message.clone())
            })
            .unwrap();
        assert_eq!(last.status, ResponseStatus::Failure as i32);
        assert_eq!(progress, ["a", "b"]);
        assert_eq!(
            channel.stream().output,
            frame::encode_to_vec(&request, 100).unwrap()
        );
    }

    #[test]
    fn exchange_reports_a_close_before_the_final_answer() {
        let stream = Duplex {
            input: Cursor::new(frames(&[Response::processing("a")])),
            output: Vec::new(),
        };
        let mut channel: Channel<Request, Response, Duplex> = Channel::new(stream);
        let error = channel
            .exchange(&Request::default(), None, |_| {})
            .unwrap_err();
        assert!(matches!(error, ChannelError::ConnectionClosed));
    }

    #[test]
    fn make_room_reuses_the_front_before_growing() {
        let mut buffer = ReadBuffer::new(16);
        buffer.spare()[..12].copy_from_slice(b"abcdefghijkl");
        buffer.filled(12);
        buffer.consume(10);
        buffer.make_room(12, 100);
        assert_eq!(buffer.data(), b"kl");
        assert_eq!(buffer.capacity(), 16);
        buffer.make_room(40, 100);
        assert_eq!(buffer.capacity(), 40);
        buffer.make_room(70, 100);
        assert_eq!(buffer.capacity(), 80);
        buffer.make_room(90, 100);
        assert_eq!(buffer.capacity(), 100);
        assert_eq!(buffer.data(), b"kl");
    }

    /// Reads from one buffer, writes into another.
    struct Duplex {
        input: Cursor<Vec<u8>>,
        output: Vec<u8>,
    }

    impl Read for Duplex {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl Write for Duplex {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl BlockingStream for Duplex {
        fn set_read_timeout(&mut self, _timeout: Option<Duration>) -> io::Result<()> {
            Ok(())
        }
    }
}
