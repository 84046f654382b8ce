//! Listener requests: add, remove, activate, update, list, and the
//! values (answers, HSTS, TLS versions) they carry.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::{
    Config, DEFAULT_ALPN_PROTOCOLS, DEFAULT_BACK_TIMEOUT, DEFAULT_CIPHER_LIST,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_FRONT_TIMEOUT, DEFAULT_GROUPS_LIST, DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_SEND_TLS13_TICKETS, DEFAULT_SIGNATURE_ALGORITHMS, DEFAULT_STICKY_NAME,
};
use crate::proto::command::{
    ActivateListener, CustomHttpAnswers, DeactivateListener, ForwardedHeaders, HstsConfig,
    HttpListenerConfig, HttpsListenerConfig, ListListeners, ListenerType, RemoveListener, Request,
    TcpListenerConfig, TlsVersion, UpdateHttpListenerConfig, UpdateHttpsListenerConfig,
    UpdateTcpListenerConfig, request::RequestType,
};

use super::{DEFAULT_SNI_PREREAD_MAX_BYTES, DEFAULT_SNI_PREREAD_TIMEOUT, RequestError, read_text};

/// The values a new listener takes when its own are not given: the
/// configuration's defaults, or Sozu's when there is no configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerDefaults {
    /// Client socket inactivity timeout, seconds.
    pub front_timeout: u32,
    /// Backend socket inactivity timeout, seconds.
    pub back_timeout: u32,
    /// Backend connection timeout, seconds.
    pub connect_timeout: u32,
    /// Time allowed for a whole request, seconds.
    pub request_timeout: u32,
}

