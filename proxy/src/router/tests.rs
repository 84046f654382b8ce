//! Precedence and lifecycle tests of the whole table.

use std::net::SocketAddr;

use sozu_command::proto::command::{
    HeaderMatchKind, HeaderPredicate, PathRule, PathRuleKind, RequestHttpFrontend, RulePosition,
    SocketAddress,
};

use super::*;

const LISTENER: &str = "127.0.0.1:8080";

/// A frontend routing `hostname` + `path` to `cluster` at `position`.
fn frontend(
    position: RulePosition,
    hostname: &str,
    kind: PathRuleKind,
    path: &str,
    cluster: &str,
) -> RequestHttpFrontend {
    RequestHttpFrontend {
        cluster_id: Some(cluster.to_owned()),
        address: SocketAddress::from(LISTENER.parse::<SocketAddr>().unwrap()),
        hostname: hostname.to_owned(),
        path: PathRule {
            kind: kind as i32,
            value: path.to_owned(),
        },
        position: position as i32,
        ..Default::default()
    }
}

fn tree(hostname: &str, kind: PathRuleKind, path: &str, cluster: &str) -> RequestHttpFrontend {
    frontend(RulePosition::Tree, hostname, kind, path, cluster)
}

fn with_method(mut frontend: RequestHttpFrontend, method: &str) -> RequestHttpFrontend {
    frontend.method = Some(method.to_owned());
    frontend
}

fn router(frontends: &[RequestHttpFrontend]) -> Router {
    let mut router = Router::new();
    for frontend in frontends {
        router.add_frontend(frontend).unwrap();
    }
    router
}

/// The cluster a request goes to; `Some("")` stands for a deny route.
fn cluster(router: &Router, host: &str, path: &str, method: &str) -> Option<String> {
    router
        .lookup(host, path, method)
        .map(|route| route.cluster_id().unwrap_or("").to_owned())
}

fn get(router: &Router, host: &str, path: &str) -> Option<String> {
    cluster(router, host, path, "GET")
}

use PathRuleKind::{Equals, Prefix, Regex};

#[test]
fn exact_host_and_prefix() {
    let r = router(&[tree("example.com", Prefix, "/", "site")]);
    assert_eq!(get(&r, "example.com", "/").as_deref(), Some("site"));
    assert_eq!(get(&r, "example.com", "/a/b?c=d").as_deref(), Some("site"));
    assert_eq!(get(&r, "www.example.com", "/"), None);
    assert_eq!(get(&r, "example.org", "/"), None);
    assert_eq!(get(&r, "example.com", ""), None);
}

#[test]
fn hosts_are_case_insensitive_without_port_or_trailing_dot() {
    let r = router(&[
        tree("Example.COM", Prefix, "/", "site"),
        tree("*.Example.org", Prefix, "/", "wild"),
    ]);
    for host in [
        "example.com",
        "EXAMPLE.com",
        "example.com:8080",
        "example.com.",
        "eXample.Com.:443",
    ] {
        assert_eq!(get(&r, host, "/").as_deref(), Some("site"), "{host}");
    }
    assert_eq!(get(&r, "WWW.EXAMPLE.ORG:80", "/").as_deref(), Some("wild"));
    assert_eq!(get(&r, "example.com:http", "/"), None);
    assert_eq!(get(&r, "", "/"), None);
}

#[test]
fn paths_and_methods_are_case_sensitive() {
    let r = router(&[with_method(
        tree("example.com", Prefix, "/Api", "api"),
        "GET",
    )]);
    assert_eq!(get(&r, "example.com", "/Api/x").as_deref(), Some("api"));
    assert_eq!(get(&r, "example.com", "/api/x"), None);
    assert_eq!(cluster(&r, "example.com", "/Api/x", "get"), None);
}

#[test]
fn ipv6_literal_hosts() {
    let r = router(&[tree("[::1]", Prefix, "/", "local")]);
    assert_eq!(get(&r, "[::1]:8080", "/").as_deref(), Some("local"));
    assert_eq!(get(&r, "[::1]", "/").as_deref(), Some("local"));
}

#[test]
fn wildcard_stands_for_exactly_one_label_and_never_the_parent() {
    let r = router(&[tree("*.example.com", Prefix, "/", "wild")]);
    assert_eq!(get(&r, "www.example.com", "/").as_deref(), Some("wild"));
    assert_eq!(get(&r, "api.example.com", "/").as_deref(), Some("wild"));
    assert_eq!(get(&r, "example.com", "/"), None);
    assert_eq!(get(&r, "a.b.example.com", "/"), None);
}

