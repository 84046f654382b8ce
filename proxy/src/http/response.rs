//! The response of a relayed request, back to the client: its head
//! rewritten from the backend's bytes (hop-by-hop headers out, request id
//! in) after the responses held back, then its body by its framing; and
//! the answers the relay gives instead of a response.

use std::io::IoSlice;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::forward::write_all;
use super::relay::{Conn, Next, PIPELINE_BATCH, Prepared, find_blank_line};
use super::relay_plan::push_line;
use super::seconds;
use crate::answers;
use crate::body::ProxyBody;
use crate::deadline::Deadline;
use crate::http1::Side;
use crate::http1::chunked::ChunkedDecoder;
use crate::http1::framing::Framing;
use crate::pool::RawConnection;
use crate::settings::ListenerSettings;
use crate::splice::{self, Client, Splicer, Stopped};

/// A response head read from a backend, as the relay needs it.
pub(super) struct Response {
    pub(super) status: u16,
    pub(super) head_len: usize,
    pub(super) framing: Framing,
    /// The backend keeps the connection open after this response.
    pub(super) persistent: bool,
    /// An HTTP/1.0 status line (sent on as HTTP/1.1).
    pub(super) http10: bool,
    pub(super) has_transfer_encoding: bool,
    /// The response carries a `Date` (else the relay adds one).
    pub(super) has_date: bool,
}

/// Writes an answer of the proxy's own and closes (its head says so).
pub(super) async fn answer<C>(
    conn: &mut Conn<C>,
    config: &ListenerSettings,
    answer: http::Response<ProxyBody>,
    head_request: bool,
) -> Next
where
    C: Client,
{
    let mut bytes = answers::to_bytes(answer);
    if head_request && let Some(end) = find_blank_line(&bytes, 0) {
        bytes.truncate(end);
    }
    let timeout = seconds(config.front_timeout);
    let _ = conn.flush_pending(timeout).await;
    let mut slices = [IoSlice::new(&bytes)];
    let _ = write_all(&mut conn.client, &mut slices, &mut conn.deadline, timeout).await;
    Next::Close
}

/// Where a body stands.
struct Body {
    framing: Framing,
    remaining: u64,
    decoder: ChunkedDecoder,
}

/// What one piece of input held of a body.
struct Take {
    /// Bytes of the input that belong to the body.
    consumed: usize,
    /// How many of them are data (not chunk framing).
    data: u64,
    done: bool,
}

impl Body {
    fn new(framing: Framing) -> Body {
        Body {
            framing,
            remaining: match framing {
                Framing::Length(length) => length,
                _ => 0,
            },
            decoder: ChunkedDecoder::new(Side::Response),
        }
    }

    /// How many bytes of the body may go by splice from here: what is left
    /// of a body of known length or of the current chunk's data; all of a
    /// body until close once it is `large` (a read filled the buffer).
    fn splice_left(&self, large: bool) -> u64 {
        match self.framing {
            Framing::Length(_) => self.remaining,
            Framing::Chunked => self.decoder.data_left(),
            Framing::UntilClose if large => u64::MAX,
            _ => 0,
        }
    }

    /// `length` bytes of data went by splice (at most
    /// [`Body::splice_left`]); whether the body ended with them.
    fn skip(&mut self, length: u64) -> bool {
        match self.framing {
            Framing::Length(_) => {
                self.remaining -= length.min(self.remaining);
                self.remaining == 0
            }
            Framing::Chunked => {
                self.decoder.skip_data(length);
                false
            }
            _ => false,
        }
    }

    fn take(&mut self, input: &[u8]) -> Result<Take, ()> {
        Ok(match self.framing {
            Framing::Length(_) => {
                let take = self.remaining.min(input.len() as u64);
                self.remaining -= take;
                Take {
                    consumed: take as usize,
                    data: take,
                    done: self.remaining == 0,
                }
            }
            Framing::Chunked => {
                let advance = self.decoder.advance(input).map_err(|_| ())?;
                Take {
                    consumed: advance.consumed,
                    data: advance.data,
                    done: advance.done,
                }
            }
            Framing::UntilClose => Take {
                consumed: input.len(),
                data: input.len() as u64,
                done: false,
            },
            Framing::Empty | Framing::Switch => Take {
                consumed: 0,
                data: 0,
                done: true,
            },
        })
    }
}

