//! Listener tables to listener messages, and the certificates they name.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::build::{Builder, Defaults};
use super::checks::check_interface_name;
use super::file::{
    ClientAuthConfig, FileHstsConfig, FileListenerConfig, ForwardedHeadersMode, ListenerProtocol,
};
use super::{
    ConfigError, DEFAULT_ALPN_PROTOCOLS, DEFAULT_CIPHER_LIST, DEFAULT_GROUPS_LIST,
    DEFAULT_SEND_TLS13_TICKETS, DEFAULT_SIGNATURE_ALGORITHMS, DEFAULT_STICKY_NAME,
    FrontendCertificate, ListenerConfig,
};
use crate::certificate::{CertificateError, ParsedCertificate, split_certificate_chain};
use crate::h2_settings::{H2Fields, H2Setting};
use crate::proto::command::{
    AddCertificate, CertificateAndKey, ClientAuthMode, CustomHttpAnswers, ForwardedHeaders,
    HstsConfig, HttpListenerConfig, HttpsListenerConfig, TcpListenerConfig, TlsVersion,
    UdpListenerConfig,
};

/// `hsts.max_age` when HSTS is enabled without one: a year.
pub(super) const DEFAULT_HSTS_MAX_AGE: u32 = 31_536_000;
/// TCP listener SNI preread defaults and floor.
pub(super) const DEFAULT_SNI_PREREAD_TIMEOUT: u32 = 5;
pub(super) const DEFAULT_SNI_PREREAD_MAX_BYTES: u32 = 16_384;
pub(super) const MIN_SNI_PREREAD_MAX_BYTES: u32 = 5;
/// UDP listener defaults (not the global TCP timeouts).
pub(super) const DEFAULT_UDP_TIMEOUT: u32 = 30;
pub(super) const DEFAULT_UDP_MAX_RX_DATAGRAM_SIZE: u32 = 1_500;

impl Builder {
    pub(super) fn listener(
        &self,
        key: &str,
        listener: &FileListenerConfig,
        defaults: &Defaults,
    ) -> Result<ListenerConfig, ConfigError> {
        if let Some(interface) = &listener.interface {
            check_interface_name(interface)
                .map_err(|reason| self.invalid(format!("{key}.interface"), reason))?;
        }
        if listener.public_address.is_some() && listener.expect_proxy == Some(true) {
            return Err(self.invalid(
                format!("{key}.public_address"),
                "a listener that expects a PROXY header takes its public address from it: public_address and expect_proxy cannot be combined",
            ));
        }
        let has_client_auth = listener
            .client_auth
            .is_some_and(|mode| mode != ClientAuthConfig::None)
            || listener
                .client_ca_certificates
                .as_ref()
                .is_some_and(|files| !files.is_empty())
            || listener
                .client_ca_crls
                .as_ref()
                .is_some_and(|files| !files.is_empty());
        if has_client_auth && listener.protocol != ListenerProtocol::Https {
            return Err(self.invalid(
                format!("{key}.client_auth"),
                format!(
                    "client certificate authentication needs an https listener, this one is {}",
                    listener.protocol
                ),
            ));
        }
        match listener.protocol {
            ListenerProtocol::Http => {
                if listener.hsts.is_some() {
                    return Err(self.invalid(
                        format!("{key}.hsts"),
                        "HSTS is for HTTPS only (RFC 6797 §7.2): an http listener cannot send it",
                    ));
                }
                self.check_h2_floors(key, listener)?;
                Ok(ListenerConfig::Http(
                    self.http_listener(key, listener, defaults)?,
                ))
            }
            ListenerProtocol::Https => {
                self.check_h2_floors(key, listener)?;
                Ok(ListenerConfig::Https(
                    self.https_listener(key, listener, defaults)?,
                ))
            }
            ListenerProtocol::Tcp => Ok(ListenerConfig::Tcp(TcpListenerConfig {
                address: listener.address.0.into(),
                public_address: listener.public_address.map(|address| address.0.into()),
                expect_proxy: listener.expect_proxy.unwrap_or(false),
                front_timeout: listener.front_timeout.unwrap_or(defaults.front_timeout),
                back_timeout: listener.back_timeout.unwrap_or(defaults.back_timeout),
                connect_timeout: listener.connect_timeout.unwrap_or(defaults.connect_timeout),
                active: false,
                sni_preread_timeout: Some(
                    listener
                        .sni_preread_timeout
                        .unwrap_or(DEFAULT_SNI_PREREAD_TIMEOUT),
                ),
                sni_preread_max_bytes: Some(
                    listener
                        .sni_preread_max_bytes
                        .unwrap_or(DEFAULT_SNI_PREREAD_MAX_BYTES),
                ),
                interface: listener.interface.clone(),
            })),
            ListenerProtocol::Udp => {
                // As Sozu: a datagram never exceeds a buffer, so the size is
                // capped by `buffer_size`; UDP timeouts have their own default.
                let buffer_cap = u32::try_from(defaults.buffer_size).unwrap_or(u32::MAX);
                Ok(ListenerConfig::Udp(UdpListenerConfig {
                    address: listener.address.0.into(),
                    public_address: listener.public_address.map(|address| address.0.into()),
                    front_timeout: listener.front_timeout.unwrap_or(DEFAULT_UDP_TIMEOUT),
                    back_timeout: listener.back_timeout.unwrap_or(DEFAULT_UDP_TIMEOUT),
                    max_rx_datagram_size: listener
                        .max_rx_datagram_size
                        .unwrap_or(DEFAULT_UDP_MAX_RX_DATAGRAM_SIZE)
                        .min(buffer_cap),
                    max_flows: listener.max_flows.unwrap_or(0),
                    active: false,
                    interface: listener.interface.clone(),
                }))
            }
        }
    }