impl Default for ListenerDefaults {
    fn default() -> Self {
        ListenerDefaults {
            front_timeout: DEFAULT_FRONT_TIMEOUT,
            back_timeout: DEFAULT_BACK_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

impl From<&Config> for ListenerDefaults {
    fn from(config: &Config) -> Self {
        ListenerDefaults {
            front_timeout: config.front_timeout,
            back_timeout: config.back_timeout,
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
        }
    }
}

/// What `listener http add` and `listener https add` share.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpListenerSettings {
    /// Where it binds.
    pub address: Option<SocketAddr>,
    /// The network interface it binds to, if any.
    pub interface: Option<String>,
    /// The address shown in logs and forwarded headers, if not `address`.
    pub public_address: Option<SocketAddr>,
    /// Expect a PROXY protocol header from clients.
    pub expect_proxy: bool,
    /// The sticky session cookie name (default `SOZUBALANCEID`).
    pub sticky_name: Option<String>,
    /// Client socket inactivity timeout, seconds.
    pub front_timeout: Option<u32>,
    /// Backend socket inactivity timeout, seconds.
    pub back_timeout: Option<u32>,
    /// Backend connection timeout, seconds.
    pub connect_timeout: Option<u32>,
    /// Time allowed for a whole request, seconds.
    pub request_timeout: Option<u32>,
    /// File holding the 404 answer.
    pub answer_404: Option<PathBuf>,
    /// File holding the 503 answer.
    pub answer_503: Option<PathBuf>,
    /// Which forwarding headers are added (default: both families).
    pub forwarded_headers: Option<ForwardedHeaders>,
}

/// The answers of a listener: the legacy per-status fields and the `answers`
/// map, both holding the same templates (Sozu fills both).
fn listener_answers(
    answer_404: Option<&Path>,
    answer_503: Option<&Path>,
) -> Result<(CustomHttpAnswers, BTreeMap<String, String>), RequestError> {
    let read = |path: Option<&Path>| path.map(|path| read_text("answer", path)).transpose();
    let answers = CustomHttpAnswers {
        answer_404: read(answer_404)?,
        answer_503: read(answer_503)?,
        ..CustomHttpAnswers::default()
    };
    let mut map = BTreeMap::new();
    if let Some(body) = &answers.answer_404 {
        map.insert("404".to_owned(), body.clone());
    }
    if let Some(body) = &answers.answer_503 {
        map.insert("503".to_owned(), body.clone());
    }
    Ok((answers, map))
}

fn required_address(address: Option<SocketAddr>) -> Result<SocketAddr, RequestError> {
    address.ok_or_else(|| RequestError::invalid("address", "a listener needs an address"))
}

fn check_public_address(settings: &HttpListenerSettings) -> Result<(), RequestError> {
    if settings.public_address.is_some() && settings.expect_proxy {
        return Err(RequestError::invalid(
            "public_address",
            "a listener that expects a PROXY header takes its public address from it",
        ));
    }
    Ok(())
}

/// The HTTP listener `listener http add` creates (inactive).
pub fn http_listener(
    settings: &HttpListenerSettings,
    defaults: &ListenerDefaults,
) -> Result<HttpListenerConfig, RequestError> {
    let address = required_address(settings.address)?;
    check_public_address(settings)?;
    let (http_answers, answers) = listener_answers(
        settings.answer_404.as_deref(),
        settings.answer_503.as_deref(),
    )?;
    Ok(HttpListenerConfig {
        address: address.into(),
        public_address: settings.public_address.map(Into::into),
        expect_proxy: settings.expect_proxy,
        sticky_name: settings
            .sticky_name
            .clone()
            .unwrap_or_else(|| DEFAULT_STICKY_NAME.to_owned()),
        front_timeout: settings.front_timeout.unwrap_or(defaults.front_timeout),
        back_timeout: settings.back_timeout.unwrap_or(defaults.back_timeout),
        connect_timeout: settings.connect_timeout.unwrap_or(defaults.connect_timeout),
        request_timeout: settings.request_timeout.unwrap_or(defaults.request_timeout),
        active: false,
        http_answers: Some(http_answers),
        answers,
        elide_x_real_ip: Some(false),
        send_x_real_ip: Some(false),
        interface: settings.interface.clone(),
        forwarded_headers: Some(settings.forwarded_headers.unwrap_or_default() as i32),
        ..HttpListenerConfig::default()
    })
}

/// `listener http add`.
pub fn listener_http_add(
    settings: &HttpListenerSettings,
    defaults: &ListenerDefaults,
) -> Result<Request, RequestError> {
    Ok(RequestType::AddHttpListener(http_listener(settings, defaults)?).into())
}

/// What `listener https add` adds to the HTTP settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// TLS versions offered (default: 1.2 and 1.3).
    pub versions: Vec<TlsVersion>,
    /// Cipher list (default: Sozu's).
    pub cipher_list: Option<Vec<String>>,
}

/// The HTTPS listener `listener https add` creates (inactive, without a
/// default certificate).
pub fn https_listener(
    settings: &HttpListenerSettings,
    tls: &TlsSettings,
    defaults: &ListenerDefaults,
) -> Result<HttpsListenerConfig, RequestError> {
    let http = http_listener(settings, defaults)?;
    let strings = |list: &[&str]| list.iter().map(|item| (*item).to_owned()).collect();
    let versions = if tls.versions.is_empty() {
        vec![TlsVersion::TlsV12 as i32, TlsVersion::TlsV13 as i32]
    } else {
        tls.versions.iter().map(|version| *version as i32).collect()
    };
    Ok(HttpsListenerConfig {
        address: http.address,
        public_address: http.public_address,
        expect_proxy: http.expect_proxy,
        sticky_name: http.sticky_name,
        front_timeout: http.front_timeout,
        back_timeout: http.back_timeout,
        connect_timeout: http.connect_timeout,
        request_timeout: http.request_timeout,
        active: false,
        versions,
        cipher_list: tls
            .cipher_list
            .clone()
            .unwrap_or_else(|| strings(&DEFAULT_CIPHER_LIST)),
        cipher_suites: strings(&DEFAULT_CIPHER_LIST),
        signature_algorithms: strings(&DEFAULT_SIGNATURE_ALGORITHMS),
        groups_list: strings(&DEFAULT_GROUPS_LIST),
        send_tls13_tickets: DEFAULT_SEND_TLS13_TICKETS,
        http_answers: http.http_answers,
        alpn_protocols: strings(&DEFAULT_ALPN_PROTOCOLS),
        answers: http.answers,
        elide_x_real_ip: Some(false),
        send_x_real_ip: Some(false),
        interface: http.interface,
        forwarded_headers: http.forwarded_headers,
        ..HttpsListenerConfig::default()
    })
}

/// `listener https add`.
pub fn listener_https_add(
    settings: &HttpListenerSettings,
    tls: &TlsSettings,
    defaults: &ListenerDefaults,
) -> Result<Request, RequestError> {
    Ok(RequestType::AddHttpsListener(https_listener(settings, tls, defaults)?).into())
}

/// Everything `listener tcp add` can set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpListenerSettings {
    /// Where it binds.
    pub address: Option<SocketAddr>,
    /// The network interface it binds to, if any.
    pub interface: Option<String>,
    /// The address shown in logs, if not `address`.
    pub public_address: Option<SocketAddr>,
    /// Expect a PROXY protocol header from clients.
    pub expect_proxy: bool,
    /// Seconds allowed to read the TLS ClientHello for SNI routing.
    pub sni_preread_timeout: Option<u32>,
    /// Bytes read at most to find the SNI.
    pub sni_preread_max_bytes: Option<u32>,
}

/// `listener tcp add`.
pub fn listener_tcp_add(
    settings: &TcpListenerSettings,
    defaults: &ListenerDefaults,
) -> Result<Request, RequestError> {
    let address = required_address(settings.address)?;
    if settings.public_address.is_some() && settings.expect_proxy {
        return Err(RequestError::invalid(
            "public_address",
            "a listener that expects a PROXY header takes its public address from it",
        ));
    }
    Ok(RequestType::AddTcpListener(TcpListenerConfig {
        address: address.into(),
        public_address: settings.public_address.map(Into::into),
        expect_proxy: settings.expect_proxy,
        front_timeout: defaults.front_timeout,
        back_timeout: defaults.back_timeout,
        connect_timeout: defaults.connect_timeout,
        active: false,
        sni_preread_timeout: Some(
            settings
                .sni_preread_timeout
                .unwrap_or(DEFAULT_SNI_PREREAD_TIMEOUT),
        ),
        sni_preread_max_bytes: Some(
            settings
                .sni_preread_max_bytes
                .unwrap_or(DEFAULT_SNI_PREREAD_MAX_BYTES),
        ),
        interface: settings.interface.clone(),
    })
    .into())
}