#[test]
fn exact_label_beats_wildcard_beats_regex() {
    let r = router(&[
        tree("/[a-z]+/.example.com", Prefix, "/", "regex"),
        tree("*.example.com", Prefix, "/", "wild"),
        tree("www.example.com", Prefix, "/", "exact"),
    ]);
    assert_eq!(get(&r, "www.example.com", "/").as_deref(), Some("exact"));
    assert_eq!(get(&r, "api.example.com", "/").as_deref(), Some("wild"));
    // Only the regex can match a deeper host with this shape.
    let r = router(&[
        tree("/v[0-9]+/.example.com", Prefix, "/", "regex"),
        tree("x.example.com", Prefix, "/", "exact"),
    ]);
    assert_eq!(get(&r, "v2.example.com", "/").as_deref(), Some("regex"));
    assert_eq!(get(&r, "x.example.com", "/").as_deref(), Some("exact"));
    assert_eq!(get(&r, "vv.example.com", "/"), None);
}

#[test]
fn precedence_is_decided_at_the_rightmost_differing_label() {
    // `a.*`-like patterns are impossible, but an exact label further right
    // decides before a wildcard further left is even considered.
    let r = router(&[
        tree("*.eu.example.com", Prefix, "/", "eu-wild"),
        tree("api./[a-z]{2}/.example.com", Prefix, "/", "regex-region"),
    ]);
    assert_eq!(
        get(&r, "api.eu.example.com", "/").as_deref(),
        Some("eu-wild")
    );
    assert_eq!(
        get(&r, "api.us.example.com", "/").as_deref(),
        Some("regex-region")
    );
}

#[test]
fn regex_labels_are_anchored() {
    let r = router(&[tree("/api[0-9]/.example.com", Prefix, "/", "regex")]);
    assert_eq!(get(&r, "api1.example.com", "/").as_deref(), Some("regex"));
    assert_eq!(get(&r, "xapi1.example.com", "/"), None);
    assert_eq!(get(&r, "api12.example.com", "/"), None);
}

#[test]
fn bare_star_matches_every_host() {
    let r = router(&[
        frontend(
            RulePosition::Pre,
            "*",
            Prefix,
            "/.well-known/acme-challenge/",
            "acme",
        ),
        tree("example.com", Prefix, "/", "site"),
        frontend(RulePosition::Post, "*", Prefix, "/", "fallback"),
    ]);
    assert_eq!(
        get(&r, "example.com", "/.well-known/acme-challenge/token").as_deref(),
        Some("acme")
    );
    assert_eq!(
        get(&r, "anything.org:81", "/.well-known/acme-challenge/t").as_deref(),
        Some("acme")
    );
    assert_eq!(get(&r, "example.com", "/x").as_deref(), Some("site"));
    assert_eq!(get(&r, "other.org", "/x").as_deref(), Some("fallback"));
}

#[test]
fn tree_star_is_the_last_tree_resort() {
    let r = router(&[
        tree("*", Prefix, "/", "any"),
        tree("*.example.com", Prefix, "/", "wild"),
    ]);
    assert_eq!(get(&r, "a.example.com", "/").as_deref(), Some("wild"));
    assert_eq!(get(&r, "example.com", "/").as_deref(), Some("any"));
    assert_eq!(get(&r, "localhost", "/").as_deref(), Some("any"));
}

#[test]
fn pre_rules_first_in_insertion_order_then_tree_then_post() {
    let r = router(&[
        tree("example.com", Prefix, "/", "tree"),
        frontend(RulePosition::Post, "example.com", Prefix, "", "post"),
        frontend(RulePosition::Pre, "example.com", Prefix, "/admin", "pre-1"),
        frontend(RulePosition::Pre, "*.com", Prefix, "/admin/users", "pre-2"),
        frontend(
            RulePosition::Pre,
            "example.com",
            Regex,
            "/admin/users/[0-9]+",
            "pre-3",
        ),
    ]);
    // First full match in insertion order, not the longest one.
    assert_eq!(
        get(&r, "example.com", "/admin/users/1").as_deref(),
        Some("pre-1")
    );
    // A PRE host match with a non-matching path does not count.
    assert_eq!(get(&r, "example.com", "/shop").as_deref(), Some("tree"));
    // The same rule at two positions cannot be added twice: the identity
    // does not include the position.
    let mut r = r;
    let again = frontend(RulePosition::Pre, "example.com", Prefix, "/", "again");
    assert!(matches!(
        r.add_frontend(&again),
        Err(RouterError::FrontendExists { .. })
    ));
    // `*.com` is one label: example.com matches it, a.example.com does not.
    let r = router(&[
        frontend(RulePosition::Pre, "*.com", Prefix, "/", "pre"),
        tree("a.example.com", Prefix, "/", "tree"),
    ]);
    assert_eq!(get(&r, "example.com", "/").as_deref(), Some("pre"));
    assert_eq!(get(&r, "a.example.com", "/").as_deref(), Some("tree"));
}

