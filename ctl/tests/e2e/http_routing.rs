//! Routing through the real daemon: which cluster a request reaches for
//! every kind of host, path and method rule and the order between them,
//! and what the proxy answers when no cluster can take the request.

use crate::harness;

use harness::backend::Backend;
use harness::{Site, backend, client, cluster, free_port, frontend};
use sozu_command::proto::command::{
    PathRule, PathRuleKind, RedirectPolicy, RequestHttpFrontend, RulePosition,
};

fn tree(host: &str) -> RequestHttpFrontend {
    frontend(0, host, None)
}

fn at(position: RulePosition, host: &str, path: PathRule) -> RequestHttpFrontend {
    RequestHttpFrontend {
        position: position as i32,
        path,
        ..tree(host)
    }
}

fn prefix(value: &str) -> PathRule {
    PathRule {
        kind: PathRuleKind::Prefix as i32,
        value: value.into(),
    }
}

fn regex(value: &str) -> PathRule {
    PathRule {
        kind: PathRuleKind::Regex as i32,
        value: value.into(),
    }
}

fn equals(value: &str) -> PathRule {
    PathRule {
        kind: PathRuleKind::Equals as i32,
        value: value.into(),
    }
}

fn with_method(mut frontend: RequestHttpFrontend, method: &str) -> RequestHttpFrontend {
    frontend.method = Some(method.into());
    frontend
}

