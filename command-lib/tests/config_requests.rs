//! What a configuration turns into: defaults, implicit listeners, paths,
//! certificates and backends, request by request.

use std::path::PathBuf;

use sozu_command::config::{Config, FrontendConfig, ListenerConfig};
use sozu_command::proto::command::{
    ListenerType, PathRuleKind, ProxyProtocolConfig, Request, RulePosition, request::RequestType,
};

fn fixture_dir() -> PathBuf {
    sozu_command::fixtures_dir().join("sozu-2.3")
}

/// Loads `text` as `conf/config.toml` in a temporary folder that holds the
/// fixture certificate and key in `conf/tls/`.
fn load(text: &str) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(conf.join("tls")).unwrap();
    for name in ["cert.pem", "key.pem"] {
        std::fs::copy(fixture_dir().join(name), conf.join("tls").join(name)).unwrap();
    }
    let path = conf.join("config.toml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap_or_else(|error| panic!("{error}"));
    (dir, config)
}

fn kinds(requests: &[Request]) -> Vec<String> {
    requests.iter().map(Request::kind_name).collect()
}

#[test]
fn the_built_in_default_has_one_http_listener_and_two_workers() {
    let config = Config::default_for_start();
    assert_eq!(config.config_path, None);
    assert!(config.command_socket.ends_with("sozu.sock"));
    assert_eq!(config.worker_count, 2);
    assert!(config.clusters.is_empty());
    assert_eq!(config.listeners.len(), 1);
    let ListenerConfig::Http(listener) = &config.listeners[0] else {
        panic!("{:?}", config.listeners[0]);
    };
    assert_eq!(listener.address.to_string(), "127.0.0.1:8080");
    assert_eq!(listener.sticky_name, "SOZUBALANCEID");
    assert_eq!(
        kinds(&config.requests()),
        ["ADD_HTTP_LISTENER", "ACTIVATE_LISTENER"]
    );
}

#[test]
fn relative_paths_follow_the_config_file_not_the_working_directory() {
    let text = r#"
command_socket = "run/sozu.sock"
saved_state = "state/saved.state"
automatic_state_save = true
pid_file_path = "/var/run/sozu.pid"

[clusters.web]
protocol = "http"
frontends = [ { address = "127.0.0.1:8443", hostname = "secure.example.com", certificate = "tls/cert.pem", key = "tls/key.pem" } ]
"#;
    let (dir, config) = load(text);
    let conf = std::path::absolute(dir.path()).unwrap().join("conf");
    assert_eq!(config.command_socket, conf.join("run/sozu.sock"));
    assert_eq!(config.saved_state, Some(conf.join("state/saved.state")));
    assert_eq!(
        config.pid_file_path,
        Some(PathBuf::from("/var/run/sozu.pid"))
    );
    assert_eq!(config.config_path, Some(conf.join("config.toml")));
    assert!(config.automatic_state_save);
    // Loading creates nothing.
    assert!(!conf.join("state").exists());
}

#[test]
fn frontends_without_listener_create_one_with_global_timeouts() {
    let text = r#"
front_timeout = 20
request_timeout = 7

[clusters.web]
protocol = "http"
frontends = [
  { address = "127.0.0.1:8080", hostname = "a.example.com" },
  { address = "127.0.0.1:8443", hostname = "secure.example.com", certificate = "tls/cert.pem", key = "tls/key.pem" },
]

[clusters.db]
protocol = "tcp"
frontends = [ { address = "127.0.0.1:5000" } ]
"#;
    let (_dir, config) = load(text);
    let listeners: Vec<(ListenerType, String)> = config
        .listeners
        .iter()
        .map(|listener| (listener.listener_type(), listener.address().to_string()))
        .collect();
    // Clusters in id order: db first.
    assert_eq!(
        listeners,
        [
            (ListenerType::Tcp, "127.0.0.1:5000".to_owned()),
            (ListenerType::Http, "127.0.0.1:8080".to_owned()),
            (ListenerType::Https, "127.0.0.1:8443".to_owned()),
        ]
    );
    let ListenerConfig::Https(https) = &config.listeners[2] else {
        unreachable!()
    };
    assert_eq!(https.front_timeout, 20);
    assert_eq!(https.request_timeout, 7);
    assert_eq!(https.back_timeout, 30);
    assert_eq!(https.alpn_protocols, ["h2", "http/1.1"]);
    assert_eq!(https.versions, [4, 5]);
    assert_eq!(https.send_tls13_tickets, 4);
    assert_eq!(
        kinds(&config.requests()),
        [
            "ADD_HTTP_LISTENER",
            "ADD_HTTPS_LISTENER",
            "ADD_TCP_LISTENER",
            "ADD_CLUSTER",
            "ADD_TCP_FRONTEND",
            "ADD_CLUSTER",
            "ADD_HTTP_FRONTEND",
            "ADD_CERTIFICATE",
            "ADD_HTTPS_FRONTEND",
            "ACTIVATE_LISTENER",
            "ACTIVATE_LISTENER",
            "ACTIVATE_LISTENER",
        ]
    );
}

