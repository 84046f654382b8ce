//! The daemon: `sozu start` (the main process) and the worker processes it
//! runs.
//!
//! - [`main_process`]: the command socket, the configuration state, worker
//!   supervision; [`commands`] says what each request does;
//! - [`workers`]: starting workers and talking to them;
//! - [`worker_process`]: the worker side, a `sozu_proxy::Server` driven
//!   over the channel;
//! - [`state_files`], [`reload`], [`stop`], [`upgrade`]: the longer
//!   operations;
//! - [`events`], [`audit`], [`metrics`]: what the daemon reports.

pub mod audit;
pub mod changes;
pub mod commands;
pub mod events;
mod logging;
pub mod main_process;
pub mod metrics;
pub mod reload;
pub mod scm;
pub mod state_files;
pub mod stop;
pub mod upgrade;
pub mod worker_process;
pub mod workers;

use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use sozu_command::config::Config;
use sozu_command::proto::command::{ListenerType, Request};
use sozu_command::state::{ConfigState, file};
use sozu_proxy::log_limit::LogLimit;
use tokio::sync::mpsc;

use crate::main_process::{Main, bind_command_socket};
use crate::workers::WorkerLauncher;

/// What `sozu start` was given.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// The configuration file; `None` runs the built-in default.
    pub config: Option<PathBuf>,
}

/// Exit code for a configuration that cannot be used.
const EXIT_BAD_CONFIG: u8 = 2;
/// Exit code for anything else that prevents starting.
const EXIT_START_FAILED: u8 = 1;

/// Runs the main process until it is stopped.
pub fn start(options: StartOptions) -> ExitCode {
    if let Some(record) = std::env::var_os(upgrade::ENV_UPGRADE) {
        return resume(PathBuf::from(record));
    }
    let config = match &options.config {
        Some(path) => match Config::load(path) {
            Ok(config) => config,
            Err(error) => {
                eprintln!("sozu start: {error}");
                return ExitCode::from(EXIT_BAD_CONFIG);
            }
        },
        None => Config::default_for_start(),
    };
    logging::init(&config.log_level, "main");
    let (state, settings) = match initial_state(&config) {
        Ok(initial) => initial,
        Err(error) => {
            eprintln!("sozu start: {error}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if let Err(error) = probe_listeners(&state) {
        eprintln!("sozu start: {error}");
        return ExitCode::from(EXIT_START_FAILED);
    }
    run_main_loop(run(config, state, settings))
}

/// Runs the main process's event loop (one thread, tasks local to it) until
/// `serve` ends, and turns its outcome into the exit code.
fn run_main_loop(serve: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sozu start: could not start the event loop: {error}");
            return ExitCode::from(EXIT_START_FAILED);
        }
    };
    let local = tokio::task::LocalSet::new();
    match local.block_on(&runtime, serve) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sozu start: {error}");
            ExitCode::from(EXIT_START_FAILED)
        }
    }
}

/// Runs a worker process (started by the main process, never by hand).
pub fn worker() -> ExitCode {
    worker_process::run()
}

/// The state the configuration (and the saved state, if any) describes,
/// and the process settings it asks for.
fn initial_state(config: &Config) -> Result<(ConfigState, Vec<Request>), String> {
    let mut state = ConfigState::new();
    let mut settings = Vec::new();
    let source = config.config_path.as_ref().map_or_else(
        || "the built-in default".to_owned(),
        |path| path.display().to_string(),
    );
    for request in config.requests() {
        sozu_proxy::support::check(&request)
            .map_err(|reason| format!("{source}: {}: {reason}", request.kind_name()))?;
        if ConfigState::changes_state(&request) {
            state
                .dispatch(&request)
                .map_err(|error| format!("{source}: {}: {error}", request.kind_name()))?;
        } else {
            settings.push(request);
        }
    }
    if let Some(saved) = &config.saved_state
        && saved.exists()
    {
        let records = file::read_records(saved, config.max_state_file_size)
            .map_err(|error| error.to_string())?;
        let mut refused = 0;
        for record in records {
            let applied = record
                .map_err(|error| error.to_string())
                .and_then(|record| {
                    sozu_proxy::support::check(&record.request)?;
                    file::apply_record(&mut state, &record).map_err(|error| error.to_string())
                });
            if let Err(error) = applied {
                refused += 1;
                tracing::error!(file = %saved.display(), %error, "saved state record skipped");
            }
        }
        tracing::info!(file = %saved.display(), refused, "saved state loaded");
    }
    Ok((state, settings))
}

/// Checks that nobody else listens on the addresses of active listeners.
/// Workers bind with SO_REUSEPORT; this probe does not, so it fails when any
/// socket, even a reusable one, is already listening there.
fn probe_listeners(state: &ConfigState) -> Result<(), String> {
    let active = state
        .http_listeners
        .values()
        .filter(|l| l.active)
        .map(|l| l.address.to_socket_addr())
        .chain(
            state
                .https_listeners
                .values()
                .filter(|l| l.active)
                .map(|l| l.address.to_socket_addr()),
        )
        .chain(
            state
                .tcp_listeners
                .values()
                .filter(|l| l.active)
                .map(|l| l.address.to_socket_addr()),
        );
    for address in active {
        std::net::TcpListener::bind(address)
            .map_err(|error| format!("could not listen on {address}: {error}"))?;
    }
    Ok(())
}

