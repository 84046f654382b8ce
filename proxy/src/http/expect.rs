//! `Expect: 100-continue` on the relay (RFC 9110 §10.1.1). The head goes
//! to the backend with its `Expect` line; a client that asked waits for a
//! `100 Continue` before it sends the body, so before the body loop the
//! relay waits for whichever comes first:
//!
//! - the backend's `100 Continue`: passed on to the client;
//! - the backend's final answer (a 417, 401 or 413 decided from the head):
//!   the exchange ends there, as for any answer given before the whole
//!   body ([`super::forward`]);
//! - the body itself: the client did not wait, nothing to say;
//! - [`CONTINUE_WAIT`] of the backend's silence: the relay says
//!   `100 Continue` itself (a backend may ignore expectations, an HTTP/1.0
//!   one does not know them), as the hyper path does at once, and a 100 the
//!   backend sends later is not passed on.
//!
//! The client's front timeout runs from then on, not while it waits.

use std::io::IoSlice;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::tcp::ReadHalf;

use super::forward::{Failure, MAX_INTERIM, write_all};
use super::relay::{MAX_HEADERS, Plan};
use crate::deadline::Deadline;
use crate::http1::edit::EditOptions;
use crate::http1::framing::is_interim;
use crate::http1::head::{self, Answering, Parsed};

/// How long the relay waits for the backend's answer to an expectation
/// before telling the client to go on itself (curl waits as long before it
/// sends the body anyway).
pub(super) const CONTINUE_WAIT: Duration = Duration::from_secs(1);

/// The relay's own interim answer.
pub(super) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// How the wait ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Waited {
    /// The client was told to go on (by the backend or by the relay): a
    /// later `100 Continue` from the backend is dropped.
    Continued,
    /// The client sent body bytes first (they are in `front`).
    Sending,
    /// The backend gave its final answer: its head is in `back`.
    Answered,
}

/// The client's side of the wait.
pub(super) struct Client<'a, C> {
    pub(super) stream: &'a mut C,
    /// Empty when the wait starts; the body bytes the client sent first.
    pub(super) front: &'a mut Vec<u8>,
    /// Answers held back for earlier pipelined requests: they go first.
    pub(super) pending: &'a mut Vec<u8>,
    pub(super) timeout: Duration,
}

/// Waits until the client may send its body (see the module's comment).
pub(super) async fn wait<C>(
    client: Client<'_, C>,
    (from_back, back): (&mut ReadHalf<'_>, &mut Vec<u8>),
    deadline: &mut Deadline,
    (max, answering): (usize, Answering),
) -> Result<Waited, Failure>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let Client {
        stream,
        front,
        pending,
        timeout,
    } = client;
    let end = tokio::time::Instant::now() + CONTINUE_WAIT;
    loop {
        match scan(back, max, answering) {
            Scan::Continue(range) => {
                // Written after the answers held back.
                add_continue(pending, &back[range.clone()])?;
                let mut slices = [IoSlice::new(pending)];
                let written = write_all(stream, &mut slices, deadline, timeout).await;
                pending.clear();
                written.map_err(|_| Failure::Client)?;
                back.drain(range);
                return Ok(Waited::Continued);
            }
            Scan::Final => return Ok(Waited::Answered),
            Scan::More => {}
        }
        if back.len() == back.capacity() {
            back.reserve(back.len().clamp(1024, max + 1));
        }
        let waited = deadline
            .until(end, async {
                tokio::select! {
                    biased;
                    read = from_back.read_buf(back) => Side::Backend(read),
                    read = stream.read_buf(front) => Side::Client(read),
                }
            })
            .await;
        match waited {
            // The backend's silence: the relay answers for it.
            Err(_) => break,
            Ok(Side::Backend(Ok(0) | Err(_))) if back.is_empty() => return Err(Failure::Silent),
            Ok(Side::Backend(Ok(0) | Err(_))) => {
                return Err(Failure::Bad(
                    "The backend closed the connection mid-answer.",
                ));
            }
            Ok(Side::Backend(Ok(_))) => {}
            Ok(Side::Client(Ok(0) | Err(_))) => return Err(Failure::Client),
            Ok(Side::Client(Ok(_))) => return Ok(Waited::Sending),
        }
    }
    let mut slices = [IoSlice::new(pending), IoSlice::new(CONTINUE)];
    let written = write_all(stream, &mut slices, deadline, timeout).await;
    pending.clear();
    written.map_err(|_| Failure::Client)?;
    Ok(Waited::Continued)
}

