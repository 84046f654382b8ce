//! Table views, and the drill-down into one cluster.

use std::time::{Instant, SystemTime};

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};
use sozu_command::proto::command::LoadBalancingAlgorithms;

use super::{Theme, staleness};
use crate::app::{App, DetailFocus, ViewId};
use crate::data::SourceId;
use crate::format;
use crate::table::{self, Level, RowKey, TableKind};

pub(super) fn draw_table_view(
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
    // Rates come from the metrics: a table that shows them is stale when
    // either of its sources is.
    let with_metrics = matches!(
        app.view,
        ViewId::Clusters | ViewId::Backends | ViewId::Workers
    );
    let stale = staleness(app, app.view.source(), now).or_else(|| {
        with_metrics
            .then(|| staleness(app, SourceId::Metrics, now))
            .flatten()
    });
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
    let pinned = app.pinned.get(&(view, None)).cloned();
    let state = app.selections.entry(view).or_default();
    let shown = Shown {
        table: &table,
        sort,
        title: &title,
        stale: stale.is_some(),
        focused: true,
        pinned: pinned.as_ref(),
    };
    render_table(frame, theme, &shown, state, area, &mut app.hits);
}

/// A table as drawn: its rows, how they are sorted, its title, whether its
/// data is stale, whether it has the selection and on which row.
struct Shown<'a> {
    table: &'a table::Table,
    sort: table::Sort,
    title: &'a str,
    stale: bool,
    focused: bool,
    pinned: Option<&'a RowKey>,
}

fn render_table(
    frame: &mut Frame,
    theme: Theme,
    shown: &Shown,
    state: &mut ratatui::widgets::TableState,
    area: Rect,
    hits: &mut crate::app::Hits,
) {
    let Shown {
        table,
        sort,
        title,
        stale,
        focused,
        pinned,
    } = *shown;
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
    if let Some(pinned) = pinned
        && let Some(index) = table.rows.iter().position(|row| &row.key == pinned)
    {
        state.select(Some(index));
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

pub(super) fn draw_detail(
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
    let stale =
        staleness(app, SourceId::Clusters, now).or_else(|| staleness(app, SourceId::Metrics, now));
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
    let pinned_backend = app
        .pinned
        .get(&(app.view, Some(DetailFocus::Backends)))
        .cloned();
    let pinned_frontend = app
        .pinned
        .get(&(app.view, Some(DetailFocus::Frontends)))
        .cloned();
    let backends_title = format!(" backends of {id} ({}) ", backends.rows.len());
    let shown = Shown {
        table: &backends,
        sort: backend_sort,
        title: &backends_title,
        stale: stale.is_some(),
        focused: focus == DetailFocus::Backends,
        pinned: pinned_backend.as_ref(),
    };
    render_table(frame, theme, &shown, &mut detail.backends, upper, &mut hits);
    let frontends_title = format!(" frontends of {id} ({}) ", frontends.rows.len());
    let shown = Shown {
        table: &frontends,
        sort: frontend_sort,
        title: &frontends_title,
        stale: stale.is_some(),
        focused: focus == DetailFocus::Frontends,
        pinned: pinned_frontend.as_ref(),
    };
    render_table(
        frame,
        theme,
        &shown,
        &mut detail.frontends,
        lower,
        &mut hits,
    );
    app.hits = hits;
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}
