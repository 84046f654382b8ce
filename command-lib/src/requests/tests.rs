use crate::config::DEFAULT_STICKY_NAME;
use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::*;
use crate::proto::command::request::RequestType;
use crate::proto::command::*;

fn address(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[test]
fn backend_without_weight_sends_zero_like_sozu() {
    let mut settings = BackendSettings {
        cluster_id: "app".into(),
        backend_id: "b1".into(),
        address: address("127.0.0.1:9101"),
        sticky_id: None,
        backup: None,
        weight: None,
    };
    let Some(RequestType::AddBackend(backend)) = backend_add(&settings).request_type else {
        panic!("an AddBackend");
    };
    assert_eq!(backend.load_balancing_parameters.unwrap().weight, 0);
    assert_eq!(backend.backup, None);
    settings.weight = Some(40);
    settings.backup = Some(true);
    let Some(RequestType::AddBackend(backend)) = backend_add(&settings).request_type else {
        panic!("an AddBackend");
    };
    assert_eq!(backend.load_balancing_parameters.unwrap().weight, 40);
    assert_eq!(backend.backup, Some(true));
}

#[test]
fn frontends_go_in_the_tree_and_removals_drop_tags() {
    let settings = HttpFrontendSettings {
        address: address("127.0.0.1:8080"),
        target: FrontendTarget::Deny,
        hostname: "example.com".into(),
        path: path_rule(None, Some("^/api"), None).unwrap(),
        method: Some("GET".into()),
        tags: parse_tags("owner=a, env = prod").unwrap(),
    };
    let Some(RequestType::AddHttpsFrontend(add)) = frontend_http_add(&settings, true).request_type
    else {
        panic!("an AddHttpsFrontend");
    };
    assert_eq!(add.position, RulePosition::Tree as i32);
    assert_eq!(add.cluster_id, None);
    assert_eq!(add.path.kind, PathRuleKind::Regex as i32);
    assert_eq!(add.tags["env"], "prod");
    let Some(RequestType::RemoveHttpFrontend(remove)) =
        frontend_http_remove(&settings, false).request_type
    else {
        panic!("a RemoveHttpFrontend");
    };
    assert!(remove.tags.is_empty());
    assert_eq!(remove.hostname, "example.com");
}

#[test]
fn path_rules_are_exclusive_and_default_to_every_path() {
    let every = path_rule(None, None, None).unwrap();
    assert_eq!((every.kind, every.value.as_str()), (0, ""));
    let equals = path_rule(None, None, Some("/health")).unwrap();
    assert_eq!(equals.kind, PathRuleKind::Equals as i32);
    let error = path_rule(Some("/a"), None, Some("/b")).unwrap_err();
    assert_eq!(error.field(), "path");
}

#[test]
fn tags_and_answers_are_checked() {
    assert_eq!(
        parse_tags("a=1=2").unwrap(),
        BTreeMap::from([("a".into(), "1=2".into())])
    );
    assert_eq!(parse_tags("novalue").unwrap_err().field(), "tags");
    assert_eq!(
        answer_entry("503=busy").unwrap(),
        ("503".into(), "busy".into())
    );
    assert!(answer_entry("5x3=busy").is_err());
    assert!(answer_entry("503=").is_err());
    let missing = answer_entry("503=file:///nonexistent/answer").unwrap_err();
    assert!(matches!(missing, RequestError::ReadFile { .. }));
}

#[test]
fn cluster_options_map_to_sozu_fields() {
    let mut settings = ClusterSettings::new("app", load_balancing("ROUND_robin").unwrap());
    settings.send_proxy = true;
    settings.expect_proxy = true;
    settings.http2 = true;
    let Some(RequestType::AddCluster(cluster)) = cluster_add(&settings).unwrap().request_type
    else {
        panic!("an AddCluster");
    };
    assert_eq!(
        cluster.proxy_protocol,
        Some(ProxyProtocolConfig::RelayHeader as i32)
    );
    assert_eq!(cluster.http2, Some(true));
    settings.http2 = false;
    settings.max_connection_attempts = Some(0);
    assert_eq!(
        cluster_add(&settings).unwrap_err().field(),
        "max_connection_attempts"
    );
    assert!(load_balancing("fastest").is_err());
}

#[test]
fn cluster_domains_split_at_the_first_slash() {
    assert_eq!(
        ClusterQuery::domain("example.com/api/v1").unwrap(),
        ClusterQuery::Domain {
            hostname: "example.com".into(),
            path: Some("/api/v1".into())
        }
    );
    assert!(ClusterQuery::domain("/x").is_err());
}

#[test]
fn listeners_take_the_defaults() {
    let settings = HttpListenerSettings {
        address: Some(address("127.0.0.1:8080")),
        ..HttpListenerSettings::default()
    };
    let defaults = ListenerDefaults {
        front_timeout: 12,
        ..ListenerDefaults::default()
    };
    let listener = http_listener(&settings, &defaults).unwrap();
    assert_eq!(listener.front_timeout, 12);
    assert_eq!(listener.sticky_name, DEFAULT_STICKY_NAME);
    assert_eq!(listener.forwarded_headers, Some(0));
    let https = https_listener(&settings, &TlsSettings::default(), &defaults).unwrap();
    assert_eq!(
        https.versions,
        [TlsVersion::TlsV12 as i32, TlsVersion::TlsV13 as i32]
    );
    assert_eq!(https.alpn_protocols, ["h2", "http/1.1"]);
    let refused = HttpListenerSettings {
        public_address: Some(address("1.2.3.4:80")),
        expect_proxy: true,
        ..settings
    };
    assert_eq!(
        http_listener(&refused, &defaults).unwrap_err().field(),
        "public_address"
    );
}

#[test]
fn tls_versions_and_fingerprints_accept_usual_spellings() {
    for text in ["TLS_V12", "tlsv1.2", "1.2"] {
        assert_eq!(tls_version(text).unwrap(), TlsVersion::TlsV12);
    }
    assert!(tls_version("SSLv3").is_err());
    let upper = "A5CA0CE08DEC59C4151910C1439CB84EF7744D571A266D74CDFF8E01605ACFFB";
    assert_eq!(fingerprint(upper).unwrap(), upper.to_ascii_lowercase());
    assert_eq!(fingerprint("abc").unwrap_err().field(), "fingerprint");
}

#[test]
fn status_ranges_take_codes_ranges_classes_and_any() {
    let range = |text| {
        let HttpStatusRange { start, end } = status_range(text).unwrap();
        (start, end)
    };
    assert_eq!(range("404"), (404, 404));
    assert_eq!(range("200-399"), (200, 399));
    assert_eq!(range("2XX"), (200, 299));
    assert_eq!(range("any"), (100, 599));
    for bad in ["6xx", "399-200", "+200", "", "2000"] {
        assert!(status_range(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn simple_requests_carry_their_values() {
    assert_eq!(status().kind_name(), "STATUS");
    assert_eq!(
        reload_configuration(None).request_type,
        Some(RequestType::ReloadConfiguration(String::new()))
    );
    assert_eq!(
        save_state(Path::new("/tmp/state")).request_type,
        Some(RequestType::SaveState("/tmp/state".into()))
    );
    assert_eq!(
        configure_metrics(MetricsConfiguration::Clear).request_type,
        Some(RequestType::ConfigureMetrics(2))
    );
}