    /// HTTP/2 flood limits of 0 (1 for the shrink ratio) would trip on the
    /// first frame; Sozu refuses them, so do we.
    pub(super) fn check_h2_floors(
        &self,
        key: &str,
        listener: &FileListenerConfig,
    ) -> Result<(), ConfigError> {
        if let Some((setting, value)) = H2Setting::first_below_minimum(listener) {
            return Err(self.invalid(
                format!("{key}.{}", setting.name()),
                format!("{value} is below the minimum of {}", setting.minimum()),
            ));
        }
        Ok(())
    }

    /// The legacy `answer_NNN` files, read.
    pub(super) fn http_answers(
        &self,
        key: &str,
        listener: &FileListenerConfig,
    ) -> Result<CustomHttpAnswers, ConfigError> {
        let read = |name: &str, file: &Option<String>| -> Result<Option<String>, ConfigError> {
            match file {
                Some(file) => Ok(Some(self.read(&format!("{key}.{name}"), file)?.1)),
                None => Ok(None),
            }
        };
        Ok(CustomHttpAnswers {
            answer_301: read("answer_301", &listener.answer_301)?,
            answer_400: read("answer_400", &listener.answer_400)?,
            answer_401: read("answer_401", &listener.answer_401)?,
            answer_404: read("answer_404", &listener.answer_404)?,
            answer_408: read("answer_408", &listener.answer_408)?,
            answer_413: read("answer_413", &listener.answer_413)?,
            answer_421: read("answer_421", &listener.answer_421)?,
            answer_502: read("answer_502", &listener.answer_502)?,
            answer_503: read("answer_503", &listener.answer_503)?,
            answer_504: read("answer_504", &listener.answer_504)?,
            answer_507: read("answer_507", &listener.answer_507)?,
            answer_429: read("answer_429", &listener.answer_429)?,
        })
    }

