//! What a matched frontend tells the server to do with a request.

use std::collections::BTreeMap;

use sozu_command::proto::command::{
    HeaderPosition, HstsConfig, RedirectPolicy, RedirectScheme, RequestHttpFrontend,
};

/// The outcome of routing: the frontend that matched, with its enum fields
/// checked and its header edits sorted by direction, so that serving a
/// request decodes nothing.
///
/// The server is expected to apply it in this order: a redirect policy other
/// than [`RedirectPolicy::Forward`] answers at once (301, 302, 308, 401 or a
/// silent close); then a route without cluster denies with 401; then
/// authentication if [`Route::required_auth`]; then forwarding with the
/// rewrites and header edits.
#[derive(Debug)]
pub struct Route {
    frontend: RequestHttpFrontend,
    redirect: RedirectPolicy,
    redirect_scheme: RedirectScheme,
    rewrite_port: Option<u16>,
    request_headers: Vec<HeaderEdit>,
    response_headers: Vec<HeaderEdit>,
}

/// A header to set on a request or a response; an empty value removes the
/// header instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderEdit {
    /// The header name, as written in the frontend.
    pub name: String,
    /// The value; empty means "remove this header".
    pub value: String,
}

impl HeaderEdit {
    /// Whether this edit removes the header rather than setting it.
    pub fn is_removal(&self) -> bool {
        self.value.is_empty()
    }
}

impl Route {
    /// Checks a frontend and keeps it. The error is the reason alone; the
    /// router adds which frontend it is about.
    pub(crate) fn new(frontend: &RequestHttpFrontend) -> Result<Route, String> {
        let redirect = match frontend.redirect {
            None => RedirectPolicy::Forward,
            Some(value) => RedirectPolicy::try_from(value)
                .map_err(|_| format!("unknown redirect policy {value}"))?,
        };
        let redirect_scheme = match frontend.redirect_scheme {
            None => RedirectScheme::UseSame,
            Some(value) => RedirectScheme::try_from(value)
                .map_err(|_| format!("unknown redirect scheme {value}"))?,
        };
        let rewrite_port = frontend
            .rewrite_port
            .map(|port| {
                u16::try_from(port).map_err(|_| format!("rewrite port {port} is above 65535"))
            })
            .transpose()?;
        let mut request_headers = Vec::new();
        let mut response_headers = Vec::new();
        for header in &frontend.headers {
            check_header_name(&header.key)?;
            check_header_value(&header.key, &header.val)?;
            let position = HeaderPosition::try_from(header.position).map_err(|_| {
                format!(
                    "header {:?} has unknown position {}",
                    header.key, header.position
                )
            })?;
            let edit = HeaderEdit {
                name: header.key.clone(),
                value: header.val.clone(),
            };
            match position {
                HeaderPosition::Request => request_headers.push(edit),
                HeaderPosition::Response => response_headers.push(edit),
                HeaderPosition::Both => {
                    request_headers.push(edit.clone());
                    response_headers.push(edit);
                }
                HeaderPosition::Unspecified => {
                    return Err(format!(
                        "header {:?} does not say whether it applies to requests, responses or both",
                        header.key
                    ));
                }
            }
        }
        Ok(Route {
            frontend: frontend.clone(),
            redirect,
            redirect_scheme,
            rewrite_port,
            request_headers,
            response_headers,
        })
    }

    /// The frontend this route was built from, for logs and anything not
    /// exposed below.
    pub fn frontend(&self) -> &RequestHttpFrontend {
        &self.frontend
    }

    /// The cluster to forward to; `None` means the frontend denies its
    /// requests (401).
    pub fn cluster_id(&self) -> Option<&str> {
        self.frontend.cluster_id.as_deref()
    }

    /// What to answer instead of forwarding, if anything (`Forward` when the
    /// frontend did not say).
    pub fn redirect(&self) -> RedirectPolicy {
        self.redirect
    }

    /// The scheme of a redirect's location (`UseSame` when not said).
    pub fn redirect_scheme(&self) -> RedirectScheme {
        self.redirect_scheme
    }

    /// The redirect location template, if the frontend has one.
    pub fn redirect_template(&self) -> Option<&str> {
        self.frontend.redirect_template.as_deref()
    }

    /// The host to send to the backend (or to redirect to) instead of the
    /// request's.
    pub fn rewrite_host(&self) -> Option<&str> {
        self.frontend.rewrite_host.as_deref()
    }

    /// The path to send to the backend (or to redirect to) instead of the
    /// request's.
    pub fn rewrite_path(&self) -> Option<&str> {
        self.frontend.rewrite_path.as_deref()
    }

    /// The port to use instead of the request's, checked to fit in 16 bits.
    pub fn rewrite_port(&self) -> Option<u16> {
        self.rewrite_port
    }

    /// Whether the request must carry credentials the cluster accepts.
    pub fn required_auth(&self) -> bool {
        self.frontend.required_auth.unwrap_or(false)
    }

    /// Header edits for the request sent to the backend, in frontend order
    /// (including those written for both directions).
    pub fn request_headers(&self) -> &[HeaderEdit] {
        &self.request_headers
    }

    /// Header edits for the response sent to the client, in frontend order
    /// (including those written for both directions).
    pub fn response_headers(&self) -> &[HeaderEdit] {
        &self.response_headers
    }

