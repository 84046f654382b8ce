//! A protocol upgrade on the relay (WebSocket, RFC 9110 §7.8): the
//! backend's `101 Switching Protocols` goes to the client like any response
//! head (its `Upgrade` kept, `Connection: upgrade`, the request id), then
//! both connections carry raw bytes both ways until both sides closed.
//!
//! - The bytes that came with the heads go first: the client's after its
//!   request (a client may send before it sees the 101), the backend's
//!   after its 101.
//! - A side that closes its way out has the other side's way in closed
//!   (a half-close is passed on); the other direction goes on until its
//!   own end.
//! - Each way moves up to `buffer_size` bytes per read, as a TCP session.
//! - As on the hyper path, an upgraded connection has no idle timeout: a
//!   WebSocket may stay quiet for as long as its ends like. A write that
//!   cannot move a byte for the front timeout (to the client) or the back
//!   timeout (to the backend) ends the tunnel, as a client that stops
//!   reading is cut everywhere else.
//! - `close_sessions` of the backend ends it, as it ends a TCP session.
//! - The exchange is counted and logged once, when the 101 goes out, with
//!   no body bytes (as the hyper path does); the backend counts the
//!   request as in flight until the tunnel ends. The backend connection
//!   is never pooled again.

use std::io::IoSlice;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::forward::write_all;
use super::relay::{Conn, Next, Prepared};
use super::response::Response;
use super::seconds;
use crate::deadline::Deadline;
use crate::pool::RawConnection;
use crate::settings::ListenerSettings;
use crate::write_deadline::WriteDeadline;

/// Relays the 101 whose head is in the back buffer, then the tunnel, and
/// closes both connections.
pub(super) async fn switch<C>(
    conn: &mut Conn<C>,
    config: &ListenerSettings,
    prepared: Prepared,
    mut raw: RawConnection,
    response: &Response,
) -> Next
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let timeouts = (seconds(config.front_timeout), seconds(config.back_timeout));
    let Conn {
        context,
        client,
        front,
        back,
        lines,
        log,
        deadline,
        pending,
        plan,
        ..
    } = conn;
    // The head goes after the answers held back, if any: one write.
    plan.extend_into(&[], &back[..], lines, pending);
    let mut slices = [IoSlice::new(pending)];
    let written = write_all(client, &mut slices, deadline, timeouts.0).await;
    pending.clear();
    back.drain(..response.head_len);
    let cluster = Some(prepared.admitted.cluster_config.cluster_id.as_str());
    let record = &prepared.record;
    record.finish(&context.shared, &context.peer_text, cluster, log, 101, 0);
    if written.is_ok() {
        let ends = Ends {
            client,
            backend: &mut raw.stream,
            deadline,
            buffer_size: context.shared.options.buffer_size,
        };
        let carried = tokio::select! {
            carried = ends.carry((front, back), timeouts) => carried,
            () = raw.registration.closed() => Err(std::io::ErrorKind::ConnectionAborted.into()),
        };
        match carried {
            Ok((up, down)) => tracing::debug!(peer = %context.peer, up, down, "tunnel closed"),
            Err(error) => tracing::debug!(peer = %context.peer, %error, "tunnel broken"),
        }
    }
    raw.backend.request_finished();
    drop(raw);
    front.clear();
    back.clear();
    // Both ways out were shut down: nothing is left to read or say.
    Next::Finish
}

/// Both ends of a tunnel.
struct Ends<'a, C> {
    client: &'a mut C,
    backend: &'a mut TcpStream,
    deadline: &'a mut Deadline,
    /// What one read moves each way (the `buffer_size` option, as for TCP
    /// sessions).
    buffer_size: usize,
}

impl<C: AsyncRead + AsyncWrite + Unpin> Ends<'_, C> {
    /// Sends what each side sent with its head, then carries bytes both
    /// ways until both sides closed; the bytes carried after the heads
    /// (client to backend, backend to client).
    async fn carry(
        self,
        (front, back): (&[u8], &[u8]),
        (front_timeout, back_timeout): (Duration, Duration),
    ) -> std::io::Result<(u64, u64)> {
        let Ends {
            client,
            backend,
            deadline,
            buffer_size,
        } = self;
        if !back.is_empty() {
            write_all(client, &mut [IoSlice::new(back)], deadline, front_timeout).await?;
        }
        if !front.is_empty() {
            write_all(backend, &mut [IoSlice::new(front)], deadline, back_timeout).await?;
        }
        let mut client = WriteDeadline::new(client, front_timeout);
        let mut backend = WriteDeadline::new(backend, back_timeout);
        let (up, down) = tokio::io::copy_bidirectional_with_sizes(
            &mut client,
            &mut backend,
            buffer_size,
            buffer_size,
        )
        .await?;
        Ok((up + front.len() as u64, down + back.len() as u64))
    }
}