    /// A listener's `answers` map: the legacy `answer_NNN` bodies first, so
    /// that an entry of the map overrides them.
    pub(super) fn listener_answers(
        &self,
        key: &str,
        legacy: &CustomHttpAnswers,
        answers: &Option<BTreeMap<String, String>>,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut merged = BTreeMap::new();
        let legacy_bodies = [
            ("301", &legacy.answer_301),
            ("400", &legacy.answer_400),
            ("401", &legacy.answer_401),
            ("404", &legacy.answer_404),
            ("408", &legacy.answer_408),
            ("413", &legacy.answer_413),
            ("421", &legacy.answer_421),
            ("502", &legacy.answer_502),
            ("503", &legacy.answer_503),
            ("504", &legacy.answer_504),
            ("507", &legacy.answer_507),
            ("429", &legacy.answer_429),
        ];
        for (code, body) in legacy_bodies {
            if let Some(body) = body {
                merged.insert(code.to_owned(), body.clone());
            }
        }
        merged.extend(self.answers(&format!("{key}.answers"), answers)?);
        Ok(merged)
    }

    /// An `answers` map: `file://path` values are read, other values are
    /// the template itself, empty values are skipped.
    pub(super) fn answers(
        &self,
        key: &str,
        answers: &Option<BTreeMap<String, String>>,
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut loaded = BTreeMap::new();
        for (code, value) in answers.iter().flatten() {
            if value.is_empty() {
                continue;
            }
            let body = match value.strip_prefix("file://") {
                Some(file) => self.read(&format!("{key}.{code}"), file)?.1,
                None => value.clone(),
            };
            loaded.insert(code.clone(), body);
        }
        Ok(loaded)
    }

    pub(super) fn http_listener(
        &self,
        key: &str,
        listener: &FileListenerConfig,
        defaults: &Defaults,
    ) -> Result<HttpListenerConfig, ConfigError> {
        let http_answers = self.http_answers(key, listener)?;
        let answers = self.listener_answers(key, &http_answers, &listener.answers)?;
        let mut built = HttpListenerConfig {
            address: listener.address.0.into(),
            public_address: listener.public_address.map(|address| address.0.into()),
            expect_proxy: listener.expect_proxy.unwrap_or(false),
            sticky_name: sticky_name(listener),
            front_timeout: listener.front_timeout.unwrap_or(defaults.front_timeout),
            back_timeout: listener.back_timeout.unwrap_or(defaults.back_timeout),
            connect_timeout: listener.connect_timeout.unwrap_or(defaults.connect_timeout),
            request_timeout: listener.request_timeout.unwrap_or(defaults.request_timeout),
            active: false,
            http_answers: Some(http_answers),
            answers,
            sozu_id_header: listener.sozu_id_header.clone(),
            elide_x_real_ip: Some(listener.elide_x_real_ip.unwrap_or(false)),
            send_x_real_ip: Some(listener.send_x_real_ip.unwrap_or(false)),
            interface: listener.interface.clone(),
            forwarded_headers: Some(forwarded_headers(listener.forwarded_headers) as i32),
            ..HttpListenerConfig::default()
        };
        built.copy_h2_from(listener);
        Ok(built)
    }

