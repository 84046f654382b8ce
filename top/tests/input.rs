//! Keys and mouse events fed to the app state: navigation, filter, sort,
//! drill-down, pause, and each action with its confirmation.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use sozu_command::proto::command::ListenerType;
use sozu_command::proto::command::request::RequestType;
use sozu_top::app::{App, Effect, Modal, ViewId};
use sozu_top::data::{SourceId, Update};
use sozu_top::table::RowKey;

use common::{populated, settings, wall};

fn press(app: &mut App, code: KeyCode) -> Vec<Effect> {
    app.key(KeyEvent::new(code, KeyModifiers::NONE), wall())
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        press(app, KeyCode::Char(c));
    }
}

fn draw(app: &mut App, now: Instant) -> String {
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    terminal
        .draw(|frame| sozu_top::view::draw(frame, app, now, wall()))
        .unwrap();
    sozu_top::buffer_text(terminal.backend().buffer())
}

fn selected_key(app: &mut App) -> RowKey {
    let table = app.current_table(wall()).unwrap();
    let index = app.selection_mut().selected().unwrap_or(0);
    table.rows[index].key.clone()
}

fn click(app: &mut App, column: u16, row: u16) {
    app.mouse(
        MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column,
            row,
            modifiers: KeyModifiers::NONE,
        },
        wall(),
    );
}

#[test]
fn number_keys_and_tab_switch_views() {
    let (mut app, _) = populated(10, ViewId::Overview);
    press(&mut app, KeyCode::Char('3'));
    assert_eq!(app.view, ViewId::Backends);
    press(&mut app, KeyCode::Char('9'));
    assert_eq!(app.view, ViewId::Events);
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.view, ViewId::Overview);
    press(&mut app, KeyCode::BackTab);
    assert_eq!(app.view, ViewId::Events);
}

#[test]
fn selection_moves_by_row_page_and_end() {
    let (mut app, now) = populated(300, ViewId::Clusters);
    draw(&mut app, now);
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Down);
    assert_eq!(selected_key(&mut app), RowKey::Cluster("app002".to_owned()));
    press(&mut app, KeyCode::Char('k'));
    assert_eq!(selected_key(&mut app), RowKey::Cluster("app001".to_owned()));
    press(&mut app, KeyCode::End);
    assert_eq!(selected_key(&mut app), RowKey::Cluster("app299".to_owned()));
    press(&mut app, KeyCode::Home);
    assert_eq!(selected_key(&mut app), RowKey::Cluster("app000".to_owned()));
    press(&mut app, KeyCode::PageDown);
    // A page is the rows on screen less one (40 rows: 33 table rows).
    let page = app.hits.rows.unwrap().height as usize - 1;
    assert_eq!(app.selection_mut().selected(), Some(page));
    // The selection scrolls the table.
    press(&mut app, KeyCode::End);
    let screen = draw(&mut app, now);
    assert!(screen.contains("app299"), "{screen}");
    assert!(!screen.contains("app000 "), "{screen}");
}

#[test]
fn the_filter_keeps_matching_rows_and_esc_clears_it() {
    let (mut app, now) = populated(300, ViewId::Clusters);
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "APP12");
    press(&mut app, KeyCode::Enter);
    assert!(!app.filter_editing);
    let table = app.current_table(wall()).unwrap();
    assert_eq!(table.rows.len(), 10);
    assert!(
        table
            .rows
            .iter()
            .all(|row| row.cells[0].starts_with("app12"))
    );
    // Keys act on the view again once the filter is kept.
    press(&mut app, KeyCode::Char('j'));
    assert_eq!(selected_key(&mut app), RowKey::Cluster("app121".to_owned()));
    let screen = draw(&mut app, now);
    assert!(screen.contains("clusters 10 of 300"), "{screen}");
    press(&mut app, KeyCode::Esc);
    assert!(app.filter.is_empty());
    assert!(!app.quit);
    assert_eq!(app.current_table(wall()).unwrap().rows.len(), 300);
}

#[test]
fn sort_keys_change_the_column_and_the_order() {
    let (mut app, _) = populated(20, ViewId::Clusters);
    press(&mut app, KeyCode::Char('S'));
    assert_eq!(
        app.current_table(wall()).unwrap().rows[0].key,
        RowKey::Cluster("app019".to_owned())
    );
    // Next column: FRONT; app000 has three frontends and sorts last
    // (descending: first).
    press(&mut app, KeyCode::Char('s'));
    assert_eq!(
        app.current_table(wall()).unwrap().rows[0].key,
        RowKey::Cluster("app000".to_owned())
    );
    assert!(
        app.message
            .as_ref()
            .unwrap()
            .text
            .contains("sorted by FRONT descending")
    );
}

