//! Forwarding a relayed request: the retry loop over the cluster's
//! backends, the request head and body to a pooled raw connection, and the
//! response head read back ([`super::response`] relays the rest).

use std::io::IoSlice;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::answer::Exchange;
use super::backend::connect;
use super::relay::{Conn, MAX_EDITS, MAX_HEADERS, Next, Plan, Prepared};
use super::response::{self, Response};
use super::seconds;
use crate::balancer::Backend;
use crate::deadline::Deadline;
use crate::http1::Side;
use crate::http1::chunked::ChunkedDecoder;
use crate::http1::edit::EditOptions;
use crate::http1::framing::{Framing, is_interim};
use crate::http1::head::{self, Answering, Parsed};
use crate::pool::RawConnection;
use crate::settings::ListenerSettings;

/// Interim (1xx) answers a response may start with before its final head.
const MAX_INTERIM: usize = 16;

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
    C: AsyncRead + AsyncWrite + Unpin,
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
    while attempt < attempts {
        let chosen = cluster
            .balancer
            .borrow_mut()
            .choose(Instant::now(), None, &tried);
        let Some(backend) = chosen else { break };
        prepared.record.backend = Some(backend.clone());
        let (mut raw, reused) = match shared.pool.take_raw(&backend) {
            Some(raw) => (raw, true),
            None => {
                attempt += 1;
                let id = &cluster_config.cluster_id;
                let deadline = (&mut conn.deadline, connect_timeout);
                let opened = connect(&shared, &cluster, id, &backend, deadline).await;
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
            Ok(()) => receive_head(conn, &mut raw, &prepared, config, back_timeout).await,
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
/// `writev`, then the rest of the body as it comes.
async fn send<C>(
    conn: &mut Conn<C>,
    raw: &mut RawConnection,
    prepared: &mut Prepared,
    (front_timeout, timeout): (Duration, Duration),
) -> Result<(), Failure>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let Conn {
        client,
        front,
        lines,
        deadline,
        pending,
        ..
    } = conn;
    let body_start = prepared.head_len;
    let mut decoder = ChunkedDecoder::new(Side::Request);
    let (prefix, mut done, mut remaining) = match prepared.framing {
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
        let mut slices = [IoSlice::new(&[]); MAX_HEADERS + 8];
        let count = prepared
            .plan
            .slices(&front[..], &[&lines[..]], &mut slices)
            .ok_or(Failure::Client)?;
        slices[count] = IoSlice::new(&front[body_start..body_start + prefix]);
        let written = write_all(&mut raw.stream, &mut slices[..=count], deadline, timeout).await;
        written.map_err(|_| Failure::Silent)?;
    }
    prepared.record.bytes_in = prefix as u64;
    if prepared.framing == Framing::Empty {
        // Kept until the answer comes: the request may be sent again.
        return Ok(());
    }
    front.drain(..body_start + prefix);
    prepared.head_len = 0;
    while !done {
        if !pending.is_empty() {
            // Answers held back are not kept waiting on a client's body.
            let mut slices = [IoSlice::new(pending)];
            let written = write_all(client, &mut slices, deadline, front_timeout).await;
            pending.clear();
            written.map_err(|_| Failure::Client)?;
        }
        front.clear();
        // The client's pace, under the front timeout: a client that stops
        // sending its body is its own failure, not the backend's (no 504).
        let read = deadline.within(front_timeout, client.read_buf(front)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Err(Failure::Client),
            Ok(Ok(_)) => {}
        }
        let take = if prepared.framing == Framing::Chunked {
            let advance = decoder.advance(front).map_err(|_| Failure::Client)?;
            done = advance.done;
            advance.consumed
        } else {
            let take = remaining.min(front.len() as u64);
            remaining -= take;
            done = remaining == 0;
            take as usize
        };
        let mut slices = [IoSlice::new(&front[..take])];
        let written = write_all(&mut raw.stream, &mut slices, deadline, timeout).await;
        written.map_err(|_| Failure::Bad("The backend stopped reading the body."))?;
        prepared.record.bytes_in += take as u64;
        front.drain(..take);
    }
    Ok(())
}

/// Reads the response head (interim 1xx answers are skipped), within the
/// back timeout.
async fn receive_head<C>(
    conn: &mut Conn<C>,
    raw: &mut RawConnection,
    prepared: &Prepared,
    config: &ListenerSettings,
    timeout: Duration,
) -> Result<Response, Failure> {
    let max = conn.context.shared.options.max_header_size;
    let back = &mut conn.back;
    back.clear();
    let answering = Answering {
        head_request: prepared.head_request,
        upgrade_requested: false,
    };
    let mut interim = 0;
    loop {
        if !back.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            match head::parse_response(&back[..], &mut headers, max, answering) {
                Ok(Parsed::Complete(head)) if is_interim(head.status) => {
                    // A backend that sends interim answers without end
                    // would hold the exchange forever.
                    interim += 1;
                    if interim > MAX_INTERIM {
                        return Err(Failure::Bad("The backend sent too many interim answers."));
                    }
                    let len = head.len;
                    back.drain(..len);
                    continue;
                }
                Ok(Parsed::Complete(head)) => {
                    let mut drop = [""; 1 + MAX_EDITS];
                    drop[0] = config.id_header.as_str();
                    let mut count = 1;
                    let edits = prepared.admitted.route.response_headers();
                    for (slot, edit) in drop[1..].iter_mut().zip(edits) {
                        *slot = &edit.name;
                        count += 1;
                    }
                    let options = EditOptions {
                        drop: &drop[..count],
                        ..Default::default()
                    };
                    let plan = Plan::new(&back[..], head.len, head.headers, &options)
                        .map_err(|_| Failure::Bad("The response has too many headers."))?;
                    let has_te = head
                        .headers
                        .iter()
                        .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
                    return Ok(Response {
                        status: head.status,
                        head_len: head.len,
                        framing: head.framing,
                        persistent: head.connection.persistent(head.minor_version),
                        http10: head.minor_version == 0,
                        has_transfer_encoding: has_te,
                        plan,
                    });
                }
                Ok(Parsed::Partial) => {}
                Err(_) => return Err(Failure::Bad("The backend's response broke the rules.")),
            }
        }
        if back.len() == back.capacity() {
            back.reserve(back.len().min(max + 1));
        }
        let had = back.len();
        let read = tokio::select! {
            read = conn.deadline.within(timeout, raw.stream.read_buf(back)) => read,
            () = raw.registration.closed() => return Err(Failure::Bad("The backend session was closed.")),
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

/// Writes every byte of `slices`, each write within `timeout`.
pub(super) async fn write_all<W: AsyncWrite + Unpin>(
    writer: &mut W,
    mut slices: &mut [IoSlice<'_>],
    deadline: &mut Deadline,
    timeout: Duration,
) -> std::io::Result<()> {
    let timed_out = |_| std::io::Error::from(std::io::ErrorKind::TimedOut);
    IoSlice::advance_slices(&mut slices, 0);
    let mut end = tokio::time::Instant::now() + timeout;
    let mut first = true;
    while !slices.is_empty() {
        if !first {
            // Each write that makes progress gets the whole timeout again.
            end = tokio::time::Instant::now() + timeout;
        }
        first = false;
        let write = writer.write_vectored(slices);
        let written = deadline.until(end, write).await.map_err(timed_out)??;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, written);
    }
    // A TLS session may keep records back until flushed (a no-op on TCP).
    deadline
        .until(end, writer.flush())
        .await
        .map_err(timed_out)?
}