    /// The frontend's tags, for access logs.
    pub fn tags(&self) -> &BTreeMap<String, String> {
        &self.frontend.tags
    }

    /// The frontend's HSTS settings, which override the listener's.
    pub fn hsts(&self) -> Option<HstsConfig> {
        self.frontend.hsts
    }
}

/// A header name must be an RFC 9110 token, or it could never be written.
fn check_header_name(name: &str) -> Result<(), String> {
    sozu_command::validate::header_name(name)
}

/// A header value must not break the message it is written into.
fn check_header_value(name: &str, value: &str) -> Result<(), String> {
    sozu_command::validate::header_value(name, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sozu_command::proto::command::{Header, PathRule, RulePosition, SocketAddress};

    fn frontend() -> RequestHttpFrontend {
        RequestHttpFrontend {
            cluster_id: Some("api".to_owned()),
            address: SocketAddress::from("127.0.0.1:8080".parse::<std::net::SocketAddr>().unwrap()),
            hostname: "example.com".to_owned(),
            path: PathRule::default(),
            position: RulePosition::Tree as i32,
            ..Default::default()
        }
    }

    fn header(position: HeaderPosition, key: &str, val: &str) -> Header {
        Header {
            position: position as i32,
            key: key.to_owned(),
            val: val.to_owned(),
        }
    }

    #[test]
    fn defaults_when_the_frontend_says_nothing() {
        let route = Route::new(&frontend()).unwrap();
        assert_eq!(route.cluster_id(), Some("api"));
        assert_eq!(route.redirect(), RedirectPolicy::Forward);
        assert_eq!(route.redirect_scheme(), RedirectScheme::UseSame);
        assert_eq!(route.rewrite_port(), None);
        assert!(!route.required_auth());
        assert!(route.request_headers().is_empty());
        assert!(route.hsts().is_none());
    }

    #[test]
    fn everything_the_server_needs_is_exposed() {
        let mut f = frontend();
        f.cluster_id = None;
        f.redirect = Some(RedirectPolicy::PermanentRedirect as i32);
        f.redirect_scheme = Some(RedirectScheme::UseHttps as i32);
        f.redirect_template = Some("https://%HOST%PATH".to_owned());
        f.rewrite_host = Some("backend.internal".to_owned());
        f.rewrite_path = Some("/v2".to_owned());
        f.rewrite_port = Some(8443);
        f.required_auth = Some(true);
        f.tags.insert("owner".to_owned(), "team-a".to_owned());
        f.hsts = Some(HstsConfig {
            enabled: Some(true),
            max_age: Some(31_536_000),
            ..Default::default()
        });
        f.headers = vec![
            header(HeaderPosition::Request, "X-Tenant", "a"),
            header(HeaderPosition::Response, "Server", ""),
            header(HeaderPosition::Both, "X-Trace", "on"),
        ];
        let route = Route::new(&f).unwrap();
        assert_eq!(route.cluster_id(), None);
        assert_eq!(route.redirect(), RedirectPolicy::PermanentRedirect);
        assert_eq!(route.redirect_scheme(), RedirectScheme::UseHttps);
        assert_eq!(route.redirect_template(), Some("https://%HOST%PATH"));
        assert_eq!(route.rewrite_host(), Some("backend.internal"));
        assert_eq!(route.rewrite_path(), Some("/v2"));
        assert_eq!(route.rewrite_port(), Some(8443));
        assert!(route.required_auth());
        assert_eq!(route.tags()["owner"], "team-a");
        assert_eq!(route.hsts().unwrap().max_age, Some(31_536_000));
        let names = |edits: &[HeaderEdit]| edits.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(route.request_headers()), ["X-Tenant", "X-Trace"]);
        assert_eq!(names(route.response_headers()), ["Server", "X-Trace"]);
        assert!(route.response_headers()[0].is_removal());
        assert!(!route.request_headers()[0].is_removal());
        assert_eq!(route.frontend().hostname, "example.com");
    }

    #[test]
    fn bad_fields_are_refused_with_a_reason() {
        let error = |edit: fn(&mut RequestHttpFrontend)| {
            let mut f = frontend();
            edit(&mut f);
            Route::new(&f).unwrap_err()
        };
        assert!(error(|f| f.redirect = Some(42)).contains("redirect policy 42"));
        assert!(error(|f| f.redirect_scheme = Some(9)).contains("redirect scheme 9"));
        assert!(error(|f| f.rewrite_port = Some(70_000)).contains("70000"));
        assert!(
            error(|f| f.headers = vec![header(HeaderPosition::Unspecified, "X-A", "1")])
                .contains("requests, responses or both")
        );
        assert!(
            error(|f| f.headers = vec![Header {
                position: 12,
                key: "X-A".into(),
                val: "1".into()
            }])
            .contains("unknown position 12")
        );
        assert!(
            error(|f| f.headers = vec![header(HeaderPosition::Request, "X A", "1")])
                .contains("not a valid HTTP header name")
        );
        assert!(
            error(|f| f.headers = vec![header(HeaderPosition::Request, "X-A", "1\r\nX-B: 2")])
                .contains("line break")
        );
    }
}
