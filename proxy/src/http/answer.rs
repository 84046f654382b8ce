//! Answers the proxy gives itself (templates, redirects) and the exchange
//! record every request leaves: metrics and the access log line.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;
use sozu_command::proto::command::Cluster;

use super::policy::Refused;
use crate::answers::{self, AnswerContext};
use crate::balancer::Backend;
use crate::body::{ProxyBody, Upload};
use crate::context::Shared;
use crate::metrics::Answered;
use crate::settings::ListenerSettings;

/// The listener's template for a status, if it defines one.
pub(super) fn listener_template(config: &ListenerSettings, status: u16) -> Option<String> {
    config.answers.get(&status).cloned()
}

/// The cluster's template for a status, if it defines one.
pub(super) fn cluster_template(cluster: &Cluster, status: u16) -> Option<String> {
    if let Some(template) = cluster.answers.get(&status.to_string()) {
        return Some(template.clone());
    }
    if status == 503 {
        return cluster.answer_503.clone();
    }
    None
}

/// The cluster's template for a status, then the listener's.
pub(super) fn templates(
    cluster: Option<&Cluster>,
    config: &ListenerSettings,
    status: u16,
) -> [Option<String>; 2] {
    [
        cluster.and_then(|cluster| cluster_template(cluster, status)),
        listener_template(config, status),
    ]
}

/// The host a request is for: the absolute URI's authority, else the Host
/// header; without any port. `None` when missing or malformed, which
/// includes more than one Host line and a port that is not a port number
/// (RFC 9112, 3.2: both are answered 400).
pub(super) fn request_host(request: &Request<Incoming>) -> Option<String> {
    if request
        .headers()
        .get_all(header::HOST)
        .iter()
        .nth(1)
        .is_some()
    {
        return None;
    }
    let authority = match request.uri().authority() {
        Some(authority) => authority.as_str().to_owned(),
        None => {
            let host = request.headers().get(header::HOST)?.to_str().ok()?;
            host.parse::<http::uri::Authority>()
                .ok()?
                .as_str()
                .to_owned()
        }
    };
    if authority.contains('@') {
        return None;
    }
    let host = host_of_authority(&authority)?;
    if host.is_empty() {
        return None;
    }
    Some(host.to_owned())
}

/// The host of a `host[:port]` authority, or `None` when the port is not
/// a port number (digits, at most 65535; an empty port counts as none).
pub(super) fn host_of_authority(authority: &str) -> Option<&str> {
    // An IPv6 literal is bracketed, and its colons are not a port's.
    let port_start = match authority.rfind(']') {
        Some(end) => authority[end..].find(':').map(|colon| end + colon),
        None => authority.rfind(':'),
    };
    let Some(colon) = port_start else {
        return Some(authority);
    };
    let (host, port) = (&authority[..colon], &authority[colon + 1..]);
    if port.is_empty() || (port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok())
    {
        Some(host)
    } else {
        None
    }
}

