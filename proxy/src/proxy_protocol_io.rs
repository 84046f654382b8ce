//! Reading a PROXY protocol header off a new client connection: the IO
//! side of the `proxy_protocol` codec.
//!
//! [`read_header`] reads exactly one header and not one byte past it (what
//! follows belongs to the proxied protocol), within a time limit, and never
//! allocates more than [`MAX_HEADER_LEN`](crate::proxy_protocol::MAX_HEADER_LEN) bytes. The accept paths use
//! [`accept_header`] and [`client_address`], which also log and count the
//! connections they turn away.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::context::Shared;
use crate::log_limit::LogLimit;
use crate::proxy_protocol::{FIXED_LEN, Header, ParseError, check_signature, header_len, parse};

/// A header read from a connection, with its exact bytes for relaying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedHeader {
    /// The decoded header.
    pub header: Header,
    /// The bytes as received, signature to last TLV.
    pub bytes: Vec<u8>,
}

/// Why no header could be read from a connection.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The peer closed before sending anything: a plain TCP health check.
    #[error("the connection closed before any PROXY header byte")]
    Closed,
    /// The peer closed in the middle of the header.
    #[error("the connection closed after {received} of {expected} PROXY header bytes")]
    Truncated {
        /// Bytes received.
        received: usize,
        /// Bytes the header (or its fixed part) takes.
        expected: usize,
    },
    /// The header did not arrive in time.
    #[error("no complete PROXY header within {0:?}")]
    TimedOut(Duration),
    /// The bytes are not a header the proxy accepts.
    #[error(transparent)]
    Malformed(#[from] ParseError),
    /// The socket failed.
    #[error("could not read the PROXY header: {0}")]
    Io(#[from] io::Error),
}

/// Reads one header from the start of `stream` within `limit`, and not one
/// byte more. Allocates the header's declared size once the fixed part has
/// shown it is at most [`MAX_HEADER_LEN`](crate::proxy_protocol::MAX_HEADER_LEN).
pub async fn read_header<R>(stream: &mut R, limit: Duration) -> Result<ReceivedHeader, ReadError>
where
    R: AsyncRead + Unpin,
{
    tokio::time::timeout(limit, read_header_now(stream))
        .await
        .map_err(|_| ReadError::TimedOut(limit))?
}

async fn read_header_now<R>(stream: &mut R) -> Result<ReceivedHeader, ReadError>
where
    R: AsyncRead + Unpin,
{
    let mut fixed = [0u8; FIXED_LEN];
    let mut filled = 0;
    while filled < FIXED_LEN {
        let read = stream.read(&mut fixed[filled..]).await?;
        if read == 0 {
            return Err(match filled {
                0 => ReadError::Closed,
                received => ReadError::Truncated {
                    received,
                    expected: FIXED_LEN,
                },
            });
        }
        filled += read;
        check_signature(&fixed[..filled])?;
    }
    let total = header_len(&fixed)?;
    let mut bytes = vec![0u8; total];
    bytes[..FIXED_LEN].copy_from_slice(&fixed);
    while filled < total {
        let read = stream.read(&mut bytes[filled..]).await?;
        if read == 0 {
            return Err(ReadError::Truncated {
                received: filled,
                expected: total,
            });
        }
        filled += read;
    }
    let (header, _) = parse(&bytes)?;
    Ok(ReceivedHeader { header, bytes })
}

/// For an accept path whose listener expects a PROXY header: reads it and
/// returns the client's address (the header's source, else `peer`) with
/// the header. `None` means the connection must be closed; the reason is
/// logged and counted in `proxy_protocol.errors`.
pub(crate) async fn accept_header<R>(
    stream: &mut R,
    peer: SocketAddr,
    limit: Duration,
    shared: &Shared,
) -> Option<(SocketAddr, ReceivedHeader)>
where
    R: AsyncRead + Unpin,
{
    match read_header(stream, limit).await {
        Ok(received) => {
            let client = received.header.source().unwrap_or(peer);
            Some((client, received))
        }
        Err(ReadError::Closed) => {
            // A load balancer's TCP health check: connect, then close.
            tracing::debug!(%peer, "connection closed before its PROXY header");
            None
        }
        Err(error) => {
            static INVALID_HEADER: LogLimit = LogLimit::new(Duration::from_secs(1));
            if let Some(held_back) = INVALID_HEADER.allow() {
                tracing::warn!(%peer, %error, held_back, "closed a connection without a valid PROXY header");
            }
            shared.metrics.borrow_mut().proxy_protocol_errors += 1;
            None
        }
    }
}

/// The client address of a new HTTP or HTTPS connection, read before the
/// stream goes to hyper (or to TLS): the PROXY header's source when the
/// listener has `expect_proxy`, else `peer`. `None` means the connection
/// must be closed (no valid header within `limit`).
pub(crate) async fn client_address<R>(
    stream: &mut R,
    peer: SocketAddr,
    expect_proxy: bool,
    limit: Duration,
    shared: &Shared,
) -> Option<SocketAddr>
where
    R: AsyncRead + Unpin,
{
    if !expect_proxy {
        return Some(peer);
    }
    accept_header(stream, peer, limit, shared)
        .await
        .map(|(client, _)| client)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::proxy_protocol::tests::{SIG, v4_header};

    /// An in-memory stream that hands out its bytes a few at a time.
    struct Trickle {
        bytes: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            let end = (self.at + self.step)
                .min(self.bytes.len())
                .min(self.at + buf.remaining());
            let chunk = self.bytes[self.at..end].to_vec();
            buf.put_slice(&chunk);
            self.at = end;
            std::task::Poll::Ready(Ok(()))
        }
    }

    fn read_all(bytes: Vec<u8>, step: usize) -> (Result<ReceivedHeader, ReadError>, usize) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let mut stream = Trickle { bytes, at: 0, step };
        let result = runtime.block_on(read_header(&mut stream, Duration::from_secs(5)));
        (result, stream.at)
    }

    #[test]
    fn reading_stops_at_the_end_of_the_header() {
        let mut bytes = v4_header();
        bytes.extend_from_slice(b"payload");
        for step in [1, 3, 16, 100] {
            let (result, consumed) = read_all(bytes.clone(), step);
            let received = result.unwrap();
            assert_eq!(consumed, 28, "step {step}");
            assert_eq!(received.bytes, v4_header());
            assert_eq!(
                received.header.source(),
                Some("192.0.2.10:50000".parse().unwrap())
            );
        }
    }

    #[test]
    fn reading_reports_closed_truncated_and_malformed() {
        assert!(matches!(read_all(Vec::new(), 4).0, Err(ReadError::Closed)));
        assert!(matches!(
            read_all(v4_header()[..20].to_vec(), 4).0,
            Err(ReadError::Truncated {
                received: 20,
                expected: 28
            })
        ));
        // A plain HTTP client is turned away at its first byte.
        let (result, consumed) = read_all(b"GET / HTTP/1.1\r\n\r\n".to_vec(), 1);
        assert!(matches!(
            result,
            Err(ReadError::Malformed(ParseError::Signature))
        ));
        assert_eq!(consumed, 1);
        let mut oversized = SIG.to_vec();
        oversized.extend_from_slice(&[0x21, 0x11, 0xFF, 0xFF]);
        oversized.extend_from_slice(&[0; 64]);
        let (result, consumed) = read_all(oversized, 64);
        assert!(matches!(
            result,
            Err(ReadError::Malformed(ParseError::TooLarge { .. }))
        ));
        assert_eq!(consumed, FIXED_LEN);
    }

    #[test]
    fn a_silent_peer_times_out() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let (mut client, _server) = tokio::io::duplex(64);
        let result = runtime.block_on(read_header(&mut client, Duration::from_millis(100)));
        assert!(matches!(result, Err(ReadError::TimedOut(_))));
    }
}
