//! Forwarding a relayed request: the retry loop over the cluster's
//! backends, the request head and body to a pooled raw connection, then
//! the response head read back ([`super::back_head`]) and the rest relayed
//! ([`super::response`]).
//!
//! While the body goes out, the backend is watched: a response head that
//! arrives before the whole body (a 413 or a 401 from a backend that will
//! not read the rest, RFC 9112 §9.3) ends the upload; that answer is
//! relayed with `Connection: close`, and neither connection is kept.

use std::io::IoSlice;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::ReadHalf;

use super::answer::Exchange;
use super::back_head::receive_head;
use super::backend::connect;
use super::expect::{self, Waited};
use super::relay::{Conn, MAX_HEADERS, Next, Prepared};
use super::response;
use super::seconds;
use crate::balancer::Backend;
use crate::context::Shared;
use crate::deadline::Deadline;
use crate::http1::Side;
use crate::http1::chunked::ChunkedDecoder;
use crate::http1::framing::{Framing, is_interim};
use crate::http1::head::{self, Answering, Parsed};
use crate::pool::RawConnection;
use crate::settings::ListenerSettings;
use crate::splice::{self, Client, Splicer, Stopped};

/// Interim (1xx) answers a response may start with before its final head.
pub(super) const MAX_INTERIM: usize = 16;