    pub(super) fn https_listener(
        &self,
        key: &str,
        listener: &FileListenerConfig,
        defaults: &Defaults,
    ) -> Result<HttpsListenerConfig, ConfigError> {
        let alpn_protocols = self.alpn_protocols(key, listener)?;
        let http_answers = self.http_answers(key, listener)?;
        let answers = self.listener_answers(key, &http_answers, &listener.answers)?;
        let owned = |list: &[&str]| list.iter().map(|item| (*item).to_owned()).collect();

        let (certificate, certificate_chain, tls_key) = match self.certificate_files(
            key,
            &listener.certificate,
            &listener.key,
            &listener.certificate_chain,
        )? {
            Some(checked) => (Some(checked.certificate), checked.chain, Some(checked.key)),
            None => (None, Vec::new(), None),
        };

        let has_ca_files = listener
            .client_ca_certificates
            .as_ref()
            .is_some_and(|files| !files.is_empty())
            || listener
                .client_ca_crls
                .as_ref()
                .is_some_and(|files| !files.is_empty());
        if listener.client_auth.is_none() && has_ca_files {
            return Err(self.invalid(
                format!("{key}.client_auth"),
                "client CA or CRL files are given without client_auth: say \"optional\" or \"required\" (or \"none\" to ignore them)",
            ));
        }
        // With client_auth = "none" the CA files are not needed: a stale path
        // must not stop the load (as in Sozu).
        let wants_ca_files = matches!(
            listener.client_auth,
            Some(ClientAuthConfig::Optional | ClientAuthConfig::Required)
        );
        let read_all =
            |name: &str, files: &Option<Vec<String>>| -> Result<Vec<String>, ConfigError> {
                if !wants_ca_files {
                    return Ok(Vec::new());
                }
                files
                    .iter()
                    .flatten()
                    .enumerate()
                    .map(|(index, file)| {
                        self.read(&format!("{key}.{name}[{index}]"), file)
                            .map(|(_, text)| text)
                    })
                    .collect()
            };
        let client_ca_certificates =
            read_all("client_ca_certificates", &listener.client_ca_certificates)?;
        let client_ca_crls = read_all("client_ca_crls", &listener.client_ca_crls)?;

        let hsts = match &listener.hsts {
            Some(hsts) => Some(self.hsts(&format!("{key}.hsts"), hsts)?),
            None => None,
        };

        let mut built = HttpsListenerConfig {
            address: listener.address.0.into(),
            public_address: listener.public_address.map(|address| address.0.into()),
            expect_proxy: listener.expect_proxy.unwrap_or(false),
            sticky_name: sticky_name(listener),
            front_timeout: listener.front_timeout.unwrap_or(defaults.front_timeout),
            back_timeout: listener.back_timeout.unwrap_or(defaults.back_timeout),
            connect_timeout: listener.connect_timeout.unwrap_or(defaults.connect_timeout),
            request_timeout: listener.request_timeout.unwrap_or(defaults.request_timeout),
            active: false,
            versions: listener
                .tls_versions
                .clone()
                .unwrap_or_else(|| vec![TlsVersion::TlsV12, TlsVersion::TlsV13])
                .into_iter()
                .map(|version| version as i32)
                .collect(),
            cipher_list: listener
                .cipher_list
                .clone()
                .unwrap_or_else(|| owned(&DEFAULT_CIPHER_LIST)),
            cipher_suites: listener
                .cipher_suites
                .clone()
                .unwrap_or_else(|| owned(&DEFAULT_CIPHER_LIST)),
            signature_algorithms: owned(&DEFAULT_SIGNATURE_ALGORITHMS),
            groups_list: listener
                .groups_list
                .clone()
                .unwrap_or_else(|| owned(&DEFAULT_GROUPS_LIST)),
            certificate,
            certificate_chain,
            key: tls_key,
            send_tls13_tickets: listener
                .send_tls13_tickets
                .unwrap_or(DEFAULT_SEND_TLS13_TICKETS),
            http_answers: Some(http_answers),
            alpn_protocols,
            strict_sni_binding: listener.strict_sni_binding,
            disable_http11: listener.disable_http11,
            sozu_id_header: listener.sozu_id_header.clone(),
            answers,
            elide_x_real_ip: Some(listener.elide_x_real_ip.unwrap_or(false)),
            send_x_real_ip: Some(listener.send_x_real_ip.unwrap_or(false)),
            hsts,
            interface: listener.interface.clone(),
            forwarded_headers: Some(forwarded_headers(listener.forwarded_headers) as i32),
            client_auth: listener
                .client_auth
                .map(|mode| client_auth_mode(mode) as i32),
            client_ca_certificates,
            client_ca_crls,
            ..HttpsListenerConfig::default()
        };
        built.copy_h2_from(listener);
        Ok(built)
    }