#[test]
fn post_rules_in_insertion_order_after_the_tree() {
    let r = router(&[
        frontend(RulePosition::Post, "*", Prefix, "/", "post-any"),
        frontend(RulePosition::Post, "example.com", Prefix, "/", "post-exact"),
        tree("example.com", Prefix, "/api", "tree"),
    ]);
    assert_eq!(get(&r, "example.com", "/api/v1").as_deref(), Some("tree"));
    // The tree found the host but no path: POST rules, the first one.
    assert_eq!(
        get(&r, "example.com", "/other").as_deref(),
        Some("post-any")
    );
}

#[test]
fn tree_host_without_matching_path_does_not_fall_back_to_a_wider_host() {
    let r = router(&[
        tree("*.example.com", Prefix, "/", "wild"),
        tree("api.example.com", Prefix, "/v1", "api"),
    ]);
    assert_eq!(get(&r, "api.example.com", "/v1/x").as_deref(), Some("api"));
    assert_eq!(get(&r, "api.example.com", "/v2"), None);
    assert_eq!(get(&r, "www.example.com", "/v2").as_deref(), Some("wild"));
}

#[test]
fn longest_prefix_wins_and_later_wins_ties() {
    let r = router(&[
        tree("example.com", Prefix, "/", "root"),
        tree("example.com", Prefix, "/api/v1", "v1"),
        tree("example.com", Prefix, "/api", "api"),
    ]);
    assert_eq!(
        get(&r, "example.com", "/api/v1/users").as_deref(),
        Some("v1")
    );
    assert_eq!(get(&r, "example.com", "/api/v2").as_deref(), Some("api"));
    assert_eq!(
        get(&r, "example.com", "/index.html").as_deref(),
        Some("root")
    );

    // Two rules of the same length (here: same prefix, one with a method).
    let r = router(&[
        tree("example.com", Prefix, "/api", "first"),
        with_method(tree("example.com", Prefix, "/api", "second"), "GET"),
    ]);
    assert_eq!(get(&r, "example.com", "/api/x").as_deref(), Some("second"));
    assert_eq!(
        cluster(&r, "example.com", "/api/x", "POST").as_deref(),
        Some("first")
    );
    // Same shape, other order: still the later one.
    let r = router(&[
        with_method(tree("example.com", Prefix, "/api", "first"), "GET"),
        tree("example.com", Prefix, "/api", "second"),
    ]);
    assert_eq!(get(&r, "example.com", "/api/x").as_deref(), Some("second"));
}

#[test]
fn regex_or_equals_with_the_method_wins_at_once() {
    let r = router(&[
        tree("example.com", Prefix, "/users/", "prefix"),
        with_method(
            tree("example.com", Regex, "/users/[0-9]+", "regex-get"),
            "GET",
        ),
        with_method(
            tree("example.com", Equals, "/users/42", "equals-delete"),
            "DELETE",
        ),
        tree(
            "example.com",
            Prefix,
            "/users/42",
            "later-prefix-ignored-for-get",
        ),
    ]);
    assert_eq!(
        get(&r, "example.com", "/users/42").as_deref(),
        Some("regex-get")
    );
    assert_eq!(
        cluster(&r, "example.com", "/users/42", "DELETE").as_deref(),
        Some("equals-delete")
    );
    // No exact-method rule for PUT: the longest prefix, later on ties.
    assert_eq!(
        cluster(&r, "example.com", "/users/42", "PUT").as_deref(),
        Some("later-prefix-ignored-for-get")
    );
    // The regex is anchored: not a match for a longer path.
    assert_eq!(
        get(&r, "example.com", "/users/42/edit").as_deref(),
        Some("later-prefix-ignored-for-get")
    );
}

#[test]
fn regex_or_equals_without_method_counts_as_the_whole_path() {
    let r = router(&[
        tree("example.com", Prefix, "/", "root"),
        tree("example.com", Equals, "/health", "health"),
        tree("example.com", Regex, "/static/.*", "static"),
        tree("example.com", Prefix, "/static/app", "app"),
    ]);
    assert_eq!(get(&r, "example.com", "/health").as_deref(), Some("health"));
    // The query string is part of the path: EQUALS no longer matches.
    assert_eq!(
        get(&r, "example.com", "/health?deep=1").as_deref(),
        Some("root")
    );
    // The regex counts as long as the path, longer than any shorter prefix.
    assert_eq!(
        get(&r, "example.com", "/static/app.js").as_deref(),
        Some("static")
    );
    // A later prefix as long as the path ties and wins.
    let r = router(&[
        tree("example.com", Equals, "/a", "equals"),
        tree("example.com", Prefix, "/a", "prefix"),
    ]);
    assert_eq!(get(&r, "example.com", "/a").as_deref(), Some("prefix"));
}