/// Adds the backend's `100 Continue` (`bytes`, one whole head, maybe after
/// empty lines) to the answers held back: hop-by-hop lines out, sent on as
/// HTTP/1.1. A plain function, so that the parser's slots are not kept in
/// the exchange's future.
fn add_continue(pending: &mut Vec<u8>, bytes: &[u8]) -> Result<(), Failure> {
    let blank = bytes.chunks(2).take_while(|pair| *pair == b"\r\n").count();
    let bytes = &bytes[2 * blank..];
    let mut headers = head::slots::<MAX_HEADERS>();
    let answering = Answering::default();
    let Ok(Parsed::Complete(head)) =
        head::parse_response(bytes, &mut headers, bytes.len() + 1, answering)
    else {
        return Err(Failure::Bad("The backend's response broke the rules."));
    };
    let plan = Plan::new(
        bytes,
        head.len,
        (head.headers, &head.lines),
        &EditOptions::default(),
    )
    .map_err(|_| Failure::Bad("The response has too many headers."))?;
    let start = pending.len();
    plan.extend_into(&[], bytes, &[], pending);
    if head.minor_version == 0 {
        // The status line is always kept, and first.
        pending[start + 7] = b'1';
    }
    Ok(())
}

/// Which side spoke first.
enum Side {
    Backend(std::io::Result<usize>),
    Client(std::io::Result<usize>),
}

/// What the backend said so far.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// Nothing yet, or interim answers other than 100 (they stay for the
    /// response's head to pass on).
    More,
    /// A `100 Continue` at these bytes.
    Continue(std::ops::Range<usize>),
    /// A final head, or bytes that are no head (the response's reading
    /// says what is wrong).
    Final,
}

fn scan(back: &[u8], max: usize, answering: Answering) -> Scan {
    let mut at = 0;
    // More interim answers than the response may have: its reading refuses
    // them (and what the backend sends is bounded meanwhile).
    for _ in 0..=MAX_INTERIM {
        if at >= back.len() {
            return Scan::More;
        }
        let mut headers = head::slots::<MAX_HEADERS>();
        match head::parse_response(&back[at..], &mut headers, max, answering) {
            Ok(Parsed::Complete(head)) if head.status == 100 => {
                return Scan::Continue(at..at + head.len);
            }
            Ok(Parsed::Complete(head)) if is_interim(head.status) => at += head.len,
            Ok(Parsed::Partial) => return Scan::More,
            Ok(Parsed::Complete(_)) | Err(_) => return Scan::Final,
        }
    }
    Scan::Final
}

#[cfg(test)]
mod tests {
    use super::{Answering, Scan, scan};

    #[test]
    fn the_backend_s_100_is_found_after_other_interim_answers() {
        let scan = |bytes: &[u8]| scan(bytes, 16 * 1024, Answering::default());
        assert_eq!(scan(b""), Scan::More);
        assert_eq!(scan(b"HTTP/1.1 100 Cont"), Scan::More);
        assert_eq!(
            scan(b"HTTP/1.1 100 Continue\r\n\r\n"),
            Scan::Continue(0..25)
        );
        let hints = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n";
        assert_eq!(scan(hints), Scan::More);
        // More interim answers than a response may have: its reading
        // refuses them.
        let many = hints.repeat(super::MAX_INTERIM + 1);
        assert_eq!(scan(&many), Scan::Final);
        let both = [&hints[..], b"HTTP/1.1 100 Continue\r\n\r\n"].concat();
        assert_eq!(scan(&both), Scan::Continue(hints.len()..both.len()));
        let refused = b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(scan(refused), Scan::Final);
        assert_eq!(scan(b"garbage\r\n\r\n"), Scan::Final);
    }
}
