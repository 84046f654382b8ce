//! Starting the main process, and its main loop.
//!
//! The main process starts from a configuration (`sozu start`), or, after
//! `upgrade_main` replaced its program, from the record the previous program
//! left (see [`crate::handover`]). Both become a [`Boot`] and go through one
//! path, [`Boot::run`]: build the main process, start its workers or take
//! over the running ones, bind the command socket or take over the listening
//! one, then run the main loop until the daemon stops.

use std::os::unix::net::{UnixListener as StdUnixListener, UnixStream as StdUnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;

use sozu_command::config::Config;
use sozu_command::proto::command::{EventKind, ListenerType, Request};
use sozu_command::state::{ConfigState, file};
use tokio::sync::mpsc;

use crate::audit::{self, Peer};
use crate::command_socket::{self, CommandSocket};
use crate::commands::stop;
use crate::events;
use crate::handover::{self, UpgradeRecord, UpgradedWorker};
use crate::logging;
use crate::main_process::Main;
use crate::systemd::{self, PidFile};
use crate::workers::{WorkerLauncher, WorkerNews};

/// What `sozu start` was given.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// The configuration file; `None` runs the built-in default.
    pub config: Option<PathBuf>,
    /// Serve Prometheus's `/metrics` here (`--prometheus-address`),
    /// whatever the configuration says.
    pub prometheus_address: Option<std::net::SocketAddr>,
}

/// Exit code for a configuration that cannot be used.
const EXIT_BAD_CONFIG: u8 = 2;
/// Exit code for anything else that prevents starting.
const EXIT_START_FAILED: u8 = 1;

/// Runs the main process until it is stopped: from `options`, or, when this
/// program was started by `upgrade_main`, from the previous program's
/// record (then `options` are not used).
pub fn start(options: StartOptions) -> ExitCode {
    let boot = match std::env::var_os(handover::ENV_UPGRADE) {
        Some(record) => Boot::after_upgrade(Path::new(&record)),
        None => Boot::from_options(&options),
    };
    match boot {
        Ok(boot) => run_main_loop(boot.run()),
        Err(code) => code,
    }
}

/// Everything the main process starts with.
struct Boot {
    config: Config,
    state: ConfigState,
    /// Process settings, sent to every worker after the state.
    settings: Vec<Request>,
    origin: Origin,
}

/// Where the workers and the command socket come from.
enum Origin {
    /// `sozu start`: workers are started, the command socket is bound.
    Start,
    /// After `upgrade_main`: the previous program's workers and command
    /// socket are taken over, and the client that asked is answered.
    Upgrade {
        workers: Vec<UpgradedWorker>,
        command_socket_fd: std::os::fd::RawFd,
        client_fd: Option<std::os::fd::RawFd>,
    },
}

impl Boot {
    /// `sozu start`: the configuration and the saved state, if any. Refuses
    /// (with the exit code) a configuration that cannot be used, or a
    /// listener address someone else listens on.
    fn from_options(options: &StartOptions) -> Result<Boot, ExitCode> {
        let mut config = match &options.config {
            Some(path) => Config::load(path).map_err(|error| {
                eprintln!("sozu start: {error}");
                ExitCode::from(EXIT_BAD_CONFIG)
            })?,
            None => Config::default_for_start(),
        };
        if let Some(address) = options.prometheus_address {
            config.set_prometheus_address(address);
        }
        logging::init_main(&config)
            .and_then(|()| audit::open(&config))
            .map_err(|error| {
                eprintln!("sozu start: {error}");
                ExitCode::from(EXIT_BAD_CONFIG)
            })?;
        for warning in config.warnings() {
            eprintln!("sozu start: warning: {warning}");
            tracing::warn!("{warning}");
        }
        let source = config.config_path.as_ref().map_or_else(
            || "the built-in default".to_owned(),
            |path| path.display().to_string(),
        );
        let initial = config
            .initial_state(sozu_proxy::enforceable::check)
            .map_err(|refused| {
                eprintln!("sozu start: {source}: {refused}");
                ExitCode::from(EXIT_BAD_CONFIG)
            })?;
        let mut state = initial.state;
        load_saved_state(&config, &mut state).map_err(|error| {
            eprintln!("sozu start: {error}");
            ExitCode::from(EXIT_BAD_CONFIG)
        })?;
        probe_listeners(&state).map_err(|error| {
            eprintln!("sozu start: {error}");
            ExitCode::from(EXIT_START_FAILED)
        })?;
        Ok(Boot {
            config,
            state,
            settings: initial.settings,
            origin: Origin::Start,
        })
    }

