//! Worker processes seen from the main process: starting them, talking to
//! them, and noticing when they die.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::os::unix::process::CommandExt as _;
use std::rc::Rc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use sozu_command::channel::{ChannelError, MainToWorkerCodec, frame};
use sozu_command::proto::command::{
    Request, ResponseStatus, RunState, ServerConfig, WorkerRequest, WorkerResponse,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{Encoder, Framed};

use crate::handover::{self, CHANNEL_FD, ENV_ADOPT, ENV_CONFIG, ENV_ID, SCM_FD};
use crate::scm;

/// Why a worker did not answer a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoAnswer {
    /// The worker died or its channel broke before answering.
    Gone,
    /// No answer within the deadline.
    Timeout(Duration),
}

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoAnswer::Gone => write!(f, "the worker is not running"),
            NoAnswer::Timeout(waited) => write!(f, "no answer within {}s", waited.as_secs_f64()),
        }
    }
}

/// What a worker's channel reports to the main process besides answers.
#[derive(Debug)]
pub enum WorkerNews {
    /// An event the worker observed.
    Event(u32, WorkerResponse),
    /// The worker process exited (its id and generation).
    Exited(u32, u64, String),
}

/// One worker process and its channel.
pub struct Worker {
    /// The worker id, stable across restarts.
    pub id: u32,
    /// Increments each time the process is replaced.
    pub generation: u64,
    /// Process id.
    pub pid: i32,
    state: Cell<RunState>,
    requests: mpsc::UnboundedSender<Outgoing>,
    pending: Rc<RefCell<HashMap<String, oneshot::Sender<WorkerResponse>>>>,
    /// Set once the channel broke (either way): no answer will ever come.
    gone: Rc<Cell<bool>>,
    scm: StdUnixStream,
    /// The descriptor of the main process's end of the command channel,
    /// kept to hand the channel over during a main process upgrade.
    channel_fd: std::os::fd::RawFd,
    /// Largest frame on the channel: a larger request is refused here, so
    /// that it never reaches (and stops) the channel's writer.
    max_frame_size: usize,
}

impl Worker {
    /// Its run state as the `status` command reports it.
    pub fn run_state(&self) -> RunState {
        self.state.get()
    }

    /// Marks the worker as stopping (a soft stop was sent) or stopped.
    pub fn set_run_state(&self, state: RunState) {
        self.state.set(state);
    }

    /// Sends a request; the returned receiver gets the answer with the same
    /// id. The receiver errors if the worker goes away first.
    pub fn send(
        &self,
        request: impl Into<Box<WorkerRequest>>,
    ) -> oneshot::Receiver<WorkerResponse> {
        let request = request.into();
        let len = frame::frame_len(request.as_ref());
        if len > self.max_frame_size {
            let (reply, answer) = oneshot::channel();
            let _ = reply.send(WorkerResponse {
                id: request.id.clone(),
                status: ResponseStatus::Failure as i32,
                message: format!(
                    "the request is too large for the worker channel ({len} bytes, at most {})",
                    self.max_frame_size
                ),
                content: None,
            });
            return answer;
        }
        self.queue(request.id.clone(), Outgoing::Request(request))
    }

    /// Sends a request already encoded as one frame (see
    /// [`encode_request`]) whose id is `id`: a request meant for every
    /// worker is then encoded once and shared, not copied per worker.
    pub fn send_frame(&self, id: String, frame: Bytes) -> oneshot::Receiver<WorkerResponse> {
        self.queue(id, Outgoing::Frame(frame))
    }