#[test]
fn method_filters_only_match_their_method() {
    let r = router(&[
        with_method(tree("example.com", Prefix, "/", "reads"), "GET"),
        with_method(
            frontend(RulePosition::Pre, "*", Prefix, "/", "writes"),
            "POST",
        ),
    ]);
    assert_eq!(get(&r, "example.com", "/x").as_deref(), Some("reads"));
    assert_eq!(
        cluster(&r, "example.com", "/x", "POST").as_deref(),
        Some("writes")
    );
    assert_eq!(cluster(&r, "example.com", "/x", "PUT"), None);
    // An empty filter can match nothing, so it means "any method".
    let r = router(&[with_method(tree("example.com", Prefix, "/", "any"), "")]);
    assert_eq!(
        cluster(&r, "example.com", "/", "PATCH").as_deref(),
        Some("any")
    );
}

#[test]
fn frontend_without_cluster_denies() {
    let mut deny = tree("example.com", Prefix, "/admin", "unused");
    deny.cluster_id = None;
    let r = router(&[tree("example.com", Prefix, "/", "site"), deny]);
    let route = r.lookup("example.com", "/admin/x", "GET").unwrap();
    assert_eq!(route.cluster_id(), None);
    assert_eq!(get(&r, "example.com", "/x").as_deref(), Some("site"));
}

#[test]
fn route_carries_the_frontend() {
    let mut f = tree("example.com", Prefix, "/", "site");
    f.rewrite_host = Some("internal".to_owned());
    f.tags.insert("team".to_owned(), "web".to_owned());
    let r = router(std::slice::from_ref(&f));
    let route = r.lookup("example.com", "/", "GET").unwrap();
    assert_eq!(route.frontend(), &f);
    assert_eq!(route.rewrite_host(), Some("internal"));
    assert_eq!(route.tags()["team"], "web");
}

#[test]
fn removal_by_identity_from_every_position() {
    let pre = frontend(RulePosition::Pre, "*", Prefix, "/pre", "pre");
    let post = frontend(RulePosition::Post, "*", Prefix, "/", "post");
    let exact = tree("example.com", Prefix, "/", "exact");
    let wild = tree("*.example.com", Prefix, "/", "wild");
    let regex = with_method(tree("/v[0-9]/.example.com", Regex, "/x/.*", "regex"), "GET");
    let mut r = router(&[
        pre.clone(),
        post.clone(),
        exact.clone(),
        wild.clone(),
        regex.clone(),
    ]);
    assert_eq!(r.len(), 5);

    assert_eq!(get(&r, "v1.example.com", "/x/y").as_deref(), Some("wild"));
    r.remove_frontend(&wild).unwrap();
    assert_eq!(get(&r, "v1.example.com", "/x/y").as_deref(), Some("regex"));
    assert_eq!(get(&r, "w.example.com", "/x/y").as_deref(), Some("post"));

    // Identity ignores the cluster and every other non-key field.
    let mut same_identity = regex.clone();
    same_identity.cluster_id = Some("whatever".to_owned());
    same_identity.position = RulePosition::Pre as i32;
    r.remove_frontend(&same_identity).unwrap();
    assert_eq!(get(&r, "v1.example.com", "/x/y").as_deref(), Some("post"));

    assert_eq!(get(&r, "example.com", "/pre").as_deref(), Some("pre"));
    r.remove_frontend(&pre).unwrap();
    assert_eq!(get(&r, "example.com", "/pre").as_deref(), Some("exact"));
    r.remove_frontend(&exact).unwrap();
    assert_eq!(get(&r, "example.com", "/pre").as_deref(), Some("post"));
    r.remove_frontend(&post).unwrap();
    assert_eq!(get(&r, "example.com", "/pre"), None);
    assert!(r.is_empty());
    assert!(r.tree.is_empty());

    let error = r.remove_frontend(&post).unwrap_err();
    assert!(matches!(error, RouterError::FrontendNotFound { .. }));
    assert_eq!(
        error.to_string(),
        r#"frontend 127.0.0.1:8080 * prefix "/" does not exist"#
    );
}

