//! The console's state and how it changes: on a source's report, a key, a
//! mouse event, an action's outcome. Nothing here draws or does I/O; what
//! must happen outside (run an action, poll now, quit) is returned as
//! [`Effect`]s.

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::Rect;
use ratatui::widgets::TableState;

mod actions;

pub use actions::{Action, Effect, Modal};

use crate::data::{Data, SourceId, Update};
use crate::table::{Row, RowKey, Sort, Table, TableKind};

/// The console's views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViewId {
    /// Traffic over the window, sparklines, workers, configuration.
    Overview,
    /// Clusters.
    Clusters,
    /// Backends with their state.
    Backends,
    /// Frontends.
    Frontends,
    /// Listeners.
    Listeners,
    /// Certificates and their expiry.
    Certificates,
    /// Workers.
    Workers,
    /// HTTP/2 counters.
    H2,
    /// Events, newest first.
    Events,
}

impl ViewId {
    /// Every view, in tab order (key `1` is the first).
    pub const ALL: [ViewId; 9] = [
        ViewId::Overview,
        ViewId::Clusters,
        ViewId::Backends,
        ViewId::Frontends,
        ViewId::Listeners,
        ViewId::Certificates,
        ViewId::Workers,
        ViewId::H2,
        ViewId::Events,
    ];

    /// Its tab title, also the name `--view` takes (any case).
    pub fn name(self) -> &'static str {
        match self {
            ViewId::Overview => "overview",
            ViewId::Clusters => "clusters",
            ViewId::Backends => "backends",
            ViewId::Frontends => "frontends",
            ViewId::Listeners => "listeners",
            ViewId::Certificates => "certificates",
            ViewId::Workers => "workers",
            ViewId::H2 => "h2",
            ViewId::Events => "events",
        }
    }

    /// The view named `name`.
    pub fn from_name(name: &str) -> Option<ViewId> {
        let name = name.to_lowercase();
        ViewId::ALL
            .into_iter()
            .find(|view| view.name() == name || (name == "http2" && *view == ViewId::H2))
    }

    fn index(self) -> usize {
        ViewId::ALL
            .iter()
            .position(|view| *view == self)
            .unwrap_or(0)
    }

    /// The table it shows, if it is one.
    pub fn table(self) -> Option<TableKind> {
        Some(match self {
            ViewId::Overview => return None,
            ViewId::Clusters => TableKind::Clusters,
            ViewId::Backends => TableKind::Backends,
            ViewId::Frontends => TableKind::Frontends,
            ViewId::Listeners => TableKind::Listeners,
            ViewId::Certificates => TableKind::Certificates,
            ViewId::Workers => TableKind::Workers,
            ViewId::H2 => TableKind::H2,
            ViewId::Events => TableKind::Events,
        })
    }

    /// The source its data comes from.
    pub fn source(self) -> SourceId {
        match self {
            ViewId::Overview | ViewId::H2 => SourceId::Metrics,
            ViewId::Clusters | ViewId::Backends | ViewId::Frontends => SourceId::Clusters,
            ViewId::Listeners => SourceId::Listeners,
            ViewId::Certificates => SourceId::Certificates,
            ViewId::Workers => SourceId::Workers,
            ViewId::Events => SourceId::Events,
        }
    }
}

/// The console's settings, fixed at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The socket, as shown in the status line.
    pub socket: String,
    /// Milliseconds between polls.
    pub refresh_ms: u64,
    /// Whether actions are refused.
    pub read_only: bool,
    /// Whether colours are used.
    pub color: bool,
}

/// Which table of a drill-down has the selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DetailFocus {
    /// The cluster's backends.
    Backends,
    /// The cluster's frontends.
    Frontends,
}

/// A drill-down into one cluster.
#[derive(Debug, Clone)]
pub struct Detail {
    /// The cluster.
    pub cluster_id: String,
    /// Which table has the selection.
    pub focus: DetailFocus,
    /// Selection in the backends table.
    pub backends: TableState,
    /// Selection in the frontends table.
    pub frontends: TableState,
}