    /// Hands `item` to the channel's writer; its answer, matched by `id`,
    /// comes through the returned receiver, which errors if the worker goes
    /// away first.
    fn queue(&self, id: String, item: Outgoing) -> oneshot::Receiver<WorkerResponse> {
        let (reply, answer) = oneshot::channel();
        if self.gone.get() {
            // The channel's tasks have ended and cleared what waited; a
            // request left pending now would wait forever (a soft stop has
            // no deadline). Dropping `reply` fails the receiver at once.
            return answer;
        }
        self.pending.borrow_mut().insert(id, reply);
        if self.requests.send(item).is_err() {
            // The writer is gone: the receiver sees a closed channel.
            self.pending.borrow_mut().clear();
        }
        answer
    }

    /// Sends a request and waits at most `timeout` for its answer.
    pub async fn ask(
        &self,
        request: WorkerRequest,
        timeout: Option<Duration>,
    ) -> Result<WorkerResponse, NoAnswer> {
        let answer = self.send(request);
        match timeout {
            Some(timeout) => match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(_)) => Err(NoAnswer::Gone),
                Err(_) => Err(NoAnswer::Timeout(timeout)),
            },
            None => answer.await.map_err(|_| NoAnswer::Gone),
        }
    }

    /// Receives listening sockets the worker sent on its socket channel.
    pub fn receive_sockets(&self) -> io::Result<Vec<(SocketAddr, OwnedFd)>> {
        scm::receive_sockets(&self.scm)
    }

    /// Requests sent and not answered yet.
    pub fn pending_count(&self) -> usize {
        self.pending.borrow().len()
    }

    /// The two descriptors that make this worker's channels, for a main
    /// process upgrade: (command channel, socket channel).
    pub fn descriptors(&self) -> (std::os::fd::RawFd, std::os::fd::RawFd) {
        (self.channel_fd, self.scm.as_raw_fd())
    }

    /// Asks the process to terminate now.
    pub fn kill(&self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// What goes down a worker's channel. Requests travel boxed (a
/// `WorkerRequest` is about 1 KB, and a state load queues thousands), or
/// already encoded when several workers get the same one.
enum Outgoing {
    Request(Box<WorkerRequest>),
    Frame(Bytes),
}

impl Encoder<Outgoing> for MainToWorkerCodec {
    type Error = ChannelError;

    fn encode(&mut self, item: Outgoing, dst: &mut BytesMut) -> Result<(), ChannelError> {
        match item {
            Outgoing::Request(request) => self.encode(request, dst),
            Outgoing::Frame(frame) => {
                dst.extend_from_slice(&frame);
                Ok(())
            }
        }
    }
}

/// The frame of the `WorkerRequest` with this `id` and `content`, for
/// [`Worker::send_frame`], written straight from borrowed parts (a
/// `Request` is about 1 KB: building a `WorkerRequest` would copy it).
/// Refused when it is larger than the channel's largest frame.
pub fn encode_request(
    id: &str,
    content: &Request,
    max_frame_size: usize,
) -> Result<Bytes, ChannelError> {
    use prost::encoding::{
        WireType, encode_key, encode_varint, encoded_len_varint, key_len, message,
    };
    // WorkerRequest: `required string id = 1; required Request content = 2;`
    let id_len = key_len(1) + encoded_len_varint(id.len() as u64) + id.len();
    let body = id_len + message::encoded_len(2, content);
    let len = body + frame::LENGTH_PREFIX_SIZE;
    frame::check_len(len, max_frame_size)?;
    let mut frame = BytesMut::with_capacity(len);
    frame.put_u64_le(len as u64);
    encode_key(1, WireType::LengthDelimited, &mut frame);
    encode_varint(id.len() as u64, &mut frame);
    frame.put_slice(id.as_bytes());
    message::encode(2, content, &mut frame);
    Ok(frame.freeze())
}

/// How to start workers.
#[derive(Clone)]
pub struct WorkerLauncher {
    /// The worker settings, passed as JSON in the environment.
    pub config: ServerConfig,
    /// Largest frame on the channel.
    pub max_frame_size: usize,
    /// Where news (events, exits) go.
    pub news: mpsc::UnboundedSender<WorkerNews>,
}

impl WorkerLauncher {
    /// Starts worker `id` (generation `generation`); with `sockets`, the
    /// worker receives them before anything else (an upgrade).
    pub fn launch(
        &self,
        id: u32,
        generation: u64,
        sockets: Option<Vec<(SocketAddr, OwnedFd)>>,
    ) -> io::Result<Rc<Worker>> {
        let (main_channel, worker_channel) = StdUnixStream::pair()?;
        let (main_scm, worker_scm) = StdUnixStream::pair()?;
        let executable = handover::executable()?;
        let config_json = serde_json::to_string(&self.config).map_err(io::Error::other)?;
        let mut command = tokio::process::Command::new(executable);
        command
            .arg("worker")
            .env(ENV_ID, id.to_string())
            .env(ENV_CONFIG, config_json)
            .env_remove(handover::ENV_UPGRADE)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(false);
        match crate::logging::worker_access_format() {
            Some(format) => command.env(crate::logging::ENV_ACCESS_FORMAT, format),
            None => command.env_remove(crate::logging::ENV_ACCESS_FORMAT),
        };
        if sockets.is_some() {
            command.env(ENV_ADOPT, "1");
        } else {
            command.env_remove(ENV_ADOPT);
        }
        let channel_fd = worker_channel.as_raw_fd();
        let scm_fd = worker_scm.as_raw_fd();
        let main_pid = std::process::id() as libc::pid_t;
        // SAFETY: between fork and exec only async-signal-safe calls are
        // made, and nothing is allocated: dup2 places the two channels at
        // their fixed numbers (dup2 clears close-on-exec on the copies);
        // prctl asks the kernel to kill the worker when the main process
        // is gone, however it went (a SIGKILL included), so that no worker
        // outlives it; getppid catches a main process that died before.
        unsafe {
            command.as_std_mut().pre_exec(move || {
                if libc::dup2(channel_fd, CHANNEL_FD) < 0 || libc::dup2(scm_fd, SCM_FD) < 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::getppid() != main_pid {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let child = command.spawn()?;
        drop(worker_channel);
        drop(worker_scm);
        let pid = child.id().map_or(0, |pid| pid as i32);
        if let Some(sockets) = sockets {
            scm::send_sockets(&main_scm, &sockets)?;
        }
        self.attach(
            id,
            generation,
            pid,
            main_channel,
            main_scm,
            Exit::Child(child),
        )
    }

    /// Takes over a worker started by a previous main process (an upgrade):
    /// same channels, same process.
    pub fn adopt(
        &self,
        id: u32,
        generation: u64,
        pid: i32,
        channel: StdUnixStream,
        scm_channel: StdUnixStream,
    ) -> io::Result<Rc<Worker>> {
        self.attach(id, generation, pid, channel, scm_channel, Exit::Pid(pid))
    }

    fn attach(
        &self,
        id: u32,
        generation: u64,
        pid: i32,
        main_channel: StdUnixStream,
        main_scm: StdUnixStream,
        exit: Exit,
    ) -> io::Result<Rc<Worker>> {
        main_channel.set_nonblocking(true)?;
        let channel_fd = main_channel.as_raw_fd();
        let channel = tokio::net::UnixStream::from_std(main_channel)?;
        let (mut sink, mut stream) = Framed::new(
            channel,
            MainToWorkerCodec::with_max_frame_size(self.max_frame_size),
        )
        .split();
        let (requests, mut outgoing) = mpsc::unbounded_channel::<Outgoing>();
        let pending: Rc<RefCell<HashMap<String, oneshot::Sender<WorkerResponse>>>> = Rc::default();
        let gone = Rc::new(Cell::new(false));

        let (writer_pending, writer_gone) = (pending.clone(), gone.clone());
        tokio::task::spawn_local(async move {
            // Every request queued meanwhile goes out with this one, in as
            // few writes as the codec's buffer allows, rather than one
            // write per request (a state load sends thousands at once).
            while let Some(request) = outgoing.recv().await {
                let mut result = sink.feed(request).await;
                while result.is_ok()
                    && let Ok(request) = outgoing.try_recv()
                {
                    result = sink.feed(request).await;
                }
                if let Err(error) = result.and(sink.flush().await) {
                    tracing::warn!(worker = id, %error, "could not write to the worker");
                    // What was sent will never be answered.
                    writer_gone.set(true);
                    writer_pending.borrow_mut().clear();
                    break;
                }
            }
        });
        let (reader_pending, reader_gone) = (pending.clone(), gone.clone());
        let news = self.news.clone();
        tokio::task::spawn_local(async move {
            while let Some(frame) = stream.next().await {
                match frame {
                    Ok(Ok(response)) => {
                        if response.id == sozu_proxy::handle::EVENT_ID {
                            let _ = news.send(WorkerNews::Event(id, response));
                        } else if let Some(reply) = reader_pending.borrow_mut().remove(&response.id)
                        {
                            let _ = reply.send(response);
                        }
                    }
                    Ok(Err(error)) => {
                        static UNDECODABLE: sozu_proxy::log_limit::LogLimit =
                            sozu_proxy::log_limit::LogLimit::new(Duration::from_secs(1));
                        if let Some(held_back) = UNDECODABLE.allow() {
                            tracing::warn!(worker = id, %error, held_back, "undecodable answer from worker")
                        }
                    }
                    Err(error) => {
                        tracing::warn!(worker = id, %error, "the channel to the worker broke");
                        break;
                    }
                }
            }
            // No more answers will come: fail whatever waits, and whatever
            // is sent from now on.
            reader_gone.set(true);
            reader_pending.borrow_mut().clear();
        });
        let news = self.news.clone();
        tokio::task::spawn_local(async move {
            let status =
                match exit {
                    Exit::Child(mut child) => match child.wait().await {
                        Ok(status) => status.to_string(),
                        Err(error) => format!("could not wait for it: {error}"),
                    },
                    // Still our child after exec: wait for it on a blocking thread.
                    Exit::Pid(pid) => tokio::task::spawn_blocking(move || {
                        match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None) {
                            Ok(status) => format!("{status:?}"),
                            Err(error) => format!("could not wait for it: {error}"),
                        }
                    })
                    .await
                    .unwrap_or_else(|error| error.to_string()),
                };
            let _ = news.send(WorkerNews::Exited(id, generation, status));
        });

        Ok(Rc::new(Worker {
            id,
            generation,
            pid,
            state: Cell::new(RunState::Running),
            requests,
            pending,
            gone,
            scm: main_scm,
            channel_fd,
            max_frame_size: self.max_frame_size,
        }))
    }
}

/// How the main process learns that a worker exited.
enum Exit {
    /// A child it started itself.
    Child(tokio::process::Child),
    /// A child started before an exec of the main process.
    Pid(i32),
}

#[cfg(test)]
mod tests {
    use super::*;
    use sozu_command::proto::command::{AddBackend, Cluster, request::RequestType};

    /// A request larger than the channel's frames is refused by name, and
    /// the channel goes on carrying the next ones.
    #[test]
    fn a_request_too_large_for_the_channel_is_refused_and_the_channel_goes_on() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&runtime, async {
            let (news, _news) = mpsc::unbounded_channel();
            let launcher = WorkerLauncher {
                config: ServerConfig::default(),
                max_frame_size: 256,
                news,
            };
            let (main_end, worker_end) = StdUnixStream::pair().unwrap();
            let (main_scm, _worker_scm) = StdUnixStream::pair().unwrap();
            // No such process: waiting for it ends at once, which is fine.
            let worker = launcher.adopt(0, 0, i32::MAX, main_end, main_scm).unwrap();
            let large = WorkerRequest {
                id: "large".into(),
                content: RequestType::AddCluster(Cluster {
                    cluster_id: "c".repeat(1000),
                    ..Default::default()
                })
                .into(),
            };
            let answer = worker.send(large).await.unwrap();
            assert_eq!(answer.status, ResponseStatus::Failure as i32);
            assert!(answer.message.contains("too large"), "{}", answer.message);
            // The next request still reaches the worker's end.
            let _pending = worker.send(WorkerRequest {
                id: "small".into(),
                content: Request::default(),
            });
            use prost::Message as _;
            use tokio::io::AsyncReadExt as _;
            worker_end.set_nonblocking(true).unwrap();
            let mut worker_end = tokio::net::UnixStream::from_std(worker_end).unwrap();
            let read = async {
                let mut prefix = [0; 8];
                worker_end.read_exact(&mut prefix).await.unwrap();
                let mut body = vec![0; u64::from_le_bytes(prefix) as usize - 8];
                worker_end.read_exact(&mut body).await.unwrap();
                WorkerRequest::decode(body.as_slice()).unwrap()
            };
            let received = tokio::time::timeout(Duration::from_secs(5), read)
                .await
                .expect("the next request goes out");
            assert_eq!(received.id, "small");
        });
    }

    /// The frame written from borrowed parts is the very frame of the
    /// `WorkerRequest` those parts make, for small and large requests.
    #[test]
    fn encoded_requests_are_the_frames_of_the_whole_message() {
        let long_id = "x".repeat(300);
        let requests: [(&str, Request); 3] = [
            ("LOAD-1", Request::default()),
            (
                "LOAD-2",
                RequestType::AddCluster(Cluster {
                    cluster_id: "app".into(),
                    ..Default::default()
                })
                .into(),
            ),
            (
                &long_id,
                RequestType::AddBackend(AddBackend {
                    cluster_id: "app".repeat(100),
                    backend_id: "b".into(),
                    ..Default::default()
                })
                .into(),
            ),
        ];
        for (id, content) in requests {
            let whole = WorkerRequest {
                id: id.into(),
                content: content.clone(),
            };
            let expected = frame::encode_to_vec(&whole, usize::MAX).unwrap();
            let written = encode_request(id, &content, usize::MAX).unwrap();
            assert_eq!(written.as_ref(), expected.as_slice(), "{id}");
            // The size limit counts the whole frame, prefix included.
            assert!(encode_request(id, &content, expected.len()).is_ok());
            assert!(matches!(
                encode_request(id, &content, expected.len() - 1),
                Err(ChannelError::MessageTooLarge { .. })
            ));
        }
    }

    /// A worker whose channel closed (it died) before the main process
    /// sent it a request: the request fails at once instead of waiting for
    /// an answer that cannot come (a soft stop waits without a deadline).
    #[test]
    fn a_request_to_a_worker_whose_channel_closed_fails_at_once() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&runtime, async {
            let (news, _news) = mpsc::unbounded_channel();
            let launcher = WorkerLauncher {
                config: ServerConfig::default(),
                max_frame_size: 1 << 20,
                news,
            };
            let (channel, worker_end) = StdUnixStream::pair().unwrap();
            let (scm, _worker_scm) = StdUnixStream::pair().unwrap();
            // No such process: waiting for it ends at once, which is fine.
            let worker = launcher.adopt(0, 0, i32::MAX, channel, scm).unwrap();
            drop(worker_end);
            tokio::time::timeout(Duration::from_secs(5), async {
                while !worker.gone.get() {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .expect("the closed channel is noticed");
            let request = WorkerRequest {
                id: "REQ-1".into(),
                content: Default::default(),
            };
            let answer = tokio::time::timeout(Duration::from_secs(5), worker.ask(request, None))
                .await
                .expect("no wait for a worker that is gone");
            assert_eq!(answer, Err(NoAnswer::Gone));
            assert_eq!(worker.pending_count(), 0);
        });
    }
}
