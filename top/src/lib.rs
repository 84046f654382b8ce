//! `sozu top`: a live console over the command socket of a Sozu-compatible
//! daemon (this project's or Sozu's own).
//!
//! The console is shaped as state, update, view:
//!
//! - [`data`]: what the daemon told (every source's latest answer, metrics
//!   samples and their windows, events), plain data;
//! - [`app`]: the console's state (view, selection, filter, sort, pause,
//!   popups) and how keys, mouse events and reports change it;
//! - [`view`]: drawing the app with ratatui;
//! - [`source`]: the data sources, one thread and one connection each,
//!   off the UI loop;
//! - [`window`]: rates and percentiles between two samples.
//!
//! [`run`] takes the terminal and runs until the operator quits;
//! [`snapshot`] draws one frame as text. Neither needs more than
//! `sozu-command` to talk to the daemon.

pub mod app;
pub mod data;
pub mod format;
pub mod source;
pub mod table;
mod terminal;
pub mod view;
pub mod window;

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{self, Event};

use crate::app::{App, Effect, Settings, ViewId};
use crate::data::{SourceId, Update};
use crate::source::{Connector, Lease, Report};

/// The shortest refresh interval accepted.
pub const MIN_REFRESH_MS: u64 = 100;
/// The refresh interval when none is given (as Sozu's console).
pub const DEFAULT_REFRESH_MS: u64 = 1000;
/// The size of a snapshot when there is no terminal to measure.
pub const DEFAULT_SNAPSHOT_SIZE: (u16, u16) = (120, 40);

/// How the console runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The daemon's command socket.
    pub socket: PathBuf,
    /// Time between polls of each source; at least [`MIN_REFRESH_MS`].
    pub refresh: Duration,
    /// The wait for each answer.
    pub timeout: Duration,
    /// The largest frame accepted from the daemon.
    pub max_frame_size: usize,
    /// Refuse every action.
    pub read_only: bool,
    /// Use colours.
    pub color: bool,
    /// Capture the mouse (which stops the terminal's own text selection).
    pub mouse: bool,
    /// The view to start on.
    pub view: ViewId,
}

/// Why the console could not run.
#[derive(Debug, thiserror::Error)]
pub enum TopError {
    /// A flag's value is refused.
    #[error("{0}")]
    Usage(String),
    /// The terminal could not be set up or drawn on.
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
}

/// Checks `--refresh-ms`.
pub fn refresh_interval(milliseconds: u64) -> Result<Duration, TopError> {
    if milliseconds < MIN_REFRESH_MS {
        return Err(TopError::Usage(format!(
            "--refresh-ms {milliseconds}: the console polls at most every {MIN_REFRESH_MS} ms \
             (the default is {DEFAULT_REFRESH_MS})"
        )));
    }
    Ok(Duration::from_millis(milliseconds))
}

/// Parses `--size WIDTHxHEIGHT`.
pub fn parse_size(text: &str) -> Result<(u16, u16), TopError> {
    let refuse = || {
        TopError::Usage(format!(
            "--size {text}: expected WIDTHxHEIGHT, for example 120x40, at least {}x{}",
            view::MIN_WIDTH,
            view::MIN_HEIGHT
        ))
    };
    let (width, height) = text.split_once(['x', 'X']).ok_or_else(refuse)?;
    let width: u16 = width.trim().parse().map_err(|_| refuse())?;
    let height: u16 = height.trim().parse().map_err(|_| refuse())?;
    if width < view::MIN_WIDTH || height < view::MIN_HEIGHT {
        return Err(refuse());
    }
    Ok((width, height))
}

/// What the loop receives.
enum Msg {
    Report(SourceId, Update),
    Input(Event),
    ActionDone(String, Result<String, String>),
    Signal,
}

impl From<Report> for Msg {
    fn from((source, update): Report) -> Self {
        Msg::Report(source, update)
    }
}

fn settings(options: &Options) -> Settings {
    Settings {
        socket: options.socket.display().to_string(),
        refresh_ms: options.refresh.as_millis() as u64,
        read_only: options.read_only,
        color: options.color,
    }
}

fn connector(options: &Options) -> Connector {
    Connector {
        socket: options.socket.clone(),
        timeout: options.timeout,
        max_frame_size: options.max_frame_size,
    }
}

/// How long quitting may spend clearing the metric-detail lease.
const LEASE_CLEAR_WAIT: Duration = Duration::from_millis(50);
/// Reports arriving this close together are drawn once.
const COALESCE: Duration = Duration::from_millis(25);
/// How often the screen is redrawn without news (ages in the status line).
const TICK: Duration = Duration::from_secs(1);