/// The status line's message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Its text.
    pub text: String,
    /// Whether it reports a failure.
    pub error: bool,
    /// When it was set.
    pub at: SystemTime,
}

/// Where things were drawn last, for the mouse.
#[derive(Debug, Clone, Default)]
pub struct Hits {
    /// Each tab's columns on the tab line.
    pub tabs: Vec<(u16, u16, ViewId)>,
    /// The tab line's row.
    pub tab_row: u16,
    /// The rows area of the selectable table (below its header).
    pub rows: Option<Rect>,
    /// The first row shown.
    pub offset: usize,
    /// Whether the terminal was too small to draw the console.
    pub too_small: bool,
}

/// Which table a selection belongs to: a view's, or one of a drill-down's.
pub type Slot = (ViewId, Option<DetailFocus>);

/// The console.
#[derive(Debug)]
pub struct App {
    /// Fixed settings.
    pub settings: Settings,
    /// What the daemon told.
    pub data: Data,
    /// The view shown.
    pub view: ViewId,
    /// A drill-down over the clusters view, with Esc to leave.
    pub detail: Option<Detail>,
    /// Rows are kept if a cell contains this (any case).
    pub filter: String,
    /// Whether keys go to the filter.
    pub filter_editing: bool,
    /// Sort of each table.
    pub sorts: HashMap<TableKind, Sort>,
    /// Selection of each table view.
    pub selections: HashMap<ViewId, TableState>,
    /// The row each table's selection stays on when rows move (a sort, new
    /// data, a filter), by what the row stands for.
    pub pinned: HashMap<Slot, RowKey>,
    /// Whether updates are held back.
    pub paused: bool,
    held: Vec<(SourceId, Update, Instant, SystemTime)>,
    /// Whether the help overlay shows.
    pub help: bool,
    /// The popup, if any.
    pub modal: Option<Modal>,
    /// The status line's message.
    pub message: Option<Message>,
    /// Actions sent and not answered yet.
    pub pending: usize,
    /// Set once the console must leave.
    pub quit: bool,
    /// Where things were drawn.
    pub hits: Hits,
}

impl App {
    /// A console with no data yet, on `view`.
    pub fn new(settings: Settings, view: ViewId) -> App {
        App {
            settings,
            data: Data::new(),
            view,
            detail: None,
            filter: String::new(),
            filter_editing: false,
            sorts: HashMap::new(),
            selections: HashMap::new(),
            pinned: HashMap::new(),
            paused: false,
            held: Vec::new(),
            help: false,
            modal: None,
            message: None,
            pending: 0,
            quit: false,
            hits: Hits::default(),
        }
    }

    /// A source's report.
    pub fn report(&mut self, source: SourceId, update: Update, at: Instant, wall: SystemTime) {
        if !self.paused || matches!(update, Update::Failed(_)) {
            // A failure shows even while paused: the data held is not live.
            self.data.apply(source, update, at, wall);
            return;
        }
        // Held: events (bounded as the list is), and the latest report of
        // every other source.
        if matches!(update, Update::Event(..)) {
            let events = self
                .held
                .iter()
                .filter(|(_, update, _, _)| matches!(update, Update::Event(..)))
                .count();
            if events >= crate::data::EVENTS_KEPT
                && let Some(oldest) = self
                    .held
                    .iter()
                    .position(|(_, update, _, _)| matches!(update, Update::Event(..)))
            {
                self.held.remove(oldest);
            }
        } else {
            self.held.retain(|(held, update, _, _)| {
                *held != source || matches!(update, Update::Event(..))
            });
        }
        self.held.push((source, update, at, wall));
    }

    /// The slot of the table that has the selection.
    pub fn slot(&self) -> Slot {
        (self.view, self.detail.as_ref().map(|detail| detail.focus))
    }

