//! Framed protobuf messages over a byte stream: the command socket between
//! clients and the daemon, and the channels between the main process and its
//! workers.
//!
//! There is one frame format (see [`frame`]) and one implementation of it.
//! Two transports are built on it:
//!
//! - [`Channel`], blocking, for clients (`sozu` subcommands, `top`, tests):
//!   [`Channel::exchange`] sends a request and reads answers until the final
//!   one, with the per-answer timeout the CLI's `-t` flag describes;
//! - [`FrameCodec`], a `tokio_util` codec, for the daemon and its workers.
//!
//! Both report problems as [`ChannelError`], which tells whether the
//! connection is still usable ([`ChannelError::is_recoverable`]).
//!
//! A client's whole conversation for one command:
//!
//! ```no_run
//! use std::time::Duration;
//! use sozu_command::channel::CommandChannel;
//! use sozu_command::proto::command::{Request, Status, request::RequestType};
//!
//! let mut channel = CommandChannel::connect("/run/sozu/sozu.sock")?;
//! let request = Request::from(RequestType::Status(Status {}));
//! let answer = channel.exchange(&request, Some(Duration::from_secs(1)), |progress| {
//!     eprintln!("{}", progress.message);
//! })?;
//! println!("{}", answer.message);
//! # Ok::<(), sozu_command::channel::ChannelError>(())
//! ```

#![deny(missing_docs)]

mod blocking;
mod codec;
mod error;
pub mod frame;

pub use blocking::{BlockingStream, Channel};
pub use codec::FrameCodec;
pub use error::ChannelError;
pub use frame::{DEFAULT_BUFFER_SIZE, DEFAULT_MAX_BUFFER_SIZE, INITIAL_CLIENT_BUFFER_SIZE};

use crate::proto::command::{Request, Response, ResponseStatus, WorkerRequest, WorkerResponse};

/// A client's end of the command socket: sends requests, reads responses.
pub type CommandChannel = Channel<Request, Response>;

/// The daemon's end of a command socket connection: decodes requests,
/// encodes responses.
pub type CommandServerCodec = FrameCodec<Request, Response>;

/// The main process's end of a worker channel: encodes requests for the
/// worker, decodes its answers and events.
pub type MainToWorkerCodec = FrameCodec<WorkerResponse, WorkerRequest>;

/// A worker's end of its channel to the main process: decodes requests,
/// encodes answers and events.
pub type WorkerToMainCodec = FrameCodec<WorkerRequest, WorkerResponse>;

/// An answer that may announce more answers to the same request.
///
/// A request gets zero or more PROCESSING answers, then one final answer
/// whose status is anything else (OK, FAILURE, or a status this version does
/// not know).
pub trait Answer {
    /// Whether this answer ends the exchange.
    fn is_final(&self) -> bool;
}

impl Answer for Response {
    fn is_final(&self) -> bool {
        !self.is_processing()
    }
}

impl Answer for WorkerResponse {
    fn is_final(&self) -> bool {
        self.status != ResponseStatus::Processing as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_processing_answers_announce_more() {
        assert!(!Response::processing("working").is_final());
        assert!(Response::ok("done", None).is_final());
        assert!(Response::failure("no").is_final());
        let unknown = Response {
            status: 42,
            ..Response::default()
        };
        assert!(unknown.is_final());
        let worker = WorkerResponse {
            id: "ID-1".into(),
            status: ResponseStatus::Processing as i32,
            ..WorkerResponse::default()
        };
        assert!(!worker.is_final());
    }
}
