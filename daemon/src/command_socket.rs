//! The command socket: binding it, accepting connections (pausing while the
//! process is out of descriptors), and serving each connection.
//!
//! Each connection is a task that reads one request, has it handled by
//! [`commands::handle`], writes every answer, and only then reads the next,
//! so a client's answers come in the order of its requests; clients never
//! wait for each other. An answer too large for one frame becomes a failure
//! that says so, and a client that does not read its answers is cut off.

use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use sozu_command::channel::{ChannelError, CommandServerCodec};
use sozu_command::proto::command::Response;
use sozu_proxy::log_limit::LogLimit;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

use crate::audit::Peer;
use crate::commands;
use crate::main_process::Main;

/// Answers (events included) a command connection may have waiting to be
/// written before the client is cut off for not reading them: an event
/// subscriber's documented queue.
const MAX_UNWRITTEN_ANSWERS: usize = crate::events::SUBSCRIBER_QUEUE;
/// How often a blocked write looks at how much is waiting behind it.
const UNWRITTEN_CHECK: Duration = Duration::from_millis(100);

/// Checks that no daemon is alive on the command socket, and removes a
/// stale socket file left by one that is gone.
pub fn check_command_socket(path: &Path) -> Result<(), String> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "another daemon is already listening on the command socket {}",
                path.display()
            ));
        }
        std::fs::remove_file(path).map_err(|error| {
            format!(
                "could not remove the stale socket {}: {error}",
                path.display()
            )
        })?;
    }
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
        && !parent.exists()
    {
        return Err(format!(
            "the folder of the command socket {} does not exist",
            path.display()
        ));
    }
    Ok(())
}

/// Binds the command socket with the configured mode (0600 by default).
/// The socket is created with no access for others from its first instant.
pub fn bind_command_socket(path: &Path, mode: u32) -> Result<UnixListener, String> {
    check_command_socket(path)?;
    let previous = unsafe_umask(0o177);
    let listener = UnixListener::bind(path);
    unsafe_umask(previous);
    let listener = listener.map_err(|error| {
        format!(
            "could not create the command socket {}: {error}",
            path.display()
        )
    })?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|error| format!("could not set the mode of {}: {error}", path.display()))?;
    Ok(listener)
}

fn unsafe_umask(mask: u32) -> u32 {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask)).bits()
}

/// The listening command socket, accepting connections.
pub struct CommandSocket {
    listener: UnixListener,
    backoff: AcceptBackoff,
}

impl CommandSocket {
    /// Accepts on `listener`.
    pub fn new(listener: UnixListener) -> Self {
        CommandSocket {
            listener,
            backoff: AcceptBackoff::default(),
        }
    }

    /// The listening socket's descriptor (kept across an upgrade).
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.listener.as_raw_fd()
    }

    /// The next client connection. Errors are logged (rate-limited) and
    /// accepting goes on; while out of descriptors (or memory), accepting
    /// again at once would fail again at once and spin, so accepting pauses
    /// instead, longer each time it fails the same way. Cancel-safe: a
    /// pause cut short goes on at the next call.
    pub async fn accept(&mut self) -> UnixStream {
        static ACCEPT_FAILED: LogLimit = LogLimit::new(Duration::from_secs(1));
        loop {
            if let Some(until) = self.backoff.until {
                tokio::time::sleep_until(until).await;
                self.backoff.until = None;
            }
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    self.backoff.reset();
                    return stream;
                }
                Err(error) => {
                    if sozu_proxy::listener::is_resource_exhaustion(&error) {
                        self.backoff.pause();
                    }
                    if let Some(held_back) = ACCEPT_FAILED.allow() {
                        tracing::warn!(
                            %error,
                            held_back,
                            pause_ms = self.backoff.delay.as_millis() as u64,
                            "could not accept a command connection"
                        );
                    }
                }
            }
        }
    }
}

/// The pause of the command socket's accept loop while the process is out
/// of resources.
#[derive(Default)]
struct AcceptBackoff {
    /// The last pause (zero once an accept succeeds).
    delay: Duration,
    /// When accepting resumes, while paused.
    until: Option<tokio::time::Instant>,
}

impl AcceptBackoff {
    /// Shortest and longest pause.
    const FIRST: Duration = Duration::from_millis(10);
    const LONGEST: Duration = Duration::from_secs(1);

    fn pause(&mut self) {
        self.delay = (self.delay * 2).clamp(Self::FIRST, Self::LONGEST);
        self.until = Some(tokio::time::Instant::now() + self.delay);
    }

    fn reset(&mut self) {
        self.delay = Duration::ZERO;
    }
}

/// Answers the client whose `upgrade_main` request this program was
/// started for, then serves it like any other.
pub async fn serve_upgraded_client(main: Rc<Main>, stream: UnixStream) {
    let mut framed = Framed::new(
        stream,
        CommandServerCodec::with_max_frame_size(
            usize::try_from(main.config().max_command_buffer_size).unwrap_or(usize::MAX),
        ),
    );
    let answer = Response::ok(
        format!("Main process upgraded (pid {})", std::process::id()),
        None,
    );
    if framed.send(answer).await.is_ok() {
        serve_client(main, framed.into_inner()).await;
    }
}