#[test]
fn frontend_and_backend_defaults_match_sozu() {
    let text = r#"
[clusters.web]
protocol = "http"
frontends = [
  { address = "127.0.0.1:8080", hostname = "a.example.com" },
  { address = "127.0.0.1:8080", hostname = "b.example.com", path = "/api", position = "TREE", tags = { team = "x" } },
]
backends = [
  { address = "127.0.0.1:9000" },
  { address = "[::1]:9001", weight = 7, backend_id = "mine", sticky_id = "s", backup = true },
]
"#;
    let (_dir, config) = load(text);
    let web = &config.clusters["web"];
    let FrontendConfig::Http(first) = &web.frontends[0] else {
        panic!()
    };
    assert_eq!(first.position, RulePosition::Pre as i32);
    assert_eq!(first.path.kind, PathRuleKind::Prefix as i32);
    assert_eq!(first.path.value, "");
    assert_eq!(first.cluster_id.as_deref(), Some("web"));
    let FrontendConfig::Http(second) = &web.frontends[1] else {
        panic!()
    };
    assert_eq!(second.position, RulePosition::Tree as i32);
    assert_eq!(second.path.value, "/api");
    assert_eq!(second.tags["team"], "x");

    assert_eq!(web.backends[0].backend_id, "web-0-127.0.0.1:9000");
    assert_eq!(
        web.backends[0]
            .load_balancing_parameters
            .as_ref()
            .unwrap()
            .weight,
        100
    );
    assert_eq!(web.backends[1].backend_id, "mine");
    assert_eq!(web.backends[1].address.to_string(), "[::1]:9001");
    assert_eq!(
        web.backends[1]
            .load_balancing_parameters
            .as_ref()
            .unwrap()
            .weight,
        7
    );
    assert_eq!(web.backends[1].backup, Some(true));
    assert_eq!(web.backends[1].sticky_id.as_deref(), Some("s"));
    assert!(!web.cluster.sticky_session);
    assert_eq!(web.cluster.load_balancing, 0);
}

