//! The server: one event loop that owns listeners, routes and backends, and
//! applies configuration requests as they arrive.
//!
//! Everything runs on the current thread: state is shared between the
//! command loop and the connection tasks with `Rc`/`RefCell`, never locks.
//! A configuration request is applied between two steps of the connection
//! tasks, so every request sees either the old configuration or the new one.
//!
//! This module is the top of the proxy's own modules: it imports the
//! context, the protocols and the listeners, and none of them imports it.
//! `apply` changes the configuration (state first, then the runtime);
//! `queries` answers everything else.

mod apply;
mod queries;

use std::rc::Rc;
use std::time::Instant;

use sozu_command::proto::command::{
    Request, ResponseContent, ResponseStatus, WorkerRequest, WorkerResponse, request::RequestType,
    response_content::ContentType,
};
use sozu_command::state::ConfigState;
use tokio::sync::mpsc;

use crate::context::Shared;
use crate::enforceable;
use crate::error::ProxyError;
use crate::handle::{Command, ProxyHandle, command_channel};
use crate::listener::Listeners;
use crate::options::ProxyOptions;

/// Starts a server on a thread of its own and returns its handle and the
/// thread. The thread ends when the server is stopped (a soft or hard stop
/// request) or every clone of the handle's sender is dropped; it returns
/// what [`Server::run`] returned.
pub fn spawn(
    options: ProxyOptions,
) -> Result<(ProxyHandle, std::thread::JoinHandle<Result<(), ProxyError>>), ProxyError> {
    let (handle, commands, responses) = command_channel();
    let name = format!("proxy-{}", options.name);
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || Server::from_channel(options, commands, responses).run_blocking())
        .map_err(ProxyError::Runtime)?;
    Ok((handle, thread))
}

/// A proxy server: build it with [`Server::new`], send it configuration
/// through the [`ProxyHandle`], and run it with [`Server::run`] (inside a
/// `tokio::task::LocalSet` on a current-thread runtime) or
/// [`Server::run_blocking`] (which makes that runtime itself).
pub struct Server {
    shared: Rc<Shared>,
    state: ConfigState,
    listeners: Listeners,
    commands: mpsc::UnboundedReceiver<Command>,
    responses: mpsc::UnboundedSender<WorkerResponse>,
}

/// How the command loop should go on after a request.
enum Flow {
    Continue,
    SoftStop(String),
    HardStop(String),
}

impl Server {
    /// A server with no listener and no cluster, and the handle that drives
    /// it. Requests sent before [`Server::run`] are applied first thing.
    ///
    /// The server is bound to the thread that runs it (it is not `Send`);
    /// to run it on a thread of its own, use [`spawn`], which builds it
    /// there. The handle can go anywhere.
    pub fn new(options: ProxyOptions) -> (Server, ProxyHandle) {
        let (handle, commands, responses) = command_channel();
        (Server::from_channel(options, commands, responses), handle)
    }

    fn from_channel(
        options: ProxyOptions,
        commands: mpsc::UnboundedReceiver<Command>,
        responses: mpsc::UnboundedSender<WorkerResponse>,
    ) -> Server {
        Server {
            shared: Rc::new(Shared::new(options, responses.clone())),
            state: ConfigState::new(),
            listeners: Listeners::default(),
            commands,
            responses,
        }
    }

    /// Runs the server on a new current-thread runtime until it is stopped
    /// (soft or hard stop request) or every handle is dropped.
    pub fn run_blocking(self) -> Result<(), ProxyError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ProxyError::Runtime)?;
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, self.run())
    }

    /// Runs the server until it is stopped. Must be awaited inside a
    /// `tokio::task::LocalSet` (connection tasks are spawned locally).
    pub async fn run(mut self) -> Result<(), ProxyError> {
        if let Some(options) = self.shared.options.statsd.clone() {
            match crate::statsd::Statsd::new(options, &self.shared.options.name) {
                Ok(statsd) => {
                    tokio::task::spawn_local(statsd.run(self.shared.clone()));
                }
                Err(error) => tracing::error!(%error, "cannot send StatsD metrics"),
            }
        }
        while let Some(command) = self.commands.recv().await {
            match command {
                Command::Request(request) => match self.handle_request(*request) {
                    Flow::Continue => {}
                    Flow::SoftStop(id) => {
                        self.soft_stop().await;
                        self.answer(&id, Ok(None));
                        return Ok(());
                    }
                    Flow::HardStop(id) => {
                        self.stop_listening();
                        self.answer(&id, Ok(None));
                        return Ok(());
                    }
                },
                Command::AdoptSockets(sockets) => self.listeners.adopt(sockets),
                Command::ShareSockets(reply) => {
                    let _ = reply.send(self.listeners.share_sockets());
                }
            }
        }
        // Every handle is gone: nobody can configure or stop us any more.
        self.stop_listening();
        Ok(())
    }

    fn answer(&self, id: &str, result: Result<Option<ContentType>, String>) {
        let (status, message, content) = match result {
            Ok(content) => (ResponseStatus::Ok, String::new(), content),
            Err(message) => (ResponseStatus::Failure, message, None),
        };
        let _ = self.responses.send(WorkerResponse {
            id: id.to_owned(),
            status: status as i32,
            message,
            content: content.map(ResponseContent::from),
        });
    }

    fn handle_request(&mut self, request: WorkerRequest) -> Flow {
        let WorkerRequest { id, content } = request;
        match &content.request_type {
            Some(RequestType::SoftStop(_)) => return Flow::SoftStop(id),
            Some(RequestType::HardStop(_)) => return Flow::HardStop(id),
            _ => {}
        }
        let result = self.apply(&content);
        self.answer(&id, result);
        Flow::Continue
    }

    /// Applies one request; `Ok` carries the answer's content, if any.
    fn apply(&mut self, request: &Request) -> Result<Option<ContentType>, String> {
        let Some(request_type) = &request.request_type else {
            return Err("empty request".to_owned());
        };
        enforceable::check(request)?;
        if ConfigState::changes_state(request) {
            return self.apply_change(request).map(|()| None);
        }
        self.answer_query(request, request_type)
    }

    /// Stops accepting, tells keep-alive connections to close, and closes
    /// the idle backend connections (kept by none from now on).
    fn stop_listening(&mut self) {
        self.listeners.stop_accepting();
        self.shared.stopping.stop();
        self.shared.pool.close();
    }

    /// Stops accepting, lets every open connection finish its current
    /// request, and returns when none is left or the deadline passes.
    async fn soft_stop(&mut self) {
        self.stop_listening();
        let deadline = Instant::now() + self.shared.options.soft_stop_deadline;
        while self.shared.connections.get() > 0 {
            let closed = self.shared.connection_closed.notified();
            if tokio::time::timeout_at(deadline.into(), closed)
                .await
                .is_err()
            {
                break;
            }
        }
    }
}