async fn run(config: Config, state: ConfigState, settings: Vec<Request>) -> Result<(), String> {
    let socket_path = config.command_socket.clone();
    // Refuse early when a daemon is alive there; the socket itself is bound
    // once the workers run, so a client that can connect finds a daemon
    // ready to proxy.
    main_process::check_command_socket(&socket_path)?;
    let (news_tx, mut news) = mpsc::unbounded_channel();
    let launcher = WorkerLauncher {
        config: config.server_config(),
        max_frame_size: usize::try_from(config.max_command_buffer_size).unwrap_or(usize::MAX),
        news: news_tx,
    };
    let worker_count = u32::from(config.worker_count);
    let socket_mode = config.command_socket_mode;
    let main = Main::new(config, state, launcher);
    for request in settings {
        main.settings
            .borrow_mut()
            .insert(request.kind_name(), request);
    }
    for id in 0..worker_count {
        match main.start_worker(id, 0, None).await {
            Ok(worker) => {
                main.workers.borrow_mut().insert(id, worker);
            }
            Err(error) => {
                for worker in main.workers.borrow().values() {
                    worker.kill();
                }
                return Err(error);
            }
        }
    }
    let listener = match bind_command_socket(&socket_path, socket_mode) {
        Ok(listener) => listener,
        Err(error) => {
            for worker in main.workers.borrow().values() {
                worker.kill();
            }
            return Err(error);
        }
    };
    announce(&main, &socket_path);
    let result = serve(&main, listener, &mut news).await;
    let _ = std::fs::remove_file(&socket_path);
    result
}

/// Carries on after `upgrade_main` replaced the program of this process.
fn resume(record_path: PathBuf) -> ExitCode {
    let record = match upgrade::read_record(&record_path) {
        Ok(record) => record,
        Err(error) => {
            eprintln!("sozu start: upgrade failed: {error}");
            return ExitCode::from(EXIT_START_FAILED);
        }
    };
    let config = match &record.config_path {
        Some(path) => Config::load(path).unwrap_or_else(|error| {
            eprintln!("sozu start: after upgrade, {error}; keeping the built-in defaults for process settings");
            Config::default_for_start()
        }),
        None => Config::default_for_start(),
    };
    logging::init(&config.log_level, "main");
    let mut state = ConfigState::new();
    let bytes = std::fs::read(&record.state_file).unwrap_or_default();
    let _ = std::fs::remove_file(&record.state_file);
    let report = file::load(&mut state, &bytes);
    for error in &report.errors {
        tracing::error!(%error, "state record lost in the upgrade");
    }
    run_main_loop(resume_serving(config, state, record))
}

async fn resume_serving(
    config: Config,
    state: ConfigState,
    record: upgrade::UpgradeRecord,
) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let socket_path = config.command_socket.clone();
    let (news_tx, mut news) = mpsc::unbounded_channel();
    let launcher = WorkerLauncher {
        config: config.server_config(),
        max_frame_size: usize::try_from(config.max_command_buffer_size).unwrap_or(usize::MAX),
        news: news_tx,
    };
    let main = Main::new(config, state, launcher);
    for request in record.settings {
        main.settings
            .borrow_mut()
            .insert(request.kind_name(), request);
    }
    for worker in record.workers {
        // SAFETY: the previous program listed these descriptors as open and
        // handed over to this one; nothing else owns them.
        let (channel, scm) = unsafe {
            (
                upgrade::owned(worker.channel_fd),
                upgrade::owned(worker.scm_fd),
            )
        };
        let (channel, scm) = (
            std::os::unix::net::UnixStream::from(channel),
            std::os::unix::net::UnixStream::from(scm),
        );
        upgrade::close_on_exec(&channel);
        upgrade::close_on_exec(&scm);
        let adopted = main
            .launcher
            .adopt(worker.id, worker.generation, worker.pid, channel, scm)
            .map_err(|error| format!("could not take over worker {}: {error}", worker.id))?;
        main.workers.borrow_mut().insert(worker.id, adopted);
    }
    // SAFETY: as above, for the listening command socket.
    let listener =
        std::os::unix::net::UnixListener::from(unsafe { upgrade::owned(record.command_socket_fd) });
    upgrade::close_on_exec(&listener);
    listener
        .set_nonblocking(true)
        .map_err(|error| format!("command socket: {error}"))?;
    main.command_socket_fd.set(listener.as_raw_fd());
    let listener = tokio::net::UnixListener::from_std(listener)
        .map_err(|error| format!("command socket: {error}"))?;
    main.event(events::event(
        sozu_command::proto::command::EventKind::MainUpgraded,
    ));
    if let Some(client_fd) = record.client_fd {
        // SAFETY: as above, for the client that asked for the upgrade.
        let client = std::os::unix::net::UnixStream::from(unsafe { upgrade::owned(client_fd) });
        upgrade::close_on_exec(&client);
        if client.set_nonblocking(true).is_ok()
            && let Ok(client) = tokio::net::UnixStream::from_std(client)
        {
            tokio::task::spawn_local(main.clone().serve_upgraded_client(client));
        }
    }
    tracing::info!(
        "main process upgraded, {} workers taken over",
        main.workers.borrow().len()
    );
    let result = serve(&main, listener, &mut news).await;
    let _ = std::fs::remove_file(&socket_path);
    result
}

