//! The one check of a configuration change's own content, shared by every
//! process that accepts changes.
//!
//! [`request`] says whether a change is well formed on its own: ids within
//! their bounds, hostnames a router can parse, path and host regexes that
//! compile, answer templates that are HTTP answers, backend ports that can
//! be connected to. [`crate::state::ConfigState::dispatch`] runs it before
//! anything else, so the main process, every worker, `sozu config check`,
//! state loads and reloads refuse exactly the same changes. The data
//! plane's router builds its routes with the parsers below
//! ([`hostname_pattern`], [`path_regex`], [`header_name`],
//! [`header_value`]), so what passes here is what a worker can route.
//!
//! What only a running worker can find out (an address another process
//! already listens on) is not checked here; the daemon rolls such a change
//! back when a worker refuses it.

use std::net::Ipv6Addr;

use crate::proto::command::{
    AddBackend, Cluster, CustomHttpAnswers, HeaderPosition, Request, RequestHttpFrontend,
    request::RequestType,
};

/// The longest cluster or backend id, in bytes. Ids travel in every listing
/// and metrics answer; 256 bytes is far above any id in practice and keeps
/// those answers within a command frame.
pub const MAX_ID_LEN: usize = 256;

/// The longest hostname, in bytes, as in DNS (RFC 1035: 253 characters
/// without the trailing dot). A trailing dot is not counted.
pub const MAX_HOSTNAME_LEN: usize = 253;

/// Why a change was refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct Invalid {
    /// The field, as named in the protocol.
    pub field: &'static str,
    /// What is wrong with its value.
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Invalid {
    Invalid {
        field,
        reason: reason.into(),
    }
}

/// Checks the content of a configuration change on its own (without the
/// state it would apply to). Requests that are not changes pass.
pub fn request(request: &Request) -> Result<(), Invalid> {
    let Some(request_type) = &request.request_type else {
        return Ok(());
    };
    match request_type {
        RequestType::AddCluster(cluster) => check_cluster(cluster),
        RequestType::AddBackend(backend) => check_backend(backend),
        RequestType::AddHttpFrontend(frontend) | RequestType::AddHttpsFrontend(frontend) => {
            http_frontend(frontend)
        }
        RequestType::AddTcpFrontend(frontend) => id("cluster_id", &frontend.cluster_id),
        RequestType::AddHttpListener(listener) => {
            answer_map(&listener.answers)?;
            listener
                .http_answers
                .as_ref()
                .map_or(Ok(()), custom_answers)
        }
        RequestType::AddHttpsListener(listener) => {
            answer_map(&listener.answers)?;
            listener
                .http_answers
                .as_ref()
                .map_or(Ok(()), custom_answers)
        }
        RequestType::UpdateHttpListener(update) => {
            answer_map(&update.answers)?;
            update.http_answers.as_ref().map_or(Ok(()), custom_answers)
        }
        RequestType::UpdateHttpsListener(update) => {
            answer_map(&update.answers)?;
            update.http_answers.as_ref().map_or(Ok(()), custom_answers)
        }
        _ => Ok(()),
    }
}

/// A cluster or backend id: not empty, at most [`MAX_ID_LEN`] bytes, no
/// control characters.
pub fn id(field: &'static str, value: &str) -> Result<(), Invalid> {
    if value.is_empty() {
        return Err(invalid(field, "an id cannot be empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(invalid(
            field,
            format!(
                "an id is at most {MAX_ID_LEN} bytes, this one has {}",
                value.len()
            ),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!("{value:?} contains a control character"),
        ));
    }
    Ok(())
}

fn check_cluster(cluster: &Cluster) -> Result<(), Invalid> {
    id("cluster_id", &cluster.cluster_id)?;
    if let Some(template) = &cluster.answer_503 {
        answer_template("answer_503", template)?;
    }
    answer_map(&cluster.answers)
}

