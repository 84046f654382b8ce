use super::*;
use serde_json::Value;

fn fixture(name: &str) -> ContentType {
    let path = sozu_command::fixtures_dir().join("sozu-2.3").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{name}: {error}"))
}

fn plain(blocks: &[Block]) -> String {
    blocks.iter().map(Block::plain).collect()
}

#[test]
fn fixtures_round_trip_through_the_json_renderer() {
    for name in [
        "status.json",
        "listener-list.json",
        "frontend-list.json",
        "cluster-list.json",
        "cluster-list-web.json",
        "certificate-list.json",
        "metrics-get.json",
        "metrics-get-web.json",
    ] {
        let content = fixture(name);
        let path = sozu_command::fixtures_dir().join("sozu-2.3").join(name);
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(
            crate::session::content_json(Some(&content)),
            expected,
            "{name}"
        );
    }
}

#[test]
fn status_is_a_table_sorted_by_worker() {
    let text = plain(&content(&fixture("status.json")));
    let worker0 = text.find("3007").unwrap();
    let worker1 = text.find("3008").unwrap();
    assert!(worker0 < worker1, "{text}");
    assert!(text.contains("RUNNING"));
    assert!(text.contains('┌'), "box characters: {text}");
}

#[test]
fn listeners_frontends_and_certificates_show_their_keys() {
    let listeners = plain(&content(&fixture("listener-list.json")));
    for expected in [
        "127.0.0.1:28080",
        "MYSTICKY",
        "TLSv1.2, TLSv1.3",
        "127.0.0.1:28081",
    ] {
        assert!(listeners.contains(expected), "{expected} in {listeners}");
    }
    let frontends = plain(&content(&fixture("frontend-list.json")));
    for expected in ["~ ^/v[0-9]+/", "= /health", "env=prod, owner=team-a", "db"] {
        assert!(frontends.contains(expected), "{expected} in {frontends}");
    }
    let certificates = plain(&content(&fixture("certificate-list.json")));
    assert!(certificates.contains("secure.example.com, www.secure.example.com"));
    assert!(certificates.contains("2036-11-20"), "{certificates}");
}

#[test]
fn clusters_merge_identical_worker_views() {
    let hashes = plain(&content(&fixture("cluster-list.json")));
    assert!(hashes.contains("hash on main") && hashes.contains("9373925109169162798"));
    let web = plain(&content(&fixture("cluster-list-web.json")));
    assert_eq!(web.matches("answered by").count(), 1, "{web}");
    assert!(web.contains("LEAST_LOADED"));
    assert!(web.contains("0, 1, main"), "{web}");
    assert!(web.contains("spare"));
}

#[test]
fn metrics_show_clusters_and_backends() {
    let text = plain(&content(&fixture("metrics-get-web.json")));
    assert!(text.contains("cluster web"));
    assert!(text.contains("configuration.clusters"));
    assert!(text.contains("p50="));
}

#[test]
fn dates_are_civil() {
    assert_eq!(format_unix_date(0), "1970-01-01");
    assert_eq!(format_unix_date(951_782_400), "2000-02-29");
    assert_eq!(format_unix_date(2_110_000_000), "2036-11-11");
}