#[test]
fn listener_certificates_go_to_frontends_and_are_sent_once() {
    let text = r#"
[[listeners]]
protocol = "https"
address = "127.0.0.1:8443"
certificate = "tls/cert.pem"
key = "tls/key.pem"

[clusters.web]
protocol = "http"
frontends = [
  { address = "127.0.0.1:8443", hostname = "secure.example.com" },
  { address = "127.0.0.1:8443", hostname = "www.secure.example.com" },
]
"#;
    let (_dir, config) = load(text);
    let ListenerConfig::Https(listener) = &config.listeners[0] else {
        panic!()
    };
    assert!(
        listener
            .certificate
            .as_deref()
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    assert!(listener.key.is_some());
    for frontend in &config.clusters["web"].frontends {
        let FrontendConfig::Https { certificate, .. } = frontend else {
            panic!("{frontend:?}")
        };
        let certificate = certificate.as_ref().unwrap();
        assert_eq!(
            certificate.add.certificate.names,
            ["secure.example.com", "www.secure.example.com"]
        );
    }
    let requests = config.requests();
    let certificates = requests
        .iter()
        .filter(|request| matches!(request.request_type, Some(RequestType::AddCertificate(_))))
        .count();
    assert_eq!(certificates, 1);
}

#[test]
fn an_https_frontend_may_come_without_certificate() {
    let text = r#"
[[listeners]]
protocol = "https"
address = "127.0.0.1:8443"

[clusters.web]
protocol = "http"
frontends = [ { address = "127.0.0.1:8443", hostname = "later.example.com" } ]
"#;
    let (_dir, config) = load(text);
    assert!(matches!(
        config.clusters["web"].frontends[0],
        FrontendConfig::Https {
            certificate: None,
            ..
        }
    ));
    assert!(kinds(&config.requests()).contains(&"ADD_HTTPS_FRONTEND".to_owned()));
}

#[test]
fn tcp_clusters_derive_their_proxy_protocol() {
    let text = r#"
[[listeners]]
protocol = "tcp"
address = "127.0.0.1:5000"
expect_proxy = true

[clusters.relay]
protocol = "tcp"
send_proxy = true
sticky_session = true
frontends = [ { address = "127.0.0.1:5000", tags = { a = "b" } } ]
backends = [ { address = "127.0.0.1:6000" } ]

[clusters.sender]
protocol = "tcp"
send_proxy = true
frontends = [ { address = "127.0.0.1:5001", hostname = "DB.example.com", alpn = ["postgresql"] } ]
"#;
    let (_dir, config) = load(text);
    let relay = &config.clusters["relay"].cluster;
    assert_eq!(
        relay.proxy_protocol,
        Some(ProxyProtocolConfig::RelayHeader as i32)
    );
    // Ignored on a TCP cluster, as in Sozu.
    assert!(!relay.sticky_session);
    let sender = &config.clusters["sender"];
    assert_eq!(
        sender.cluster.proxy_protocol,
        Some(ProxyProtocolConfig::SendHeader as i32)
    );
    let FrontendConfig::Tcp(frontend) = &sender.frontends[0] else {
        panic!()
    };
    assert_eq!(frontend.sni.as_deref(), Some("db.example.com"));
    assert_eq!(frontend.alpn, ["postgresql"]);
}

#[test]
fn switches_that_add_or_remove_requests() {
    let text = r#"
activate_listeners = false
disable_cluster_metrics = true

[[listeners]]
protocol = "http"
address = "127.0.0.1:8080"
"#;
    let (_dir, config) = load(text);
    assert_eq!(
        kinds(&config.requests()),
        ["ADD_HTTP_LISTENER", "CONFIGURE_METRICS"]
    );
}

#[test]
fn answers_are_read_from_files_and_inline() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("404.html"),
        "HTTP/1.1 404 Not Found\r\n\r\nnope",
    )
    .unwrap();
    std::fs::write(dir.path().join("503.html"), "HTTP/1.1 503 Busy\r\n\r\n").unwrap();
    let text = r#"
[[listeners]]
protocol = "http"
address = "127.0.0.1:8080"
answer_404 = "404.html"
answers = { "503" = "file://503.html", "429" = "HTTP/1.1 429 Slow down\r\n\r\n", "500" = "" }

[clusters.web]
protocol = "http"
answer_503 = "503.html"
"#;
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    let ListenerConfig::Http(listener) = &config.listeners[0] else {
        panic!()
    };
    let legacy = listener.http_answers.as_ref().unwrap();
    assert!(legacy.answer_404.as_deref().unwrap().contains("nope"));
    assert_eq!(listener.answers.len(), 3, "{:?}", listener.answers);
    assert!(listener.answers["404"].contains("nope"));
    assert!(listener.answers["503"].contains("Busy"));
    assert!(listener.answers["429"].contains("Slow down"));
    assert!(
        config.clusters["web"]
            .cluster
            .answer_503
            .as_deref()
            .unwrap()
            .contains("Busy")
    );
}

