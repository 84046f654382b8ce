//! Errors a server reports to its embedder.

use std::net::SocketAddr;
use std::time::Duration;

/// What can go wrong when starting, driving or stopping a server.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The server has stopped; its channel is closed.
    #[error("the proxy server has stopped")]
    Stopped,
    /// Nothing arrived in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The async runtime could not be created.
    #[error("could not start the event loop: {0}")]
    Runtime(std::io::Error),
    /// A listening socket could not be created.
    #[error("could not listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// The system's reason.
        source: std::io::Error,
    },
}