#[test]
fn removal_needs_the_method_and_path_kind_too() {
    let get_only = with_method(tree("example.com", Prefix, "/", "get"), "GET");
    let mut r = router(std::slice::from_ref(&get_only));
    let without_method = tree("example.com", Prefix, "/", "get");
    assert!(r.remove_frontend(&without_method).is_err());
    let as_equals = with_method(tree("example.com", Equals, "/", "get"), "GET");
    assert!(r.remove_frontend(&as_equals).is_err());
    r.remove_frontend(&get_only).unwrap();
    assert!(r.is_empty());
}

#[test]
fn removing_one_of_two_rules_of_a_host_keeps_the_other() {
    let a = tree("example.com", Prefix, "/a", "a");
    let b = tree("example.com", Prefix, "/b", "b");
    let mut r = router(&[a.clone(), b.clone()]);
    r.remove_frontend(&a).unwrap();
    assert_eq!(get(&r, "example.com", "/a"), None);
    assert_eq!(get(&r, "example.com", "/b").as_deref(), Some("b"));
}

#[test]
fn hostnames_differing_only_in_case_are_distinct_frontends() {
    let upper = tree("EXAMPLE.com", Prefix, "/", "upper");
    let lower = tree("example.com", Prefix, "/", "lower");
    let mut r = router(&[upper.clone(), lower.clone()]);
    // Same host and prefix length: the later one.
    assert_eq!(get(&r, "example.com", "/").as_deref(), Some("lower"));
    r.remove_frontend(&lower).unwrap();
    assert_eq!(get(&r, "example.com", "/").as_deref(), Some("upper"));
}

#[test]
fn readding_moves_a_rule_to_the_end() {
    let first = tree("example.com", Prefix, "/", "first");
    let second = tree("example.com", Prefix, "/", "second");
    // Not the same identity: differ by method.
    let first = with_method(first, "GET");
    let mut r = router(&[first.clone(), second]);
    assert_eq!(get(&r, "example.com", "/").as_deref(), Some("second"));
    r.remove_frontend(&first).unwrap();
    r.add_frontend(&first).unwrap();
    assert_eq!(get(&r, "example.com", "/").as_deref(), Some("first"));
}

#[test]
fn routes_outlive_their_removal() {
    let f = tree("example.com", Prefix, "/", "site");
    let mut r = router(std::slice::from_ref(&f));
    let held = r.lookup("example.com", "/", "GET").unwrap().clone();
    r.remove_frontend(&f).unwrap();
    assert_eq!(held.cluster_id(), Some("site"));
}

#[test]
fn duplicates_are_refused_and_change_nothing() {
    let f = tree("example.com", Prefix, "/", "site");
    let mut r = router(std::slice::from_ref(&f));
    let mut again = f.clone();
    again.cluster_id = Some("other".to_owned());
    let error = r.add_frontend(&again).unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"frontend 127.0.0.1:8080 example.com prefix "/" already exists"#
    );
    assert_eq!(get(&r, "example.com", "/").as_deref(), Some("site"));
    assert_eq!(r.len(), 1);
}

#[test]
fn invalid_frontends_are_refused_with_name_and_reason() {
    let mut r = Router::new();
    let error =
        |r: &mut Router, f: RequestHttpFrontend| r.add_frontend(&f).unwrap_err().to_string();

    let message = error(&mut r, tree("www.*.example.com", Prefix, "/", "c"));
    assert!(message.starts_with("frontend 127.0.0.1:8080 www.*.example.com prefix \"/\""));
    assert!(
        message.contains("only allowed as the first label"),
        "{message}"
    );

    let message = error(&mut r, tree("/[/.example.com", Prefix, "/", "c"));
    assert!(message.contains("invalid regex label"), "{message}");

    let message = error(&mut r, tree("example.com", Regex, "/users/(", "c"));
    assert!(message.starts_with("frontend 127.0.0.1:8080 example.com regex \"/users/(\""));
    assert!(message.contains("invalid path regex"), "{message}");

    let mut bad_position = tree("example.com", Prefix, "/", "c");
    bad_position.position = 9;
    assert!(error(&mut r, bad_position).contains("unknown rule position 9"));

    let mut predicates = tree("example.com", Prefix, "/", "c");
    predicates.header_predicates = vec![HeaderPredicate {
        name: "x-canary".to_owned(),
        kind: HeaderMatchKind::Present as i32,
        value: None,
    }];
    assert!(error(&mut r, predicates).contains("header predicates are not supported"));

    let mut bad_port = tree("example.com", Prefix, "/", "c");
    bad_port.rewrite_port = Some(65_536);
    assert!(error(&mut r, bad_port).contains("65536"));

    assert!(r.is_empty());
    assert_eq!(get(&r, "example.com", "/"), None);
}