#[test]
fn enter_drills_into_a_cluster_and_esc_comes_back() {
    let (mut app, now) = populated(30, ViewId::Backends);
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "app007-b1");
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.detail.as_ref().unwrap().cluster_id, "app007");
    let screen = draw(&mut app, now);
    assert!(screen.contains("cluster app007"), "{screen}");
    // Tab moves the selection to the frontends table.
    press(&mut app, KeyCode::Tab);
    assert!(matches!(selected_key(&mut app), RowKey::Frontend(_)));
    press(&mut app, KeyCode::Esc);
    assert!(app.detail.is_none());
    assert!(!app.quit);
}

#[test]
fn removing_a_backend_is_confirmed_then_sent() {
    let (mut app, _) = populated(30, ViewId::Backends);
    press(&mut app, KeyCode::Char('j'));
    let RowKey::Backend(backend) = selected_key(&mut app) else {
        panic!("a backend row");
    };
    assert!(press(&mut app, KeyCode::Char('d')).is_empty());
    assert!(matches!(app.modal, Some(Modal::Confirm(_))));
    // Anything but y/n keeps the question.
    assert!(press(&mut app, KeyCode::Char('x')).is_empty());
    let effects = press(&mut app, KeyCode::Char('y'));
    let [Effect::Run(action)] = effects.as_slice() else {
        panic!("one action: {effects:?}");
    };
    let Some(RequestType::RemoveBackend(remove)) = &action.request.request_type else {
        panic!("a backend removal: {action:?}");
    };
    assert_eq!(remove.cluster_id, backend.cluster_id);
    assert_eq!(remove.backend_id, backend.backend_id);
    assert_eq!(remove.address, backend.address);
    assert_eq!(app.pending, 1);
    let effects = app.action_done(&action.description, Ok("done".to_owned()), wall());
    assert_eq!(effects, vec![Effect::RefreshNow]);
    assert_eq!(app.pending, 0);
    assert!(
        app.message
            .as_ref()
            .unwrap()
            .text
            .contains("remove backend app000-b1")
    );
}

#[test]
fn a_refused_action_says_why() {
    let (mut app, now) = populated(3, ViewId::Backends);
    press(&mut app, KeyCode::Char('d'));
    press(&mut app, KeyCode::Enter);
    app.action_done(
        "remove backend x",
        Err("refused: no such backend".to_owned()),
        wall(),
    );
    let screen = draw(&mut app, now);
    assert!(
        screen.contains("remove backend x: FAILED: refused: no such backend"),
        "{screen}"
    );
}

#[test]
fn no_cancels_an_action() {
    let (mut app, _) = populated(3, ViewId::Frontends);
    press(&mut app, KeyCode::Delete);
    assert!(matches!(app.modal, Some(Modal::Confirm(_))));
    assert!(press(&mut app, KeyCode::Char('n')).is_empty());
    assert!(app.modal.is_none());
    assert!(app.message.as_ref().unwrap().text.ends_with("cancelled"));
}

#[test]
fn removing_a_frontend_sends_the_whole_frontend() {
    let (mut app, _) = populated(3, ViewId::Frontends);
    let RowKey::Frontend(sozu_top::table::Frontend::Http(front)) = selected_key(&mut app) else {
        panic!("an http frontend first");
    };
    press(&mut app, KeyCode::Char('d'));
    let effects = press(&mut app, KeyCode::Char('y'));
    let [Effect::Run(action)] = effects.as_slice() else {
        panic!("{effects:?}");
    };
    assert_eq!(
        action.request.request_type,
        Some(RequestType::RemoveHttpFrontend(front))
    );
}

#[test]
fn a_weight_change_is_typed_confirmed_and_sent() {
    let (mut app, _) = populated(3, ViewId::Backends);
    press(&mut app, KeyCode::Char('w'));
    type_text(&mut app, "5x0");
    assert!(matches!(&app.modal, Some(Modal::Weight { input, .. }) if input == "50"));
    press(&mut app, KeyCode::Enter);
    let effects = press(&mut app, KeyCode::Char('y'));
    let [Effect::Run(action)] = effects.as_slice() else {
        panic!("{effects:?}");
    };
    let Some(RequestType::AddBackend(backend)) = &action.request.request_type else {
        panic!("{action:?}");
    };
    assert_eq!(backend.load_balancing_parameters.unwrap().weight, 50);
    assert_eq!(backend.backend_id, "app000-b0");
}

