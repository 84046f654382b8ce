//! The HTTP routing table of one listener.
//!
//! A [`Router`] is built from [`RequestHttpFrontend`]s added and removed at
//! runtime, and answers [`Router::lookup`] for every request with the
//! [`Route`] of the frontend that matches its host, path and method:
//!
//! 1. PRE rules, in insertion order: the first whose host, path and method
//!    all match wins;
//! 2. the TREE: the most specific hostname pattern, compared label by label
//!    from the right (an exact label beats the wildcard, which beats regex
//!    labels; a branch that leads to no pattern at all gives way to the next
//!    one; a bare `*` comes last); then, among that host's rules, a REGEX or
//!    EQUALS rule whose method filter equals the request's method wins at
//!    once, otherwise the longest match wins, the later rule on ties (a
//!    PREFIX counts its length, a REGEX or EQUALS rule without method filter
//!    counts as long as the path);
//! 3. POST rules, in insertion order, like PRE.
//!
//! As in Sozu, once the TREE has found a host, a path that none of its rules
//! match goes on to the POST rules: it does not fall back to a less specific
//! hostname pattern.
//!
//! Hostname patterns: `example.com` (exact), `*.example.com` (exactly one
//! non-empty label in place of `*`, never `example.com` itself; `*` only as
//! the first label), `/v[0-9]+/.example.com` (a regex matching one whole
//! label), and `*` alone (any host). Hosts are compared ASCII
//! case-insensitively (Sozu compares them byte for byte); a `:port` suffix
//! and a trailing dot in the request host are ignored. Paths include the
//! query string and are compared case-sensitively; path regexes must match
//! the whole path, as Sozu's documentation says (its code matches
//! substrings). Methods are compared case-sensitively, as HTTP defines them.
//!
//! Lookups allocate nothing and walk only what the host's labels lead to;
//! see `benches/routing.rs`.

mod host;
mod path;
mod route;

use std::collections::HashMap;
use std::sync::Arc;

use sozu_command::proto::command::{RequestHttpFrontend, RulePosition};
use sozu_command::state::FrontendKey;

use self::host::{HostPattern, HostTree, normalize_host};
use self::path::{PathMatch, PathMatcher};
pub use self::route::{HeaderEdit, Route};

/// Why a frontend could not be added or removed. Each variant names the
/// frontend the way the state does: `address hostname kind "path" [method]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouterError {
    /// The hostname is not a valid pattern.
    #[error("frontend {frontend}: invalid hostname {hostname:?}: {reason}")]
    InvalidHostname {
        /// The frontend, as the state names it.
        frontend: String,
        /// The hostname as given.
        hostname: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The path rule cannot be used (bad regex, unknown kind).
    #[error("frontend {frontend}: {reason}")]
    InvalidPath {
        /// The frontend, as the state names it.
        frontend: String,
        /// What is wrong with the path rule.
        reason: String,
    },
    /// Another field cannot be enforced: an unknown enum value, a port out
    /// of range, a header that cannot be written, or a feature this router
    /// does not implement.
    #[error("frontend {frontend}: {reason}")]
    InvalidFrontend {
        /// The frontend, as the state names it.
        frontend: String,
        /// What is wrong.
        reason: String,
    },
    /// A frontend with the same address, hostname, path and method is
    /// already routed.
    #[error("frontend {frontend} already exists")]
    FrontendExists {
        /// The frontend, as the state names it.
        frontend: String,
    },
    /// No frontend with this address, hostname, path and method is routed.
    #[error("frontend {frontend} does not exist")]
    FrontendNotFound {
        /// The frontend, as the state names it.
        frontend: String,
    },
}

/// The routing table of one HTTP or HTTPS listener. See the module
/// documentation for the matching rules.
#[derive(Debug, Default)]
pub struct Router {
    pre: Vec<Rule>,
    tree: HostTree<Vec<PathRoute>>,
    post: Vec<Rule>,
    /// Every routed frontend by its identity, with the position it was
    /// added at, which is where removal finds it.
    positions: HashMap<FrontendKey, RulePosition>,
}

/// A PRE or POST rule: tried on its own, in list order.
#[derive(Debug)]
struct Rule {
    host: HostPattern,
    path: PathRoute,
}

/// A path rule, its method filter and its route.
#[derive(Debug)]
struct PathRoute {
    path: PathMatcher,
    /// `None` matches every method.
    method: Option<Box<str>>,
    route: Arc<Route>,
    key: FrontendKey,
}

impl PathRoute {
    fn method_matches(&self, method: &str) -> bool {
        self.method.as_deref().is_none_or(|filter| filter == method)
    }
}

/// The identity the state uses for a frontend.
fn frontend_key(frontend: &RequestHttpFrontend) -> FrontendKey {
    FrontendKey {
        address: frontend.address.to_socket_addr(),
        hostname: frontend.hostname.clone(),
        path_kind: frontend.path.kind,
        path: frontend.path.value.clone(),
        method: frontend.method.clone(),
    }
}

impl Router {
    /// An empty table: every lookup answers `None`.
    pub fn new() -> Router {
        Router::default()
    }