    /// Remembers which row is selected, so that it stays selected when
    /// rows move.
    fn pin(&mut self, wall: SystemTime) {
        let Some(table) = self.current_table(wall) else {
            return;
        };
        let slot = self.slot();
        let selected = self.selection_mut().selected().unwrap_or(0);
        match table.rows.get(selected).map(|row| row.key.clone()) {
            Some(RowKey::Other) | None => {
                self.pinned.remove(&slot);
            }
            Some(key) => {
                self.pinned.insert(slot, key);
            }
        }
    }

    /// The table on screen and which selection it uses, if a table has
    /// the selection.
    pub fn current_table(&self, now: SystemTime) -> Option<Table> {
        let (kind, cluster) = match &self.detail {
            Some(detail) => (
                match detail.focus {
                    DetailFocus::Backends => TableKind::Backends,
                    DetailFocus::Frontends => TableKind::Frontends,
                },
                Some(detail.cluster_id.as_str()),
            ),
            None => (self.view.table()?, None),
        };
        Some(self.table(kind, cluster, now))
    }

    /// Builds a table with the current filter and its sort.
    pub fn table(&self, kind: TableKind, cluster: Option<&str>, now: SystemTime) -> Table {
        let filter = if cluster.is_some() { "" } else { &self.filter };
        let sort = self.sorts.get(&kind).copied().unwrap_or_default();
        Table::build(kind, &self.data, cluster, filter, sort, now)
    }

    /// The selection state of the table that has the selection.
    pub fn selection_mut(&mut self) -> &mut TableState {
        match &mut self.detail {
            Some(detail) => match detail.focus {
                DetailFocus::Backends => &mut detail.backends,
                DetailFocus::Frontends => &mut detail.frontends,
            },
            None => self.selections.entry(self.view).or_default(),
        }
    }

    fn selected_row(&mut self, now: SystemTime) -> Option<Row> {
        let table = self.current_table(now)?;
        // Nothing drawn yet: the first row is the one shown selected.
        let selected = self.selection_mut().selected().unwrap_or(0);
        table.rows.into_iter().nth(selected)
    }

    fn say(&mut self, text: impl Into<String>, error: bool, wall: SystemTime) {
        self.message = Some(Message {
            text: text.into(),
            error,
            at: wall,
        });
    }

    /// An action's outcome.
    pub fn action_done(
        &mut self,
        description: &str,
        result: Result<String, String>,
        wall: SystemTime,
    ) -> Vec<Effect> {
        self.pending = self.pending.saturating_sub(1);
        match result {
            Ok(answer) => self.say(format!("{description}: done ({answer})"), false, wall),
            Err(error) => self.say(format!("{description}: FAILED: {error}"), true, wall),
        }
        vec![Effect::RefreshNow]
    }

    /// Switches to a view, leaving any drill-down.
    pub fn show(&mut self, view: ViewId) {
        self.view = view;
        self.detail = None;
    }

    /// Opens the drill-down of a cluster.
    pub fn open_cluster(&mut self, cluster_id: String) {
        // The view stays: Esc comes back to it.
        self.detail = Some(Detail {
            cluster_id,
            focus: DetailFocus::Backends,
            backends: TableState::default().with_selected(Some(0)),
            frontends: TableState::default().with_selected(Some(0)),
        });
    }

    fn toggle_pause(&mut self) {
        self.paused = !self.paused;
        if !self.paused {
            for (source, update, at, wall) in std::mem::take(&mut self.held) {
                self.data.apply(source, update, at, wall);
            }
        }
    }

    /// Moves the selection by `delta` rows within `len` rows.
    fn move_selection(&mut self, delta: isize, len: usize) {
        let state = self.selection_mut();
        if len == 0 {
            state.select(None);
            return;
        }
        let current = state.selected().unwrap_or(0) as isize;
        let next = (current + delta).clamp(0, len as isize - 1) as usize;
        state.select(Some(next));
    }

