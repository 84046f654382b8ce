//! Every view drawn on ratatui's test backend, at the smallest supported
//! size and a common larger one, empty and with hundreds of clusters:
//! the text shown and the colour of the rows that must stand out.

mod common;

use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;
use sozu_top::app::{App, ViewId};
use sozu_top::data::{SourceId, Update};

use common::{populated, settings, wall};

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

fn draw(app: &mut App, (width, height): (u16, u16), now: Instant) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|frame| sozu_top::view::draw(frame, app, now, wall()))
        .unwrap();
    terminal.backend().buffer().clone()
}

fn text(buffer: &Buffer) -> String {
    sozu_top::buffer_text(buffer)
}

/// The foreground colour of the first cell of the first line holding `needle`.
fn colour_of(buffer: &Buffer, needle: &str) -> Color {
    let lines: Vec<String> = text(buffer).lines().map(str::to_owned).collect();
    for (y, line) in lines.iter().enumerate() {
        if let Some(byte) = line.find(needle) {
            let x = line[..byte].chars().count() as u16;
            return buffer[(x, y as u16)].fg;
        }
    }
    panic!("{needle:?} is not on screen:\n{}", text(buffer));
}

/// What each view must show with data.
fn expected(view: ViewId) -> &'static [&'static str] {
    match view {
        ViewId::Overview => &[
            "requests/s   3.0k",
            "5xx errors   0.2%",
            "p99 ≤63ms",
            "connections  57",
            "running 1",
        ],
        ViewId::Clusters => &["app000", "app001", "1/2", "round_robin"],
        ViewId::Backends => &["app001-b1", "DOWN", "127.0.0.1:9003"],
        ViewId::Frontends => &[
            "app000.example",
            "http ",
            "127.0.0.1:8080",
            "frontends (601)",
        ],
        ViewId::Listeners => &["127.0.0.1:5432", "inactive", "active"],
        ViewId::Certificates => &["soon.example.com", "3d", "20d"],
        ViewId::Workers => &["4100", "not answering"],
        ViewId::H2 => &["h2.frames.rx.headers", "60"],
        ViewId::Events => &["BACKEND_DOWN", "CLUSTER_ADDED", "2026-12-02"],
    }
}

/// What each view says before anything arrived.
fn expected_empty(view: ViewId) -> &'static str {
    match view {
        ViewId::Overview => "waiting for a second sample",
        ViewId::Clusters => "no cluster",
        ViewId::Backends => "no backend",
        ViewId::Frontends => "no frontend",
        ViewId::Listeners => "no listener",
        ViewId::Certificates => "no certificate",
        ViewId::Workers => "no worker",
        ViewId::H2 => "the daemon reports no HTTP/2 counter",
        ViewId::Events => "no event received since the console started",
    }
}

#[test]
fn every_view_draws_empty_at_both_sizes() {
    for size in SIZES {
        for view in ViewId::ALL {
            let mut app = App::new(settings(false), view);
            let screen = text(&draw(&mut app, size, Instant::now()));
            assert!(
                screen.contains(expected_empty(view)),
                "{view:?} at {size:?} empty:\n{screen}"
            );
            assert!(screen.contains("sozu top /run/sozu/sozu.sock"), "{screen}");
            assert!(screen.contains("connecting"), "{screen}");
            assert!(screen.contains(" q quit"), "{screen}");
        }
    }
}

#[test]
fn every_view_draws_hundreds_of_clusters_at_both_sizes() {
    for size in SIZES {
        for view in ViewId::ALL {
            let (mut app, now) = populated(300, view);
            let screen = text(&draw(&mut app, size, now));
            for needle in expected(view) {
                assert!(
                    screen.contains(needle),
                    "{view:?} at {size:?} lacks {needle:?}:\n{screen}"
                );
            }
            assert!(screen.contains("live"), "{screen}");
            assert!(screen.contains("rates over last 10s"), "{screen}");
            // The tab of the view is highlighted.
            assert_eq!(screen.lines().count(), usize::from(size.1));
        }
    }
}

#[test]
fn tables_count_their_rows() {
    let (mut app, now) = populated(300, ViewId::Clusters);
    let screen = text(&draw(&mut app, (120, 40), now));
    assert!(screen.contains("clusters (300)"), "{screen}");
    app.filter = "app01".to_owned();
    let screen = text(&draw(&mut app, (120, 40), now));
    assert!(screen.contains("clusters 10 of 300"), "{screen}");
    assert!(screen.contains("filter: app01"), "{screen}");
    assert!(!screen.contains("app020"), "{screen}");
}