fn check_backend(backend: &AddBackend) -> Result<(), Invalid> {
    id("cluster_id", &backend.cluster_id)?;
    id("backend_id", &backend.backend_id)?;
    if backend.address.port == 0 {
        return Err(invalid(
            "address",
            "port 0 cannot be connected to; give the backend's port",
        ));
    }
    Ok(())
}

/// The checks an HTTP or HTTPS frontend must pass to be routed.
pub fn http_frontend(frontend: &RequestHttpFrontend) -> Result<(), Invalid> {
    if let Some(cluster_id) = &frontend.cluster_id {
        id("cluster_id", cluster_id)?;
    }
    hostname_pattern(&frontend.hostname).map_err(|reason| invalid("hostname", reason))?;
    if frontend.path.kind == crate::proto::command::PathRuleKind::Regex as i32 {
        path_regex(&frontend.path.value).map_err(|reason| invalid("path", reason))?;
    }
    if let Some(port) = frontend.rewrite_port
        && port > u32::from(u16::MAX)
    {
        return Err(invalid("rewrite_port", format!("{port} is above 65535")));
    }
    for header in &frontend.headers {
        header_name(&header.key).map_err(|reason| invalid("headers", reason))?;
        header_value(&header.key, &header.val).map_err(|reason| invalid("headers", reason))?;
        match HeaderPosition::try_from(header.position) {
            Ok(HeaderPosition::Request | HeaderPosition::Response | HeaderPosition::Both) => {}
            _ => {
                return Err(invalid(
                    "headers",
                    format!(
                        "header {:?} does not say whether it applies to requests, responses or both",
                        header.key
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// One label of a parsed hostname pattern, left to right.
#[derive(Debug)]
pub enum HostLabel<'a> {
    /// A plain label, as written (not lowercased).
    Exact(&'a str),
    /// `*`, only as the first label.
    Wildcard,
    /// `/re/`: its source and the anchored, case-insensitive regex.
    Regex(&'a str, regex::bytes::Regex),
}

/// A parsed hostname pattern.
#[derive(Debug)]
pub enum HostShape<'a> {
    /// `*`: every host.
    Any,
    /// `[v6 address]`.
    Ipv6(&'a str),
    /// Labels, left to right (a trailing dot removed).
    Labels(Vec<HostLabel<'a>>),
}

/// Parses a frontend hostname pattern: dot-separated labels, each plain,
/// `*` (first label only) or a `/regex/`; or `*`; or an IPv6 literal in
/// brackets. At most [`MAX_HOSTNAME_LEN`] bytes.
pub fn hostname_pattern(pattern: &str) -> Result<HostShape<'_>, String> {
    if pattern.is_empty() {
        return Err("the hostname is empty".to_owned());
    }
    let trimmed = pattern.strip_suffix('.').unwrap_or(pattern);
    if trimmed.len() > MAX_HOSTNAME_LEN {
        return Err(format!(
            "a hostname is at most {MAX_HOSTNAME_LEN} bytes, this one has {}",
            trimmed.len()
        ));
    }
    if let Some(inner) = pattern.strip_prefix('[') {
        let valid = inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<Ipv6Addr>().is_ok());
        if !valid {
            return Err(
                "a hostname starting with `[` must be an IPv6 literal like [::1]".to_owned(),
            );
        }
        return Ok(HostShape::Ipv6(pattern));
    }
    if trimmed == "*" {
        return Ok(HostShape::Any);
    }
    let mut labels = Vec::new();
    let bytes = trimmed.as_bytes();
    let mut start = 0;
    loop {
        let end;
        if bytes.get(start) == Some(&b'/') {
            // A regex label runs to the next `/` that ends the pattern or
            // is followed by a dot, so the regex itself may hold dots.
            let close = (start + 1..bytes.len())
                .find(|&i| bytes[i] == b'/' && (i + 1 == bytes.len() || bytes[i + 1] == b'.'))
                .ok_or_else(|| {
                    format!("the regex label starting at byte {start} has no closing `/`")
                })?;
            let source = &trimmed[start + 1..close];
            labels.push(HostLabel::Regex(source, host_label_regex(source)?));
            end = close + 1;
        } else {
            end = trimmed[start..]
                .find('.')
                .map_or(trimmed.len(), |offset| start + offset);
            if end == start {
                return Err("the hostname has an empty label".to_owned());
            }
            let label = &trimmed[start..end];
            if label == "*" {
                if !labels.is_empty() {
                    return Err(format!(
                        "a wildcard is only allowed as the first label, found one at label {}",
                        labels.len() + 1
                    ));
                }
                labels.push(HostLabel::Wildcard);
            } else {
                exact_label(label)?;
                labels.push(HostLabel::Exact(label));
            }
        }
        if end == trimmed.len() {
            return Ok(HostShape::Labels(labels));
        }
        start = end + 1;
        if start == trimmed.len() {
            return Err("the hostname has an empty label".to_owned());
        }
    }
}

fn exact_label(label: &str) -> Result<(), String> {
    if label.contains('*') {
        return Err(format!("`*` must be a whole label, found {label:?}"));
    }
    if label.contains(':') {
        return Err(format!(
            "label {label:?} has a `:`; a hostname carries no port, ports are ignored for routing"
        ));
    }
    if let Some(bad) = label
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == '/')
    {
        return Err(format!("label {label:?} contains {bad:?}"));
    }
    Ok(())
}

/// Compiles a hostname regex label, anchored to the whole label and
/// case-insensitive.
pub fn host_label_regex(source: &str) -> Result<regex::bytes::Regex, String> {
    if source.is_empty() {
        return Err("a regex label `//` cannot be empty".to_owned());
    }
    // Compiled alone first: a valid regex has balanced groups, so the
    // anchored wrapper below cannot change what it means.
    regex::bytes::Regex::new(source)
        .map_err(|error| format!("invalid regex label /{source}/: {error}"))?;
    regex::bytes::RegexBuilder::new(&format!(r"\A(?:{source})\z"))
        .case_insensitive(true)
        .build()
        .map_err(|error| format!("invalid regex label /{source}/: {error}"))
}

/// Compiles a path regex, anchored to the whole path.
pub fn path_regex(value: &str) -> Result<regex::Regex, String> {
    if value.is_empty() {
        return Err("a regex path cannot be empty".to_owned());
    }
    regex::Regex::new(value).map_err(|error| format!("invalid path regex {value:?}: {error}"))?;
    regex::Regex::new(&format!(r"\A(?:{value})\z"))
        .map_err(|error| format!("invalid path regex {value:?}: {error}"))
}

/// An HTTP header name (an RFC 9110 token).
pub fn header_name(name: &str) -> Result<(), String> {
    let is_token_byte =
        |byte: u8| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte);
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(format!(
            "header name {name:?} is not a valid HTTP header name"
        ));
    }
    Ok(())
}

/// A header value must not break the message it is written into.
pub fn header_value(name: &str, value: &str) -> Result<(), String> {
    if value.bytes().any(|byte| matches!(byte, b'\r' | b'\n' | 0)) {
        return Err(format!(
            "header {name:?} has a value with a line break or NUL byte"
        ));
    }
    Ok(())
}

fn answer_map(answers: &std::collections::BTreeMap<String, String>) -> Result<(), Invalid> {
    for (name, template) in answers {
        answer_template_named(name, template)?;
    }
    Ok(())
}

fn answer_template_named(name: &str, template: &str) -> Result<(), Invalid> {
    answer_template("answers", template).map_err(|error| Invalid {
        field: error.field,
        reason: format!("the answer for {name}: {}", error.reason),
    })
}

fn custom_answers(answers: &CustomHttpAnswers) -> Result<(), Invalid> {
    let all = [
        ("answer_301", &answers.answer_301),
        ("answer_400", &answers.answer_400),
        ("answer_401", &answers.answer_401),
        ("answer_404", &answers.answer_404),
        ("answer_408", &answers.answer_408),
        ("answer_413", &answers.answer_413),
        ("answer_421", &answers.answer_421),
        ("answer_429", &answers.answer_429),
        ("answer_502", &answers.answer_502),
        ("answer_503", &answers.answer_503),
        ("answer_504", &answers.answer_504),
        ("answer_507", &answers.answer_507),
    ];
    for (field, template) in all {
        if let Some(template) = template {
            answer_template(field, template)?;
        }
    }
    Ok(())
}

/// An answer template: a raw HTTP response whose status line is
/// `HTTP/<version> <three-digit status>` and whose header lines are
/// `name: value` with a valid name (`%VARIABLES` may appear in values and
/// the body).
pub fn answer_template(field: &'static str, template: &str) -> Result<(), Invalid> {
    let head = template
        .split("\r\n\r\n")
        .next()
        .and_then(|head| head.split("\n\n").next())
        .unwrap_or("");
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.split_whitespace();
    let version_ok = parts.next().is_some_and(|v| v.starts_with("HTTP/"));
    let status_ok = parts.next().is_some_and(|status| {
        status.len() == 3
            && status.bytes().all(|b| b.is_ascii_digit())
            && (100..=999).contains(&status.parse::<u16>().unwrap_or(0))
    });
    if !version_ok || !status_ok {
        let shown: String = status_line.chars().take(40).collect();
        return Err(invalid(
            field,
            format!(
                "not an HTTP answer: it must start with a status line like \"HTTP/1.1 503 Service Unavailable\", found {shown:?}"
            ),
        ));
    }
    for line in lines {
        let name = line.split_once(':').map(|(name, _)| name);
        match name {
            Some(name) if header_name(name).is_ok() => {}
            _ => {
                let shown: String = line.chars().take(40).collect();
                return Err(invalid(
                    field,
                    format!("not an HTTP answer: {shown:?} is not a `Name: value` header line"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::command::{PathRule, PathRuleKind, SocketAddress};

    fn frontend(hostname: &str) -> RequestHttpFrontend {
        RequestHttpFrontend {
            cluster_id: Some("app".to_owned()),
            address: SocketAddress::from("127.0.0.1:8080".parse::<std::net::SocketAddr>().unwrap()),
            hostname: hostname.to_owned(),
            ..Default::default()
        }
    }

    fn field_of(result: Result<(), Invalid>) -> &'static str {
        result.expect_err("should be refused").field
    }

    #[test]
    fn hostnames_are_parsed_as_the_router_parses_them() {
        for good in [
            "example.com",
            "example.com.",
            "*.example.com",
            "*",
            "[::1]",
            "/v[0-9]+/.example.com",
            "a.b.c",
        ] {
            http_frontend(&frontend(good)).unwrap_or_else(|error| panic!("{good}: {error}"));
        }
        for bad in [
            "",
            "a b/c",
            "a..b",
            "www.*.com",
            "host:80",
            "/(/.com",
            "[nope]",
            "x.",
        ] {
            if bad == "x." {
                // A trailing dot is the fully qualified form: fine.
                assert!(http_frontend(&frontend(bad)).is_ok());
                continue;
            }
            assert_eq!(field_of(http_frontend(&frontend(bad))), "hostname", "{bad}");
        }
    }

    #[test]
    fn hostnames_are_bounded_at_253_bytes() {
        let label = "a".repeat(63);
        let at_limit = format!("{label}.{label}.{label}.{}", "b".repeat(61));
        assert_eq!(at_limit.len(), 253);
        assert!(http_frontend(&frontend(&at_limit)).is_ok());
        assert!(http_frontend(&frontend(&format!("{at_limit}."))).is_ok());
        let over = format!("c{at_limit}");
        let error = http_frontend(&frontend(&over)).unwrap_err();
        assert_eq!(error.field, "hostname");
        assert!(error.reason.contains("253"), "{error}");
    }

    #[test]
    fn path_regexes_must_compile() {
        let mut front = frontend("example.com");
        front.path = PathRule {
            kind: PathRuleKind::Regex as i32,
            value: "([".to_owned(),
        };
        let error = http_frontend(&front).unwrap_err();
        assert_eq!(error.field, "path");
        assert!(error.reason.contains("(["), "{error}");
        front.path.value = "/api/v[0-9]+".to_owned();
        assert!(http_frontend(&front).is_ok());
        // A prefix may hold anything a path can.
        front.path = PathRule {
            kind: PathRuleKind::Prefix as i32,
            value: "([".to_owned(),
        };
        assert!(http_frontend(&front).is_ok());
    }

    #[test]
    fn ids_are_bounded_and_named() {
        assert!(id("cluster_id", &"x".repeat(MAX_ID_LEN)).is_ok());
        let error = id("cluster_id", &"x".repeat(MAX_ID_LEN + 1)).unwrap_err();
        assert_eq!(error.field, "cluster_id");
        assert!(error.reason.contains("256"), "{error}");
        assert_eq!(id("backend_id", "").unwrap_err().field, "backend_id");
        assert_eq!(id("backend_id", "a\nb").unwrap_err().field, "backend_id");
        let cluster = Cluster {
            cluster_id: "y".repeat(1 << 20),
            ..Default::default()
        };
        let refused = request(&RequestType::AddCluster(cluster).into()).unwrap_err();
        assert_eq!(refused.field, "cluster_id");
    }

    #[test]
    fn backends_on_port_zero_are_refused() {
        let mut backend = AddBackend {
            cluster_id: "app".to_owned(),
            backend_id: "b1".to_owned(),
            address: SocketAddress::from("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap()),
            ..Default::default()
        };
        let error = request(&RequestType::AddBackend(backend.clone()).into()).unwrap_err();
        assert_eq!(error.field, "address");
        assert!(error.reason.contains("port 0"), "{error}");
        backend.address.port = 8080;
        assert!(request(&RequestType::AddBackend(backend).into()).is_ok());
    }

    #[test]
    fn answer_templates_must_be_http_answers() {
        assert!(
            answer_template(
                "answer_503",
                "HTTP/1.1 503 Busy\r\nRetry-After: 5\r\n\r\nbusy"
            )
            .is_ok()
        );
        assert!(answer_template("answer_503", "HTTP/1.1 503 Busy\n\nbody").is_ok());
        assert!(answer_template("answer_503", "HTTP/1.1 503\r\nX-Id: %REQUEST_ID\r\n\r\n").is_ok());
        for bad in [
            "",
            "<html>sorry</html>",
            "HTTP/1.1 abc Busy\r\n\r\n",
            "HTTP/1.1 5030 Busy\r\n\r\n",
            "HTTP/1.1 503 Busy\r\nnot a header\r\n\r\n",
        ] {
            let error = answer_template("answer_503", bad).unwrap_err();
            assert_eq!(error.field, "answer_503");
            assert!(
                error.reason.contains("not an HTTP answer"),
                "{bad}: {error}"
            );
        }
        let cluster = Cluster {
            cluster_id: "app".to_owned(),
            answer_503: Some("plain text".to_owned()),
            ..Default::default()
        };
        let error = request(&RequestType::AddCluster(cluster).into()).unwrap_err();
        assert_eq!(error.field, "answer_503");
    }

    #[test]
    fn frontend_headers_and_ports_are_checked() {
        let mut front = frontend("example.com");
        front.rewrite_port = Some(70_000);
        assert_eq!(field_of(http_frontend(&front)), "rewrite_port");
        front.rewrite_port = None;
        front.headers.push(crate::proto::command::Header {
            position: HeaderPosition::Request as i32,
            key: "bad name".to_owned(),
            val: "x".to_owned(),
        });
        assert_eq!(field_of(http_frontend(&front)), "headers");
    }
}