    fn page(&self) -> isize {
        self.hits
            .rows
            .map_or(10, |rows| rows.height.max(2) as isize - 1)
    }

    /// A key press.
    pub fn key(&mut self, key: KeyEvent, wall: SystemTime) -> Vec<Effect> {
        let moves = self.modal.is_none()
            && !self.filter_editing
            && matches!(
                key.code,
                KeyCode::Up
                    | KeyCode::Down
                    | KeyCode::PageUp
                    | KeyCode::PageDown
                    | KeyCode::Home
                    | KeyCode::End
                    | KeyCode::Char('j' | 'k' | 'g' | 'G')
            );
        let effects = self.key_inner(key, wall);
        if moves || self.filter_editing {
            self.pin(wall);
        } else {
            self.follow_pin(wall);
        }
        effects
    }

    /// Selects the pinned row again where it is now (after a sort, a
    /// filter change, new data).
    fn follow_pin(&mut self, wall: SystemTime) {
        let Some(key) = self.pinned.get(&self.slot()).cloned() else {
            return;
        };
        let Some(table) = self.current_table(wall) else {
            return;
        };
        if let Some(index) = table.rows.iter().position(|row| row.key == key) {
            self.selection_mut().select(Some(index));
        }
    }

    fn key_inner(&mut self, key: KeyEvent, wall: SystemTime) -> Vec<Effect> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('q')) {
            self.quit = true;
            return vec![Effect::Quit];
        }
        if self.hits.too_small {
            // Nothing is shown: only quitting makes sense.
            if matches!(key.code, KeyCode::Char('q') | KeyCode::F(10) | KeyCode::Esc) {
                self.quit = true;
                return vec![Effect::Quit];
            }
            return Vec::new();
        }
        if let Some(modal) = self.modal.take() {
            return self.modal_key(modal, key, wall);
        }
        if self.filter_editing {
            match key.code {
                KeyCode::Esc => {
                    self.filter.clear();
                    self.filter_editing = false;
                }
                KeyCode::Enter => self.filter_editing = false,
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) if !ctrl => self.filter.push(c),
                _ => {}
            }
            self.selection_mut().select(Some(0));
            return Vec::new();
        }
        if self.help {
            // Any key closes the help; q still quits.
            self.help = false;
            if matches!(key.code, KeyCode::Char('q') | KeyCode::F(10)) {
                self.quit = true;
                return vec![Effect::Quit];
            }
            return Vec::new();
        }
        let len = self.current_table(wall).map_or(0, |table| table.rows.len());
        match key.code {
            KeyCode::Char('q') | KeyCode::F(10) => {
                self.quit = true;
                return vec![Effect::Quit];
            }
            KeyCode::Esc => {
                if self.detail.is_some() {
                    self.detail = None;
                } else if !self.filter.is_empty() {
                    self.filter.clear();
                } else {
                    self.quit = true;
                    return vec![Effect::Quit];
                }
            }
            KeyCode::Char('?') | KeyCode::F(1) | KeyCode::Char('h') => self.help = true,
            KeyCode::Char(digit @ '1'..='9') => {
                let index = usize::from(digit as u8 - b'1');
                if let Some(view) = ViewId::ALL.get(index) {
                    self.show(*view);
                }
            }
            KeyCode::Tab | KeyCode::BackTab => {
                let forward =
                    key.code == KeyCode::Tab && !key.modifiers.contains(KeyModifiers::SHIFT);
                if let Some(detail) = &mut self.detail {
                    detail.focus = match detail.focus {
                        DetailFocus::Backends => DetailFocus::Frontends,
                        DetailFocus::Frontends => DetailFocus::Backends,
                    };
                } else {
                    let count = ViewId::ALL.len();
                    let index = self.view.index();
                    let next = if forward {
                        (index + 1) % count
                    } else {
                        (index + count - 1) % count
                    };
                    self.show(ViewId::ALL[next]);
                }
            }
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(1, len),
            KeyCode::Up | KeyCode::Char('k') => self.move_selection(-1, len),
            KeyCode::PageDown => {
                let page = self.page();
                self.move_selection(page, len);
            }
            KeyCode::PageUp => {
                let page = self.page();
                self.move_selection(-page, len);
            }
            KeyCode::Home | KeyCode::Char('g') => self.move_selection(isize::MIN / 2, len),
            KeyCode::End | KeyCode::Char('G') => self.move_selection(isize::MAX / 2, len),
            KeyCode::Enter => {
                if self.detail.is_none()
                    && let Some(row) = self.selected_row(wall)
                    && let Some(cluster) = row.key.cluster()
                {
                    self.open_cluster(cluster.to_owned());
                }
            }
            KeyCode::Char('/') if self.detail.is_none() => self.filter_editing = true,
            KeyCode::Char('s') | KeyCode::Char('S') => {
                self.change_sort(key.code == KeyCode::Char('S'), wall)
            }
            KeyCode::Char('p') | KeyCode::Char(' ') => self.toggle_pause(),
            KeyCode::Char('r') => return vec![Effect::RefreshNow],
            KeyCode::Char('d') | KeyCode::Delete => self.ask_remove(wall),
            KeyCode::Char('w') => self.ask_weight(wall),
            KeyCode::Char('a') => self.ask_toggle_listener(wall),
            _ => {}
        }
        Vec::new()
    }

    fn change_sort(&mut self, reverse: bool, wall: SystemTime) {
        let Some(table) = self.current_table(wall) else {
            return;
        };
        let kind = match &self.detail {
            Some(detail) if detail.focus == DetailFocus::Backends => TableKind::Backends,
            Some(_) => TableKind::Frontends,
            None => match self.view.table() {
                Some(kind) => kind,
                None => return,
            },
        };
        let sort = self.sorts.entry(kind).or_default();
        if reverse {
            sort.reverse = !sort.reverse;
        } else {
            sort.column = (sort.column + 1) % table.columns.len().max(1);
        }
        let text = format!(
            "sorted by {} {}",
            table.columns[sort.column.min(table.columns.len() - 1)].title,
            if sort.reverse {
                "descending"
            } else {
                "ascending"
            }
        );
        self.say(text, false, wall);
    }

    /// A mouse event.
    pub fn mouse(&mut self, mouse: MouseEvent, wall: SystemTime) -> Vec<Effect> {
        let moves = matches!(
            mouse.kind,
            MouseEventKind::Down(MouseButton::Left)
                | MouseEventKind::ScrollDown
                | MouseEventKind::ScrollUp
        );
        if self.modal.is_some() || self.hits.too_small || !moves {
            return Vec::new();
        }
        let effects = self.mouse_inner(mouse, wall);
        self.pin(wall);
        effects
    }

    fn mouse_inner(&mut self, mouse: MouseEvent, wall: SystemTime) -> Vec<Effect> {
        let len = self.current_table(wall).map_or(0, |table| table.rows.len());
        match mouse.kind {
            MouseEventKind::Down(MouseButton::Left) => {
                if self.help {
                    self.help = false;
                    return Vec::new();
                }
                if mouse.row == self.hits.tab_row
                    && let Some((_, _, view)) = self
                        .hits
                        .tabs
                        .iter()
                        .find(|(start, end, _)| (*start..*end).contains(&mouse.column))
                {
                    self.show(*view);
                    return Vec::new();
                }
                if let Some(rows) = self.hits.rows
                    && rows.contains(ratatui::layout::Position::new(mouse.column, mouse.row))
                {
                    let index = self.hits.offset + usize::from(mouse.row - rows.y);
                    if index < len {
                        self.selection_mut().select(Some(index));
                    }
                }
            }
            MouseEventKind::ScrollDown => self.move_selection(3, len),
            MouseEventKind::ScrollUp => self.move_selection(-3, len),
            _ => {}
        }
        Vec::new()
    }
}