    /// How many frontends are routed.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Whether no frontend is routed.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Adds a frontend at the position it names (`RulePosition`: PRE, POST
    /// or TREE). Refuses, naming the frontend and the problem, a frontend
    /// whose hostname is not a valid pattern, whose path regex does not
    /// compile, whose enum fields are unknown, whose headers cannot be
    /// written, that uses header predicates (not implemented here, and
    /// routing without them would send traffic where it was not meant to
    /// go), or whose identity (address, hostname, path kind and value,
    /// method) is already routed. On error the table is unchanged.
    pub fn add_frontend(&mut self, frontend: &RequestHttpFrontend) -> Result<(), RouterError> {
        let key = frontend_key(frontend);
        let name = || key.to_string();
        if self.positions.contains_key(&key) {
            return Err(RouterError::FrontendExists { frontend: name() });
        }
        let position = RulePosition::try_from(frontend.position).map_err(|_| {
            RouterError::InvalidFrontend {
                frontend: name(),
                reason: format!("unknown rule position {}", frontend.position),
            }
        })?;
        if !frontend.header_predicates.is_empty() {
            return Err(RouterError::InvalidFrontend {
                frontend: name(),
                reason: "header predicates are not supported".to_owned(),
            });
        }
        let host = HostPattern::parse(&frontend.hostname).map_err(|reason| {
            RouterError::InvalidHostname {
                frontend: name(),
                hostname: frontend.hostname.clone(),
                reason,
            }
        })?;
        let path = PathMatcher::new(&frontend.path).map_err(|reason| RouterError::InvalidPath {
            frontend: name(),
            reason,
        })?;
        let route = Route::new(frontend).map_err(|reason| RouterError::InvalidFrontend {
            frontend: name(),
            reason,
        })?;
        let path = PathRoute {
            path,
            // An empty filter could match no request; it means "any method".
            method: frontend
                .method
                .as_deref()
                .filter(|method| !method.is_empty())
                .map(Box::from),
            route: Arc::new(route),
            key: key.clone(),
        };
        match position {
            RulePosition::Pre => self.pre.push(Rule { host, path }),
            RulePosition::Post => self.post.push(Rule { host, path }),
            // Most hosts have one rule: no room reserved for more (Vec's
            // first push would make room for four).
            RulePosition::Tree => self
                .tree
                .get_or_insert_with(host, || Vec::with_capacity(1))
                .push(path),
        }
        self.positions.insert(key, position);
        Ok(())
    }

    /// Removes the frontend with the same identity as `frontend` (address,
    /// hostname as written, path kind and value, method), wherever it was
    /// added. Other fields are not compared. Routes already handed out stay
    /// valid for as long as they are held.
    pub fn remove_frontend(&mut self, frontend: &RequestHttpFrontend) -> Result<(), RouterError> {
        let key = frontend_key(frontend);
        let Some(position) = self.positions.remove(&key) else {
            return Err(RouterError::FrontendNotFound {
                frontend: key.to_string(),
            });
        };
        match position {
            RulePosition::Pre => self.pre.retain(|rule| rule.path.key != key),
            RulePosition::Post => self.post.retain(|rule| rule.path.key != key),
            RulePosition::Tree => {
                // The hostname parsed when the frontend was added, so it
                // parses now.
                if let Ok(host) = HostPattern::parse(&frontend.hostname)
                    && let Some(routes) = self.tree.get_mut(&host)
                {
                    routes.retain(|route| route.key != key);
                    if routes.is_empty() {
                        self.tree.remove(&host);
                    }
                }
            }
        }
        Ok(())
    }

    /// The route for a request, or `None` (the server answers 404).
    ///
    /// `host` is the request's authority host; a `:port` suffix and a
    /// trailing dot are ignored and case does not matter. `path` is the
    /// request target's path with its query string. `method` is compared
    /// as is. Allocates nothing for hosts up to 256 bytes.
    pub fn lookup(&self, host: &str, path: &str, method: &str) -> Option<&Arc<Route>> {
        let host = normalize_host(host)?;
        let host = host.as_bytes();
        let full_match = |rule: &&Rule| {
            rule.path.method_matches(method)
                && rule.host.matches(host)
                && rule.path.path.matches(path).is_some()
        };
        if let Some(rule) = self.pre.iter().find(full_match) {
            return Some(&rule.path.route);
        }
        if let Some(route) = self
            .tree
            .find(host)
            .and_then(|routes| best_path_route(routes, path, method))
        {
            return Some(route);
        }
        self.post
            .iter()
            .find(full_match)
            .map(|rule| &rule.path.route)
    }
}

/// The rule of one host that a request goes to, if any: a REGEX or EQUALS
/// rule with an equal method filter at once, otherwise the longest match
/// (REGEX and EQUALS rules without a method filter count as long as the
/// path), the later rule on ties.
fn best_path_route<'a>(
    routes: &'a [PathRoute],
    path: &str,
    method: &str,
) -> Option<&'a Arc<Route>> {
    let mut best: Option<(usize, &Arc<Route>)> = None;
    for route in routes.iter().filter(|route| route.method_matches(method)) {
        let length = match route.path.matches(path) {
            None => continue,
            Some(PathMatch::Whole) if route.method.is_some() => return Some(&route.route),
            Some(PathMatch::Whole) => path.len(),
            Some(PathMatch::Prefix(length)) => length,
        };
        if best.is_none_or(|(best_length, _)| length >= best_length) {
            best = Some((length, &route.route));
        }
    }
    best.map(|(_, route)| route)
}

#[cfg(test)]
mod tests;
