//! What a request meets before it is forwarded: the host check, routing,
//! the frontend's redirects and refusals, Basic authentication and the
//! per-IP connection limit. Each step either answers the request or lets it
//! through; both HTTP/1 paths (the relay and hyper's) ask the same steps.

use std::rc::Rc;
use std::sync::Arc;

use sozu_command::proto::command::{Cluster, RedirectPolicy, RedirectScheme};

use super::ConnectionContext;
use super::answer::{listener_template, redirect_location, templates};
use crate::answers::{self, AnswerContext};
use crate::context::ClusterRuntime;
use crate::router::Route;
use crate::settings::ListenerSettings;

/// What the request asks, as the policy reads it.
pub(super) struct Asked<'a> {
    /// The host without its port; `None` when missing or malformed.
    pub(super) host: Option<&'a str>,
    /// The path and query.
    pub(super) path: &'a str,
    pub(super) method: &'a str,
}

/// A request let through: the frontend it matched and its cluster.
pub(super) struct Admitted {
    pub(super) route: Arc<Route>,
    pub(super) cluster: Rc<ClusterRuntime>,
    pub(super) cluster_config: Rc<Cluster>,
}

/// An answer the policy gives instead of forwarding, to be rendered.
#[derive(Default)]
pub(super) struct Refused {
    pub(super) status: u16,
    pub(super) templates: [Option<String>; 2],
    /// The frontend that matched, when one did.
    pub(super) route: Option<Arc<Route>>,
    pub(super) message: String,
    pub(super) phase: &'static str,
    pub(super) location: String,
    pub(super) realm: String,
    pub(super) retry_after: String,
}

impl Refused {
    /// The answer's own variables (the exchange adds the others).
    pub(super) fn context(&self) -> AnswerContext<'_> {
        AnswerContext {
            message: &self.message,
            phase: self.phase,
            redirect_location: &self.location,
            www_authenticate: &self.realm,
            retry_after: &self.retry_after,
            ..Default::default()
        }
    }
}

/// Runs the request through every step: it is let through, or answered.
/// `authorized` tells whether the request's credentials match a cluster's.
pub(super) fn decide(
    context: &ConnectionContext,
    config: &ListenerSettings,
    asked: &Asked<'_>,
    authorized: impl FnOnce(&Cluster) -> bool,
) -> Result<Admitted, Box<Refused>> {
    let shared = &context.shared;
    let Some(host) = asked.host else {
        return Err(Box::new(Refused {
            status: 400,
            templates: [listener_template(config, 400), None],
            message: "The request has no valid host.".into(),
            phase: "headers",
            ..Default::default()
        }));
    };
    if config.strict_sni
        && let Some(server_name) = &context.server_name
        && !host.trim_end_matches('.').eq_ignore_ascii_case(server_name)
    {
        return Err(Box::new(Refused {
            status: 421,
            templates: [listener_template(config, 421), None],
            message: format!("This connection was opened for {server_name}."),
            ..Default::default()
        }));
    }
    let route = context
        .listener
        .router
        .borrow()
        .lookup(host, asked.path, asked.method)
        .cloned();
    let Some(route) = route else {
        shared.metrics.borrow_mut().unrouted += 1;
        return Err(Box::new(Refused {
            status: 404,
            templates: [listener_template(config, 404), None],
            ..Default::default()
        }));
    };
    let cluster = route
        .cluster_id()
        .and_then(|id| shared.clusters.borrow().get(id).cloned());
    let cluster_config = cluster
        .as_ref()
        .map(|cluster| cluster.config.borrow().clone());
    let refuse = |mut refused: Box<Refused>| {
        refused.route = Some(route.clone());
        refused
    };
    frontend_policy(config, &route, cluster_config.as_deref(), host, asked.path).map_err(refuse)?;
    let (Some(cluster), Some(cluster_config)) = (cluster, cluster_config) else {
        return Err(refuse(Box::new(Refused {
            status: 503,
            templates: [listener_template(config, 503), None],
            message: "The cluster of this route does not exist.".into(),
            ..Default::default()
        })));
    };
    cluster_policy(config, &route, &cluster_config, asked, authorized).map_err(refuse)?;
    per_ip_limit(context, config, &cluster_config).map_err(refuse)?;
    Ok(Admitted {
        route,
        cluster,
        cluster_config,
    })
}