/// Runs the console in the terminal until the operator quits or a
/// SIGTERM/SIGHUP/SIGINT arrives; the terminal is restored either way.
pub fn run(options: Options) -> Result<(), TopError> {
    let connector = connector(&options);
    let (sender, receiver) = mpsc::channel::<Msg>();
    let lease = Lease::default();
    let mut screen = terminal::Screen::enter(options.mouse)?;
    let pokes = source::spawn_all(&connector, options.refresh, &sender, &lease);
    spawn_input(&sender);
    spawn_signals(&sender);
    let actions = spawn_actions(&connector, &sender);
    drop(sender);

    let mut app = App::new(settings(&options), options.view);
    let outcome = (|| -> Result<(), TopError> {
        // Drawn after every batch of news that changes something, and once
        // per tick for the ages the status line shows.
        let mut dirty = true;
        let mut next_tick = Instant::now();
        loop {
            if dirty || Instant::now() >= next_tick {
                let (now, wall) = (Instant::now(), SystemTime::now());
                screen
                    .terminal
                    .draw(|frame| view::draw(frame, &mut app, now, wall))?;
                dirty = false;
                next_tick = now + TICK;
            }
            let message =
                match receiver.recv_timeout(next_tick.saturating_duration_since(Instant::now())) {
                    Ok(message) => message,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return Ok(()),
                };
            dirty |= changes_screen(&app, &message);
            let mut effects = handle(&mut app, message);
            let until = Instant::now() + COALESCE;
            while !app.quit {
                match receiver.recv_timeout(until.saturating_duration_since(Instant::now())) {
                    Ok(message) => {
                        dirty |= changes_screen(&app, &message);
                        effects.extend(handle(&mut app, message));
                    }
                    Err(_) => break,
                }
            }
            for effect in effects {
                match effect {
                    Effect::Quit => app.quit = true,
                    Effect::RefreshNow => pokes.iter().for_each(|poke| poke.now()),
                    Effect::Run(action) => {
                        if actions.send(action.clone()).is_err() {
                            app.action_done(
                                &action.description,
                                Err("the action runner stopped".to_owned()),
                                SystemTime::now(),
                            );
                        }
                    }
                }
            }
            if app.quit {
                return Ok(());
            }
        }
    })();
    // The terminal first: whatever the daemon does, the operator has it back.
    drop(screen);
    clear_lease(lease, connector);
    outcome
}

/// Clears the metric-detail lease on a thread of its own, waiting for it at
/// most [`LEASE_CLEAR_WAIT`]: a hung daemon cannot hold the console.
fn clear_lease(lease: Lease, connector: Connector) {
    let (done, cleared) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("top-lease".to_owned())
        .spawn(move || {
            lease.clear(&connector, LEASE_CLEAR_WAIT);
            let _ = done.send(());
        });
    if spawned.is_ok() {
        let _ = cleared.recv_timeout(LEASE_CLEAR_WAIT);
    }
}

/// Whether a message can change what is on screen: a live source saying
/// nothing changed cannot (the tick redraws its age).
fn changes_screen(app: &App, message: &Msg) -> bool {
    match message {
        Msg::Report(source, Update::Unchanged) => !app.data.source(*source).is_live(),
        _ => true,
    }
}

fn handle(app: &mut App, message: Msg) -> Vec<Effect> {
    let wall = SystemTime::now();
    match message {
        Msg::Report(source, update) => {
            app.report(source, update, Instant::now(), wall);
            Vec::new()
        }
        Msg::Input(Event::Key(key)) => app.key(key, wall),
        Msg::Input(Event::Mouse(mouse)) => app.mouse(mouse, wall),
        Msg::Input(_) => Vec::new(),
        Msg::ActionDone(description, result) => app.action_done(&description, result, wall),
        Msg::Signal => {
            app.quit = true;
            vec![Effect::Quit]
        }
    }
}

fn spawn_input(sender: &mpsc::Sender<Msg>) {
    let sender = sender.clone();
    let _ = std::thread::Builder::new()
        .name("top-input".to_owned())
        .spawn(move || {
            while let Ok(event) = event::read() {
                // The terminal reports every mouse move once the mouse is
                // captured; moves change nothing, so they cost nothing.
                if let Event::Mouse(mouse) = &event
                    && matches!(
                        mouse.kind,
                        event::MouseEventKind::Moved | event::MouseEventKind::Drag(_)
                    )
                {
                    continue;
                }
                if sender.send(Msg::Input(event)).is_err() {
                    return;
                }
            }
        });
}

