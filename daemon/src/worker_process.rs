//! The worker process: a proxy server driven over the channel to the main
//! process.
//!
//! The main process starts the worker by running this same binary with the
//! hidden `worker` subcommand. The worker finds its settings in the
//! environment and its two channels on fixed descriptors:
//!
//! - [`CHANNEL_FD`]: framed `WorkerRequest`s in, `WorkerResponse`s out;
//! - [`SCM_FD`]: listening sockets passed during upgrades.
//!
//! Everything else is the `sozu_proxy` library, exactly as any embedder
//! uses it: requests go to its handle, its answers and events come back.

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::process::ExitCode;

use futures::{SinkExt, StreamExt};
use sozu_command::channel::WorkerToMainCodec;
use sozu_command::proto::command::{
    ResponseStatus, ServerConfig, WorkerResponse, request::RequestType,
};
use sozu_proxy::{ListenSocket, ProxyOptions, Server};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

use crate::handover::{CHANNEL_FD, ENV_ADOPT, ENV_CONFIG, ENV_ID, SCM_FD};
use crate::scm;

/// How long a stopped worker tries to deliver its last answers before it
/// exits anyway.
const LAST_ANSWERS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs the worker until the main process stops it or goes away.
pub fn run() -> ExitCode {
    let Ok(id) = std::env::var(ENV_ID) else {
        eprintln!("sozu worker: this subcommand is started by `sozu start`, not by hand");
        return ExitCode::from(2);
    };
    let config: ServerConfig = match std::env::var(ENV_CONFIG)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
    {
        Some(config) => config,
        None => {
            eprintln!("sozu worker {id}: missing or invalid {ENV_CONFIG}");
            return ExitCode::from(2);
        }
    };
    let settings = crate::logging::LogSettings::of_worker(&config);
    if let Err(error) = crate::logging::init(&settings, &format!("worker-{id}")) {
        // The main process checked the targets; one that went away since
        // (a syslog socket) must not stop the worker: logs go to stderr.
        eprintln!("sozu worker {id}: {error}; logging to stderr");
        let fallback = crate::logging::LogSettings {
            target: "stderr".to_owned(),
            access_target: None,
            ..settings
        };
        let _ = crate::logging::init(&fallback, &format!("worker-{id}"));
    }

    // SAFETY: the main process placed these two descriptors at these
    // numbers before exec and nothing else in this process owns them.
    let (channel, scm_channel) = unsafe {
        (
            StdUnixStream::from(OwnedFd::from_raw_fd(CHANNEL_FD)),
            StdUnixStream::from(OwnedFd::from_raw_fd(SCM_FD)),
        )
    };
    let adopted = if std::env::var_os(ENV_ADOPT).is_some() {
        match scm::receive_sockets(&scm_channel) {
            Ok(sockets) => sockets,
            Err(error) => {
                tracing::error!(%error, "could not receive the listening sockets");
                return ExitCode::from(1);
            }
        }
    } else {
        Vec::new()
    };

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "could not start the event loop");
            return ExitCode::from(1);
        }
    };
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(&runtime, serve(id, config, channel, scm_channel, adopted));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "worker stopped on error");
            ExitCode::from(1)
        }
    }
}

