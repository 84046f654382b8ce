//! The settings of an HTTP or HTTPS listener that requests use, resolved
//! once when the listener is added or updated (not on every request).

use std::collections::HashMap;
use std::net::SocketAddr;

use http::HeaderName;
use sozu_command::proto::command::{CustomHttpAnswers, HttpListenerConfig, HttpsListenerConfig};

/// The default name of the request id header.
pub const DEFAULT_REQUEST_ID_HEADER: &str = "sozu-id";

/// What the request path needs to know about its listener.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    /// The address announced in `Forwarded: by=`, when not the one the
    /// listener listens on.
    pub public_address: Option<SocketAddr>,
    /// Name of the sticky-session cookie.
    pub sticky_name: String,
    /// Client idle timeout, seconds.
    pub front_timeout: u32,
    /// Backend response timeout, seconds.
    pub back_timeout: u32,
    /// Backend connection timeout, seconds.
    pub connect_timeout: u32,
    /// Time for a complete request head, seconds.
    pub request_timeout: u32,
    /// Answer templates by status (the listener's own).
    pub answers: HashMap<u16, String>,
    /// The request id header.
    pub id_header: HeaderName,
    /// Which forwarding headers to add (`ForwardedHeaders`).
    pub forwarded_headers: i32,
    /// Remove `X-Real-IP` from requests.
    pub elide_x_real_ip: bool,
    /// Set `X-Real-IP` to the client address.
    pub send_x_real_ip: bool,
    /// The listener terminates TLS.
    pub secure: bool,
    /// The request host must equal the TLS server name (421 otherwise).
    pub strict_sni: bool,
    /// Connections start with a PROXY protocol header.
    pub expect_proxy: bool,
    /// HTTP/2 streams a client may have open at once (the default when
    /// `None`).
    pub h2_max_concurrent_streams: Option<u32>,
    /// Largest HTTP/2 header list accepted, bytes (the proxy's header size
    /// limit when `None`).
    pub h2_max_header_list_size: Option<u32>,
}

fn answers(
    legacy: Option<&CustomHttpAnswers>,
    map: &std::collections::BTreeMap<String, String>,
) -> HashMap<u16, String> {
    let mut answers = HashMap::new();
    if let Some(legacy) = legacy {
        let fields = [
            (301, &legacy.answer_301),
            (400, &legacy.answer_400),
            (401, &legacy.answer_401),
            (404, &legacy.answer_404),
            (408, &legacy.answer_408),
            (413, &legacy.answer_413),
            (421, &legacy.answer_421),
            (429, &legacy.answer_429),
            (502, &legacy.answer_502),
            (503, &legacy.answer_503),
            (504, &legacy.answer_504),
            (507, &legacy.answer_507),
        ];
        for (status, template) in fields {
            if let Some(template) = template {
                answers.insert(status, template.clone());
            }
        }
    }
    // The newer map wins over the older fields.
    for (status, template) in map {
        if let Ok(status) = status.trim().parse::<u16>() {
            answers.insert(status, template.clone());
        }
    }
    answers
}

fn id_header(name: Option<&str>) -> HeaderName {
    name.and_then(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .unwrap_or_else(|| HeaderName::from_static(DEFAULT_REQUEST_ID_HEADER))
}

/// Both listener configurations carry these fields under the same names.
macro_rules! settings_from {
    ($config:ident, secure: $secure:expr, strict_sni: $strict:expr, h2_streams: $h2_streams:expr, h2_headers: $h2_headers:expr) => {
        ListenerSettings {
            public_address: $config
                .public_address
                .map(|address| address.to_socket_addr()),
            sticky_name: $config.sticky_name.clone(),
            front_timeout: $config.front_timeout,
            back_timeout: $config.back_timeout,
            connect_timeout: $config.connect_timeout,
            request_timeout: $config.request_timeout,
            answers: answers($config.http_answers.as_ref(), &$config.answers),
            id_header: id_header($config.sozu_id_header.as_deref()),
            forwarded_headers: $config.forwarded_headers.unwrap_or(0),
            elide_x_real_ip: $config.elide_x_real_ip.unwrap_or(false),
            send_x_real_ip: $config.send_x_real_ip.unwrap_or(false),
            secure: $secure,
            strict_sni: $strict,
            expect_proxy: $config.expect_proxy,
            h2_max_concurrent_streams: $h2_streams,
            h2_max_header_list_size: $h2_headers,
        }
    };
}

impl From<&HttpListenerConfig> for ListenerSettings {
    fn from(config: &HttpListenerConfig) -> Self {
        // HTTP listeners speak HTTP/1.1 only; the HTTP/2 limits are
        // refused there.
        settings_from!(config, secure: false, strict_sni: false, h2_streams: None, h2_headers: None)
    }
}

impl From<&HttpsListenerConfig> for ListenerSettings {
    fn from(config: &HttpsListenerConfig) -> Self {
        settings_from!(
            config,
            secure: true,
            strict_sni: config.strict_sni_binding.unwrap_or(true),
            h2_streams: config.h2_max_concurrent_streams,
            h2_headers: config.h2_max_header_list_size
        )
    }
}