#[test]
fn named_backends_are_resolved_once_and_named_per_address() {
    let text = r#"
[clusters.web]
protocol = "http"
backends = [ { address = "localhost:9000", sticky_id = "s" } ]
"#;
    let (_dir, config) = load(text);
    let backends = &config.clusters["web"].backends;
    assert!(!backends.is_empty());
    for backend in backends {
        let address = backend.address.to_string();
        assert!(backend.address.to_socket_addr().ip().is_loopback());
        assert_eq!(backend.backend_id, format!("web-localhost:9000-{address}"));
        assert_eq!(backend.sticky_id.as_deref(), Some(&*format!("s-{address}")));
    }
}

#[test]
fn server_config_carries_the_worker_settings() {
    let text = r#"
max_connections = 500
buffer_size = 32768
min_buffers = 5000
max_buffers = 100
log_level = "debug"
access_logs_format = "protobuf"
max_connection_attempts = 9
metrics = { address = "127.0.0.1:8125", tagged_metrics = true, detail = "backend" }
"#;
    let (_dir, config) = load(text);
    let server = config.server_config();
    assert_eq!(server.max_connections, 500);
    assert_eq!(server.buffer_size, 32_768);
    assert_eq!(server.min_buffers, 100, "clamped to max_buffers");
    assert_eq!(server.log_level, "debug");
    assert_eq!(server.access_log_format, 2);
    assert_eq!(server.max_connection_attempts, Some(9));
    let metrics = server.metrics.unwrap();
    assert_eq!(metrics.address, "127.0.0.1:8125");
    assert!(metrics.tagged_metrics);
    assert_eq!(metrics.detail, Some(3));
    assert_eq!(server.command_buffer_size, 1_000_000);
}

#[test]
fn metrics_may_hold_only_a_prometheus_address() {
    let (_dir, config) = load("[metrics]\nprometheus_address = \"127.0.0.1:9091\"\n");
    assert_eq!(
        config.prometheus_address(),
        Some("127.0.0.1:9091".parse().unwrap())
    );
    // No StatsD target: workers send nothing.
    assert!(config.server_config().metrics.is_none());
    assert!(config.warnings().is_empty());

    // StatsD keys without a StatsD address are warned about by name.
    let (_dir, config) = load(
        "[metrics]\nprometheus_address = \"127.0.0.1:9091\"\ndetail = \"backend\"\nprefix = \"x\"\n",
    );
    let warnings = config.warnings().join("\n");
    assert!(warnings.contains("metrics.detail"), "{warnings}");
    assert!(warnings.contains("metrics.prefix"), "{warnings}");

    // An empty [metrics] and a prefix that would break lines are refused.
    let dir = tempfile::tempdir().unwrap();
    for (text, named) in [
        ("[metrics]\ntagged_metrics = true\n", "prometheus_address"),
        (
            "[metrics]\naddress = \"127.0.0.1:8125\"\nprefix = \"a:b\"\n",
            "metrics.prefix",
        ),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let error = Config::load(&path).unwrap_err().to_string();
        assert!(error.contains(named), "{error}");
    }
}