/// `listener http|https|tcp remove`.
pub fn listener_remove(
    address: SocketAddr,
    kind: ListenerType,
    interface: Option<&str>,
) -> Request {
    RequestType::RemoveListener(RemoveListener {
        address: address.into(),
        proxy: kind as i32,
        interface: interface.map(str::to_owned),
    })
    .into()
}

/// `listener http|https|tcp activate`.
pub fn listener_activate(
    address: SocketAddr,
    kind: ListenerType,
    interface: Option<&str>,
) -> Request {
    RequestType::ActivateListener(ActivateListener {
        address: address.into(),
        proxy: kind as i32,
        from_scm: false,
        interface: interface.map(str::to_owned),
    })
    .into()
}

/// `listener http|https|tcp deactivate`.
pub fn listener_deactivate(
    address: SocketAddr,
    kind: ListenerType,
    interface: Option<&str>,
) -> Request {
    RequestType::DeactivateListener(DeactivateListener {
        address: address.into(),
        proxy: kind as i32,
        to_scm: false,
        interface: interface.map(str::to_owned),
    })
    .into()
}

/// The answer templates `listener http|https update` replaces, one file per
/// status code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerFiles {
    /// Files by status code (`"404"`, `"503"`, …).
    pub files: BTreeMap<&'static str, PathBuf>,
}

impl AnswerFiles {
    /// The templates read into the legacy per-status fields, or `None` when
    /// no file was given (the update then leaves the answers alone).
    pub fn load(&self) -> Result<Option<CustomHttpAnswers>, RequestError> {
        if self.files.is_empty() {
            return Ok(None);
        }
        let mut answers = CustomHttpAnswers::default();
        for (code, path) in &self.files {
            let body = Some(read_text("answer", path)?);
            let slot = match *code {
                "301" => &mut answers.answer_301,
                "400" => &mut answers.answer_400,
                "401" => &mut answers.answer_401,
                "404" => &mut answers.answer_404,
                "408" => &mut answers.answer_408,
                "413" => &mut answers.answer_413,
                "421" => &mut answers.answer_421,
                "429" => &mut answers.answer_429,
                "502" => &mut answers.answer_502,
                "503" => &mut answers.answer_503,
                "504" => &mut answers.answer_504,
                "507" => &mut answers.answer_507,
                other => {
                    return Err(RequestError::invalid(
                        "answer",
                        format!("{other} is not a status a listener has an answer for"),
                    ));
                }
            };
            *slot = body;
        }
        Ok(Some(answers))
    }
}

/// HSTS `max-age` when HSTS is turned on without one: a year, the preload
/// list's minimum.
pub const DEFAULT_HSTS_MAX_AGE: u32 = 31_536_000;

/// The HSTS policy of `listener https update`'s `--hsts-*` options: `None`
/// when none is given (the policy stays), disabled, or enabled with the
/// given directives. Disabling together with an enabling option is refused.
pub fn hsts(
    max_age: Option<u32>,
    include_subdomains: bool,
    preload: bool,
    disabled: bool,
    force_replace_backend: bool,
) -> Result<Option<HstsConfig>, RequestError> {
    let enabling = max_age.is_some() || include_subdomains || preload || force_replace_backend;
    match (disabled, enabling) {
        (true, true) => Err(RequestError::invalid(
            "hsts",
            "HSTS cannot be both disabled and configured",
        )),
        (true, false) => Ok(Some(HstsConfig {
            enabled: Some(false),
            ..HstsConfig::default()
        })),
        (false, false) => Ok(None),
        (false, true) => Ok(Some(HstsConfig {
            enabled: Some(true),
            max_age: Some(max_age.unwrap_or(DEFAULT_HSTS_MAX_AGE)),
            include_subdomains: include_subdomains.then_some(true),
            preload: preload.then_some(true),
            force_replace_backend: force_replace_backend.then_some(true),
        })),
    }
}

/// `listener http update`: only the fields set in `patch` change.
pub fn listener_http_update(patch: UpdateHttpListenerConfig) -> Request {
    RequestType::UpdateHttpListener(patch).into()
}

/// `listener https update`: only the fields set in `patch` change.
pub fn listener_https_update(patch: UpdateHttpsListenerConfig) -> Request {
    RequestType::UpdateHttpsListener(patch).into()
}

/// `listener tcp update`: only the fields set in `patch` change.
pub fn listener_tcp_update(patch: UpdateTcpListenerConfig) -> Request {
    RequestType::UpdateTcpListener(patch).into()
}

/// `listener list`.
pub fn list_listeners() -> Request {
    RequestType::ListListeners(ListListeners {}).into()
}
