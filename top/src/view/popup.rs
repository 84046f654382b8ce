//! The help overlay and the questions of actions.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::Theme;
use crate::app::Modal;

/// Every key, as the help overlay lists them.
pub const HELP: [(&str, &str); 18] = [
    (
        "1-9, Tab, click a tab",
        "switch view (Tab: other table of a cluster)",
    ),
    (
        "j/k, Up/Down, wheel",
        "move the selection (a click selects a row)",
    ),
    (
        "PgUp/PgDn, Home/End, g/G",
        "move by a page, to the top or bottom",
    ),
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
    (
        "rates, 5xx, p50, p99",
        "over the window the title line gives",
    ),
    ("≤7ms, <1ms", "latency bounds (histogram buckets)"),
    ("grey, ?", "source failing (age in title); state unknown"),
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

pub(super) fn draw_help(frame: &mut Frame, theme: Theme, area: Rect) {
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

pub(super) fn draw_modal(frame: &mut Frame, theme: Theme, modal: &Modal, area: Rect) {
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
