//! Drawing the console: the tab line, the title line, the view, the status
//! line and the key bar, with the help overlay and popups on top.
//!
//! - this module: the frame around every view (tabs, title, status, keys),
//!   the theme and the staleness of a source's data;
//! - [`overview`]: the overview;
//! - [`tables`]: table views and the drill-down into a cluster;
//! - [`popup`]: the help overlay and the questions of actions.
//!
//! Drawing reads the app and records where tabs and rows were drawn
//! ([`crate::app::Hits`]) so that mouse clicks land on what was shown.

use std::time::{Instant, SystemTime};

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

mod overview;
mod popup;
mod tables;

pub use popup::HELP;

use crate::app::{App, DetailFocus, ViewId};
use crate::data::{SourceId, WINDOW};
use crate::format;
use crate::table::Level;

/// The smallest terminal the console draws in.
pub const MIN_WIDTH: u16 = 80;
/// See [`MIN_WIDTH`].
pub const MIN_HEIGHT: u16 = 24;

/// Styles, with or without colour.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    color: bool,
}

impl Theme {
    pub(super) fn level(self, level: Level) -> Style {
        match (level, self.color) {
            (Level::Normal, _) => Style::default(),
            (Level::Good, true) => Style::default().fg(Color::Green),
            (Level::Warn, true) => Style::default().fg(Color::Yellow),
            (Level::Bad, true) => Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            (Level::Good, false) => Style::default(),
            (Level::Warn, false) => Style::default().add_modifier(Modifier::UNDERLINED),
            (Level::Bad, false) => Style::default().add_modifier(Modifier::BOLD),
        }
    }

    pub(super) fn stale(self) -> Style {
        if self.color {
            Style::default().fg(Color::DarkGray)
        } else {
            Style::default().add_modifier(Modifier::DIM)
        }
    }

    pub(super) fn header(self) -> Style {
        let style = Style::default().add_modifier(Modifier::BOLD);
        if self.color {
            style.fg(Color::Cyan)
        } else {
            style
        }
    }

    pub(super) fn selected(self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }

    pub(super) fn accent(self) -> Style {
        if self.color {
            Style::default().fg(Color::Cyan)
        } else {
            Style::default()
        }
    }
}

/// Draws the whole console.
pub fn draw(frame: &mut Frame, app: &mut App, now: Instant, wall: SystemTime) {
    let theme = Theme {
        color: app.settings.color,
    };
    let area = frame.area();
    app.hits = Default::default();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        app.hits.too_small = true;
        let text = format!(
            "The terminal is {}x{}.\nsozu top needs at least {MIN_WIDTH}x{MIN_HEIGHT}.\n\
             Enlarge it, or press q to quit.",
            area.width, area.height
        );
        frame.render_widget(
            Paragraph::new(text)
                .alignment(Alignment::Center)
                .wrap(Wrap { trim: true }),
            Rect {
                y: area.height / 2,
                height: area.height - area.height / 2,
                ..area
            },
        );
        return;
    }
    let [tabs, title, body, status, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_tabs(frame, app, theme, tabs);
    draw_title(frame, app, theme, title);
    if app.detail.is_some() {
        tables::draw_detail(frame, app, theme, body, now, wall);
    } else if app.view == ViewId::Overview {
        overview::draw_overview(frame, app, theme, body, now, wall);
    } else {
        tables::draw_table_view(frame, app, theme, body, now, wall);
    }
    draw_status(frame, app, theme, status, now, wall);
    draw_keys(frame, app, theme, keys);
    if app.help {
        popup::draw_help(frame, theme, body);
    }
    if let Some(modal) = &app.modal {
        popup::draw_modal(frame, theme, modal, body);
    }
}

fn short_name(view: ViewId) -> &'static str {
    match view {
        ViewId::Overview => "over",
        ViewId::Clusters => "clus",
        ViewId::Backends => "back",
        ViewId::Frontends => "front",
        ViewId::Listeners => "lstn",
        ViewId::Certificates => "cert",
        ViewId::Workers => "work",
        ViewId::H2 => "h2",
        ViewId::Events => "evts",
    }
}

fn draw_tabs(frame: &mut Frame, app: &mut App, theme: Theme, area: Rect) {
    // Full names when they all fit, short ones otherwise.
    let long_width: usize = ViewId::ALL
        .iter()
        .enumerate()
        .map(|(index, view)| format!(" {} {} ", index + 1, view.name()).chars().count())
        .sum();
    let long = long_width <= usize::from(area.width);
    let mut spans = Vec::new();
    let mut x = area.x;
    for (index, view) in ViewId::ALL.into_iter().enumerate() {
        let label = format!(
            " {} {} ",
            index + 1,
            if long { view.name() } else { short_name(view) }
        );
        let width = label.chars().count() as u16;
        let style = if view == app.view {
            theme.selected().add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        };
        app.hits.tabs.push((x, x + width, view));
        x += width;
        spans.push(Span::styled(label, style));
    }
    app.hits.tab_row = area.y;
    frame.render_widget(Line::from(spans), area);
}