async fn serve(
    main: &Rc<Main>,
    listener: tokio::net::UnixListener,
    news: &mut mpsc::UnboundedReceiver<workers::WorkerNews>,
) -> Result<(), String> {
    {
        use std::os::fd::AsRawFd;
        main.command_socket_fd.set(listener.as_raw_fd());
    }
    let mut terminate = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = signal(tokio::signal::unix::SignalKind::interrupt())?;
    static ACCEPT_FAILED: LogLimit = LogLimit::new(Duration::from_secs(1));
    // While out of descriptors (or memory), accepting again at once fails
    // again at once: the socket stays readable and the loop would spin.
    // Accepting pauses instead, longer each time it fails the same way,
    // while everything else (workers, signals, clients) goes on.
    let mut backoff = AcceptBackoff::default();
    loop {
        tokio::select! {
            accepted = listener.accept(), if backoff.until.is_none() => match accepted {
                Ok((stream, _)) => {
                    backoff.reset();
                    tokio::task::spawn_local(main.clone().serve_client(stream));
                }
                Err(error) => {
                    let exhausted = sozu_proxy::listener::is_resource_exhaustion(&error);
                    if exhausted {
                        backoff.pause();
                    }
                    if let Some(held_back) = ACCEPT_FAILED.allow() {
                        tracing::warn!(
                            %error,
                            held_back,
                            pause_ms = backoff.delay.as_millis() as u64,
                            "could not accept a command connection"
                        );
                    }
                }
            },
            () = sleep_until(backoff.until), if backoff.until.is_some() => backoff.until = None,
            Some(news) = news.recv() => main.on_news(news).await,
            () = main.exit.notified() => break,
            _ = terminate.recv() => {
                tracing::info!("SIGTERM: stopping gracefully");
                let (answers, _ignored) = mpsc::unbounded_channel();
                stop::soft_stop(main, &answers).await;
                break;
            }
            _ = interrupt.recv() => {
                tracing::info!("SIGINT: stopping now");
                let (answers, _ignored) = mpsc::unbounded_channel();
                stop::hard_stop(main, &answers).await;
                break;
            }
        }
    }
    Ok(())
}

/// The pause of the command socket's accept loop while the process is out
/// of resources.
#[derive(Default)]
struct AcceptBackoff {
    /// The last pause (zero once an accept succeeds).
    delay: Duration,
    /// When accepting resumes, while paused.
    until: Option<tokio::time::Instant>,
}

impl AcceptBackoff {
    /// Shortest and longest pause.
    const FIRST: Duration = Duration::from_millis(10);
    const LONGEST: Duration = Duration::from_secs(1);

    fn pause(&mut self) {
        self.delay = (self.delay * 2).clamp(Self::FIRST, Self::LONGEST);
        self.until = Some(tokio::time::Instant::now() + self.delay);
    }

    fn reset(&mut self) {
        self.delay = Duration::ZERO;
    }
}

/// Waits until `until` (never, for `None`: the branch is disabled then).
async fn sleep_until(until: Option<tokio::time::Instant>) {
    match until {
        Some(until) => tokio::time::sleep_until(until).await,
        None => std::future::pending().await,
    }
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Result<tokio::signal::unix::Signal, String> {
    tokio::signal::unix::signal(kind).map_err(|error| format!("could not handle signals: {error}"))
}

/// Says where the daemon listens, on standard output.
fn announce(main: &Rc<Main>, socket_path: &std::path::Path) {
    let state = main.state.borrow();
    let mut listeners: Vec<String> = Vec::new();
    for (kind, addresses) in [
        (
            ListenerType::Http,
            state.http_listeners.keys().collect::<Vec<_>>(),
        ),
        (ListenerType::Https, state.https_listeners.keys().collect()),
        (ListenerType::Tcp, state.tcp_listeners.keys().collect()),
    ] {
        for address in addresses {
            listeners.push(format!("{} {address}", kind.as_str_name().to_lowercase()));
        }
    }
    println!(
        "sozu: command socket {}, {} workers, listeners: {}",
        socket_path.display(),
        main.workers.borrow().len(),
        if listeners.is_empty() {
            "none".to_owned()
        } else {
            listeners.join(", ")
        }
    );
}