#[test]
fn rows_that_need_attention_stand_out() {
    let (mut app, now) = populated(300, ViewId::Clusters);
    let clusters = draw(&mut app, (120, 40), now);
    // app001: one backend of two down and half its answers 5xx.
    assert_eq!(colour_of(&clusters, "app001"), Color::Red);
    assert_eq!(colour_of(&clusters, "app002"), Color::Reset);

    app.show(ViewId::Backends);
    let backends = draw(&mut app, (120, 40), now);
    assert_eq!(colour_of(&backends, "app001-b1"), Color::Red);

    app.show(ViewId::Certificates);
    let certificates = draw(&mut app, (120, 40), now);
    assert_eq!(colour_of(&certificates, "soon.example.com"), Color::Red);
    assert_eq!(colour_of(&certificates, "month.example.com"), Color::Yellow);
    assert_eq!(colour_of(&certificates, "fine.example.com"), Color::Reset);

    app.show(ViewId::Listeners);
    let listeners = draw(&mut app, (120, 40), now);
    assert_eq!(colour_of(&listeners, "127.0.0.1:5432"), Color::Yellow);

    app.show(ViewId::Workers);
    let workers = draw(&mut app, (120, 40), now);
    assert_eq!(colour_of(&workers, "4101"), Color::Red);

    app.show(ViewId::Events);
    let events = draw(&mut app, (120, 40), now);
    assert_eq!(colour_of(&events, "BACKEND_DOWN"), Color::Red);
    // Newest first.
    let screen = text(&events);
    assert!(screen.find("CLUSTER_ADDED").unwrap() < screen.find("BACKEND_DOWN").unwrap());
}

#[test]
fn data_of_a_failing_source_is_greyed_with_its_age() {
    let (mut app, now) = populated(300, ViewId::Clusters);
    app.report(
        SourceId::Clusters,
        Update::Failed("cannot connect: Connection refused".to_owned()),
        now,
        wall(),
    );
    let later = now + Duration::from_secs(12);
    let buffer = draw(&mut app, (120, 40), later);
    let screen = text(&buffer);
    assert!(screen.contains("[stale, 22s old]"), "{screen}");
    assert!(screen.contains("failing since"), "{screen}");
    assert!(
        screen.contains("reconnecting: cannot connect: Connection refused [clusters]"),
        "{screen}"
    );
    assert!(screen.contains("DISCONNECTED"), "{screen}");
    assert_eq!(colour_of(&buffer, "app001"), Color::DarkGray);
    assert_eq!(colour_of(&buffer, "app002"), Color::DarkGray);
}

#[test]
fn without_colour_nothing_is_coloured() {
    for view in ViewId::ALL {
        let (mut app, now) = populated(50, view);
        app.settings.color = false;
        let buffer = draw(&mut app, (120, 40), now);
        for cell in buffer.content() {
            assert_eq!(cell.fg, Color::Reset, "{view:?}: {:?}", cell);
            assert_eq!(cell.bg, Color::Reset, "{view:?}: {:?}", cell);
        }
    }
}

#[test]
fn a_small_terminal_gets_a_message_not_a_broken_layout() {
    for size in [(79, 24), (80, 23), (40, 10)] {
        let (mut app, now) = populated(10, ViewId::Clusters);
        let screen = text(&draw(&mut app, size, now));
        assert!(
            screen.contains(&format!("The terminal is {}x{}.", size.0, size.1)),
            "{screen}"
        );
        assert!(screen.contains("needs at least 80x24"), "{screen}");
        assert!(!screen.contains("app000"), "{screen}");
    }
}

#[test]
fn the_drill_down_shows_a_clusters_backends_frontends_and_metrics() {
    let (mut app, now) = populated(300, ViewId::Clusters);
    app.open_cluster("app001".to_owned());
    for size in SIZES {
        let screen = text(&draw(&mut app, size, now));
        assert!(screen.contains("cluster app001"), "{screen}");
        assert!(screen.contains("backends of app001 (2)"), "{screen}");
        assert!(screen.contains("frontends of app001 (2)"), "{screen}");
        assert!(screen.contains("app001-b0"), "{screen}");
        assert!(screen.contains("app001.example"), "{screen}");
        assert!(screen.contains("requests/s 10.0"), "{screen}");
        assert!(screen.contains("5xx 50%"), "{screen}");
        assert!(screen.contains("backends available 1 of 2"), "{screen}");
        assert!(!screen.contains("app002"), "{screen}");
    }
}

#[test]
fn help_lists_every_key_at_both_sizes() {
    for size in SIZES {
        let (mut app, now) = populated(3, ViewId::Overview);
        app.help = true;
        let screen = text(&draw(&mut app, size, now));
        for (key, what) in sozu_top::view::HELP {
            assert!(
                screen.contains(key),
                "help lacks {key:?} at {size:?}:\n{screen}"
            );
            let start: String = what.chars().take(20).collect();
            assert!(
                screen.contains(&start),
                "help lacks {what:?} at {size:?}:\n{screen}"
            );
        }
    }
}