    /// `alpn_protocols`: `h2` and `http/1.1` only, duplicates dropped, the
    /// default when absent or empty; `disable_http11` cannot offer
    /// `http/1.1`.
    pub(super) fn alpn_protocols(
        &self,
        key: &str,
        listener: &FileListenerConfig,
    ) -> Result<Vec<String>, ConfigError> {
        let mut protocols: Vec<String> = Vec::new();
        match &listener.alpn_protocols {
            Some(list) if !list.is_empty() => {
                for (index, protocol) in list.iter().enumerate() {
                    if protocol != "h2" && protocol != "http/1.1" {
                        return Err(self.invalid(
                            format!("{key}.alpn_protocols[{index}]"),
                            format!(
                                "{protocol:?} is not a protocol this proxy speaks: use \"h2\" or \"http/1.1\""
                            ),
                        ));
                    }
                    if !protocols.contains(protocol) {
                        protocols.push(protocol.clone());
                    }
                }
            }
            _ => protocols.extend(DEFAULT_ALPN_PROTOCOLS.iter().map(|p| (*p).to_owned())),
        }
        if listener.disable_http11 == Some(true) && protocols.iter().any(|p| p == "http/1.1") {
            return Err(self.invalid(
                format!("{key}.disable_http11"),
                "disable_http11 refuses HTTP/1.1 clients, so alpn_protocols must not offer \"http/1.1\" (set alpn_protocols = [\"h2\"])",
            ));
        }
        Ok(protocols)
    }

    pub(super) fn hsts(&self, key: &str, hsts: &FileHstsConfig) -> Result<HstsConfig, ConfigError> {
        let Some(enabled) = hsts.enabled else {
            return Err(self.invalid(
                format!("{key}.enabled"),
                "an hsts table must say enabled = true or false",
            ));
        };
        Ok(HstsConfig {
            enabled: Some(enabled),
            max_age: match (enabled, hsts.max_age) {
                (true, None) => Some(DEFAULT_HSTS_MAX_AGE),
                (_, max_age) => max_age,
            },
            include_subdomains: hsts.include_subdomains,
            preload: hsts.preload,
            force_replace_backend: hsts.force_replace_backend,
        })
    }

    /// Reads and checks a certificate, its key and its chain, named by the
    /// keys `certificate`, `key` and `certificate_chain` under `key`.
    /// `None` when neither certificate nor key is given.
    pub(super) fn certificate_files(
        &self,
        key: &str,
        certificate: &Option<String>,
        private_key: &Option<String>,
        chain: &Option<String>,
    ) -> Result<Option<CheckedCertificate>, ConfigError> {
        let (certificate, private_key) = match (certificate, private_key) {
            (None, None) => {
                if chain.is_some() {
                    return Err(self.invalid(
                        format!("{key}.certificate_chain"),
                        "a certificate chain needs a certificate and a key",
                    ));
                }
                return Ok(None);
            }
            (Some(_), None) => {
                return Err(self.invalid(
                    format!("{key}.key"),
                    "a certificate needs its private key: key is missing",
                ));
            }
            (None, Some(_)) => {
                return Err(self.invalid(
                    format!("{key}.certificate"),
                    "a private key needs its certificate: certificate is missing",
                ));
            }
            (Some(certificate), Some(private_key)) => (certificate, private_key),
        };
        let certificate_key = format!("{key}.certificate");
        let key_key = format!("{key}.key");
        let chain_key = format!("{key}.certificate_chain");
        let (certificate_file, certificate_pem) = self.read(&certificate_key, certificate)?;
        let (key_file, key_pem) = self.read(&key_key, private_key)?;
        let (chain_file, chain_pems) = match chain {
            Some(chain) => {
                let (file, text) = self.read(&chain_key, chain)?;
                (Some(file), split_certificate_chain(&text))
            }
            None => (None, Vec::new()),
        };

        let parsed = ParsedCertificate::from_pem(&certificate_pem, &chain_pems, &key_pem).map_err(
            |source| {
                // Say which file is at fault.
                let (key, file) = match &source {
                    CertificateError::NotPem {
                        what: "private key",
                    }
                    | CertificateError::InvalidPem {
                        what: "private key",
                        ..
                    }
                    | CertificateError::NoKey
                    | CertificateError::EncryptedKey
                    | CertificateError::UnsupportedKey { .. }
                    | CertificateError::KeyMismatch => (key_key.clone(), key_file.clone()),
                    CertificateError::NotPem {
                        what: "certificate chain",
                    }
                    | CertificateError::InvalidPem {
                        what: "certificate chain",
                        ..
                    }
                    | CertificateError::NoCertificate {
                        what: "certificate chain",
                    }
                    | CertificateError::InvalidDer {
                        what: "certificate chain",
                        ..
                    } => (
                        chain_key.clone(),
                        chain_file
                            .clone()
                            .unwrap_or_else(|| certificate_file.clone()),
                    ),
                    _ => (certificate_key.clone(), certificate_file.clone()),
                };
                ConfigError::Certificate {
                    path: self.path.clone(),
                    key,
                    file,
                    source,
                }
            },
        )?;
        // A chain file holding something that is not a certificate, with no
        // certificate at all, splits into nothing: that is an error too.
        if let (Some(file), true) = (&chain_file, chain_pems.is_empty()) {
            return Err(ConfigError::Certificate {
                path: self.path.clone(),
                key: chain_key,
                file: file.clone(),
                source: CertificateError::NoCertificate {
                    what: "certificate chain",
                },
            });
        }
        Ok(Some(CheckedCertificate {
            certificate: certificate_pem,
            chain: chain_pems,
            key: key_pem,
            parsed,
        }))
    }
}

