//! Answers the proxy writes itself: errors, redirects, refusals.
//!
//! An answer template is a whole raw HTTP response (status line, headers,
//! blank line, body) in which `%NAME` variables are replaced when it is
//! sent. The template for a status comes from the cluster, else the
//! listener, else the built-in set below. `Content-Length` is always
//! computed from the rendered body, and answers close the connection.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode};

use crate::body::ProxyBody;

/// The values a template may use.
#[derive(Debug, Default, Clone)]
pub struct AnswerContext<'a> {
    /// `%ROUTE`: the host and path that were asked for.
    pub route: &'a str,
    /// `%REQUEST_ID`.
    pub request_id: &'a str,
    /// `%CLUSTER_ID`.
    pub cluster_id: &'a str,
    /// `%BACKEND_ID`.
    pub backend_id: &'a str,
    /// `%DURATION`: a timeout, written like `10s`.
    pub duration: &'a str,
    /// `%CAPACITY`: a size limit in bytes.
    pub capacity: &'a str,
    /// `%PHASE`: where a request failed.
    pub phase: &'a str,
    /// `%REDIRECT_LOCATION`.
    pub redirect_location: &'a str,
    /// `%MESSAGE`: a human explanation.
    pub message: &'a str,
    /// `%WWW_AUTHENTICATE`: the challenge of a 401.
    pub www_authenticate: &'a str,
    /// `%RETRY_AFTER`: seconds, for 429 and 503.
    pub retry_after: &'a str,
}

fn built_in(status: u16) -> &'static str {
    match status {
        301 => "HTTP/1.1 301 Moved Permanently\r\nLocation: %REDIRECT_LOCATION\r\n\r\n",
        302 => "HTTP/1.1 302 Found\r\nLocation: %REDIRECT_LOCATION\r\n\r\n",
        308 => "HTTP/1.1 308 Permanent Redirect\r\nLocation: %REDIRECT_LOCATION\r\n\r\n",
        400 => concat!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/html; charset=utf-8\r\n\r\n",
            "<html><head><title>400 Bad Request</title></head><body>",
            "<h1>400 Bad Request</h1><p>The request could not be understood. %MESSAGE</p>",
            "<p>Request id: %REQUEST_ID</p></body></html>\n"
        ),
        401 => concat!(
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: %WWW_AUTHENTICATE\r\n",
            "Content-Type: text/html; charset=utf-8\r\n\r\n",
            "<html><head><title>401 Unauthorized</title></head><body>",
            "<h1>401 Unauthorized</h1><p>Access to %ROUTE is not allowed.</p>",
            "<p>Request id: %REQUEST_ID</p></body></html>\n"
        ),
        404 => concat!(
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/html; charset=utf-8\r\n\r\n",
            "<html><head><title>404 Not Found</title></head><body>",
            "<h1>404 Not Found</h1><p>No route is configured for %ROUTE.</p>",
            "<p>Request id: %REQUEST_ID</p></body></html>\n"
        ),
        405 => concat!(
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/html; charset=utf-8\r\n\r\n",
            "<html><head><title>405 Method Not Allowed</title></head><body>",
            "<h1>405 Method Not Allowed</h1><p>This proxy does not tunnel CONNECT requests.</p>",
            "<p>Request id: %REQUEST_ID</p></body></html>\n"
        ),
        408 => concat!(
            "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/html; charset=utf-8\r\n\r\n",
            "<html><head><title>408 Request Timeout</title></head><body>",
            "<h1>408 Request Timeout</h1><p>No complete request arrived within %DURATION.</p>",
            "<p>Request id: %REQUEST_ID</p></body></html>\n"
        ),
        413 => concat!(
            "HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/html; charset=utf-8\r\n\r\n",
            "<html><head><title>413 Payload Too Large</title></head><body>",
            "<h1>413 Payload Too Large</h1><p>The request is larger than %CAPACITY bytes.</p>",
            "<p>Request id: %REQUEST_ID</p></body></html>\n"
        ),
        414 => concat!(
            "HTTP/1.1 414 URI Too Long\r\nContent-Type: text/html; charset=utf-8\r\n\r\n",
            "<html><head><title>414 URI Too Long</title></head><body>",
            "<h1>414 URI Too Long</h1><p>The request line is too long. %MESSAGE</p>",
            "<p>Request id: %REQUEST_ID</p></body></html>\n"
        ),
        431 => concat!(
            "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/html; charset=utf-8\r\n\r\n",
            "<html><head><title>431 Request Header Fields Too Large</title></head><body>",
            "<h1>431 Request Header Fields Too Large</h1><p>The request head is too large. %MESSAGE</p>",
            "<p>Request id: %REQUEST_ID</p></body></html>\n"
        ),
        421 => concat!(
            "HTTP/1.1 421 Misdirected Request\r\nContent-Type: text/html; charset=utf-8\r\n\r\n",
            "<html><head><title>421 Misdirected Request</title></head><body>",
            "<h1>421 Misdirected Request</h1><p>%ROUTE is not served on this connection. %MESSAGE</p>",
            "<p>Request id: %REQUEST_ID</p></body></html>\n"
        ),
        429 => concat!(
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: %RETRY_AFTER\r\n",
            "Content-Type: text/html; charset=utf-8\r\n\r\n",
            "<html><head><title>429 Too Many Requests</title></head><body>",
            "<h1>429 Too Many Requests</h1><p>Too many connections from your address.</p>",
            "<p>Request id: %REQUEST_ID</p></body></html>\n"
        ),
        502 => concat!(
            "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html; charset=utf-8\r\n\r\n",
            "<html><head><title>502 Bad Gateway</title></head><body>",
            "<h1>502 Bad Gateway</h1><p>The backend %BACKEND_ID of %CLUSTER_ID failed. %MESSAGE</p>",
            "<p>Request id: %REQUEST_ID</p></body></html>\n"
        ),
        503 => concat!(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html; charset=utf-8\r\n\r\n",
            "<html><head><title>503 Service Unavailable</title></head><body>",
            "<h1>503 Service Unavailable</h1><p>No backend of %CLUSTER_ID could take the request. %MESSAGE</p>",
            "<p>Request id: %REQUEST_ID</p></body></html>\n"
        ),
        504 => concat!(
            "HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/html; charset=utf-8\r\n\r\n",
            "<html><head><title>504 Gateway Timeout</title></head><body>",
            "<h1>504 Gateway Timeout</h1><p>The backend %BACKEND_ID of %CLUSTER_ID did not answer within %DURATION.</p>",
            "<p>Request id: %REQUEST_ID</p></body></html>\n"
        ),
        505 => concat!(
            "HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Type: text/html; charset=utf-8\r\n\r\n",
            "<html><head><title>505 HTTP Version Not Supported</title></head><body>",
            "<h1>505 HTTP Version Not Supported</h1><p>Only HTTP/1.0 and HTTP/1.1 are spoken here. %MESSAGE</p>",
            "<p>Request id: %REQUEST_ID</p></body></html>\n"
        ),
        507 => concat!(
            "HTTP/1.1 507 Insufficient Storage\r\nContent-Type: text/html; charset=utf-8\r\n\r\n",
            "<html><head><title>507 Insufficient Storage</title></head><body>",
            "<h1>507 Insufficient Storage</h1><p>The proxy ran out of buffers (%CAPACITY bytes). %MESSAGE</p>",
            "<p>Request id: %REQUEST_ID</p></body></html>\n"
        ),
        _ => concat!(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n",
            "The proxy could not handle this request (%TEMPLATE_NAME). Request id: %REQUEST_ID\n"
        ),
    }
}