async fn serve(
    id: String,
    config: ServerConfig,
    channel: StdUnixStream,
    scm_channel: StdUnixStream,
    adopted: Vec<(std::net::SocketAddr, OwnedFd)>,
) -> std::io::Result<()> {
    channel.set_nonblocking(true)?;
    let channel = tokio::net::UnixStream::from_std(channel)?;
    let max_frame_size = usize::try_from(config.max_command_buffer_size).unwrap_or(usize::MAX);
    let codec = WorkerToMainCodec::with_max_frame_size(max_frame_size);
    let (mut sink, mut stream) = Framed::new(channel, codec).split();

    let mut options = ProxyOptions::from_server_config(id.clone(), &config);
    options.log_filter = Some(sozu_proxy::LogFilter(std::sync::Arc::new(
        crate::logging::set_level,
    )));
    let (server, handle) = Server::new(options);
    let (sender, mut receiver) = (handle.sender, handle.receiver);
    if !adopted.is_empty() {
        let sockets = adopted
            .into_iter()
            .map(|(address, fd)| ListenSocket { address, fd })
            .collect();
        let _ = sender.adopt_sockets(sockets);
    }
    let server = tokio::task::spawn_local(server.run());
    // SIGUSR1 (from logrotate, through the main process) reopens log files.
    if let Ok(mut reopen) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
    {
        tokio::task::spawn_local(async move {
            while reopen.recv().await.is_some() {
                crate::logging::reopen();
            }
        });
    }

    // Answers produced here (socket hand-over) join the server's answers.
    let (local_tx, mut local_rx) = mpsc::unbounded_channel::<WorkerResponse>();
    // Told when the server has ended. The writer cannot wait for the end of
    // the server's answers instead: tasks that outlive the server (a
    // backend connection, a health check) still hold a sender.
    let (server_ended, mut ended) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::task::spawn_local(async move {
        loop {
            let response = tokio::select! {
                biased;
                response = receiver.recv() => response,
                Some(response) = local_rx.recv() => Some(response),
                _ = &mut ended => None,
            };
            let Some(response) = response else { break };
            // Answers ready meanwhile go out with this one, in as few
            // writes as the codec's buffer allows (a state load brings
            // thousands of requests at once).
            let mut result = sink.feed(fitted(response, max_frame_size)).await;
            while result.is_ok()
                && let Some(response) = receiver.try_recv().or_else(|| local_rx.try_recv().ok())
            {
                result = sink.feed(fitted(response, max_frame_size)).await;
            }
            if result.and(sink.flush().await).is_err() {
                return;
            }
        }
        // The last answers (the stop acknowledgement) are queued already.
        let mut result = Ok(());
        while result.is_ok()
            && let Some(response) = receiver.try_recv().or_else(|| local_rx.try_recv().ok())
        {
            result = sink.feed(fitted(response, max_frame_size)).await;
        }
        let _ = result.and(sink.flush().await);
    });

    let reader_sender = sender.clone();
    let reader = tokio::task::spawn_local(async move {
        while let Some(frame) = stream.next().await {
            let request = match frame {
                Ok(Ok(request)) => request,
                Ok(Err(error)) => {
                    static UNDECODABLE: sozu_proxy::log_limit::LogLimit =
                        sozu_proxy::log_limit::LogLimit::new(std::time::Duration::from_secs(1));
                    if let Some(held_back) = UNDECODABLE.allow() {
                        tracing::warn!(%error, held_back, "undecodable request from the main process");
                    }
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "the channel to the main process broke");
                    break;
                }
            };
            if let Some(RequestType::ReturnListenSockets(_)) = request.content.request_type {
                let outcome = match reader_sender.share_sockets().await {
                    Ok(sockets) => {
                        let sockets: Vec<_> =
                            sockets.into_iter().map(|s| (s.address, s.fd)).collect();
                        scm::send_sockets(&scm_channel, &sockets)
                            .map(|()| sockets.len())
                            .map_err(|error| error.to_string())
                    }
                    Err(error) => Err(error.to_string()),
                };
                let (status, message) = match outcome {
                    Ok(count) => (
                        ResponseStatus::Ok,
                        format!("{count} listening sockets sent"),
                    ),
                    Err(error) => (ResponseStatus::Failure, error),
                };
                let _ = local_tx.send(WorkerResponse {
                    id: request.id,
                    status: status as i32,
                    message,
                    content: None,
                });
                continue;
            }
            if reader_sender.send(request).is_err() {
                break;
            }
        }
        // The main process is gone: nobody can command us any more.
        let _ = reader_sender.hard_stop("main-process-gone");
    });

    let outcome = server.await;
    reader.abort();
    drop(sender);
    // Let the last answers (the stop acknowledgement) reach the main
    // process, unless it does not read them: the worker exits regardless.
    let _ = server_ended.send(());
    let _ = tokio::time::timeout(LAST_ANSWERS_DEADLINE, writer).await;
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(std::io::Error::other(error.to_string())),
        Err(error) => Err(std::io::Error::other(error.to_string())),
    }
}

/// The answer itself, or, when it would not fit in one frame of the
/// channel, a failure with the same id that says so: one answer too large
/// must not stop the channel (and every later answer) with it.
fn fitted(response: WorkerResponse, max_frame_size: usize) -> WorkerResponse {
    let len = sozu_command::channel::frame::frame_len(&response);
    if len <= max_frame_size {
        return response;
    }
    WorkerResponse {
        id: response.id,
        status: ResponseStatus::Failure as i32,
        message: format!(
            "the answer is too large for the channel to the main process ({len} bytes, at \
             most {max_frame_size}: raise max_command_buffer_size)"
        ),
        content: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sozu_command::proto::command::{
        ClusterHashes, ResponseContent, response_content::ContentType,
    };

    #[test]
    fn an_answer_too_large_for_the_channel_becomes_a_failure_with_its_id() {
        let large = WorkerResponse {
            id: "QUERY-1".into(),
            status: ResponseStatus::Ok as i32,
            message: String::new(),
            content: Some(ResponseContent {
                content_type: Some(ContentType::ClusterHashes(ClusterHashes {
                    map: (0..1000)
                        .map(|index| (format!("cluster-{index}"), 7))
                        .collect(),
                })),
            }),
        };
        let small = WorkerResponse {
            id: "QUERY-2".into(),
            status: ResponseStatus::Ok as i32,
            message: "fine".into(),
            content: None,
        };
        assert_eq!(fitted(small.clone(), 4096), small);
        let refused = fitted(large.clone(), 4096);
        assert_eq!(refused.id, "QUERY-1");
        assert_eq!(refused.status, ResponseStatus::Failure as i32);
        assert!(refused.message.contains("too large"), "{}", refused.message);
        assert!(sozu_command::channel::frame::frame_len(&refused) <= 4096);
        assert_eq!(fitted(large.clone(), 1 << 20), large);
    }
}