fn spawn_signals(sender: &mpsc::Sender<Msg>) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGTERM, SIGHUP, SIGINT]) else {
        return;
    };
    let sender = sender.clone();
    let _ = std::thread::Builder::new()
        .name("top-signals".to_owned())
        .spawn(move || {
            let mut signals = signals.forever();
            if signals.next().is_some() {
                let _ = sender.send(Msg::Signal);
            }
            // A second signal means now: give the terminal back and go.
            if let Some(signal) = signals.next() {
                terminal::restore();
                std::process::exit(128 + signal);
            }
        });
}

/// The wait for an action's answer: changes go through every worker.
const ACTION_TIMEOUT: Duration = Duration::from_secs(10);

fn spawn_actions(connector: &Connector, sender: &mpsc::Sender<Msg>) -> mpsc::Sender<app::Action> {
    let (actions, queue) = mpsc::channel::<app::Action>();
    let connector = Connector {
        timeout: connector.timeout.max(ACTION_TIMEOUT),
        ..connector.clone()
    };
    let sender = sender.clone();
    let _ = std::thread::Builder::new()
        .name("top-actions".to_owned())
        .spawn(move || {
            for action in queue {
                let result = connector.connect().and_then(|mut channel| {
                    connector
                        .ask(&mut channel, &action.request)
                        .map(|answer| answer.message)
                });
                if sender
                    .send(Msg::ActionDone(action.description, result))
                    .is_err()
                {
                    return;
                }
            }
        });
    actions
}

/// The size of the terminal on standard output.
pub fn terminal_size() -> std::io::Result<(u16, u16)> {
    ratatui::crossterm::terminal::size()
}

/// The longest a snapshot waits for every source's first answer.
const SNAPSHOT_FIRST_LISTING: Duration = Duration::from_secs(30);

/// One frame drawn as text.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The frame, one line per terminal row, trailing spaces removed.
    pub text: String,
    /// Whether every source reached the daemon.
    pub connected: bool,
}

/// Polls the daemon for one refresh interval (so rates cover a real
/// window) and draws one frame of `options.view` at `size`.
pub fn snapshot(options: Options, size: (u16, u16)) -> Result<Snapshot, TopError> {
    let connector = connector(&options);
    let (sender, receiver) = mpsc::channel::<Msg>();
    let lease = Lease::default();
    let _pokes = source::spawn_all(&connector, options.refresh, &sender, &lease);
    drop(sender);
    let mut app = App::new(settings(&options), options.view);
    let polled = [
        SourceId::Metrics,
        SourceId::Workers,
        SourceId::Clusters,
        SourceId::Listeners,
        SourceId::Certificates,
    ];
    // The second sample comes one refresh after the first; a first listing
    // of thousands of clusters may take longer, and gets longer.
    let started = Instant::now();
    let second_sample_by = started + options.refresh + options.timeout * 2;
    let everything_by = started + (options.timeout * 4).max(SNAPSHOT_FIRST_LISTING);
    loop {
        let heard = polled.iter().all(|source| {
            let health = app.data.source(*source);
            health.last_ok.is_some() || health.failing.is_some()
        });
        let metrics = app.data.source(SourceId::Metrics);
        let second_sample = app.data.metrics.sample_count() >= 2
            || metrics.failing.is_some()
            || Instant::now() >= second_sample_by;
        if heard && second_sample {
            break;
        }
        let deadline = if heard {
            second_sample_by
        } else {
            everything_by
        };
        match receiver.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(message) => {
                handle(&mut app, message);
            }
            Err(_) => break,
        }
    }
    // Whatever else already arrived (events) goes in too.
    while let Ok(message) = receiver.try_recv() {
        handle(&mut app, message);
    }
    clear_lease(lease, connector);
    let connected = app.data.failing().is_empty()
        && polled
            .iter()
            .all(|source| app.data.source(*source).last_ok.is_some());
    let text = render_text(&mut app, size, Instant::now(), SystemTime::now())?;
    Ok(Snapshot { text, connected })
}

/// Draws the app once on an off-screen buffer and returns it as text.
pub fn render_text(
    app: &mut App,
    (width, height): (u16, u16),
    now: Instant,
    wall: SystemTime,
) -> Result<String, TopError> {
    let mut terminal = Terminal::new(TestBackend::new(width, height))
        .map_err(|error| TopError::Terminal(std::io::Error::other(error.to_string())))?;
    terminal
        .draw(|frame| view::draw(frame, app, now, wall))
        .map_err(|error| TopError::Terminal(std::io::Error::other(error.to_string())))?;
    Ok(buffer_text(terminal.backend().buffer()))
}

/// A buffer's symbols, one line per row, trailing spaces removed.
pub fn buffer_text(buffer: &ratatui::buffer::Buffer) -> String {
    let mut text = String::new();
    for y in 0..buffer.area.height {
        let mut line = String::new();
        for x in 0..buffer.area.width {
            line.push_str(buffer[(x, y)].symbol());
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}