#[test]
fn listeners_are_activated_and_deactivated() {
    let (mut app, _) = populated(3, ViewId::Listeners);
    // 127.0.0.1:5432 (tcp) is inactive, last by address.
    press(&mut app, KeyCode::End);
    press(&mut app, KeyCode::Char('a'));
    let effects = press(&mut app, KeyCode::Char('y'));
    let [Effect::Run(action)] = effects.as_slice() else {
        panic!("{effects:?}");
    };
    let Some(RequestType::ActivateListener(activate)) = &action.request.request_type else {
        panic!("{action:?}");
    };
    assert_eq!(activate.address.to_string(), "127.0.0.1:5432");
    assert_eq!(activate.proxy, ListenerType::Tcp as i32);
    press(&mut app, KeyCode::Home);
    press(&mut app, KeyCode::Char('a'));
    let effects = press(&mut app, KeyCode::Char('y'));
    assert!(matches!(
        &effects[..],
        [Effect::Run(action)] if matches!(action.request.request_type, Some(RequestType::DeactivateListener(_)))
    ));
}

#[test]
fn read_only_refuses_every_action() {
    let (mut app, _) = populated(3, ViewId::Backends);
    app.settings.read_only = true;
    for key in ['d', 'w'] {
        assert!(press(&mut app, KeyCode::Char(key)).is_empty());
        assert!(app.modal.is_none());
        assert!(app.message.as_ref().unwrap().text.contains("read-only"));
    }
    app.show(ViewId::Listeners);
    press(&mut app, KeyCode::Char('a'));
    assert!(app.modal.is_none());
}

#[test]
fn pause_holds_updates_until_resumed() {
    let (mut app, now) = populated(3, ViewId::Workers);
    press(&mut app, KeyCode::Char('p'));
    assert!(app.paused);
    app.report(SourceId::Workers, Update::Workers(Vec::new()), now, wall());
    assert_eq!(app.data.workers.len(), 2);
    assert!(draw(&mut app, now).contains("PAUSED"));
    press(&mut app, KeyCode::Char('p'));
    assert!(app.data.workers.is_empty());
}

#[test]
fn quit_keys_quit() {
    for key in [
        KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE),
        KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
        KeyEvent::new(KeyCode::F(10), KeyModifiers::NONE),
        KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE),
    ] {
        let (mut app, _) = populated(3, ViewId::Clusters);
        assert_eq!(app.key(key, wall()), vec![Effect::Quit]);
        assert!(app.quit);
    }
}

#[test]
fn help_opens_and_any_key_closes_it() {
    let (mut app, _) = populated(3, ViewId::Clusters);
    press(&mut app, KeyCode::Char('?'));
    assert!(app.help);
    press(&mut app, KeyCode::Char('j'));
    assert!(!app.help);
    assert!(!app.quit);
}

#[test]
fn clicking_a_tab_switches_and_clicking_a_row_selects() {
    let (mut app, now) = populated(300, ViewId::Overview);
    draw(&mut app, now);
    let (start, _, _) = *app
        .hits
        .tabs
        .iter()
        .find(|(_, _, view)| *view == ViewId::Clusters)
        .unwrap();
    let tab_row = app.hits.tab_row;
    click(&mut app, start + 2, tab_row);
    assert_eq!(app.view, ViewId::Clusters);
    draw(&mut app, now);
    let rows = app.hits.rows.unwrap();
    click(&mut app, rows.x + 3, rows.y + 4);
    assert_eq!(selected_key(&mut app), RowKey::Cluster("app004".to_owned()));
    // The wheel scrolls by three rows.
    app.mouse(
        MouseEvent {
            kind: MouseEventKind::ScrollDown,
            column: rows.x,
            row: rows.y,
            modifiers: KeyModifiers::NONE,
        },
        wall(),
    );
    assert_eq!(selected_key(&mut app), RowKey::Cluster("app007".to_owned()));
    // A click below the last row selects nothing new.
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "app00");
    press(&mut app, KeyCode::Enter);
    draw(&mut app, now);
    let rows = app.hits.rows.unwrap();
    click(&mut app, rows.x + 3, rows.y + 2);
    click(&mut app, rows.x + 3, rows.y + 20);
    assert_eq!(selected_key(&mut app), RowKey::Cluster("app002".to_owned()));
}