    /// After `upgrade_main`: the record the previous program left at
    /// `record_path`, and the state file it names.
    fn after_upgrade(record_path: &Path) -> Result<Boot, ExitCode> {
        let record: UpgradeRecord = handover::read_record(record_path).map_err(|error| {
            eprintln!("sozu start: upgrade failed: {error}");
            ExitCode::from(EXIT_START_FAILED)
        })?;
        let config = match &record.config_path {
            Some(path) => Config::load(path).unwrap_or_else(|error| {
                eprintln!(
                    "sozu start: after upgrade, {error}; keeping the built-in defaults for process settings"
                );
                Config::default_for_start()
            }),
            None => Config::default_for_start(),
        };
        if let Err(error) = logging::init_main(&config) {
            eprintln!("sozu start: after upgrade, {error}; logging to stderr");
            let fallback = logging::LogSettings {
                target: "stderr".to_owned(),
                access_target: None,
                ..logging::LogSettings::of_config(&config).0
            };
            let _ = logging::init(&fallback, "main");
        }
        if let Err(error) = audit::open(&config) {
            tracing::error!(%error, "audit files not opened after the upgrade");
        }
        let mut state = ConfigState::new();
        let bytes = std::fs::read(&record.state_file).unwrap_or_default();
        let _ = std::fs::remove_file(&record.state_file);
        let report = file::load(&mut state, &bytes);
        for error in &report.errors {
            tracing::error!(%error, "state record lost in the upgrade");
        }
        Ok(Boot {
            config,
            state,
            settings: record.settings,
            origin: Origin::Upgrade {
                workers: record.workers,
                command_socket_fd: record.command_socket_fd,
                client_fd: record.client_fd,
            },
        })
    }

    /// Builds the main process, gets its workers and command socket, and
    /// runs the main loop until the daemon stops.
    async fn run(self) -> Result<(), String> {
        let Boot {
            config,
            state,
            settings,
            origin,
        } = self;
        let socket_path = config.command_socket.clone();
        if let Origin::Start = origin {
            // Refuse early when a daemon is alive there; the socket itself
            // is bound once the workers run, so a client that can connect
            // finds a daemon ready to proxy.
            command_socket::check_command_socket(&socket_path)?;
        }
        let (news_tx, mut news) = mpsc::unbounded_channel();
        let launcher = WorkerLauncher {
            config: config.server_config(),
            max_frame_size: usize::try_from(config.max_command_buffer_size).unwrap_or(usize::MAX),
            news: news_tx,
        };
        let worker_count = u32::from(config.worker_count);
        let pid_file_path = config.pid_file_path.clone();
        let socket_mode = config.command_socket_mode;
        // Bound before the workers start, so that a taken port stops a
        // start early (after an upgrade, the endpoint is left off instead).
        let prometheus = match config.prometheus_address() {
            Some(address) => match (crate::prometheus::bind(address).await, &origin) {
                (Ok(listener), _) => Some(listener),
                (Err(error), Origin::Start) => return Err(error),
                (Err(error), Origin::Upgrade { .. }) => {
                    tracing::error!(%error, "prometheus endpoint off");
                    None
                }
            },
            None => None,
        };
        let main = Main::new(config, state, settings, launcher);
        let upgraded = matches!(origin, Origin::Upgrade { .. });
        let socket = match origin {
            Origin::Start => {
                let socket = start_workers(&main, worker_count, &socket_path, socket_mode).await?;
                announce(&main, &socket_path);
                socket
            }
            Origin::Upgrade {
                workers,
                command_socket_fd,
                client_fd,
            } => take_over(&main, workers, command_socket_fd, client_fd)?,
        };
        // Written once the daemon serves and before systemd hears it is
        // ready (a unit with PIDFile= reads it then); removed when this
        // function returns (an upgrade's exec leaves it: same pid).
        let _pid_file = pid_file_path.and_then(|path| {
            PidFile::write(&path)
                .inspect_err(|error| tracing::error!(%error, "could not write the pid file"))
                .ok()
        });
        if upgraded {
            systemd::ready_after_upgrade(main.workers().len());
        } else {
            systemd::ready(main.workers().len());
        }
        if let Some(listener) = prometheus {
            tokio::task::spawn_local(crate::prometheus::serve(main.clone(), listener));
        }
        let result = main_loop(&main, socket, &mut news).await;
        let _ = std::fs::remove_file(&socket_path);
        result
    }
}