#[test]
fn exact_wildcard_and_regex_hosts() {
    let mut site = Site::start(1, "");
    site.route("exact", tree("www.example.com"));
    site.route("wildcard", tree("*.example.com"));
    site.route("regex", tree("/api[0-9]+/.regex.test"));

    assert_eq!(site.who("GET", "www.example.com", "/"), "exact");
    // Case and a port do not matter.
    assert_eq!(site.who("GET", "WWW.Example.COM:8080", "/"), "exact");
    assert_eq!(site.who("GET", "foo.example.com", "/"), "wildcard");
    // The wildcard stands for exactly one label, never for none.
    assert_eq!(site.who("GET", "a.b.example.com", "/"), "404");
    assert_eq!(site.who("GET", "example.com", "/"), "404");
    // Regex labels are anchored.
    assert_eq!(site.who("GET", "api42.regex.test", "/"), "regex");
    assert_eq!(site.who("GET", "apix.regex.test", "/"), "404");
    assert_eq!(site.who("GET", "xapi4.regex.test", "/"), "404");

    // At one level, a wildcard beats a regex label...
    site.route("regex-wildcard", tree("*.regex.test"));
    assert_eq!(site.who("GET", "api42.regex.test", "/"), "regex-wildcard");
    // ...and an exact label beats both.
    site.route("regex-exact", tree("api42.regex.test"));
    assert_eq!(site.who("GET", "api42.regex.test", "/"), "regex-exact");
    assert_eq!(site.who("GET", "api43.regex.test", "/"), "regex-wildcard");

    // An absolute-form target wins over the Host header.
    let answer = client::parse(
        &client::raw(
            site.port,
            b"GET http://www.example.com/x HTTP/1.1\r\nHost: foo.example.com\r\nConnection: close\r\n\r\n",
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(answer.text(), "exact");
}

#[test]
fn an_absolute_target_routes_and_becomes_the_host() {
    let site = Site::start(1, "");
    let (seen_tx, seen) = std::sync::mpsc::channel();
    let backend = Backend::start_with("abs", std::time::Duration::ZERO, Some(seen_tx));
    site.daemon.serve(site.port, "abs.test", "abs", &[&backend]);
    let answer = client::parse(
        &client::raw(
            site.port,
            b"GET http://abs.test:8080/x?y=1 HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(answer.text(), "abs");
    let request = seen
        .recv_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    assert_eq!(request.target, "/x?y=1");
    assert_eq!(request.headers_named("host"), ["abs.test:8080"]);
}

#[test]
fn prefix_regex_and_equals_paths_with_methods() {
    let mut site = Site::start(1, "");
    let host = "paths.test";
    site.route("root", at(RulePosition::Tree, host, prefix("/")));
    site.route("api", at(RulePosition::Tree, host, prefix("/api")));
    site.route("v2", at(RulePosition::Tree, host, prefix("/api/v2")));
    site.route("equals", at(RulePosition::Tree, host, equals("/api/exact")));
    site.route(
        "regex",
        at(RulePosition::Tree, host, regex("/img/[a-z]+\\.png")),
    );
    site.route(
        "post",
        with_method(at(RulePosition::Tree, host, prefix("/api")), "POST"),
    );
    site.route(
        "login",
        with_method(at(RulePosition::Tree, host, equals("/login")), "POST"),
    );

    assert_eq!(site.who("GET", host, "/"), "root");
    assert_eq!(site.who("GET", host, "/other"), "root");
    // A prefix is a prefix of the path as written, not of its segments.
    assert_eq!(site.who("GET", host, "/apiary"), "api");
    // The longest prefix wins.
    assert_eq!(site.who("GET", host, "/api/v2/users"), "v2");
    assert_eq!(site.who("GET", host, "/api/v1/users"), "api");
    // An equals rule matches the whole path, query included.
    assert_eq!(site.who("GET", host, "/api/exact"), "equals");
    assert_eq!(site.who("GET", host, "/api/exact?q=1"), "api");
    assert_eq!(site.who("GET", host, "/api/exact/more"), "api");
    // Path regexes are anchored at both ends.
    assert_eq!(site.who("GET", host, "/img/cat.png"), "regex");
    assert_eq!(site.who("GET", host, "/img/cat.png.exe"), "root");
    assert_eq!(site.who("GET", host, "/x/img/cat.png"), "root");
    // A method filter only matches its method; on equal prefixes the later
    // rule wins.
    assert_eq!(site.who("POST", host, "/api/x"), "post");
    assert_eq!(site.who("GET", host, "/api/x"), "api");
    assert_eq!(site.who("DELETE", host, "/api/x"), "api");
    // An equals rule with its exact method wins at once.
    assert_eq!(site.who("POST", host, "/login"), "login");
    assert_eq!(site.who("GET", host, "/login"), "root");
    // Methods are compared as written.
    assert_eq!(site.who("post", host, "/login"), "root");
}

#[test]
fn pre_rules_then_the_tree_then_post_rules() {
    let mut site = Site::start(1, "");
    site.route("tree", at(RulePosition::Tree, "order.test", prefix("/")));
    site.route(
        "tree-only",
        at(RulePosition::Tree, "narrow.test", prefix("/only")),
    );
    site.route(
        "pre-first",
        at(RulePosition::Pre, "order.test", prefix("/pre")),
    );
    site.route(
        "pre-second",
        at(RulePosition::Pre, "order.test", prefix("/pre/deeper")),
    );
    site.route("pre-any", at(RulePosition::Pre, "*", prefix("/everywhere")));
    site.route("post-first", at(RulePosition::Post, "*", prefix("/")));
    site.route("post-second", at(RulePosition::Post, "*", prefix("/late")));

    // PRE rules come first, in insertion order: the first full match wins
    // even over a longer one added later.
    assert_eq!(site.who("GET", "order.test", "/pre/deeper"), "pre-first");
    assert_eq!(site.who("GET", "order.test", "/everywhere"), "pre-any");
    assert_eq!(site.who("GET", "unknown.test", "/everywhere"), "pre-any");
    // Then the tree.
    assert_eq!(site.who("GET", "order.test", "/other"), "tree");
    assert_eq!(site.who("GET", "narrow.test", "/only/this"), "tree-only");
    // A host found in the tree whose paths do not match goes on to POST.
    assert_eq!(site.who("GET", "narrow.test", "/elsewhere"), "post-first");
    // POST rules last, in insertion order.
    assert_eq!(site.who("GET", "unknown.test", "/late"), "post-first");
}

#[test]
fn a_frontend_without_cluster_denies_with_401() {
    let mut site = Site::start(1, "");
    site.route("open", at(RulePosition::Tree, "deny.test", prefix("/")));
    site.daemon.add_frontend(RequestHttpFrontend {
        address: harness::local(site.port),
        ..at(RulePosition::Tree, "deny.test", prefix("/private"))
    });
    site.daemon.add_frontend(RequestHttpFrontend {
        address: harness::local(site.port),
        redirect: Some(RedirectPolicy::Unauthorized as i32),
        cluster_id: Some("open".into()),
        ..at(RulePosition::Tree, "deny.test", prefix("/closed"))
    });

    let denied = client::get(site.port, "deny.test", "/private/file");
    assert_eq!(denied.status, 401);
    assert_eq!(denied.header("connection"), Some("close"));
    assert_eq!(denied.header("sozu-id").map(str::len), Some(26));
    assert_eq!(client::get(site.port, "deny.test", "/closed").status, 401);
    assert_eq!(site.who("GET", "deny.test", "/public"), "open");
    // The backend only saw the one request that was let through.
    assert_eq!(site.backends[0].served(), 1);
}

#[test]
fn a_bad_or_missing_host_is_a_400() {
    let mut site = Site::start(1, "");
    site.route("any", at(RulePosition::Post, "*", prefix("/")));
    for request in [
        &b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"[..],
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: bad host\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: user@evil.test\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: :80\r\nConnection: close\r\n\r\n",
    ] {
        let bytes = client::raw(site.port, request).unwrap();
        let answer = client::parse(&bytes).unwrap_or_else(|| {
            panic!(
                "{:?}: unparsable {:?}",
                String::from_utf8_lossy(request),
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(
            answer.status,
            400,
            "{:?} got {answer:?}",
            String::from_utf8_lossy(request)
        );
    }
    assert_eq!(site.backends[0].served(), 0);
    // The catch-all itself works.
    assert_eq!(site.who("GET", "good.test", "/"), "any");
}

#[test]
fn no_matching_frontend_is_a_404() {
    let mut site = Site::start(1, "");
    site.route("app", at(RulePosition::Tree, "app.test", prefix("/app")));
    let answer = client::get(site.port, "other.test", "/app");
    assert_eq!(answer.status, 404);
    assert!(
        answer.text().contains("other.test/app"),
        "{}",
        answer.text()
    );
    assert_eq!(client::get(site.port, "app.test", "/else").status, 404);
    assert_eq!(site.who("GET", "app.test", "/app"), "app");
    // An answer of the proxy closes even a keep-alive connection.
    let mut connection = harness::client::Connection::open(site.port);
    assert_eq!(connection.get("app.test", "/app").status, 200);
    let missing = connection.get("app.test", "/missing");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("connection"), Some("close"));
    assert!(connection.closed_within(std::time::Duration::from_secs(5)));
}

#[test]
fn nothing_to_serve_is_a_503() {
    let site = Site::start(1, "");
    let daemon = &site.daemon;
    // A cluster without any backend.
    daemon.add_cluster(cluster("empty"));
    daemon.add_frontend(frontend(site.port, "empty.test", Some("empty")));
    // A cluster whose backends all refuse connections.
    daemon.add_cluster(cluster("refusing"));
    daemon.add_frontend(frontend(site.port, "refusing.test", Some("refusing")));
    for index in 0..2 {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
        daemon.add_backend(backend("refusing", &format!("dead-{index}"), address));
    }

    let empty = client::get(site.port, "empty.test", "/");
    assert_eq!(empty.status, 503);
    assert!(empty.text().contains("empty"), "{}", empty.text());
    let refused = client::get(site.port, "refusing.test", "/");
    assert_eq!(refused.status, 503);
    // Both backends now wait out their failure: still a 503, at once.
    assert_eq!(client::get(site.port, "refusing.test", "/").status, 503);

    // A backend added later is used.
    let alive = Backend::start("alive");
    daemon.add_backend(backend("empty", "alive", alive.address));
    assert_eq!(client::get(site.port, "empty.test", "/").text(), "alive");
}
