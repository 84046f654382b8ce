//! The hyper path: requests hyper parsed (HTTP/2 clients, and the HTTP/1
//! requests the relay hands over) go through the policy, then have their
//! head rewritten for the backend as `http` values.

use std::convert::Infallible;
use std::rc::Rc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{Request, Response, Uri};
use hyper::body::Incoming;

use super::ConnectionContext;
use super::answer::{Exchange, X_REQUEST_ID, new_request_id, request_host};
use super::hyper_forward::{Forwarding, forward};
use super::policy::{self, Admitted, Asked};
use crate::body::{ForwardedBody, ProxyBody};
use crate::forwarding::{self, Origin};
use crate::settings::ListenerSettings;

pub(super) async fn handle(
    context: Rc<ConnectionContext>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    context.requests.set(context.requests.get() + 1);
    context.request_arrived.notify_one();
    Ok(proxy(context, request).await)
}

async fn proxy(context: Rc<ConnectionContext>, request: Request<Incoming>) -> Response<ProxyBody> {
    let config = context.listener.settings.borrow().clone();
    let client_version = request.version();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let host = request_host(&request);
    let route_host = host.as_deref().unwrap_or("-");
    let mut route = String::with_capacity(route_host.len() + path_and_query.len());
    route.push_str(route_host);
    route.push_str(&path_and_query);
    let mut exchange = Exchange {
        started: Instant::now(),
        request_id: new_request_id(),
        id_header: config.id_header.clone(),
        method: request.method().clone(),
        route,
        frontend: None,
        backend: None,
        connect_time: None,
        response_time: None,
        upload: Rc::default(),
        shared: context.shared.clone(),
        peer: context.peer,
        secure: config.secure,
    };
    let asked = Asked {
        host: host.as_deref(),
        path: &path_and_query,
        method: request.method().as_str(),
    };
    let decided = policy::decide(&context, &config, &asked, |cluster| {
        crate::auth::authorized(request.headers(), &cluster.authorized_hashes)
    });
    let admitted = match decided {
        Ok(admitted) => admitted,
        Err(refused) => return exchange.refuse(refused),
    };
    exchange.frontend = Some(admitted.route.clone());
    let host = host.unwrap_or_default();
    let forwarding = prepare(
        &context,
        &config,
        &exchange,
        &admitted,
        request,
        &host,
        &path_and_query,
    );
    forward(
        context.shared.clone(),
        &config,
        exchange,
        admitted,
        forwarding,
        client_version,
    )
    .await
}

/// The request as the backend will see it: hop-by-hop headers removed,
/// forwarding headers, request id and the frontend's edits added, the
/// target in origin form.
fn prepare(
    context: &ConnectionContext,
    config: &ListenerSettings,
    exchange: &Exchange,
    admitted: &Admitted,
    mut request: Request<Incoming>,
    host: &str,
    path_and_query: &str,
) -> Forwarding {
    let Admitted {
        route,
        cluster_config,
        ..
    } = admitted;
    let upgrade = request.headers().contains_key(header::UPGRADE);
    let http2 = cluster_config.http2 == Some(true);
    // Read before hop-by-hop headers go: an HTTP/2 backend is told again.
    let accepts_trailers = http2 && crate::http2::accepts_trailers(request.headers());
    let target_authority = request
        .uri()
        .authority()
        .map(|authority| authority.as_str().to_owned());
    let sticky = if cluster_config.sticky_session {
        forwarding::take_sticky_cookie(request.headers_mut(), &config.sticky_name)
    } else {
        None
    };
    {
        let headers = request.headers_mut();
        forwarding::remove_hop_by_hop(headers, upgrade);
        let forwarding = context.forwarding(&Origin {
            peer: context.peer,
            listener: config.public_address.unwrap_or(context.listener_address),
            secure: config.secure,
        });
        forwarding::add_forwarding_headers(headers, &forwarding, config.forwarded_headers);
        forwarding::apply_real_ip(
            headers,
            &forwarding,
            config.elide_x_real_ip,
            config.send_x_real_ip,
        );
        if !headers.contains_key(X_REQUEST_ID) {
            headers.insert(X_REQUEST_ID, exchange.request_id.clone());
        }
        headers.insert(exchange.id_header.clone(), exchange.request_id.clone());
        // An absolute-form target names the host: a proxy must send that,
        // not the Host header it received (RFC 9112, 3.2.2).
        if let Some(authority) = &target_authority
            && let Ok(value) = HeaderValue::from_str(authority)
        {
            headers.insert(header::HOST, value);
        }
        forwarding::apply_edits(headers, route.request_headers());
        if let Some(rewrite_host) = route.rewrite_host()
            && let Ok(value) = HeaderValue::from_str(rewrite_host)
        {
            if let Some(original) = headers.get(header::HOST).cloned() {
                headers.insert("x-forwarded-host", original);
            }
            headers.insert(header::HOST, value);
        }
        if !headers.contains_key(header::HOST)
            && let Ok(value) = HeaderValue::from_str(target_authority.as_deref().unwrap_or(host))
        {
            headers.insert(header::HOST, value);
        }
    }
    // The backend gets the origin form (path and query) or the rewritten
    // path; a request already in origin form keeps its URI as it is.
    let rewrite_path = route.rewrite_path();
    let origin_form = request.uri().scheme().is_none() && request.uri().authority().is_none();
    if rewrite_path.is_some() || !origin_form {
        *request.uri_mut() = rewrite_path
            .unwrap_or(path_and_query)
            .parse::<Uri>()
            .unwrap_or_else(|_| Uri::from_static("/"));
    }
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    // Backends are spoken to in HTTP/1.1, whatever the client speaks, or
    // in HTTP/2 when their cluster says so.
    *request.version_mut() = http::Version::HTTP_11;
    if http2 {
        crate::http2::to_http2(&mut request, accepts_trailers);
    }
    let (parts, incoming) = request.into_parts();
    Forwarding {
        request: Request::from_parts(parts, ForwardedBody::new(incoming, exchange.upload.clone())),
        sticky,
        client_upgrade,
        http2,
    }
}