#[test]
fn rates_follow_the_window_not_the_lifetime() {
    let (mut app, now) = populated(10, ViewId::Overview);
    // Ten more seconds at the same pace: 1,000 requests per 10 s.
    let mut at = now;
    for round in 3..=4 {
        at += Duration::from_secs(10);
        app.report(
            SourceId::Metrics,
            Update::Metrics(Arc::new(common::metrics(10, round))),
            at,
            wall(),
        );
    }
    let proxy = app.data.metrics.proxy.unwrap();
    assert_eq!(proxy.requests_per_second, 100.0);
    // A restarted daemon: counters go down, the window starts again.
    app.report(
        SourceId::Metrics,
        Update::Metrics(Arc::new(common::metrics(10, 1))),
        at + Duration::from_secs(1),
        wall(),
    );
    assert!(app.data.metrics.proxy.is_none());
    assert!(draw(&mut app, at).contains("waiting for a second sample"));
}

#[test]
fn a_new_app_starts_on_the_view_asked() {
    let app = App::new(settings(true), ViewId::from_name("Certificates").unwrap());
    assert_eq!(app.view, ViewId::Certificates);
    assert_eq!(ViewId::from_name("http2"), Some(ViewId::H2));
    assert_eq!(ViewId::from_name("nope"), None);
}

#[test]
fn the_selection_stays_on_its_row_when_rows_move() {
    let (mut app, now) = populated(300, ViewId::Clusters);
    draw(&mut app, now);
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "app02");
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Char('j'));
    assert_eq!(selected_key(&mut app), RowKey::Cluster("app022".to_owned()));
    // Clearing the filter, then reversing the order, keeps app022 selected.
    press(&mut app, KeyCode::Esc);
    draw(&mut app, now);
    assert_eq!(selected_key(&mut app), RowKey::Cluster("app022".to_owned()));
    press(&mut app, KeyCode::Char('S'));
    let screen = draw(&mut app, now);
    assert_eq!(selected_key(&mut app), RowKey::Cluster("app022".to_owned()));
    assert!(
        screen.contains("app022"),
        "the selected row is scrolled to:\n{screen}"
    );
}

#[test]
fn a_failure_shows_while_paused_and_held_reports_are_bounded() {
    let (mut app, now) = populated(3, ViewId::Clusters);
    press(&mut app, KeyCode::Char('p'));
    for round in 3..100 {
        app.report(
            SourceId::Metrics,
            Update::Metrics(Arc::new(common::metrics(3, round))),
            now + Duration::from_secs(round),
            wall(),
        );
    }
    app.report(
        SourceId::Clusters,
        Update::Failed("cannot connect: Connection refused".to_owned()),
        now,
        wall(),
    );
    let screen = draw(&mut app, now);
    assert!(
        screen.contains("DISCONNECTED") || screen.contains("failing since"),
        "{screen}"
    );
    press(&mut app, KeyCode::Char('p'));
    // Only the newest held sample was kept, and applied on resume.
    assert_eq!(
        app.data.metrics.latest().unwrap().proxy.requests,
        3 * 100 * 99
    );
    assert!(app.data.metrics.sample_count() <= 3);
}

#[test]
fn a_weight_of_zero_is_refused() {
    let (mut app, _) = populated(3, ViewId::Backends);
    press(&mut app, KeyCode::Char('w'));
    type_text(&mut app, "0");
    assert!(press(&mut app, KeyCode::Enter).is_empty());
    assert!(matches!(app.modal, Some(Modal::Weight { .. })));
    assert!(app.message.as_ref().unwrap().text.contains("from 1"));
}

#[test]
fn keys_do_nothing_but_quit_when_the_terminal_is_too_small() {
    let (mut app, _) = populated(3, ViewId::Backends);
    let mut terminal = Terminal::new(TestBackend::new(60, 20)).unwrap();
    terminal
        .draw(|frame| sozu_top::view::draw(frame, &mut app, Instant::now(), wall()))
        .unwrap();
    assert!(press(&mut app, KeyCode::Char('d')).is_empty());
    assert!(app.modal.is_none());
    assert_eq!(press(&mut app, KeyCode::Char('q')), vec![Effect::Quit]);
}

#[test]
fn the_drill_down_returns_to_the_view_it_came_from() {
    let (mut app, _) = populated(3, ViewId::Frontends);
    press(&mut app, KeyCode::Enter);
    assert!(app.detail.is_some());
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.view, ViewId::Frontends);
}
