//! Drawing the console: the tab line, the title line, the view, the status
//! line and the key bar, with the help overlay and popups on top.
//!
//! Drawing reads the app and records where tabs and rows were drawn
//! ([`crate::app::Hits`]) so that mouse clicks land on what was shown.

use std::time::{Instant, SystemTime};

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Sparkline, Table, Wrap};
use sozu_command::proto::command::{EventKind, LoadBalancingAlgorithms, RunState};

use crate::app::{App, DetailFocus, Modal, ViewId};
use crate::data::{EventRow, SourceId, WINDOW};
use crate::format;
use crate::table::{self, Level, TableKind};

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
    fn level(self, level: Level) -> Style {
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

    fn stale(self) -> Style {
        if self.color {
            Style::default().fg(Color::DarkGray)
        } else {
            Style::default().add_modifier(Modifier::DIM)
        }
    }

    fn header(self) -> Style {
        let style = Style::default().add_modifier(Modifier::BOLD);
        if self.color {
            style.fg(Color::Cyan)
        } else {
            style
        }
    }

    fn selected(self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }

    fn accent(self) -> Style {
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
        draw_detail(frame, app, theme, body, now, wall);
    } else if app.view == ViewId::Overview {
        draw_overview(frame, app, theme, body, now, wall);
    } else {
        draw_table_view(frame, app, theme, body, now, wall);
    }
    draw_status(frame, app, theme, status, now, wall);
    draw_keys(frame, app, theme, keys);
    if app.help {
        draw_help(frame, theme, body);
    }
    if let Some(modal) = &app.modal {
        draw_modal(frame, theme, modal, body);
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
    spans.push(Span::raw(format!(
        "| rates over last {}s | refresh {}ms",
        WINDOW.as_secs(),
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
fn staleness(app: &App, source: SourceId, now: Instant) -> Option<String> {
    let health = app.data.source(source);
    health.failing.as_ref()?;
    Some(match health.last_ok {
        Some(at) => format!(
            "stale, {} old",
            format::age(now.saturating_duration_since(at))
        ),
        None => "no data".to_owned(),
    })
}

fn draw_table_view(
    frame: &mut Frame,
    app: &mut App,
    theme: Theme,
    area: Rect,
    now: Instant,
    wall: SystemTime,
) {
    let Some(kind) = app.view.table() else {
        return;
    };
    let table = app.table(kind, None, wall);
    let stale = staleness(app, app.view.source(), now);
    let sort = app.sorts.get(&kind).copied().unwrap_or_default();
    let mut title = format!(" {} ", app.view.name());
    if table.total != table.rows.len() {
        title.push_str(&format!("{} of {} ", table.rows.len(), table.total));
    } else {
        title.push_str(&format!("({}) ", table.total));
    }
    if let Some(stale) = &stale {
        title.push_str(&format!("[{stale}] "));
    }
    let view = app.view;
    let state = app.selections.entry(view).or_default();
    render_table(
        frame,
        theme,
        &table,
        sort,
        state,
        area,
        &title,
        stale.is_some(),
        true,
        &mut app.hits,
    );
}

#[allow(clippy::too_many_arguments)]
fn render_table(
    frame: &mut Frame,
    theme: Theme,
    table: &table::Table,
    sort: table::Sort,
    state: &mut ratatui::widgets::TableState,
    area: Rect,
    title: &str,
    stale: bool,
    focused: bool,
    hits: &mut crate::app::Hits,
) {
    let block = Block::default()
        .borders(Borders::ALL)
        .title(title.to_owned())
        .border_style(if focused {
            theme.accent()
        } else {
            Style::default()
        });
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if table.rows.is_empty() {
        let text = if table.total == 0 {
            table.empty.to_owned()
        } else {
            format!("no row matches the filter ({} hidden)", table.total)
        };
        frame.render_widget(
            Paragraph::new(text).alignment(Alignment::Center),
            Rect {
                y: inner.y + inner.height / 2,
                height: 1,
                ..inner
            },
        );
        if focused {
            state.select(None);
        }
        return;
    }
    if focused {
        match state.selected() {
            None => state.select(Some(0)),
            Some(selected) if selected >= table.rows.len() => {
                state.select(Some(table.rows.len() - 1))
            }
            Some(_) => {}
        }
    }
    let header = Row::new(table.columns.iter().enumerate().map(|(index, column)| {
        let mark = if index == sort.column && (sort != table::Sort::default() || index > 0) {
            if sort.reverse { "↓" } else { "↑" }
        } else {
            ""
        };
        Cell::from(format!("{}{mark}", column.title))
    }))
    .style(theme.header());
    let widths = table.columns.iter().map(|column| {
        if column.flexible {
            Constraint::Min(column.width)
        } else {
            Constraint::Length(column.width)
        }
    });
    let row_style = |level: Level| {
        if stale {
            theme.stale()
        } else {
            theme.level(level)
        }
    };
    let rows = table.rows.iter().map(|row| {
        Row::new(row.cells.iter().map(|cell| Cell::from(cell.clone()))).style(row_style(row.level))
    });
    let widget = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(if focused {
            theme.selected()
        } else {
            Style::default()
        });
    frame.render_stateful_widget(widget, inner, state);
    if focused {
        hits.rows = Some(Rect {
            y: inner.y + 1,
            height: inner.height.saturating_sub(1),
            ..inner
        });
        hits.offset = state.offset();
    }
}

fn draw_detail(
    frame: &mut Frame,
    app: &mut App,
    theme: Theme,
    area: Rect,
    now: Instant,
    wall: SystemTime,
) {
    let Some(detail) = app.detail.clone() else {
        return;
    };
    let id = detail.cluster_id.as_str();
    let information = app.data.clusters.get(id).cloned();
    let stale = staleness(app, SourceId::Clusters, now);
    let [summary, upper, lower] = Layout::vertical([
        Constraint::Length(5),
        Constraint::Percentage(55),
        Constraint::Min(4),
    ])
    .areas(area);
    let mut lines = Vec::new();
    match information.as_ref().and_then(|i| i.configuration.as_ref()) {
        Some(cluster) => {
            let policy = LoadBalancingAlgorithms::try_from(cluster.load_balancing)
                .map(|p| p.as_str_name().to_lowercase())
                .unwrap_or_default();
            lines.push(Line::from(format!(
                "policy {policy} | sticky {} | https redirect {} | http2 {} | health check {}",
                yes_no(cluster.sticky_session),
                yes_no(cluster.https_redirect),
                yes_no(cluster.http2.unwrap_or(false)),
                cluster
                    .health_check
                    .as_ref()
                    .map_or("none".to_owned(), |check| check.uri.clone()),
            )));
        }
        None if information.is_none() => lines.push(Line::styled(
            "this cluster is not in the daemon's configuration (any more)",
            theme.level(Level::Bad),
        )),
        None => lines.push(Line::from(
            "no cluster configuration (frontends or backends only)",
        )),
    }
    let windowed = app.data.metrics.clusters.get(id).copied();
    let gauges = app
        .data
        .metrics
        .latest()
        .and_then(|sample| sample.clusters.get(id))
        .map(|cluster| (cluster.available, cluster.total));
    lines.push(Line::from(format!(
        "requests/s {} | 5xx {} | p50 {} | p99 {} | in {} | out {}",
        format::rate(windowed.map(|w| w.requests_per_second)),
        format::percent(windowed.and_then(|w| w.error_ratio)),
        format::latency(windowed.and_then(|w| w.p50_ms)),
        format::latency(windowed.and_then(|w| w.p99_ms)),
        format::throughput(windowed.map(|w| w.bytes_in_per_second)),
        format::throughput(windowed.map(|w| w.bytes_out_per_second)),
    )));
    if let Some((Some(available), Some(total))) = gauges {
        let level = if total > 0 && available == 0 {
            Level::Bad
        } else if available < total {
            Level::Warn
        } else {
            Level::Normal
        };
        lines.push(Line::styled(
            format!("backends available {available} of {total}"),
            theme.level(level),
        ));
    }
    let mut title = format!(" cluster {id} (Esc: back, Tab: switch table) ");
    if let Some(stale) = &stale {
        title.push_str(&format!("[{stale}] "));
    }
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
        summary,
    );
    let backends = app.table(TableKind::Backends, Some(id), wall);
    let frontends = app.table(TableKind::Frontends, Some(id), wall);
    let backend_sort = app
        .sorts
        .get(&TableKind::Backends)
        .copied()
        .unwrap_or_default();
    let frontend_sort = app
        .sorts
        .get(&TableKind::Frontends)
        .copied()
        .unwrap_or_default();
    let Some(detail) = app.detail.as_mut() else {
        return;
    };
    let focus = detail.focus;
    let mut hits = std::mem::take(&mut app.hits);
    render_table(
        frame,
        theme,
        &backends,
        backend_sort,
        &mut detail.backends,
        upper,
        &format!(" backends of {id} ({}) ", backends.rows.len()),
        stale.is_some(),
        focus == DetailFocus::Backends,
        &mut hits,
    );
    render_table(
        frame,
        theme,
        &frontends,
        frontend_sort,
        &mut detail.frontends,
        lower,
        &format!(" frontends of {id} ({}) ", frontends.rows.len()),
        stale.is_some(),
        focus == DetailFocus::Frontends,
        &mut hits,
    );
    app.hits = hits;
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

fn draw_overview(
    frame: &mut Frame,
    app: &mut App,
    theme: Theme,
    area: Rect,
    now: Instant,
    wall: SystemTime,
) {
    let spare = area.height.saturating_sub(7 + 4 + 3 + 4);
    let [top, requests, errors, bottom] = Layout::vertical([
        Constraint::Length(7),
        Constraint::Length(4 + spare / 3),
        Constraint::Length(3 + spare / 6),
        Constraint::Min(4),
    ])
    .areas(area);
    let [traffic_area, config_area] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(top);
    let [workers_area, events_area] =
        Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(bottom);
    let stale = staleness(app, SourceId::Metrics, now);
    let body_style = if stale.is_some() {
        theme.stale()
    } else {
        Style::default()
    };
    let metrics = &app.data.metrics;
    let proxy = metrics.proxy;
    let span = metrics
        .span()
        .map_or("waiting for a second sample".to_owned(), |span| {
            format!("last {}", format::age(span))
        });
    let error_level = match proxy.and_then(|p| p.error_ratio) {
        Some(ratio) if ratio >= 0.05 => Level::Bad,
        Some(ratio) if ratio >= 0.01 => Level::Warn,
        _ => Level::Normal,
    };
    let connections = metrics.latest().and_then(|sample| sample.connections);
    let traffic = vec![
        Line::from(format!(
            "requests/s   {}",
            format::rate(proxy.map(|p| p.requests_per_second))
        )),
        Line::styled(
            format!(
                "5xx errors   {}",
                format::percent(proxy.and_then(|p| p.error_ratio))
            ),
            if stale.is_some() {
                theme.stale()
            } else {
                theme.level(error_level)
            },
        ),
        Line::from(format!(
            "latency      p50 {}  p99 {}",
            format::latency(proxy.and_then(|p| p.p50_ms)),
            format::latency(proxy.and_then(|p| p.p99_ms))
        )),
        Line::from(format!(
            "connections  {}",
            connections.map_or("-".to_owned(), |c| c.to_string())
        )),
        Line::from(format!(
            "in / out     {} / {}",
            format::throughput(proxy.map(|p| p.bytes_in_per_second)),
            format::throughput(proxy.map(|p| p.bytes_out_per_second))
        )),
    ];
    let mut traffic_title = format!(" traffic, {span} ");
    if let Some(stale) = &stale {
        traffic_title.push_str(&format!("[{stale}] "));
    }
    frame.render_widget(
        Paragraph::new(traffic)
            .style(body_style)
            .block(Block::default().borders(Borders::ALL).title(traffic_title)),
        traffic_area,
    );

    let data = &app.data;
    let frontends: usize = data
        .clusters
        .values()
        .map(|c| c.http_frontends.len() + c.https_frontends.len() + c.tcp_frontends.len())
        .sum();
    let backends: usize = data.clusters.values().map(|c| c.backends.len()).sum();
    let down = data
        .backend_states
        .values()
        .filter(|state| !state.up)
        .count();
    let inactive = data.listeners.iter().filter(|l| !l.active).count();
    let expiring = data
        .certificates
        .iter()
        .filter(|c| {
            c.not_after
                .is_some_and(|n| format::days_left(n, wall) < table::CERTIFICATE_WARN_DAYS)
        })
        .count();
    let running = data
        .workers
        .iter()
        .filter(|w| w.run_state == RunState::Running as i32)
        .count();
    let configuration = vec![
        Line::from(format!(
            "clusters     {}   frontends {frontends}",
            data.clusters.len()
        )),
        Line::styled(
            format!("backends     {backends}   down {down}"),
            theme.level(if down > 0 { Level::Bad } else { Level::Normal }),
        ),
        Line::styled(
            format!(
                "listeners    {}   inactive {inactive}",
                data.listeners.len()
            ),
            theme.level(if inactive > 0 {
                Level::Warn
            } else {
                Level::Normal
            }),
        ),
        Line::styled(
            format!(
                "certificates {}   expiring within {}d {expiring}",
                data.certificates.len(),
                table::CERTIFICATE_WARN_DAYS
            ),
            theme.level(if expiring > 0 {
                Level::Warn
            } else {
                Level::Normal
            }),
        ),
        Line::styled(
            format!("workers      {}   running {running}", data.workers.len()),
            theme.level(if running < data.workers.len() {
                Level::Bad
            } else {
                Level::Normal
            }),
        ),
    ];
    frame.render_widget(
        Paragraph::new(configuration).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" configuration "),
        ),
        config_area,
    );

    let spark = |history: &std::collections::VecDeque<u64>, width: u16| -> Vec<u64> {
        let keep = usize::from(width.saturating_sub(2));
        history
            .iter()
            .skip(history.len().saturating_sub(keep))
            .copied()
            .collect()
    };
    let points = spark(&metrics.requests_history, requests.width);
    let peak = points.iter().copied().max().unwrap_or(0);
    frame.render_widget(
        Sparkline::default()
            .block(Block::default().borders(Borders::ALL).title(format!(
                " requests/s, one point per refresh, newest right (peak {peak}) "
            )))
            .data(&points)
            .style(if stale.is_some() {
                theme.stale()
            } else {
                theme.accent()
            }),
        requests,
    );
    let points = spark(&metrics.errors_history, errors.width);
    let peak = points.iter().copied().max().unwrap_or(0);
    frame.render_widget(
        Sparkline::default()
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(format!(" 5xx/s (peak {peak}) ")),
            )
            .data(&points)
            .style(if stale.is_some() {
                theme.stale()
            } else {
                theme.level(Level::Bad)
            }),
        errors,
    );

    let worker_lines: Vec<Line> = if data.workers.is_empty() {
        vec![Line::from("no worker known yet")]
    } else {
        data.workers
            .iter()
            .map(|worker| {
                let state = RunState::try_from(worker.run_state)
                    .map(|s| s.as_str_name().to_lowercase().replace('_', " "))
                    .unwrap_or_default();
                let rps = data
                    .metrics
                    .workers
                    .get(&worker.id.to_string())
                    .map(|w| w.requests_per_second);
                Line::styled(
                    format!(
                        "#{} pid {} {state} {} req/s",
                        worker.id,
                        worker.pid,
                        format::rate(rps)
                    ),
                    theme.level(if worker.run_state == RunState::Running as i32 {
                        Level::Normal
                    } else {
                        Level::Bad
                    }),
                )
            })
            .collect()
    };
    frame.render_widget(
        Paragraph::new(worker_lines)
            .block(Block::default().borders(Borders::ALL).title(" workers ")),
        workers_area,
    );
    let event_lines: Vec<Line> = data
        .events
        .iter()
        .take(usize::from(events_area.height.saturating_sub(2)))
        .map(|row| match row {
            EventRow::Received(at, event) => {
                let kind = EventKind::try_from(event.kind)
                    .map(|k| k.as_str_name().to_owned())
                    .unwrap_or_default();
                let subject = [&event.cluster_id, &event.backend_id]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("/");
                Line::from(format!("{} {kind} {subject}", format::clock(*at)))
            }
            EventRow::Gap(lost, back) => Line::styled(
                format!(
                    "{} events from {} not received",
                    format::clock(*back),
                    format::clock(*lost)
                ),
                theme.level(Level::Warn),
            ),
        })
        .collect();
    frame.render_widget(
        Paragraph::new(if event_lines.is_empty() {
            vec![Line::from("no event since the console started")]
        } else {
            event_lines
        })
        .block(
            Block::default()
                .borders(Borders::ALL)
                .title(" latest events (UTC) "),
        ),
        events_area,
    );
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
                "failing since {} ({}): {reason} [{}]; reconnecting",
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

/// Every key, as the help overlay lists them.
pub const HELP: [(&str, &str); 22] = [
    (
        "1-9, Tab, Shift-Tab",
        "switch view (Tab switches table in a cluster)",
    ),
    ("click a tab", "switch view"),
    ("j/k, Up/Down, wheel", "move the selection"),
    (
        "PgUp/PgDn, Home/End, g/G",
        "move by a page, to the top or bottom",
    ),
    ("click a row", "select it"),
    ("Enter", "open the selected row's cluster"),
    ("Esc", "close, go back, clear the filter, then quit"),
    ("/", "filter rows (Enter keeps, Esc clears)"),
    ("s / S", "sort by the next column / reverse the order"),
    ("p or Space", "pause or resume updates"),
    ("r", "refresh now"),
    ("d or Delete", "remove the selected backend or frontend"),
    ("w", "change the selected backend's weight"),
    ("a", "activate or deactivate the selected listener"),
    ("y / n", "confirm / cancel an action"),
    ("? or F1 or h", "this help (any key closes it)"),
    ("q, F10, Ctrl-C", "quit"),
    ("", ""),
    (
        "rates, 5xx, p50, p99",
        "over the last samples (window in the title)",
    ),
    ("≤7ms", "latency bound: at most 7 ms (histogram bucket)"),
    (
        "grey data",
        "its source is failing; its age is in the title",
    ),
    ("UP? / ?", "state not reported since the console started"),
];

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

fn draw_help(frame: &mut Frame, theme: Theme, area: Rect) {
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(key, what)| {
            Line::from(vec![
                Span::styled(format!("{key:>26}  "), theme.header()),
                Span::raw(*what),
            ])
        })
        .collect();
    let popup = centered(area, 78, lines.len() as u16 + 2);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" keys ")),
        popup,
    );
}

fn draw_modal(frame: &mut Frame, theme: Theme, modal: &Modal, area: Rect) {
    let (title, lines) = match modal {
        Modal::Confirm(action) => (
            " confirm ",
            vec![
                Line::from(format!("{}?", action.description)),
                Line::from(""),
                Line::styled("y: yes   n or Esc: no", theme.header()),
            ],
        ),
        Modal::Weight { backend, input } => (
            " weight ",
            vec![
                Line::from(format!(
                    "new weight of backend {} of cluster {} (now {}):",
                    backend.backend_id,
                    backend.cluster_id,
                    backend.load_balancing_parameters.map_or(100, |p| p.weight)
                )),
                Line::from(format!("> {input}_")),
                Line::styled("Enter: next   Esc: cancel", theme.header()),
            ],
        ),
    };
    let popup = centered(area, 70, 5);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(Block::default().borders(Borders::ALL).title(title)),
        popup,
    );
}