fn draw_title(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let live = app.data.failing().is_empty()
        && app
            .data
            .sources
            .values()
            .any(|source| source.last_ok.is_some());
    let mut spans = vec![
        Span::styled("sozu top ", theme.header()),
        Span::raw(format!("{} ", app.settings.socket)),
    ];
    if app.paused {
        spans.push(Span::styled("PAUSED ", theme.level(Level::Warn)));
    } else if live {
        spans.push(Span::styled("live ", theme.level(Level::Good)));
    } else if app.data.failing().is_empty() {
        spans.push(Span::styled("connecting ", theme.level(Level::Warn)));
    } else {
        spans.push(Span::styled("DISCONNECTED ", theme.level(Level::Bad)));
    }
    // The span the figures really cover: the window once it is full.
    let span = match app.data.metrics.span() {
        Some(span) => format!("rates over last {}", format::age(span)),
        None => format!(
            "rates over last {}s, from the second sample",
            WINDOW.as_secs()
        ),
    };
    spans.push(Span::raw(format!(
        "| {span} | refresh {}ms",
        app.settings.refresh_ms
    )));
    if app.settings.read_only {
        spans.push(Span::raw(" | read-only"));
    }
    if app.filter_editing || !app.filter.is_empty() {
        let cursor = if app.filter_editing { "_" } else { "" };
        spans.push(Span::styled(
            format!(" | filter: {}{cursor}", app.filter),
            theme.accent(),
        ));
    }
    frame.render_widget(Line::from(spans), area);
}

/// Whether the data of a source is current, and its age when it is not.
pub(super) fn staleness(app: &App, source: SourceId, now: Instant) -> Option<String> {
    let health = app.data.source(source);
    let (since, _) = health.failing.as_ref()?;
    if source == SourceId::Events {
        // A stream has no age: say since when nothing can arrive.
        return Some(format!("not receiving since {}", format::clock(*since)));
    }
    Some(match health.last_ok {
        Some(at) => format!(
            "stale, {} old",
            format::age(now.saturating_duration_since(at))
        ),
        None => "no data".to_owned(),
    })
}

fn draw_status(
    frame: &mut Frame,
    app: &App,
    theme: Theme,
    area: Rect,
    now: Instant,
    wall: SystemTime,
) {
    let failing = app.data.failing();
    let mut spans = Vec::new();
    if failing.is_empty() {
        let newest = app.data.sources.values().filter_map(|s| s.last_ok).max();
        match newest {
            Some(at) => spans.push(Span::raw(format!(
                "connected | refreshed {} ago",
                format::age(now.saturating_duration_since(at))
            ))),
            None => spans.push(Span::styled("connecting…", theme.level(Level::Warn))),
        }
    } else {
        let since = failing
            .iter()
            .map(|(_, since, _)| *since)
            .min()
            .unwrap_or(wall);
        let names: Vec<&str> = failing.iter().map(|(source, _, _)| source.name()).collect();
        let reason = &failing[0].2;
        spans.push(Span::styled(
            format!(
                "failing since {} ({}), reconnecting: {reason} [{}]",
                format::clock(since),
                format::age(wall.duration_since(since).unwrap_or_default()),
                names.join(", "),
            ),
            theme.level(Level::Bad),
        ));
    }
    if app.pending > 0 {
        spans.push(Span::raw(format!(" | {} action(s) waiting", app.pending)));
    }
    if let Some(message) = &app.message {
        spans.push(Span::raw(" | "));
        spans.push(Span::styled(
            format!("{} {}", format::clock(message.at), message.text),
            if message.error {
                theme.level(Level::Bad)
            } else {
                theme.level(Level::Good)
            },
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_keys(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let mut keys: Vec<(&str, &str)> = vec![("?", "help"), ("/", "filter"), ("s", "sort")];
    keys.push(("p", if app.paused { "resume" } else { "pause" }));
    if app.detail.is_some() {
        keys.push(("Esc", "back"));
    } else if matches!(
        app.view,
        ViewId::Clusters | ViewId::Backends | ViewId::Frontends
    ) {
        keys.push(("Enter", "open"));
    }
    if !app.settings.read_only {
        let backends = app.view == ViewId::Backends
            || app
                .detail
                .as_ref()
                .is_some_and(|d| d.focus == DetailFocus::Backends);
        let frontends = app.view == ViewId::Frontends
            || app
                .detail
                .as_ref()
                .is_some_and(|d| d.focus == DetailFocus::Frontends);
        if backends || frontends {
            keys.push(("d", "remove"));
        }
        if backends {
            keys.push(("w", "weight"));
        }
        if app.view == ViewId::Listeners && app.detail.is_none() {
            keys.push(("a", "(de)activate"));
        }
    }
    keys.push(("q", "quit"));
    let mut spans = Vec::new();
    for (key, what) in keys {
        spans.push(Span::styled(format!(" {key} "), theme.selected()));
        spans.push(Span::raw(format!("{what} ")));
    }
    frame.render_widget(Line::from(spans), area);
}
