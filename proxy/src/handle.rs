//! The embedder's end of a server: send requests, read answers and events.

use std::os::fd::OwnedFd;

use sozu_command::proto::command::{
    HardStop, Request, SoftStop, WorkerRequest, WorkerResponse, request::RequestType,
};
use tokio::sync::{mpsc, oneshot};

use crate::error::ProxyError;

/// The id carried by unsolicited event responses.
pub const EVENT_ID: &str = "EVENT";

/// A listening socket handed between servers for a zero-downtime upgrade.
#[derive(Debug)]
pub struct ListenSocket {
    /// The address it is bound to.
    pub address: std::net::SocketAddr,
    /// The socket.
    pub fd: OwnedFd,
}

/// What travels from a handle to its server.
#[derive(Debug)]
pub(crate) enum Command {
    /// A protocol request, answered with the same id.
    Request(Box<WorkerRequest>),
    /// Sockets to use when a listener is activated with `from_scm`.
    AdoptSockets(Vec<ListenSocket>),
    /// Copies of the sockets of every active listener.
    ShareSockets(oneshot::Sender<Vec<ListenSocket>>),
}

/// Sends requests to one server. Cheap to clone; every clone talks to the
/// same server.
#[derive(Debug, Clone)]
pub struct CommandSender {
    commands: mpsc::UnboundedSender<Command>,
}

/// Receives the server's answers, one per request (matched by id), and the
/// events it reports (id [`EVENT_ID`], status PROCESSING).
#[derive(Debug)]
pub struct ResponseReceiver {
    responses: mpsc::UnboundedReceiver<WorkerResponse>,
}

/// Both ends of a server's command channel.
#[derive(Debug)]
pub struct ProxyHandle {
    /// Where requests go.
    pub sender: CommandSender,
    /// Where answers come from.
    pub receiver: ResponseReceiver,
}

pub(crate) fn command_channel() -> (
    ProxyHandle,
    mpsc::UnboundedReceiver<Command>,
    mpsc::UnboundedSender<WorkerResponse>,
) {
    let (command_tx, command_rx) = mpsc::unbounded_channel();
    let (response_tx, response_rx) = mpsc::unbounded_channel();
    let handle = ProxyHandle {
        sender: CommandSender {
            commands: command_tx,
        },
        receiver: ResponseReceiver {
            responses: response_rx,
        },
    };
    (handle, command_rx, response_tx)
}

impl CommandSender {
    /// Queues one request. Its answer arrives on the [`ResponseReceiver`]
    /// with the same id. Fails only when the server has stopped.
    pub fn send(&self, request: WorkerRequest) -> Result<(), ProxyError> {
        self.commands
            .send(Command::Request(Box::new(request)))
            .map_err(|_| ProxyError::Stopped)
    }

    /// Queues a request built from `id` and `request`.
    pub fn request(
        &self,
        id: impl Into<String>,
        request: impl Into<Request>,
    ) -> Result<(), ProxyError> {
        self.send(WorkerRequest {
            id: id.into(),
            content: request.into(),
        })
    }

    /// Asks the server to stop accepting, finish what is in flight, then stop.
    pub fn soft_stop(&self, id: impl Into<String>) -> Result<(), ProxyError> {
        self.request(id, RequestType::SoftStop(SoftStop {}))
    }

    /// Asks the server to stop now, closing every connection.
    pub fn hard_stop(&self, id: impl Into<String>) -> Result<(), ProxyError> {
        self.request(id, RequestType::HardStop(HardStop {}))
    }

    /// Gives the server listening sockets to use for listeners activated
    /// with `from_scm: true` (an upgrade hands them over this way).
    pub fn adopt_sockets(&self, sockets: Vec<ListenSocket>) -> Result<(), ProxyError> {
        self.commands
            .send(Command::AdoptSockets(sockets))
            .map_err(|_| ProxyError::Stopped)
    }

    /// Duplicates of the sockets of every active listener, to hand to a
    /// replacement server. The server keeps using its own copies.
    pub async fn share_sockets(&self) -> Result<Vec<ListenSocket>, ProxyError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::ShareSockets(reply))
            .map_err(|_| ProxyError::Stopped)?;
        answer.await.map_err(|_| ProxyError::Stopped)
    }

    /// [`CommandSender::share_sockets`] for callers outside any runtime.
    pub fn blocking_share_sockets(&self) -> Result<Vec<ListenSocket>, ProxyError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::ShareSockets(reply))
            .map_err(|_| ProxyError::Stopped)?;
        answer.blocking_recv().map_err(|_| ProxyError::Stopped)
    }
}

impl ResponseReceiver {
    /// The next answer or event; `None` once the server has stopped and
    /// everything it sent was read.
    pub async fn recv(&mut self) -> Option<WorkerResponse> {
        self.responses.recv().await
    }

    /// [`ResponseReceiver::recv`] for callers outside any runtime (a plain
    /// thread). Must not be called from inside an async task.
    pub fn blocking_recv(&mut self) -> Option<WorkerResponse> {
        self.responses.blocking_recv()
    }

    /// An answer or event already waiting, without blocking.
    pub fn try_recv(&mut self) -> Option<WorkerResponse> {
        self.responses.try_recv().ok()
    }
}