#[test]
fn every_sozu_key_is_accepted() {
    // One of each key Sozu 2.3.3 reads, with a plausible value.
    let text = r#"
command_socket = "sozu.sock"
command_socket_mode = "0660"
command_buffer_size = 1000000
max_command_buffer_size = 2000000
max_connections = 100
min_buffers = 1
max_buffers = 10
buffer_size = 16393
slab_entries_per_connection = 4
basic_auth_max_credential_bytes = 512
max_connections_per_ip = 0
max_connections_per_subnet = 0
subnet_ipv4_prefix = 24
subnet_ipv6_prefix = 56
retry_after = 10
max_connection_attempts = 3
splice_pipe_capacity_bytes = 65536
command_allowed_uids = [0, 1000]
saved_state = "state.json"
automatic_state_save = true
log_level = "info"
log_target = "stdout"
log_colored = false
audit_logs_target = "audit.log"
audit_logs_json_target = "audit.json"
access_logs_target = "stdout"
access_logs_format = "ascii"
access_logs_colored = false
worker_count = 1
worker_automatic_restart = true
worker_timeout = 5
disable_cluster_metrics = false
handle_process_affinity = false
ctl_command_timeout = 2000
pid_file_path = "sozu.pid"
activate_listeners = true
front_timeout = 60
back_timeout = 30
connect_timeout = 3
request_timeout = 10
zombie_check_interval = 1800
accept_queue_timeout = 60
evict_on_queue_full = false

[metrics]
address = "127.0.0.1:8125"
tagged_metrics = false
prefix = "sozu"
detail = "cluster"

[[listeners]]
protocol = "https"
address = "127.0.0.1:8443"
interface = "lo"
answer_301 = "tls/cert.pem"
answers = { "404" = "inline" }
tls_versions = ["TLS_V12", "TLS_V13"]
cipher_list = ["TLS13_AES_128_GCM_SHA256"]
cipher_suites = ["TLS13_AES_128_GCM_SHA256"]
groups_list = ["x25519"]
expect_proxy = false
sticky_name = "S"
certificate = "tls/cert.pem"
key = "tls/key.pem"
front_timeout = 1
back_timeout = 2
connect_timeout = 3
request_timeout = 4
send_tls13_tickets = 2
alpn_protocols = ["h2", "http/1.1"]
h2_max_rst_stream_per_window = 10
h2_max_ping_per_window = 10
h2_max_settings_per_window = 10
h2_max_empty_data_per_window = 10
h2_max_window_update_stream0_per_window = 10
h2_max_continuation_frames = 10
h2_max_glitch_count = 10
h2_initial_connection_window = 65535
h2_max_concurrent_streams = 10
h2_stream_shrink_ratio = 2
h2_max_rst_stream_lifetime = 10
h2_max_rst_stream_abusive_lifetime = 10
h2_max_rst_stream_emitted_lifetime = 10
h2_max_header_list_size = 10
h2_max_header_table_size = 10
h2_max_header_fields = 10
h2_stream_refusal_percent = 50
h2_stream_idle_timeout_seconds = 30
h2_graceful_shutdown_deadline_seconds = 5
sozu_id_header = "X-Id"
strict_sni_binding = true
disable_http11 = false
elide_x_real_ip = true
send_x_real_ip = true
forwarded_headers = "x_forwarded"
hsts = { enabled = true, max_age = 100000, include_subdomains = true, preload = false, force_replace_backend = false }
client_auth = "none"
client_ca_certificates = ["missing-ca.pem"]
client_ca_crls = []

[[listeners]]
protocol = "tcp"
address = "127.0.0.1:5000"
public_address = "10.0.0.1:5000"
sni_preread_timeout = 5
sni_preread_max_bytes = 4096

[[listeners]]
protocol = "udp"
address = "127.0.0.1:5353"
max_rx_datagram_size = 1400
max_flows = 10

[clusters.web]
protocol = "http"
sticky_session = true
https_redirect = true
https_redirect_port = 8443
load_balancing = "POWER_OF_TWO"
load_metric = "REQUESTS"
answers = { "503" = "busy" }
http2 = false
authorized_hashes = ["user:abcd"]
www_authenticate = "realm"
max_connections_per_ip = 5
max_connections_per_subnet = 50
retry_after = 3
affinity_cookie = "session"
shard_percent = 50
shard_min_backends = 4
shard_mode = "STRICT"
max_connection_attempts = 2
health_check = { uri = "/health", interval = 5, timeout = 2, healthy_threshold = 2, unhealthy_threshold = 2, accepted_statuses = ["2xx"], port = 9100 }
frontends = [
  { address = "127.0.0.1:8443", hostname = "secure.example.com", path = "/", path_type = "PREFIX", method = "GET", tls_versions = ["TLS_V13"], position = "POST", tags = { a = "b" }, redirect = "permanent", redirect_scheme = "use-https", redirect_template = "t", rewrite_host = "h", rewrite_path = "/p", rewrite_port = 443, required_auth = true, headers = [ { position = "request", key = "X-A", value = "1" } ], hsts = { enabled = false } },
]
backends = [ { address = "127.0.0.1:9000", weight = 10, sticky_id = "a", backup = false, backend_id = "b" } ]

[clusters.db]
protocol = "tcp"
send_proxy = false
load_balancing = "HRW"
frontends = [ { address = "127.0.0.1:5000", hostname = "db.example.com", alpn = ["x"] } ]
backends = [ { address = "127.0.0.1:6000", unix_path = "/run/db.sock" } ]

[clusters.dns]
protocol = "tcp"
frontends = [ { address = "127.0.0.1:5353" } ]
udp = { affinity_key = "SOURCE_IP_PORT", responses = 1, requests = 1, send_proxy_protocol = false, proxy_protocol_every_datagram = false, health = { mode = "UDP_PROBE", tcp_port = 53, rise = 2, fall = 3, fail_open = true, udp_probe_payload = "ping", probe_interval_seconds = 5, probe_timeout_seconds = 2 } }
"#;
    let (_dir, config) = load(text);
    let requests = kinds(&config.requests());
    for kind in [
        "ADD_HTTPS_LISTENER",
        "ADD_TCP_LISTENER",
        "ADD_UDP_LISTENER",
        "ADD_UDP_FRONTEND",
        "ADD_UNIX_BACKEND",
        "ADD_HTTPS_FRONTEND",
    ] {
        assert!(
            requests.contains(&kind.to_owned()),
            "{kind} in {requests:?}"
        );
    }
    let ListenerConfig::Https(https) = &config.listeners[0] else {
        panic!()
    };
    assert_eq!(https.interface.as_deref(), Some("lo"));
    assert_eq!(https.forwarded_headers, Some(1));
    assert!(
        https.client_ca_certificates.is_empty(),
        "mode none reads no CA"
    );
}

