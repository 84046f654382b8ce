//! HTTP, HTTPS and TCP frontend requests.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::proto::command::{
    FrontendFilters, PathRule, PathRuleKind, Request, RequestHttpFrontend, RequestTcpFrontend,
    RulePosition, request::RequestType,
};

use super::RequestError;

/// Where an HTTP or HTTPS frontend sends its traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontendTarget {
    /// To the backends of this cluster.
    Cluster(String),
    /// Nowhere: matching requests are refused.
    Deny,
}

/// An HTTP or HTTPS frontend as `frontend http|https add|remove` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpFrontendSettings {
    /// The listener address.
    pub address: SocketAddr,
    /// Where matching traffic goes.
    pub target: FrontendTarget,
    /// The hostname pattern.
    pub hostname: String,
    /// The path rule (see [`path_rule`]).
    pub path: PathRule,
    /// The HTTP method to match, if any.
    pub method: Option<String>,
    /// Tags written in access logs (ignored by removals).
    pub tags: BTreeMap<String, String>,
}

/// The path rule from the three mutually exclusive path options: a prefix,
/// a regular expression, or an exact path; none is the empty prefix (every
/// path).
pub fn path_rule(
    prefix: Option<&str>,
    regex: Option<&str>,
    equals: Option<&str>,
) -> Result<PathRule, RequestError> {
    let given = [prefix, regex, equals].iter().flatten().count();
    if given > 1 {
        return Err(RequestError::invalid(
            "path",
            "give at most one of a prefix, a regex and an exact path",
        ));
    }
    let (kind, value) = match (prefix, regex, equals) {
        (Some(prefix), _, _) => (PathRuleKind::Prefix, prefix),
        (_, Some(regex), _) => (PathRuleKind::Regex, regex),
        (_, _, Some(equals)) => (PathRuleKind::Equals, equals),
        _ => (PathRuleKind::Prefix, ""),
    };
    Ok(PathRule {
        kind: kind as i32,
        value: value.to_owned(),
    })
}

/// Tags written `key=value, other=value`: keys and values are trimmed of
/// surrounding spaces; a value may contain `=`.
pub fn parse_tags(text: &str) -> Result<BTreeMap<String, String>, RequestError> {
    let mut tags = BTreeMap::new();
    for pair in text.split(',') {
        let pair = pair.trim();
        let Some((key, value)) = pair.split_once('=') else {
            return Err(RequestError::invalid(
                "tags",
                format!("{pair:?} is not KEY=VALUE; expected 'key=value, other=value'"),
            ));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(RequestError::invalid(
                "tags",
                format!("{pair:?} has an empty key"),
            ));
        }
        tags.insert(key.to_owned(), value.trim().to_owned());
    }
    Ok(tags)
}

fn http_frontend(settings: &HttpFrontendSettings, with_tags: bool) -> RequestHttpFrontend {
    RequestHttpFrontend {
        cluster_id: match &settings.target {
            FrontendTarget::Cluster(id) => Some(id.clone()),
            FrontendTarget::Deny => None,
        },
        address: settings.address.into(),
        hostname: settings.hostname.clone(),
        path: settings.path.clone(),
        method: settings.method.clone(),
        position: RulePosition::Tree as i32,
        tags: if with_tags {
            settings.tags.clone()
        } else {
            BTreeMap::new()
        },
        ..RequestHttpFrontend::default()
    }
}

/// `frontend http add` (`https` false) or `frontend https add` (`https`
/// true). Sozu's command line always sends position TREE.
pub fn frontend_http_add(settings: &HttpFrontendSettings, https: bool) -> Request {
    let frontend = http_frontend(settings, true);
    if https {
        RequestType::AddHttpsFrontend(frontend)
    } else {
        RequestType::AddHttpFrontend(frontend)
    }
    .into()
}

/// `frontend http remove` or `frontend https remove`: the routing key
/// (address, hostname, path, method) and the target identify the frontend.
pub fn frontend_http_remove(settings: &HttpFrontendSettings, https: bool) -> Request {
    let frontend = http_frontend(settings, false);
    if https {
        RequestType::RemoveHttpsFrontend(frontend)
    } else {
        RequestType::RemoveHttpFrontend(frontend)
    }
    .into()
}

/// A TCP frontend as `frontend tcp add|remove` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpFrontendSettings {
    /// The cluster it sends connections to.
    pub cluster_id: String,
    /// The listener address.
    pub address: SocketAddr,
    /// Tags written in access logs (ignored by removals).
    pub tags: BTreeMap<String, String>,
    /// The TLS SNI hostname to match, if any.
    pub sni: Option<String>,
    /// The ALPN protocols to match.
    pub alpn: Vec<String>,
}

/// `frontend tcp add`.
pub fn frontend_tcp_add(settings: &TcpFrontendSettings) -> Request {
    RequestType::AddTcpFrontend(RequestTcpFrontend {
        cluster_id: settings.cluster_id.clone(),
        address: settings.address.into(),
        tags: settings.tags.clone(),
        sni: settings.sni.clone(),
        alpn: settings.alpn.clone(),
    })
    .into()
}

/// `frontend tcp remove`.
pub fn frontend_tcp_remove(settings: &TcpFrontendSettings) -> Request {
    RequestType::RemoveTcpFrontend(RequestTcpFrontend {
        cluster_id: settings.cluster_id.clone(),
        address: settings.address.into(),
        tags: BTreeMap::new(),
        sni: settings.sni.clone(),
        alpn: settings.alpn.clone(),
    })
    .into()
}

/// `frontend list`: no kind selected means every kind.
pub fn list_frontends(filters: FrontendFilters) -> Request {
    RequestType::ListFrontends(filters).into()
}