/// The chunk-size line of `size` bytes of data, in `out`.
fn chunk_line(size: usize, out: &mut [u8; 20]) -> &[u8] {
    let digits = (usize::BITS - size.leading_zeros()).div_ceil(4).max(1) as usize;
    for (index, slot) in out.iter_mut().take(digits).enumerate() {
        let nibble = (size >> (4 * (digits - 1 - index))) & 0xf;
        *slot = b"0123456789abcdef"[nibble];
    }
    out[digits] = b'\r';
    out[digits + 1] = b'\n';
    &out[..digits + 2]
}

/// Relays a response whose head is in the connection's back buffer, then
/// its body; accounts for the exchange and pools the backend connection
/// when the response ended cleanly.
pub(super) async fn relay<C>(
    conn: &mut Conn<C>,
    config: &ListenerSettings,
    prepared: Prepared,
    mut raw: RawConnection,
    response: Response,
    stopping: bool,
) -> Next
where
    C: Client,
{
    let front_timeout = seconds(config.front_timeout);
    let back_timeout = seconds(config.back_timeout);
    conn.front.drain(..prepared.head_len);
    if response.http10 && conn.back.starts_with(b"HTTP/1.0") {
        conn.back[7] = b'1';
    }
    // A body that runs until the backend closes is sent on chunked, so
    // that the client connection lives on; when the backend named another
    // coding, the client connection closes with it instead.
    let until_close = response.framing == Framing::UntilClose;
    let rechunk = until_close && !response.has_transfer_encoding;
    // A 101 makes the connection a tunnel: no `Connection: close` on it.
    let switching = response.framing == Framing::Switch;
    let close = !switching && (prepared.close || stopping || (until_close && !rechunk));
    let lines = &mut conn.lines;
    lines.clear();
    push_line(
        lines,
        config.id_header.as_str().as_bytes(),
        &prepared.record.id,
    );
    if !response.has_date {
        // RFC 9110 §6.6.1: a proxy adds the Date a response lacks.
        push_line(lines, b"Date", &crate::date::now());
    }
    for edit in prepared.admitted.route.response_headers() {
        if !edit.is_removal() {
            push_line(lines, edit.name.as_bytes(), edit.value.as_bytes());
        }
    }
    super::relay_rewrite::push_set_cookie(lines, &prepared, &conn.sticky, &raw.backend, config);
    if close {
        lines.extend_from_slice(b"Connection: close\r\n");
    }
    if rechunk {
        lines.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    if switching {
        // Boxed, as rare: the exchange's future, moved whole at each request,
        // stays the size of the common one.
        return Box::pin(super::tunnel::switch(
            conn, config, prepared, raw, &response,
        ))
        .await;
    }
    let mut body = Body::new(response.framing);
    let timeouts = (front_timeout, back_timeout);
    let hold = !close;
    let how = (rechunk, hold);
    let outcome = move_body(conn, &mut raw, &mut body, &response, how, timeouts).await;
    let (bytes_out, clean) = match outcome {
        Ok(bytes_out) => (
            bytes_out,
            conn.back.is_empty() && response.persistent && !until_close,
        ),
        Err(bytes_out) => (bytes_out, false),
    };
    let backend = raw.backend.clone();
    backend.request_finished();
    if clean {
        conn.context.shared.pool.give_raw(raw);
    } else {
        drop(raw);
    }
    let cluster = Some(prepared.admitted.cluster_config.cluster_id.as_str());
    let shared = &conn.context.shared;
    let record = &prepared.record;
    conn.finished_at = Some(record.finish(
        shared,
        &conn.context.peer_text,
        cluster,
        &conn.log,
        response.status,
        bytes_out,
    ));
    match outcome {
        Ok(_) if !close => Next::Continue,
        // The client said it sends nothing more: closing at once loses
        // nothing. When the proxy closes on its own (stopping, a body
        // until close, an answer before the whole upload), the client may
        // still be sending.
        Ok(_) if prepared.close && !prepared.body_cut => Next::Finish,
        _ => Next::Close,
    }
}

/// Writes the head and the body to the client (a whole response to a
/// pipelined request, when `hold` allows, is only added to the held-back
/// ones); the data bytes sent, as an error when the body broke off.
async fn move_body<C>(
    conn: &mut Conn<C>,
    raw: &mut RawConnection,
    body: &mut Body,
    response: &Response,
    (rechunk, hold): (bool, bool),
    (front_timeout, back_timeout): (Duration, Duration),
) -> Result<u64, u64>
where
    C: Client,
{
    let buffer_size = conn.context.shared.options.buffer_size;
    let Conn {
        context,
        client,
        front,
        back,
        lines,
        deadline,
        pending,
        plan,
        splicer,
        ..
    } = conn;
    let start = response.head_len;
    let mut sent = 0;
    let mut size_line = [0; 20];
    let first = body.take(&back[start..]).map_err(|_| 0u64)?;
    let mut done = first.done;
    {
        // The head goes after the responses held back, if any: one write.
        plan.extend_into(&[], &back[..], lines, pending);
        let data = &back[start..start + first.consumed];
        if first.done && hold && !front.is_empty() && pending.len() + data.len() <= PIPELINE_BATCH {
            // A whole response while the client's next request already
            // waits: held back, to go out with the next ones.
            pending.extend_from_slice(data);
        } else {
            let mut slices = [IoSlice::new(&[]); 4];
            slices[0] = IoSlice::new(pending);
            let extra = pieces(data, rechunk, &mut size_line, &mut slices[1..]);
            let written =
                write_all(client, &mut slices[..1 + extra], deadline, front_timeout).await;
            pending.clear();
            written.map_err(|_| 0u64)?;
        }
    }
    sent += first.data;
    back.drain(..start + first.consumed);
    let mut large = false;
    // The next read is of the framing after spliced chunk data: small.
    let mut framing = false;
    while !done {
        // The rest of a large body goes through a pipe when the client is
        // plain TCP.
        let left = body.splice_left(large);
        if left > buffer_size as u64
            && let Some(to) = client.tcp()
        {
            let mut moved = 0;
            let ends = (&raw.stream, to);
            let timeouts = (&mut *deadline, back_timeout, front_timeout);
            let spliced = tokio::select! {
                spliced = Box::pin(splice_body(splicer, ends, (left, rechunk), timeouts, &mut moved)) => spliced,
                () = raw.registration.closed() => Err(()),
            };
            sent += moved;
            context.shared.metrics.borrow_mut().spliced_bytes += moved;
            let copy = match spliced.map_err(|()| sent)? {
                Download::Moved => false,
                Download::Ended => return Ok(sent),
                // Copied from here on, after what went.
                Download::Unsupported => true,
            };
            done = body.skip(moved);
            framing = body.framing == Framing::Chunked;
            if done || !copy {
                continue;
            }
        }
        back.clear();
        let mut into = splice::read_into(back, framing);
        let read = tokio::select! {
            biased;
            () = raw.registration.closed() => return Err(sent),
            read = deadline.within(back_timeout, raw.stream.read_buf(&mut into)) => read,
        };
        let read = match read {
            Ok(Ok(read)) => read,
            _ => return Err(sent),
        };
        if read == 0 {
            if body.framing != Framing::UntilClose {
                return Err(sent);
            }
            if rechunk {
                let end = &mut [IoSlice::new(b"0\r\n\r\n")];
                write_all(client, end, deadline, front_timeout)
                    .await
                    .map_err(|_| sent)?;
            }
            return Ok(sent);
        }
        large = read >= buffer_size;
        let take = body.take(back).map_err(|_| sent)?;
        done = take.done;
        framing = framing && take.data == 0 && body.decoder.data_left() == 0;
        let mut slices = [IoSlice::new(&[]); 3];
        let count = pieces(&back[..take.consumed], rechunk, &mut size_line, &mut slices);
        write_all(client, &mut slices[..count], deadline, front_timeout)
            .await
            .map_err(|_| sent)?;
        sent += take.data;
        back.drain(..take.consumed);
    }
    Ok(sent)
}

/// How splicing part of a response body went.
enum Download {
    /// The bytes asked for went to the client.
    Moved,
    /// A body until close reached its end (and its last chunk was sent).
    Ended,
    /// Splice does not work on this connection: nothing was moved, copy.
    Unsupported,
}

/// Splices `length` bytes of a response body (a body until close: all of
/// it, each pipe-full as one chunk when rechunking) from the backend to
/// the client; `moved` counts the data bytes the client was given.
async fn splice_body(
    splicer: &mut Splicer,
    (from, to): (&TcpStream, &TcpStream),
    (length, rechunk): (u64, bool),
    (deadline, back_timeout, front_timeout): (&mut Deadline, Duration, Duration),
    moved: &mut u64,
) -> Result<Download, ()> {
    let Some(pipe) = splicer.pipe() else {
        return Ok(Download::Unsupported);
    };
    let until_close = length == u64::MAX;
    let spliced = if until_close {
        let timeouts = (deadline, back_timeout, front_timeout);
        splice_until_close(pipe, (from, to), rechunk, timeouts, moved).await
    } else {
        let timeouts = (back_timeout, front_timeout);
        pipe.relay((from, to), length, deadline, timeouts, moved)
            .await
    };
    splicer.release();
    match spliced {
        Ok(()) if until_close => Ok(Download::Ended),
        Ok(()) => Ok(Download::Moved),
        Err(Stopped::Unsupported) => {
            splicer.disable();
            Ok(Download::Unsupported)
        }
        Err(_) => Err(()),
    }
}

/// Splices a body until the backend closes, each pipe-full as one chunk
/// when rechunking (its size line first), then the last chunk.
async fn splice_until_close(
    pipe: &mut splice::Pipe,
    (from, to): (&TcpStream, &TcpStream),
    rechunk: bool,
    (deadline, back_timeout, front_timeout): (&mut Deadline, Duration, Duration),
    moved: &mut u64,
) -> Result<(), Stopped> {
    let mut size_line = [0; 20];
    loop {
        let filled = pipe
            .fill(from, usize::MAX, (deadline, back_timeout))
            .await?;
        if filled == 0 {
            if rechunk {
                splice::write_all(to, b"0\r\n\r\n", (deadline, front_timeout)).await?;
            }
            return Ok(());
        }
        if rechunk {
            let line = chunk_line(filled, &mut size_line);
            splice::write_all(to, line, (deadline, front_timeout)).await?;
        }
        pipe.drain(to, (deadline, front_timeout), moved).await?;
        if rechunk {
            splice::write_all(to, b"\r\n", (deadline, front_timeout)).await?;
        }
    }
}

/// The slices that send `data` (as one chunk when rechunking); how many.
fn pieces<'a>(
    data: &'a [u8],
    rechunk: bool,
    size_line: &'a mut [u8; 20],
    out: &mut [IoSlice<'a>],
) -> usize {
    if data.is_empty() {
        return 0;
    }
    if !rechunk {
        out[0] = IoSlice::new(data);
        return 1;
    }
    out[0] = IoSlice::new(chunk_line(data.len(), size_line));
    out[1] = IoSlice::new(data);
    out[2] = IoSlice::new(b"\r\n");
    3
}

#[cfg(test)]
mod tests {
    use super::chunk_line;

    #[test]
    fn chunk_lines_are_hexadecimal() {
        let mut out = [0; 20];
        assert_eq!(chunk_line(1, &mut out), b"1\r\n");
        assert_eq!(chunk_line(255, &mut out), b"ff\r\n");
        assert_eq!(chunk_line(16_384, &mut out), b"4000\r\n");
    }
}