/// Applies the saved state named by the configuration, if the file exists.
/// A record that cannot be used is logged and skipped.
fn load_saved_state(config: &Config, state: &mut ConfigState) -> Result<(), String> {
    let Some(saved) = &config.saved_state else {
        return Ok(());
    };
    if !saved.exists() {
        return Ok(());
    }
    let bytes =
        file::read_bounded(saved, config.max_state_file_size).map_err(|error| error.to_string())?;
    let report = file::load_checked(state, &bytes, sozu_proxy::enforceable::check);
    for error in &report.errors {
        tracing::error!(file = %saved.display(), %error, "saved state record skipped");
    }
    let refused = report.errors.len();
    tracing::info!(file = %saved.display(), refused, "saved state loaded");
    Ok(())
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

/// `sozu start`: starts every worker with the whole configuration, then
/// binds the command socket. On failure, the workers started are killed.
async fn start_workers(
    main: &Rc<Main>,
    worker_count: u32,
    socket_path: &Path,
    socket_mode: u32,
) -> Result<CommandSocket, String> {
    let kill_all = || {
        for worker in main.workers() {
            worker.kill();
        }
    };
    for id in 0..worker_count {
        match main.start_worker(id, 0, None).await {
            Ok(worker) => main.insert_worker(worker),
            Err(error) => {
                kill_all();
                return Err(error);
            }
        }
    }
    match command_socket::bind_command_socket(socket_path, socket_mode) {
        Ok(listener) => Ok(CommandSocket::new(listener)),
        Err(error) => {
            kill_all();
            Err(error)
        }
    }
}

/// After `upgrade_main`: takes over the previous program's workers and
/// command socket, and answers the client that asked for the upgrade.
fn take_over(
    main: &Rc<Main>,
    workers: Vec<UpgradedWorker>,
    command_socket_fd: std::os::fd::RawFd,
    client_fd: Option<std::os::fd::RawFd>,
) -> Result<CommandSocket, String> {
    for worker in workers {
        // SAFETY: the previous program listed these descriptors as open and
        // handed over to this one; nothing else owns them.
        let (channel, scm) = unsafe {
            (
                StdUnixStream::from(handover::owned(worker.channel_fd)),
                StdUnixStream::from(handover::owned(worker.scm_fd)),
            )
        };
        handover::close_on_exec(&channel);
        handover::close_on_exec(&scm);
        let adopted = main
            .launcher()
            .adopt(worker.id, worker.generation, worker.pid, channel, scm)
            .map_err(|error| format!("could not take over worker {}: {error}", worker.id))?;
        main.insert_worker(adopted);
    }
    // SAFETY: as above, for the listening command socket.
    let listener = StdUnixListener::from(unsafe { handover::owned(command_socket_fd) });
    handover::close_on_exec(&listener);
    listener
        .set_nonblocking(true)
        .map_err(|error| format!("command socket: {error}"))?;
    let listener = tokio::net::UnixListener::from_std(listener)
        .map_err(|error| format!("command socket: {error}"))?;
    main.event(events::event(EventKind::MainUpgraded));
    if let Some(client_fd) = client_fd {
        // SAFETY: as above, for the client that asked for the upgrade.
        let client = StdUnixStream::from(unsafe { handover::owned(client_fd) });
        handover::close_on_exec(&client);
        if client.set_nonblocking(true).is_ok()
            && let Ok(client) = tokio::net::UnixStream::from_std(client)
        {
            // Recorded by the program that runs after the upgrade: the
            // audit line says it did.
            audit::record(&Peer::of(&client), "UPGRADE_MAIN", "", Ok(()));
            tokio::task::spawn_local(command_socket::serve_upgraded_client(main.clone(), client));
        }
    }
    tracing::info!(
        "main process upgraded, {} workers taken over",
        main.workers().len()
    );
    Ok(CommandSocket::new(listener))
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

/// The main loop: command connections, what workers report, and signals
/// (SIGTERM stops gracefully, SIGINT now), until the daemon exits.
async fn main_loop(
    main: &Rc<Main>,
    mut socket: CommandSocket,
    news: &mut mpsc::UnboundedReceiver<WorkerNews>,
) -> Result<(), String> {
    main.set_command_socket_fd(socket.raw_fd());
    let mut terminate = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut reopen = signal(tokio::signal::unix::SignalKind::user_defined1())?;
    loop {
        tokio::select! {
            stream = socket.accept() => {
                tokio::task::spawn_local(command_socket::serve_client(main.clone(), stream));
            }
            Some(news) = news.recv() => main.on_news(news).await,
            () = main.exited() => break,
            _ = terminate.recv() => {
                tracing::info!("SIGTERM: stopping gracefully");
                let (answers, _ignored) = mpsc::unbounded_channel();
                stop::soft_stop(main, &Peer::signal("SIGTERM"), &answers).await;
                break;
            }
            _ = interrupt.recv() => {
                tracing::info!("SIGINT: stopping now");
                let (answers, _ignored) = mpsc::unbounded_channel();
                stop::hard_stop(main, &Peer::signal("SIGINT"), &answers).await;
                break;
            }
            _ = reopen.recv() => reopen_logs(main),
        }
    }
    Ok(())
}

/// SIGUSR1 (logrotate): reopens the log files of the main process, and
/// passes the signal on to every worker, which reopens its own.
fn reopen_logs(main: &Main) {
    logging::reopen();
    for worker in main.workers() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(worker.pid),
            nix::sys::signal::Signal::SIGUSR1,
        );
    }
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Result<tokio::signal::unix::Signal, String> {
    tokio::signal::unix::signal(kind).map_err(|error| format!("could not handle signals: {error}"))
}

/// Says where the daemon listens, on standard output.
fn announce(main: &Main, socket_path: &Path) {
    let state = main.state();
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
        main.workers().len(),
        if listeners.is_empty() {
            "none".to_owned()
        } else {
            listeners.join(", ")
        }
    );
}