#[test]
fn mutual_tls_and_predicates_get_their_own_request_kinds() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture_dir().join("cert.pem"), dir.path().join("ca.pem")).unwrap();
    let text = r#"
[[listeners]]
protocol = "https"
address = "127.0.0.1:8443"
client_auth = "required"
client_ca_certificates = ["ca.pem"]

[clusters.web]
protocol = "http"
frontends = [
  { address = "127.0.0.1:8080", hostname = "a.example.com", header_predicates = [ { name = "X-Env", match = "exact", value = "prod" } ] },
  { address = "127.0.0.1:8080", hostname = "b.example.com", redirect = "silent_close" },
]
"#;
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    let requests = kinds(&config.requests());
    assert!(requests.contains(&"ADD_HTTPS_LISTENER_WITH_CLIENT_AUTH".to_owned()));
    assert!(requests.contains(&"ADD_HTTP_FRONTEND_WITH_HEADER_PREDICATES".to_owned()));
    assert!(requests.contains(&"ADD_HTTP_FRONTEND_WITH_SILENT_CLOSE".to_owned()));
    let ListenerConfig::Https(https) = &config.listeners[0] else {
        panic!()
    };
    assert_eq!(https.client_ca_certificates.len(), 1);
}

#[test]
fn keys_that_only_tune_sozu_internals_are_warned_about_by_name() {
    let (_dir, config) =
        load("evict_on_queue_full = false\nzombie_check_interval = 60\nworker_count = 1\n");
    assert_eq!(
        config.inert_keys,
        ["zombie_check_interval", "evict_on_queue_full"]
    );
    let warnings = config.warnings();
    assert!(
        warnings
            .iter()
            .any(|warning| warning.starts_with("zombie_check_interval ")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|warning| warning.starts_with("evict_on_queue_full ")),
        "{warnings:?}"
    );
    let (_dir, plain) = load("worker_count = 1\n");
    assert!(plain.inert_keys.is_empty());
    assert!(plain.warnings().is_empty(), "{:?}", plain.warnings());
}

#[test]
fn the_splice_pipe_capacity_reaches_the_workers_and_is_bounded() {
    let (_dir, config) = load("worker_count = 1\nsplice_pipe_capacity_bytes = 262144\n");
    assert!(config.inert_keys.is_empty(), "{:?}", config.inert_keys);
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());
    assert_eq!(
        config.server_config().splice_pipe_capacity_bytes,
        Some(262_144)
    );
    for bad in ["0", "100", "4294967296"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, format!("splice_pipe_capacity_bytes = {bad}\n")).unwrap();
        let error = Config::load(&path).unwrap_err().to_string();
        assert!(
            error.contains("splice_pipe_capacity_bytes") && error.contains(bad),
            "{error}"
        );
    }
}