/// Replaces every `%NAME` known in `context`; unknown names stay as written.
fn fill(template: &str, status: u16, context: &AnswerContext<'_>) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(position) = rest.find('%') {
        out.push_str(&rest[..position]);
        rest = &rest[position + 1..];
        let name_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_uppercase() || *b == b'_')
            .count();
        let name = &rest[..name_len];
        let value: Option<std::borrow::Cow<'_, str>> = match name {
            "ROUTE" => Some(context.route.into()),
            "REQUEST_ID" => Some(context.request_id.into()),
            "CLUSTER_ID" => Some(context.cluster_id.into()),
            "BACKEND_ID" => Some(context.backend_id.into()),
            "DURATION" => Some(context.duration.into()),
            "CAPACITY" => Some(context.capacity.into()),
            "PHASE" => Some(context.phase.into()),
            "REDIRECT_LOCATION" => Some(context.redirect_location.into()),
            "MESSAGE" => Some(context.message.into()),
            "WWW_AUTHENTICATE" => Some(context.www_authenticate.into()),
            "RETRY_AFTER" => Some(context.retry_after.into()),
            "TEMPLATE_NAME" => Some(status.to_string().into()),
            _ => None,
        };
        match value {
            Some(value) => {
                out.push_str(&value);
                rest = &rest[name_len..];
            }
            None => out.push('%'),
        }
    }
    out.push_str(rest);
    out
}

/// Renders the answer for `status`: `template` when given (the cluster's or
/// listener's), else the built-in one. A template that does not parse as an
/// HTTP response falls back to the built-in answer, so a bad template never
/// leaves a client without an answer.
pub fn render(
    status: u16,
    template: Option<&str>,
    context: &AnswerContext<'_>,
    request_id_header: &HeaderName,
) -> Response<ProxyBody> {
    let rendered = template
        .map(|template| fill(template, status, context))
        .and_then(|text| parse(&text));
    let mut response = match rendered {
        Some(response) => response,
        None => parse(&fill(built_in(status), status, context))
            .unwrap_or_else(|| Response::new(ProxyBody::empty())),
    };
    let headers = response.headers_mut();
    headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    if let Ok(value) = HeaderValue::from_str(context.request_id)
        && !context.request_id.is_empty()
    {
        headers.insert(request_id_header.clone(), value);
    }
    response
}

/// Whether a template makes an HTTP response once filled (a frontend's
/// redirect template is checked before it is preferred to the others).
pub fn parses(template: &str) -> bool {
    parse(&fill(template, 0, &AnswerContext::default())).is_some()
}

