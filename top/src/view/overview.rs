//! The overview: traffic over the window, configuration, sparklines,
//! workers and the latest events.

use std::collections::VecDeque;
use std::time::{Instant, SystemTime};

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Sparkline};
use sozu_command::proto::command::{EventKind, RunState};

use super::{Theme, staleness};
use crate::app::App;
use crate::data::{Data, EventRow, SourceId};
use crate::format;
use crate::table::{self, Level};

/// Draws the overview in `area`.
pub(super) fn draw_overview(
    frame: &mut Frame,
    app: &mut App,
    theme: Theme,
    area: Rect,
    now: Instant,
    wall: SystemTime,
) {
    // Taller terminals give the sparklines the extra rows.
    let spare = area.height.saturating_sub(7 + 4 + 3 + 4);
    let [top, requests, errors, bottom] = Layout::vertical([
        Constraint::Length(7),
        Constraint::Length(4 + spare / 3),
        Constraint::Length(3 + spare / 6),
        Constraint::Min(4),
    ])
    .areas(area);
    let [traffic_area, configuration_area] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(top);
    let [workers_area, events_area] =
        Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(bottom);
    let stale = staleness(app, SourceId::Metrics, now);
    let data = &app.data;
    draw_traffic(frame, data, theme, traffic_area, stale.as_deref());
    let stale_style = |source: SourceId| {
        if staleness(app, source, now).is_some() {
            theme.stale()
        } else {
            Style::default()
        }
    };
    draw_configuration(frame, data, theme, configuration_area, wall);
    frame
        .buffer_mut()
        .set_style(configuration_area, stale_style(SourceId::Clusters));
    let line_style = if stale.is_some() {
        theme.stale()
    } else {
        theme.accent()
    };
    draw_sparkline(
        frame,
        &data.metrics.requests_history,
        "requests/s, one point per refresh, newest right",
        line_style,
        requests,
    );
    let error_style = if stale.is_some() {
        theme.stale()
    } else {
        theme.level(Level::Bad)
    };
    draw_sparkline(
        frame,
        &data.metrics.errors_history,
        "5xx/s",
        error_style,
        errors,
    );
    draw_workers(frame, data, theme, workers_area);
    frame
        .buffer_mut()
        .set_style(workers_area, stale_style(SourceId::Workers));
    draw_events(frame, data, theme, events_area);
    frame
        .buffer_mut()
        .set_style(events_area, stale_style(SourceId::Events));
}

fn error_level(ratio: Option<f64>) -> Level {
    match ratio {
        Some(ratio) if ratio >= 0.05 => Level::Bad,
        Some(ratio) if ratio >= 0.01 => Level::Warn,
        _ => Level::Normal,
    }
}

fn draw_traffic(frame: &mut Frame, data: &Data, theme: Theme, area: Rect, stale: Option<&str>) {
    let metrics = &data.metrics;
    let proxy = metrics.proxy;
    let connections = metrics.latest().and_then(|sample| sample.connections);
    let errors = proxy.and_then(|p| p.error_ratio);
    let lines = vec![
        Line::from(format!(
            "requests/s   {}",
            format::rate(proxy.map(|p| p.requests_per_second))
        )),
        Line::styled(
            format!("5xx errors   {}", format::percent(errors)),
            if stale.is_some() {
                theme.stale()
            } else {
                theme.level(error_level(errors))
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
    let span = metrics
        .span()
        .map_or("waiting for a second sample".to_owned(), |span| {
            format!("last {}", format::age(span))
        });
    let mut title = format!(" traffic, {span} ");
    if let Some(stale) = stale {
        title.push_str(&format!("[{stale}] "));
    }
    let style = if stale.is_some() {
        theme.stale()
    } else {
        Style::default()
    };
    frame.render_widget(
        Paragraph::new(lines)
            .style(style)
            .block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}

fn draw_configuration(frame: &mut Frame, data: &Data, theme: Theme, area: Rect, wall: SystemTime) {
    let frontends: usize = data
        .clusters
        .values()
        .map(|c| c.http_frontends.len() + c.https_frontends.len() + c.tcp_frontends.len())
        .sum();
    let backends: usize = data.clusters.values().map(|c| c.backends.len()).sum();
    let down = data
        .clusters
        .values()
        .flat_map(|cluster| &cluster.backends)
        .filter(|backend| table::backend_state(data, backend).0 == "DOWN")
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
    let when = |bad: bool, level: Level| theme.level(if bad { level } else { Level::Normal });
    let lines = vec![
        Line::from(format!(
            "clusters     {}   frontends {frontends}",
            data.clusters.len()
        )),
        Line::styled(
            format!("backends     {backends}   down {down}"),
            when(down > 0, Level::Bad),
        ),
        Line::styled(
            format!(
                "listeners    {}   inactive {inactive}",
                data.listeners.len()
            ),
            when(inactive > 0, Level::Warn),
        ),
        Line::styled(
            format!(
                "certificates {}   expiring within {}d {expiring}",
                data.certificates.len(),
                table::CERTIFICATE_WARN_DAYS
            ),
            when(expiring > 0, Level::Warn),
        ),
        Line::styled(
            format!("workers      {}   running {running}", data.workers.len()),
            when(running < data.workers.len(), Level::Bad),
        ),
    ];
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" configuration "),
        ),
        area,
    );
}

/// A sparkline of the newest points that fit, with its peak in the title.
fn draw_sparkline(
    frame: &mut Frame,
    history: &VecDeque<u64>,
    title: &str,
    style: Style,
    area: Rect,
) {
    let keep = usize::from(area.width.saturating_sub(2));
    let points: Vec<u64> = history
        .iter()
        .skip(history.len().saturating_sub(keep))
        .copied()
        .collect();
    let peak = points.iter().copied().max().unwrap_or(0);
    frame.render_widget(
        Sparkline::default()
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(format!(" {title} (peak {peak}) ")),
            )
            .data(&points)
            .style(style),
        area,
    );
}

fn draw_workers(frame: &mut Frame, data: &Data, theme: Theme, area: Rect) {
    let lines: Vec<Line> = if data.workers.is_empty() {
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
                let running = worker.run_state == RunState::Running as i32;
                Line::styled(
                    format!(
                        "#{} pid {} {state} {} req/s",
                        worker.id,
                        worker.pid,
                        format::rate(rps)
                    ),
                    theme.level(if running { Level::Normal } else { Level::Bad }),
                )
            })
            .collect()
    };
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" workers ")),
        area,
    );
}

fn draw_events(frame: &mut Frame, data: &Data, theme: Theme, area: Rect) {
    let mut lines: Vec<Line> = data
        .events
        .iter()
        .take(usize::from(area.height.saturating_sub(2)))
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
    if lines.is_empty() {
        lines.push(Line::from("no event since the console started"));
    }
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" latest events (UTC) "),
        ),
        area,
    );
}