/// Why an exchange with a backend failed.
pub(super) enum Failure {
    /// The connection closed (or broke) before any byte of an answer.
    Silent,
    /// The backend was silent for the back timeout.
    Timeout,
    /// The backend's answer broke the rules, or the connection broke in
    /// the middle of it.
    Bad(&'static str),
    /// The client's body could not be read, or broke the rules.
    Client,
}

/// Forwards a request the policy let through, and relays its response.
pub(super) async fn exchange<C>(
    conn: &mut Conn<C>,
    config: &ListenerSettings,
    mut prepared: Prepared,
    stopping: bool,
) -> Next
where
    C: Client,
{
    let shared = conn.context.shared.clone();
    let cluster = prepared.admitted.cluster.clone();
    let cluster_config = prepared.admitted.cluster_config.clone();
    let connect_timeout = seconds(config.connect_timeout);
    let back_timeout = seconds(config.back_timeout);
    let attempts = shared.connection_attempts(&cluster_config);
    let mut tried: Vec<Arc<Backend>> = Vec::new();
    // Why the last backend that took the request failed to answer it.
    let mut failed_exchange: Option<String> = None;
    let mut attempt = 0;
    // The first backend is chosen at the request's start (a few
    // microseconds ago: one clock read less per request), the next ones
    // at the time they are.
    let mut first_choice = Some(prepared.record.started);
    while attempt < attempts {
        let sticky = super::relay_rewrite::sticky_value(&prepared, &conn.sticky);
        let chosen = cluster.balancer.borrow_mut().choose(
            first_choice.take().unwrap_or_else(Instant::now),
            sticky,
            &tried,
        );
        let Some(backend) = chosen else { break };
        prepared.record.backend = Some(backend.clone());
        let (mut raw, reused) = match shared.pool.take_raw(&backend) {
            Some(raw) => (raw, true),
            None => {
                attempt += 1;
                let id = &cluster_config.cluster_id;
                let deadline = (&mut conn.deadline, connect_timeout);
                // Boxed: not every request connects.
                let opened = Box::pin(connect(&shared, &cluster, id, &backend, deadline)).await;
                match opened {
                    Ok((raw, elapsed)) => {
                        prepared.record.connect_time = Some(elapsed);
                        (raw, false)
                    }
                    Err(()) => {
                        tried.push(backend);
                        continue;
                    }
                }
            }
        };
        backend.request_started();
        let front_timeout = super::seconds(config.front_timeout);
        let outcome = send(conn, &mut raw, &mut prepared, (front_timeout, back_timeout)).await;
        // The response time runs from the end of the request (the body a
        // client uploads slowly is not the backend's time).
        let sent_at = Instant::now();
        let outcome = match outcome {
            Ok(answered_early) => {
                let head =
                    receive_head(conn, &mut raw, &prepared, config, (sent_at, back_timeout)).await;
                head.and_then(|mut response| {
                    if answered_early && response.framing == Framing::Switch {
                        // Where the body broke off is not known for sure
                        // (a write cut short by the answer): no tunnel
                        // can start from there.
                        return Err(Failure::Bad(
                            "The backend switched protocols before the whole request body.",
                        ));
                    }
                    if answered_early {
                        // The body was cut short: neither side's
                        // connection is in a state to carry another
                        // request.
                        response.persistent = false;
                        prepared.close = true;
                        prepared.body_cut = true;
                    }
                    Ok(response)
                })
            }
            Err(failure) => Err(failure),
        };
        let failure = match outcome {
            Ok(response) => {
                prepared.record.response_time = Some(sent_at.elapsed());
                return response::relay(conn, config, prepared, raw, response, stopping).await;
            }
            Err(failure) => failure,
        };
        backend.request_finished();
        drop(raw);
        let exchange = answer_exchange(conn, &prepared);
        let answer = match failure {
            Failure::Silent if prepared.replayable => {
                tracing::debug!(backend = %backend.address(), reused, "backend connection closed before answering, sending again");
                if !reused {
                    // A fresh connection that dies before answering: try
                    // another backend (only connection failures count
                    // towards marking a backend down, as in Sozu).
                    failed_exchange = Some("The backend closed the connection.".to_owned());
                    tried.push(backend);
                }
                continue;
            }
            Failure::Silent => exchange.bad_gateway(
                config,
                &cluster_config,
                "The backend closed the connection.",
            ),
            Failure::Bad(message) => exchange.bad_gateway(config, &cluster_config, message),
            Failure::Timeout => exchange.timed_out(config, &cluster_config, back_timeout),
            Failure::Client => exchange.body_unreadable(config, &cluster_config),
        };
        return response::answer(conn, config, answer, prepared.head_request).await;
    }
    let mut exchange = answer_exchange(conn, &prepared);
    let answer = exchange.unavailable(config, &cluster_config, failed_exchange, tried.is_empty());
    response::answer(conn, config, answer, prepared.head_request).await
}

/// The hyper path's exchange record for an answer given instead of a
/// response (502, 503, 504): counted and logged the same way.
fn answer_exchange<C>(conn: &Conn<C>, prepared: &Prepared) -> Exchange {
    let fields = &prepared.record.fields;
    let text = |range: &std::ops::Range<usize>| {
        conn.log
            .get(range.clone())
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .unwrap_or("-")
            .to_owned()
    };
    let config = conn.context.listener.settings.borrow().clone();
    Exchange {
        started: prepared.record.started,
        request_id: http::HeaderValue::from_str(prepared.record.id())
            .unwrap_or(http::HeaderValue::from_static("-")),
        id_header: config.id_header.clone(),
        method: http::Method::from_bytes(text(&fields.method).as_bytes()).unwrap_or_default(),
        route: text(&fields.host) + &text(&fields.path),
        frontend: Some(prepared.admitted.route.clone()),
        backend: prepared.record.backend.clone(),
        connect_time: prepared.record.connect_time,
        response_time: None,
        upload: Rc::default(),
        shared: conn.context.shared.clone(),
        peer: conn.context.peer,
        secure: config.secure,
    }
}

/// Writes the request head, with the body bytes already received, in one
/// `writev`, then the rest of the body as it comes; `true` when the backend
/// answered before the whole body went out (its head is in the back
/// buffer, and the rest of the body was not sent).
async fn send<C>(
    conn: &mut Conn<C>,
    raw: &mut RawConnection,
    prepared: &mut Prepared,
    (front_timeout, timeout): (Duration, Duration),
) -> Result<bool, Failure>
where
    C: Client,
{
    let watching = Watching {
        max: conn.context.shared.options.max_header_size,
        answering: Answering {
            head_request: prepared.head_request,
            upgrade_requested: prepared.upgrade,
        },
    };
    let Conn {
        front,
        back,
        head,
        deadline,
        ..
    } = conn;
    back.clear();
    let body_start = prepared.head_len;
    let mut decoder = ChunkedDecoder::new(Side::Request);
    let (prefix, done, remaining) = match prepared.framing {
        Framing::Length(length) => {
            let take = length.min((front.len() - body_start) as u64);
            (take as usize, take == length, length - take)
        }
        Framing::Chunked => {
            let advance = decoder
                .advance(&front[body_start..])
                .map_err(|_| Failure::Client)?;
            (advance.consumed, advance.done, 0)
        }
        _ => (0, true, 0),
    };
    {
        let body = &front[body_start..body_start + prefix];
        let mut slices = [IoSlice::new(head), IoSlice::new(body)];
        let (mut from_back, mut to_back) = raw.stream.split();
        // With more body to come, a backend that refuses it from the head
        // may answer before taking this much.
        let written = tokio::select! {
            biased;
            answered = watching.answer(&mut from_back, back), if !done => {
                return answered.map(|()| true);
            }
            written = write_all(&mut to_back, &mut slices, deadline, timeout) => written,
        };
        if let Err(error) = &written
            && !done
            && watching
                .answered(error, (&mut from_back, back), (deadline, timeout))
                .await
        {
            return Ok(true);
        }
        written.map_err(|_| Failure::Silent)?;
    }
    prepared.record.bytes_in = prefix as u64;
    if prepared.framing == Framing::Empty {
        // Kept until the answer comes: the request may be sent again.
        return Ok(false);
    }
    front.drain(..body_start + prefix);
    prepared.head_len = 0;
    let body = Sending {
        decoder,
        remaining,
        done,
        prefix,
    };
    send_body(
        conn,
        raw,
        prepared,
        body,
        watching,
        (front_timeout, timeout),
    )
    .await
}

/// Where the request body stands once the head went out.
struct Sending {
    decoder: ChunkedDecoder,
    /// Bytes of a Content-Length body still to send.
    remaining: u64,
    done: bool,
    /// Body bytes sent with the head.
    prefix: usize,
}

/// Sends the rest of the body as the client sends it (after its
/// `100 Continue` when it waits for one), watching the backend for an
/// early answer; `true` when it answered before the whole body went out.
async fn send_body<C>(
    conn: &mut Conn<C>,
    raw: &mut RawConnection,
    prepared: &mut Prepared,
    body: Sending,
    watching: Watching,
    (front_timeout, timeout): (Duration, Duration),
) -> Result<bool, Failure>
where
    C: Client,
{
    let Sending {
        mut decoder,
        mut remaining,
        mut done,
        prefix,
    } = body;
    let Conn {
        context,
        client,
        front,
        back,
        deadline,
        pending,
        splicer,
        ..
    } = conn;
    let (mut from_back, mut to_back) = raw.stream.split();
    if prepared.expect_continue && !done && front.is_empty() {
        let client = expect::Client {
            stream: &mut *client,
            front: &mut *front,
            pending: &mut *pending,
            timeout: front_timeout,
        };
        let watched = (watching.max, watching.answering);
        // The rare paths are boxed: the exchange's future, moved whole at each
        // request, stays the size of the common one.
        let waited = Box::pin(expect::wait(
            client,
            (&mut from_back, back),
            deadline,
            watched,
        ))
        .await;
        // The backend closed without a word before any body byte was
        // taken from the client (a pooled connection it had just closed):
        // the request may go again, the head alone was lost.
        prepared.replayable = prefix == 0 && matches!(waited, Err(Failure::Silent));
        match waited? {
            Waited::Answered => return Ok(true),
            Waited::Continued => prepared.continued = true,
            Waited::Sending => {}
        }
    }
    let mut framing = false; // the next read: of the framing after spliced data
    while !done {
        if !pending.is_empty() {
            // Answers held back are not kept waiting on a client's body.
            let mut slices = [IoSlice::new(pending)];
            let written = write_all(client, &mut slices, deadline, front_timeout).await;
            pending.clear();
            written.map_err(|_| Failure::Client)?;
        }
        // Large bodies between plain sockets go by splice; bytes already
        // in the buffer (read while waiting to say `100 Continue`) first.
        if front.is_empty() {
            let chunked = prepared.framing == Framing::Chunked;
            let left = if chunked {
                decoder.data_left()
            } else {
                remaining
            };
            let mut moved = 0;
            let ends = (&*client, (&mut from_back, to_back.as_ref()));
            let timeouts = (&mut *deadline, front_timeout, timeout);
            let with = (&mut *splicer, &*context.shared, watching);
            let spliced = Box::pin(splice_upload(
                with,
                ends,
                back,
                (left, &mut moved),
                timeouts,
            ))
            .await?;
            prepared.record.bytes_in += moved;
            if chunked {
                decoder.skip_data(moved);
                framing |= moved > 0;
            } else {
                (remaining, done) = (remaining - moved, remaining == moved);
            }
            match spliced {
                Spliced::Answered => return Ok(true),
                Spliced::All => continue,
                Spliced::Copy => {}
            }
        }
        // The client's pace, under the front timeout: a client that stops
        // sending its body is its own failure, not the backend's (no 504).
        // (Body bytes may already be there, read while waiting to say
        // `100 Continue`.)
        if front.is_empty() {
            let mut into = splice::read_into(front, framing);
            let read = tokio::select! {
                biased;
                answered = watching.answer(&mut from_back, back) => return answered.map(|()| true),
                read = deadline.within(front_timeout, client.read_buf(&mut into)) => read,
            };
            match read {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Err(Failure::Client),
                Ok(Ok(_)) => {}
            }
        }
        let take = if prepared.framing == Framing::Chunked {
            let advance = decoder.advance(front).map_err(|_| Failure::Client)?;
            done = advance.done;
            framing = framing && advance.data == 0 && decoder.data_left() == 0;
            advance.consumed
        } else {
            let take = remaining.min(front.len() as u64);
            remaining -= take;
            done = remaining == 0;
            take as usize
        };
        let mut slices = [IoSlice::new(&front[..take])];
        let written = tokio::select! {
            biased;
            answered = watching.answer(&mut from_back, back) => return answered.map(|()| true),
            written = write_all(&mut to_back, &mut slices, deadline, timeout) => written,
        };
        // A backend that answered and closed (a reset, with its answer
        // already received) breaks the write: the answer still wins.
        if let Err(error) = &written
            && watching
                .answered(error, (&mut from_back, back), (deadline, timeout))
                .await
        {
            return Ok(true);
        }
        written.map_err(|_| Failure::Bad("The backend stopped reading the body."))?;
        prepared.record.bytes_in += take as u64;
        front.drain(..take);
    }
    Ok(false)
}

/// How splicing part of a request body went.
enum Spliced {
    /// Every byte asked for went to the backend.
    All,
    /// The backend answered before the whole body (its head is in the
    /// back buffer).
    Answered,
    /// Copy the rest: too little is left to be worth a pipe, the client is
    /// not plain TCP, or splice does not work on this connection.
    Copy,
}

/// Splices what is left of a large request body (`length` bytes, or of a
/// large chunk's data) from a plain TCP client to the backend, watching the
/// backend for an early answer all the while; `moved` counts the bytes the
/// backend was given.
async fn splice_upload<C: Client>(
    (splicer, shared, watching): (&mut Splicer, &Shared, Watching),
    (client, (from_back, to_back)): (&C, (&mut ReadHalf<'_>, &TcpStream)),
    back: &mut Vec<u8>,
    (length, moved): (u64, &mut u64),
    (deadline, front_timeout, timeout): (&mut Deadline, Duration, Duration),
) -> Result<Spliced, Failure> {
    let Some(source) = client.tcp() else {
        return Ok(Spliced::Copy);
    };
    if length <= shared.options.buffer_size as u64 {
        return Ok(Spliced::Copy);
    }
    let Some(pipe) = splicer.pipe() else {
        return Ok(Spliced::Copy);
    };
    let ends = (source, to_back);
    let timeouts = (front_timeout, timeout);
    let spliced = tokio::select! {
        biased;
        answered = watching.answer(from_back, back) => Err(answered),
        spliced = pipe.relay(ends, length, deadline, timeouts, &mut *moved) => Ok(spliced),
    };
    shared.metrics.borrow_mut().spliced_bytes += *moved;
    splicer.release();
    let spliced = match spliced {
        Ok(spliced) => spliced,
        Err(answered) => return answered.map(|()| Spliced::Answered),
    };
    match spliced {
        Ok(()) => Ok(Spliced::All),
        Err(Stopped::Unsupported) => {
            splicer.disable();
            Ok(Spliced::Copy)
        }
        Err(Stopped::Ended) => Err(Failure::Client),
        Err(Stopped::Source(error)) => {
            tracing::debug!(%error, "the client's body could not be read");
            Err(Failure::Client)
        }
        Err(Stopped::Destination(error)) => {
            // As with a copy: an answer that came first still wins.
            if watching
                .answered(&error, (from_back, back), (deadline, timeout))
                .await
            {
                return Ok(Spliced::Answered);
            }
            Err(Failure::Bad("The backend stopped reading the body."))
        }
    }
}

/// What watching a backend for an answer during an upload needs.
#[derive(Clone, Copy)]
struct Watching {
    max: usize,
    answering: Answering,
}

impl Watching {
    /// Reads what the backend sends into `back` until it holds a final
    /// response head (interim ones before it stay in `back` for
    /// [`receive_head`]), or bytes that cannot be one (`receive_head` says
    /// why). Never ends while the backend is quiet; cancel-safe (what was
    /// read is in `back`).
    async fn answer(self, from_back: &mut ReadHalf<'_>, back: &mut Vec<u8>) -> Result<(), Failure> {
        loop {
            if self.final_head_in(back) {
                return Ok(());
            }
            if back.len() == back.capacity() {
                back.reserve(back.len().clamp(1024, self.max + 1));
            }
            match from_back.read_buf(back).await {
                Ok(0) | Err(_) if back.is_empty() => return Err(Failure::Silent),
                Ok(0) | Err(_) => {
                    return Err(Failure::Bad(
                        "The backend closed the connection mid-answer.",
                    ));
                }
                Ok(_) => {}
            }
        }
    }

    /// After a write to the backend failed with `error`: whether the
    /// backend had answered first (a backend that answers and closes with
    /// body bytes unread resets the connection, and the reset can reach the
    /// write before the reactor reports the answer readable). A broken
    /// connection reads to its end at once; a write that timed out is a
    /// backend that neither reads nor answers.
    async fn answered(
        self,
        error: &std::io::Error,
        (from_back, back): (&mut ReadHalf<'_>, &mut Vec<u8>),
        (deadline, timeout): (&mut Deadline, Duration),
    ) -> bool {
        if error.kind() == std::io::ErrorKind::TimedOut {
            return false;
        }
        let answer = deadline.within(timeout, self.answer(from_back, back));
        matches!(answer.await, Ok(Ok(())))
    }

    /// Whether `back` holds a final head after its interim ones, or bytes
    /// that do not parse as heads.
    fn final_head_in(self, back: &[u8]) -> bool {
        if back.is_empty() {
            return false;
        }
        let mut at = 0;
        for _ in 0..=MAX_INTERIM {
            let mut headers = head::slots::<MAX_HEADERS>();
            match head::parse_response(&back[at..], &mut headers, self.max, self.answering) {
                Ok(Parsed::Complete(head)) if is_interim(head.status) => at += head.len,
                Ok(Parsed::Partial) => return false,
                Ok(Parsed::Complete(_)) | Err(_) => return true,
            }
        }
        // More interim answers than allowed: receive_head refuses them.
        true
    }
}

/// Writes every byte of `slices`, each write within `timeout`.
pub(super) async fn write_all<W: AsyncWrite + Unpin>(
    writer: &mut W,
    mut slices: &mut [IoSlice<'_>],
    deadline: &mut Deadline,
    timeout: Duration,
) -> std::io::Result<()> {
    let timed_out = |_| std::io::Error::from(std::io::ErrorKind::TimedOut);
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        let write = writer.write_vectored(slices);
        let written = deadline.within(timeout, write).await.map_err(timed_out)??;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, written);
    }
    // A TLS session may keep records back until flushed (a no-op on TCP).
    deadline
        .within(timeout, writer.flush())
        .await
        .map_err(timed_out)?
}

#[cfg(test)]
mod tests {
    use super::{Answering, MAX_INTERIM, Watching};

    #[test]
    fn only_a_final_head_counts_as_an_answer() {
        let watching = Watching {
            max: 16 * 1024,
            answering: Answering::default(),
        };
        // Nothing yet, part of a head, interim answers alone: keep sending.
        assert!(!watching.final_head_in(b""));
        assert!(!watching.final_head_in(b"HTTP/1.1 413 Payload"));
        assert!(!watching.final_head_in(b"HTTP/1.1 100 Continue\r\n\r\n"));
        let hints = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 4";
        assert!(!watching.final_head_in(hints));
        // A final head, after interim ones or not: the answer.
        assert!(watching.final_head_in(b"HTTP/1.1 413 Payload Too Large\r\n\r\n"));
        let after = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 401 Unauthorized\r\n\r\n";
        assert!(watching.final_head_in(after));
        // Bytes that are no head, or too many interim answers: receive_head
        // says what is wrong.
        assert!(watching.final_head_in(b"garbage\r\n\r\n"));
        let many = b"HTTP/1.1 102 Processing\r\n\r\n".repeat(MAX_INTERIM + 1);
        assert!(watching.final_head_in(&many));
    }
}