fn strip_port(authority: &str) -> &str {
    match authority.rsplit_once(':') {
        Some((host, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && !host.ends_with(':') =>
        {
            host
        }
        _ => authority,
    }
}

/// Everything about a request that outlives its routing, for the answer,
/// the access log and the metrics.
pub(super) struct Exchange {
    pub(super) started: Instant,
    /// The request id, a ULID, ready to be sent as a header.
    pub(super) request_id: HeaderValue,
    pub(super) id_header: HeaderName,
    pub(super) method: http::Method,
    pub(super) route: String,
    /// The frontend that matched, once routed.
    pub(super) frontend: Option<Arc<crate::router::Route>>,
    pub(super) backend: Option<Arc<Backend>>,
    pub(super) connect_time: Option<Duration>,
    pub(super) response_time: Option<Duration>,
    pub(super) upload: Rc<Upload>,
    pub(super) shared: Rc<Shared>,
    pub(super) peer: SocketAddr,
    /// Whether the listener is HTTPS: the access record's protocol.
    pub(super) secure: bool,
}

impl Exchange {
    /// Answers as the policy decided, counted and logged.
    #[allow(clippy::boxed_local, reason = "the policy hands refusals boxed")]
    pub(super) fn refuse(&mut self, mut refused: Box<Refused>) -> Response<ProxyBody> {
        if let Some(route) = refused.route.take() {
            self.frontend = Some(route);
        }
        let templates = std::mem::take(&mut refused.templates);
        self.answer(refused.status, templates, refused.context())
    }

    /// The answer when no backend took the request: 502 when one took it
    /// and failed (`failed_exchange` says how), else 503.
    pub(super) fn unavailable(
        &mut self,
        config: &ListenerSettings,
        cluster_config: &Cluster,
        failed_exchange: Option<String>,
        none_tried: bool,
    ) -> Response<ProxyBody> {
        if let Some(message) = failed_exchange {
            // A backend took the request and failed it, and no other one
            // could take it instead: a bad gateway, not an unavailable one.
            return self.answer(
                502,
                templates(Some(cluster_config), config, 502),
                AnswerContext {
                    message: &message,
                    ..Default::default()
                },
            );
        }
        let retry_after = cluster_config
            .retry_after
            .unwrap_or(self.shared.options.retry_after)
            .to_string();
        let message = if none_tried {
            "The cluster has no available backend."
        } else {
            "Every connection attempt failed."
        };
        self.backend = None;
        self.answer(
            503,
            templates(Some(cluster_config), config, 503),
            AnswerContext {
                message,
                retry_after: &retry_after,
                ..Default::default()
            },
        )
    }

    /// The answer when a backend failed the request: 502.
    pub(super) fn bad_gateway(
        &self,
        config: &ListenerSettings,
        cluster_config: &Cluster,
        message: &str,
    ) -> Response<ProxyBody> {
        self.answer(
            502,
            templates(Some(cluster_config), config, 502),
            AnswerContext {
                message,
                ..Default::default()
            },
        )
    }

    /// The answer when the client's body broke on the way: 400.
    pub(super) fn body_unreadable(
        &self,
        config: &ListenerSettings,
        cluster_config: &Cluster,
    ) -> Response<ProxyBody> {
        self.answer(
            400,
            templates(Some(cluster_config), config, 400),
            AnswerContext {
                message: "The request body could not be read.",
                phase: "request body",
                ..Default::default()
            },
        )
    }

    /// The answer when the backend was silent for `timeout`: 504.
    pub(super) fn timed_out(
        &self,
        config: &ListenerSettings,
        cluster_config: &Cluster,
        timeout: Duration,
    ) -> Response<ProxyBody> {
        let duration = format!("{}s", timeout.as_secs());
        self.answer(
            504,
            templates(Some(cluster_config), config, 504),
            AnswerContext {
                duration: &duration,
                ..Default::default()
            },
        )
    }

    pub(super) fn request_id(&self) -> &str {
        self.request_id.to_str().unwrap_or_default()
    }

    pub(super) fn cluster_id(&self) -> Option<&str> {
        self.frontend.as_ref()?.cluster_id()
    }

    /// Records metrics and writes the access log line.
    pub(super) fn finish(&self, status: u16, bytes_out: u64) {
        let service_time = self.started.elapsed();
        let answered = Answered {
            status,
            bytes_in: self.upload.bytes.get(),
            bytes_out,
            connect_time: self.connect_time,
            response_time: self.response_time,
            service_time,
        };
        let backend_id = self.backend.as_ref().map(|backend| backend.id());
        self.shared
            .metrics
            .borrow_mut()
            .record(self.cluster_id(), backend_id, &answered);
        // The route is the host then the path (or `*`).
        let path_start = self.route.find(['/', '*']).unwrap_or(self.route.len());
        let millis = |time: Option<Duration>| time.map_or(-1.0, |t| t.as_secs_f64() * 1000.0);
        tracing::info!(
            target: "access",
            request_id = self.request_id(),
            client = %self.peer,
            cluster = self.cluster_id().unwrap_or("-"),
            backend = backend_id.unwrap_or("-"),
            backend_address = %self.backend.as_ref().map(|b| b.address().to_string()).unwrap_or_else(|| "-".into()),
            method = %self.method,
            host = self.route.split_at(path_start).0,
            path = self.route.split_at(path_start).1,
            protocol = if self.secure { "https" } else { "http" },
            status,
            bytes_in = answered.bytes_in,
            bytes_out,
            service_ms = service_time.as_secs_f64() * 1000.0,
            response_ms = millis(self.response_time),
            connect_ms = millis(self.connect_time),
            "request"
        );
    }

    /// Answers with a template, counted and logged. `extra` carries the
    /// variables specific to this answer; the exchange fills in the rest.
    pub(super) fn answer(
        &self,
        status: u16,
        templates: [Option<String>; 2],
        extra: AnswerContext<'_>,
    ) -> Response<ProxyBody> {
        let template = templates.into_iter().flatten().next();
        let context = AnswerContext {
            route: &self.route,
            request_id: self.request_id(),
            cluster_id: self.cluster_id().unwrap_or_default(),
            backend_id: self.backend.as_ref().map_or("", |b| b.id()),
            ..extra
        };
        let response = answers::render(status, template.as_deref(), &context, &self.id_header);
        let length = match response.body() {
            ProxyBody::Full(Some(bytes)) => bytes.len() as u64,
            _ => 0,
        };
        self.finish(status, length);
        response
    }
}
pub(super) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A new request id: a ULID, as a header value.
pub(super) fn new_request_id() -> HeaderValue {
    let mut text = [0; ulid::ULID_LEN];
    let text = ulid::Ulid::new().array_to_str(&mut text);
    HeaderValue::from_str(text).expect("a ULID is a valid header value")
}

pub(super) fn redirect_location(scheme: &str, host: &str, port: Option<u32>, path: &str) -> String {
    let port = match port {
        Some(80) if scheme == "http" => String::new(),
        Some(443) if scheme == "https" => String::new(),
        Some(port) => format!(":{port}"),
        None => String::new(),
    };
    let host = strip_port(host);
    format!("{scheme}://{host}{port}{path}")
}

#[cfg(test)]
mod tests {
    use super::host_of_authority;

    #[test]
    fn the_host_of_an_authority_is_found_and_a_bad_port_refused() {
        for (authority, host) in [
            ("app.test", Some("app.test")),
            ("app.test:8080", Some("app.test")),
            ("app.test:", Some("app.test")),
            ("app.test:65535", Some("app.test")),
            ("[::1]", Some("[::1]")),
            ("[::1]:443", Some("[::1]")),
            ("app.test:abc", None),
            ("app.test:80a", None),
            ("app.test:65536", None),
            ("app.test:+80", None),
            ("[::1]:x", None),
        ] {
            assert_eq!(host_of_authority(authority), host, "{authority}");
        }
    }
}