/// Serves one command connection until the client goes away.
pub async fn serve_client(main: Rc<Main>, stream: UnixStream) {
    let peer = Peer::of(&stream);
    let allowed = main.config().command_allowed_uids.clone();
    let max_frame = usize::try_from(main.config().max_command_buffer_size).unwrap_or(usize::MAX);
    let framed = Framed::new(stream, CommandServerCodec::with_max_frame_size(max_frame));
    let (mut sink, mut stream) = framed.split();
    let (answers, mut outgoing) = mpsc::unbounded_channel::<Response>();
    let writer = tokio::task::spawn_local(async move {
        while let Some(response) = outgoing.recv().await {
            let send = sink.send(fitted(response, max_frame));
            tokio::pin!(send);
            // While the client does not read, answers (events above
            // all) pile up here: past the limit it is cut off, rather
            // than hold the main process's memory without bound.
            let written = loop {
                tokio::select! {
                    result = &mut send => break result.is_ok(),
                    () = tokio::time::sleep(UNWRITTEN_CHECK) => {
                        if outgoing.len() >= MAX_UNWRITTEN_ANSWERS {
                            break false;
                        }
                    }
                }
            };
            if !written {
                if outgoing.len() >= MAX_UNWRITTEN_ANSWERS {
                    static CUT_OFF: sozu_proxy::log_limit::LogLimit =
                        sozu_proxy::log_limit::LogLimit::new(Duration::from_secs(1));
                    if let Some(held_back) = CUT_OFF.allow() {
                        tracing::warn!(
                            held_back,
                            "cut off a command client that does not read its answers"
                        );
                    }
                    // Said once more, in case it reads again soon.
                    let failure = Response::failure(format!(
                        "connection closed: {MAX_UNWRITTEN_ANSWERS} answers or events were \
                         waiting to be written and the client did not read them"
                    ));
                    let _ = tokio::time::timeout(UNWRITTEN_CHECK, sink.send(failure)).await;
                }
                break;
            }
        }
    });
    if let Some(allowed) = allowed
        && !peer.uid.is_some_and(|uid| allowed.contains(&uid))
    {
        // A refused user could otherwise fill the log by reconnecting.
        static REFUSED: sozu_proxy::log_limit::LogLimit =
            sozu_proxy::log_limit::LogLimit::new(Duration::from_secs(1));
        if let Some(held_back) = REFUSED.allow() {
            tracing::warn!(%peer, held_back, "refused a command connection from a user not in command_allowed_uids");
        }
        let _ = answers.send(Response::failure(format!(
            "user {} is not allowed to use this command socket (command_allowed_uids)",
            peer.uid.map_or("unknown".to_owned(), |uid| uid.to_string())
        )));
        drop(answers);
        let _ = writer.await;
        return;
    }
    while let Some(frame) = stream.next().await {
        match frame {
            Ok(Ok(request)) => {
                commands::handle(&main, request, &peer, &answers).await;
            }
            Ok(Err(error)) => {
                let _ = answers.send(Response::failure(format!(
                    "could not decode the request: {error}"
                )));
            }
            Err(error) => {
                // The stream cannot be resynchronised: say why, then close.
                let _ = answers.send(Response::failure(describe_frame_error(&error)));
                break;
            }
        }
        if answers.is_closed() || main.exits_after_answer() {
            break;
        }
    }
    drop(answers);
    let _ = writer.await;
    if main.exits_after_answer() {
        main.exit();
    }
}

fn describe_frame_error(error: &ChannelError) -> String {
    match error {
        ChannelError::FrameTooLarge { declared, max } => format!(
            "the request frame declares {declared} bytes, more than the {max} allowed (max_command_buffer_size); closing the connection"
        ),
        ChannelError::FrameTooSmall { declared } => format!(
            "the request frame declares {declared} bytes, less than its own 8-byte length; closing the connection"
        ),
        other => format!("broken command stream: {other}; closing the connection"),
    }
}

/// The answer itself, or, when it would not fit in one frame, a failure
/// that says so: the client gets an answer instead of waiting for one that
/// can never be written, and the connection goes on.
fn fitted(response: Response, max_frame_size: usize) -> Response {
    let len = sozu_command::channel::frame::frame_len(&response);
    if len <= max_frame_size {
        return response;
    }
    Response::failure(format!(
        "the answer is too large to send ({len} bytes, at most {max_frame_size}): raise \
         max_command_buffer_size, or ask for less (a cluster id, a domain)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sozu_command::proto::command::ResponseStatus;

    #[test]
    fn an_answer_too_large_to_send_becomes_a_failure_that_says_so() {
        let small = Response::ok("fine", None);
        assert_eq!(fitted(small.clone(), 4096), small);
        let large = Response::ok("x".repeat(10_000), None);
        let refused = fitted(large.clone(), 4096);
        assert_eq!(refused.status, ResponseStatus::Failure as i32);
        assert!(refused.message.contains("too large"), "{}", refused.message);
        assert!(sozu_command::channel::frame::frame_len(&refused) <= 4096);
        assert_eq!(fitted(large.clone(), 1 << 20), large);
    }
}