/// The frontend's redirects, and its refusal when it has no cluster.
fn frontend_policy(
    config: &ListenerSettings,
    route: &Route,
    cluster_config: Option<&Cluster>,
    host: &str,
    path: &str,
) -> Result<(), Box<Refused>> {
    let redirect = route.redirect();
    let redirect_status = match redirect {
        RedirectPolicy::Permanent => Some(301),
        RedirectPolicy::Found => Some(302),
        RedirectPolicy::PermanentRedirect => Some(308),
        _ => None,
    };
    if let Some(status) = redirect_status {
        let scheme = match route.redirect_scheme() {
            RedirectScheme::UseHttps => "https",
            RedirectScheme::UseHttp => "http",
            RedirectScheme::UseSame if config.secure => "https",
            RedirectScheme::UseSame => "http",
        };
        let port = route
            .rewrite_port()
            .map(u32::from)
            .or_else(|| cluster_config.and_then(|c| c.https_redirect_port));
        let location = redirect_location(
            scheme,
            route.rewrite_host().unwrap_or(host),
            port,
            route.rewrite_path().unwrap_or(path),
        );
        // The frontend's redirect_template is a whole answer template, as
        // in Sozu; one that does not parse gives way to the usual choice.
        let [cluster_template, listener_template] = templates(cluster_config, config, status);
        let templates = [
            route
                .redirect_template()
                .filter(|template| answers::parses(template))
                .map(str::to_owned)
                .or(cluster_template),
            listener_template,
        ];
        return Err(Box::new(Refused {
            status,
            templates,
            location,
            ..Default::default()
        }));
    }
    if redirect == RedirectPolicy::Unauthorized || route.cluster_id().is_none() {
        let realm = cluster_config
            .and_then(|c| c.www_authenticate.clone())
            .unwrap_or_default();
        return Err(Box::new(Refused {
            status: 401,
            templates: templates(cluster_config, config, 401),
            realm,
            ..Default::default()
        }));
    }
    Ok(())
}

/// The cluster's redirect to HTTPS and its Basic authentication.
fn cluster_policy(
    config: &ListenerSettings,
    route: &Route,
    cluster_config: &Cluster,
    asked: &Asked<'_>,
    authorized: impl FnOnce(&Cluster) -> bool,
) -> Result<(), Box<Refused>> {
    if cluster_config.https_redirect {
        let location = redirect_location(
            "https",
            asked.host.unwrap_or_default(),
            cluster_config.https_redirect_port,
            asked.path,
        );
        return Err(Box::new(Refused {
            status: 301,
            templates: templates(Some(cluster_config), config, 301),
            location,
            ..Default::default()
        }));
    }
    if route.required_auth() && !authorized(cluster_config) {
        let realm = cluster_config
            .www_authenticate
            .clone()
            .unwrap_or_else(|| format!("Basic realm=\"{}\"", cluster_config.cluster_id));
        return Err(Box::new(Refused {
            status: 401,
            templates: templates(Some(cluster_config), config, 401),
            realm,
            ..Default::default()
        }));
    }
    Ok(())
}

/// The per-IP connection limit, once the request is to be forwarded.
fn per_ip_limit(
    context: &ConnectionContext,
    config: &ListenerSettings,
    cluster_config: &Cluster,
) -> Result<(), Box<Refused>> {
    let shared = &context.shared;
    let limit = cluster_config
        .max_connections_per_ip
        .unwrap_or_else(|| shared.max_connections_per_ip.get());
    if shared
        .connections_per_ip
        .admit(&context.slots, &cluster_config.cluster_id, limit)
    {
        return Ok(());
    }
    // Retry-After 0 means no header (an empty header is left out).
    let retry_after = match cluster_config
        .retry_after
        .unwrap_or(shared.options.retry_after)
    {
        0 => String::new(),
        seconds => seconds.to_string(),
    };
    Err(Box::new(Refused {
        status: 429,
        templates: templates(Some(cluster_config), config, 429),
        retry_after,
        message: "Too many connections from this address.".into(),
        ..Default::default()
    }))
}