/// The bytes of a rendered answer, for writing on a connection that hyper
/// does not drive (a client that never sent a request, the relay): one
/// `content-length`, the body's (any length or transfer coding the
/// response carried is left out), and a `date` when it has none.
pub fn to_bytes(response: Response<ProxyBody>) -> Vec<u8> {
    let (parts, body) = response.into_parts();
    let body = match body {
        ProxyBody::Full(Some(bytes)) => bytes,
        _ => Bytes::new(),
    };
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        parts.status.as_u16(),
        parts.status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in &parts.headers {
        // The length is the body's, written once below.
        if name == http::header::CONTENT_LENGTH || name == http::header::TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !parts.headers.contains_key(http::header::DATE) {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(&crate::date::now());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(&body);
    out
}

/// Parses a raw HTTP response. Headers whose value ends up empty (a variable
/// with nothing to say, like a 401 without realm) are left out.
fn parse(text: &str) -> Option<Response<ProxyBody>> {
    let (head, body) = match text.find("\r\n\r\n") {
        Some(end) => (&text[..end], &text[end + 4..]),
        None => match text.find("\n\n") {
            Some(end) => (&text[..end], &text[end + 2..]),
            None => (text, ""),
        },
    };
    let mut lines = head.lines();
    let status_line = lines.next()?;
    let mut parts = status_line.split_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    let status = StatusCode::from_u16(parts.next()?.parse().ok()?).ok()?;
    let mut response = Response::new(ProxyBody::full(Bytes::copy_from_slice(body.as_bytes())));
    *response.status_mut() = status;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let name = HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
        if name == http::header::CONTENT_LENGTH || name == http::header::TRANSFER_ENCODING {
            continue; // computed from the body
        }
        response
            .headers_mut()
            .append(name, HeaderValue::from_str(value).ok()?);
    }
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Statuses with a built-in answer.
    const BUILT_IN: [u16; 14] = [
        301, 302, 308, 400, 401, 404, 408, 413, 421, 429, 502, 503, 504, 507,
    ];

    fn header() -> HeaderName {
        HeaderName::from_static("sozu-id")
    }

    #[test]
    fn every_built_in_answer_renders() {
        let context = AnswerContext {
            request_id: "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            redirect_location: "https://example.com/",
            www_authenticate: "Basic realm=\"x\"",
            retry_after: "60",
            ..Default::default()
        };
        for status in BUILT_IN {
            let response = render(status, None, &context, &header());
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.headers()["connection"], "close");
            assert_eq!(response.headers()["sozu-id"], context.request_id);
        }
        let redirect = render(301, None, &context, &header());
        assert_eq!(redirect.headers()["location"], "https://example.com/");
    }

    #[test]
    fn templates_fill_variables_and_drop_empty_headers() {
        let template = "HTTP/1.1 503 Busy\r\nX-Cluster: %CLUSTER_ID\r\nX-Empty: %BACKEND_ID\r\n\r\nsorry %CLUSTER_ID, 100%";
        let context = AnswerContext {
            cluster_id: "web",
            ..Default::default()
        };
        let response = render(503, Some(template), &context, &header());
        assert_eq!(response.headers()["x-cluster"], "web");
        assert!(response.headers().get("x-empty").is_none());
        match response.into_body() {
            ProxyBody::Full(Some(bytes)) => assert_eq!(&bytes[..], b"sorry web, 100%"),
            _ => panic!("expected a full body"),
        }
    }

    #[test]
    fn bytes_carry_one_content_length_and_a_date() {
        let mut response = render(404, None, &AnswerContext::default(), &header());
        // A length that is not the body's, as a template or a caller may
        // have set it: replaced, not repeated.
        let headers = response.headers_mut();
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        headers.append(http::header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        let body_len = match response.body() {
            ProxyBody::Full(Some(bytes)) => bytes.len(),
            _ => panic!("expected a full body"),
        };
        let text = String::from_utf8(to_bytes(response)).unwrap();
        let head = &text[..text.find("\r\n\r\n").unwrap()];
        let lengths: Vec<&str> = head
            .lines()
            .filter_map(|line| line.split_once(": "))
            .filter(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .map(|(_, value)| value)
            .collect();
        assert_eq!(lengths, [body_len.to_string()], "{head}");
        let dates = head
            .lines()
            .filter(|line| line.starts_with("date: "))
            .count();
        assert_eq!(dates, 1, "{head}");

        // A date the answer has already is kept, alone.
        let mut dated = render(404, None, &AnswerContext::default(), &header());
        let value = HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT");
        dated.headers_mut().insert(http::header::DATE, value);
        let text = String::from_utf8(to_bytes(dated)).unwrap();
        assert_eq!(text.matches("date: ").count(), 1, "{text}");
        assert!(text.contains("date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"));
    }

    #[test]
    fn a_broken_template_falls_back_to_the_built_in_answer() {
        let response = render(
            404,
            Some("not http at all"),
            &AnswerContext::default(),
            &header(),
        );
        assert_eq!(response.status().as_u16(), 404);
    }
}