/// A certificate, key and chain read from files and checked together.
pub(super) struct CheckedCertificate {
    certificate: String,
    chain: Vec<String>,
    key: String,
    parsed: ParsedCertificate,
}

impl CheckedCertificate {
    pub(super) fn into_add_certificate(
        self,
        address: SocketAddr,
        versions: &[TlsVersion],
    ) -> FrontendCertificate {
        FrontendCertificate {
            fingerprint: self.parsed.info.fingerprint,
            add: AddCertificate {
                address: address.into(),
                certificate: CertificateAndKey {
                    certificate: self.certificate,
                    certificate_chain: self.chain,
                    key: self.key,
                    versions: versions.iter().map(|version| *version as i32).collect(),
                    names: self.parsed.info.names,
                },
                expired_at: None,
            },
        }
    }
}

/// The certificate of an HTTPS listener, as a frontend on it brings it.
pub(super) fn listener_certificate(listener: &HttpsListenerConfig) -> Option<FrontendCertificate> {
    let certificate = listener.certificate.clone()?;
    let key = listener.key.clone()?;
    // Checked when the listener was built; parsing again only recovers the
    // facts.
    let parsed =
        ParsedCertificate::from_pem(&certificate, &listener.certificate_chain, &key).ok()?;
    Some(
        CheckedCertificate {
            certificate,
            chain: listener.certificate_chain.clone(),
            key,
            parsed,
        }
        .into_add_certificate(listener.address.to_socket_addr(), &[]),
    )
}

fn sticky_name(listener: &FileListenerConfig) -> String {
    listener
        .sticky_name
        .clone()
        .unwrap_or_else(|| DEFAULT_STICKY_NAME.to_owned())
}

fn forwarded_headers(mode: Option<ForwardedHeadersMode>) -> ForwardedHeaders {
    match mode.unwrap_or_default() {
        ForwardedHeadersMode::Both => ForwardedHeaders::Both,
        ForwardedHeadersMode::XForwarded => ForwardedHeaders::XForwarded,
        ForwardedHeadersMode::Rfc7239 => ForwardedHeaders::Rfc7239,
        ForwardedHeadersMode::None => ForwardedHeaders::None,
    }
}

fn client_auth_mode(mode: ClientAuthConfig) -> ClientAuthMode {
    match mode {
        ClientAuthConfig::None => ClientAuthMode::ClientAuthNone,
        ClientAuthConfig::Optional => ClientAuthMode::ClientAuthOptional,
        ClientAuthConfig::Required => ClientAuthMode::ClientAuthRequired,
    }
}
