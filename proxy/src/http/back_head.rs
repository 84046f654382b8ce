//! The backend's answer head, read back after a relayed request: interim
//! (1xx) answers go on to the client as they come (RFC 9110 §15.2), at
//! most [`MAX_INTERIM`] of them; the final head is parsed, checked and
//! planned (hop-by-hop headers out, the request id and the frontend's
//! response edits in) for [`super::response`] to relay.

use std::io::IoSlice;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use super::forward::{Failure, MAX_INTERIM, write_all};
use super::relay::{Conn, MAX_HEADERS, Plan, Prepared};
use super::relay_plan::MAX_EDITS;
use super::response::Response;
use crate::deadline::Until;
use crate::http1::edit::EditOptions;
use crate::http1::framing::{Framing, is_interim};
use crate::http1::head::{self, Answering, Parsed};
use crate::http1::names::Known;
use crate::pool::RawConnection;
use crate::settings::ListenerSettings;
use crate::splice::Client;

/// Reads the response head within the back timeout, after what the back
/// buffer holds already; interim (1xx) answers before it go on to the
/// client (RFC 9110 §15.2), hop-by-hop headers out.
pub(super) async fn receive_head<C>(
    conn: &mut Conn<C>,
    raw: &mut RawConnection,
    prepared: &Prepared,
    config: &ListenerSettings,
    (sent_at, timeout): (Instant, Duration),
) -> Result<Response, Failure>
where
    C: Client,
{
    // The first wait ends `timeout` after the request went out (the clock
    // was read then already); each later one `timeout` after it starts.
    let mut first_end = Some(tokio::time::Instant::from_std(sent_at) + timeout);
    let max = conn.context.shared.options.max_header_size;
    let front_timeout = super::seconds(config.front_timeout);
    let Conn {
        client,
        back,
        deadline,
        pending,
        plan,
        ..
    } = conn;
    // A backend that sends interim answers without end would hold the
    // exchange forever: MAX_INTERIM at most, those dropped included.
    let mut interim = 0;
    loop {
        // Empty lines before a status line are stepped over (the codec
        // allows them; the client is not sent them).
        let blank = back.chunks(2).take_while(|pair| *pair == b"\r\n").count();
        back.drain(..2 * blank);
        if !back.is_empty() {
            let reading = (max, config.id_header.as_str(), interim < MAX_INTERIM);
            match read_back_head(back, prepared, reading, pending, plan)? {
                BackHead::Interim(len) => {
                    interim += 1;
                    // Written at once, after the answers held back.
                    let mut slices = [IoSlice::new(pending)];
                    let written = write_all(client, &mut slices, deadline, front_timeout).await;
                    pending.clear();
                    written.map_err(|_| Failure::Client)?;
                    back.drain(..len);
                    continue;
                }
                BackHead::Final(response) => return Ok(response),
                BackHead::Partial => {}
                BackHead::Ignored(len) => {
                    interim += 1;
                    back.drain(..len);
                    continue;
                }
            }
        }
        if back.len() == back.capacity() {
            back.reserve(back.len().min(max + 1));
        }
        if !pending.is_empty() {
            // Answers held back wait one turn of the event loop for this
            // one (a quick backend answers within it, and they all go out
            // in one write); then they go out on their own, so that a slow
            // backend does not keep them from the client.
            tokio::task::yield_now().await;
            match raw.stream.try_read_buf(back) {
                Ok(read) if read > 0 => continue,
                _ => {
                    let mut slices = [IoSlice::new(pending)];
                    let written = write_all(client, &mut slices, deadline, front_timeout).await;
                    pending.clear();
                    written.map_err(|_| Failure::Client)?;
                }
            }
        }
        let had = back.len();
        // In this order, without drawing a random number for a fair one:
        // the close request first, so that a backend that keeps sending
        // cannot keep it from being seen.
        let end = first_end.take().map_or(Until::After(timeout), Until::At);
        let read = tokio::select! {
            biased;
            () = raw.registration.closed() => return Err(Failure::Bad("The backend session was closed.")),
            read = deadline.bounded(end, raw.stream.read_buf(back)) => read,
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) if had == 0 => return Err(Failure::Silent),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Err(Failure::Bad(
                    "The backend closed the connection mid-answer.",
                ));
            }
            Ok(Ok(_)) => {}
            Err(_) => return Err(Failure::Timeout),
        }
    }
}

/// What the back buffer holds, read by [`read_back_head`].
enum BackHead {
    /// Not a whole head yet.
    Partial,
    /// An interim (1xx) answer of this many bytes: its head, rewritten, was
    /// added to the answers held back.
    Interim(usize),
    /// The final response head (its edit plan in the connection's
    /// `plan`).
    Final(Response),
    /// A 100 of this many bytes the client is not to see: the relay told
    /// it to go on already ([`super::expect`]).
    Ignored(usize),
}

/// Parses the head at the start of `back` (an interim one refused when
/// there is no `room` for more). Kept out of the async
/// [`receive_head`] so that the parser's header slots live on the stack for
/// the parse alone, not in every exchange's future (which is moved, whole,
/// at each request).
fn read_back_head(
    back: &[u8],
    prepared: &Prepared,
    (max, id_header, room): (usize, &str, bool),
    pending: &mut Vec<u8>,
    plan: &mut Plan,
) -> Result<BackHead, Failure> {
    let answering = Answering {
        head_request: prepared.head_request,
        upgrade_requested: prepared.upgrade,
    };
    let too_many = |_| Failure::Bad("The response has too many headers.");
    let mut headers = head::slots::<MAX_HEADERS>();
    match head::parse_response(back, &mut headers, max, answering) {
        Ok(Parsed::Complete(head)) if is_interim(head.status) && !room => {
            Err(Failure::Bad("The backend sent too many interim answers."))
        }
        Ok(Parsed::Complete(head)) if head.status == 100 && prepared.continued => {
            Ok(BackHead::Ignored(head.len))
        }
        Ok(Parsed::Complete(head)) if is_interim(head.status) => {
            let plan = Plan::new(
                back,
                head.len,
                (head.headers, &head.lines),
                &EditOptions::default(),
            )
            .map_err(too_many)?;
            let start = pending.len();
            plan.extend_into(&[], back, &[], pending);
            if head.minor_version == 0 {
                // Sent on as HTTP/1.1 (the status line is always kept).
                pending[start + 7] = b'1';
            }
            Ok(BackHead::Interim(head.len))
        }
        Ok(Parsed::Complete(head)) => {
            let mut drop = [""; 1 + MAX_EDITS];
            drop[0] = id_header;
            let mut count = 1;
            let edits = prepared.admitted.route.response_headers();
            for (slot, edit) in drop[1..].iter_mut().zip(edits) {
                *slot = &edit.name;
                count += 1;
            }
            let options = EditOptions {
                drop: &drop[..count],
                // A 101 keeps its Upgrade line and says
                // `Connection: upgrade`, as on the hyper path.
                upgrading: head.framing == Framing::Switch,
                ..Default::default()
            };
            plan.refill(back, head.len, (head.headers, &head.lines), &options)
                .map_err(too_many)?;
            Ok(BackHead::Final(Response {
                status: head.status,
                head_len: head.len,
                framing: head.framing,
                persistent: head.connection.persistent(head.minor_version),
                http10: head.minor_version == 0,
                has_transfer_encoding: head.lines.has(Known::TransferEncoding),
                has_date: head.lines.has(Known::Date),
            }))
        }
        Ok(Parsed::Partial) => Ok(BackHead::Partial),
        Err(_) => Err(Failure::Bad("The backend's response broke the rules.")),
    }
}
