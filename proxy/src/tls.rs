//! TLS for HTTPS listeners: certificates chosen by SNI, and the rustls
//! server configuration built from a listener's settings.
//!
//! Each HTTPS listener has a [`CertificateSet`]. Every change to it (or to
//! the listener's TLS settings) builds a new `rustls::ServerConfig`; new
//! handshakes use the newest one, handshakes already under way finish with
//! the configuration they started with.
//!
//! Choosing a certificate for a client's SNI works like host routing: an
//! exact name first, then a wildcard (`*.example.com` covers exactly one
//! label). Among several certificates for one name, the one that expires
//! last wins. Without SNI, or when no certificate names it, the listener's
//! default certificate is used: the one from its own configuration, else
//! the certificate that expires last among all.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sozu_command::certificate::{ParsedCertificate, split_certificate_chain};
use sozu_command::proto::command::{CertificateAndKey, HttpsListenerConfig, TlsVersion};

/// A certificate ready for handshakes, with what selection needs.
#[derive(Debug, Clone)]
pub struct LoadedCertificate {
    /// Lowercase hex SHA-256 of the leaf.
    pub fingerprint: String,
    /// Names it answers for (lowercase).
    pub names: Vec<String>,
    /// Expiry, unix seconds.
    pub not_after: i64,
    /// Chain and key for rustls.
    pub key: Arc<CertifiedKey>,
}

/// Why a certificate or TLS settings were refused.
pub type TlsError = String;

/// The rustls provider used everywhere: aws-lc-rs.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Parses and checks certificate material (the key must match).
pub fn load(certificate: &CertificateAndKey) -> Result<LoadedCertificate, TlsError> {
    let parsed = ParsedCertificate::from_certificate_and_key(certificate)
        .map_err(|error| format!("certificate refused: {error}"))?;
    let signing_key = provider()
        .key_provider
        .load_private_key(parsed.key.clone_key())
        .map_err(|error| format!("certificate refused: unusable private key: {error}"))?;
    let key = CertifiedKey::new(parsed.chain.clone(), signing_key);
    let names = if certificate.names.is_empty() {
        parsed.info.names.clone()
    } else {
        certificate.names.clone()
    };
    Ok(LoadedCertificate {
        fingerprint: parsed.info.fingerprint.to_string(),
        names: names.iter().map(|name| name.to_ascii_lowercase()).collect(),
        not_after: parsed.info.not_after,
        key: Arc::new(key),
    })
}

/// Loads a listener's own certificate (its `certificate`, `key` and
/// `certificate_chain` fields), when it has one.
pub fn listener_default(
    config: &HttpsListenerConfig,
) -> Result<Option<LoadedCertificate>, TlsError> {
    match (&config.certificate, &config.key) {
        (Some(certificate), Some(key)) => {
            let mut chain = Vec::new();
            for part in &config.certificate_chain {
                chain.extend(split_certificate_chain(part));
            }
            load(&CertificateAndKey {
                certificate: certificate.clone(),
                certificate_chain: chain,
                key: key.clone(),
                versions: Vec::new(),
                names: Vec::new(),
            })
            .map(Some)
        }
        (None, None) => Ok(None),
        _ => Err("the listener has a certificate without key, or a key without certificate".into()),
    }
}

/// The certificates of one listener, indexed for SNI.
#[derive(Debug, Default, Clone)]
pub struct CertificateSet {
    by_fingerprint: BTreeMap<String, LoadedCertificate>,
    default: Option<LoadedCertificate>,
}

impl CertificateSet {
    /// Adds a certificate (same fingerprint: nothing changes); returns
    /// whether it was new.
    pub fn add(&mut self, certificate: LoadedCertificate) -> bool {
        match self.by_fingerprint.entry(certificate.fingerprint.clone()) {
            std::collections::btree_map::Entry::Occupied(_) => false,
            std::collections::btree_map::Entry::Vacant(entry) => {
                entry.insert(certificate);
                true
            }
        }
    }

    /// Removes a certificate and gives it back.
    pub fn take(&mut self, fingerprint: &str) -> Option<LoadedCertificate> {
        self.by_fingerprint
            .remove(&fingerprint.to_ascii_lowercase())
    }

    /// Sets the listener's own default certificate.
    pub fn set_default(&mut self, certificate: Option<LoadedCertificate>) {
        self.default = certificate;
    }

    /// Every certificate, by fingerprint.
    pub fn certificates(&self) -> impl Iterator<Item = &LoadedCertificate> {
        self.by_fingerprint.values()
    }

    /// A resolver snapshot for rustls.
    pub fn resolver(&self) -> Arc<SniResolver> {
        let mut exact: HashMap<String, Vec<&LoadedCertificate>> = HashMap::new();
        let mut wildcard: HashMap<String, Vec<&LoadedCertificate>> = HashMap::new();
        for certificate in self.by_fingerprint.values() {
            for name in &certificate.names {
                match name.strip_prefix("*.") {
                    Some(suffix) => wildcard
                        .entry(suffix.to_owned())
                        .or_default()
                        .push(certificate),
                    None => exact.entry(name.clone()).or_default().push(certificate),
                }
            }
        }
        let latest = |candidates: Vec<&LoadedCertificate>| {
            candidates
                .into_iter()
                .max_by_key(|certificate| certificate.not_after)
                .map(|certificate| certificate.key.clone())
        };
        let fallback = self
            .default
            .as_ref()
            .map(|certificate| certificate.key.clone())
            .or_else(|| latest(self.by_fingerprint.values().collect()));
        Arc::new(SniResolver {
            exact: exact
                .into_iter()
                .filter_map(|(name, candidates)| Some((name, latest(candidates)?)))
                .collect(),
            wildcard: wildcard
                .into_iter()
                .filter_map(|(name, candidates)| Some((name, latest(candidates)?)))
                .collect(),
            fallback,
        })
    }
}

/// An immutable SNI → certificate map, as rustls asks for it.
#[derive(Debug)]
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    fallback: Option<Arc<CertifiedKey>>,
}

impl SniResolver {
    /// The certificate for a server name (lowercase, no trailing dot).
    pub fn choose(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = server_name {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if let Some(key) = self.exact.get(&name) {
                return Some(key.clone());
            }
            if let Some((_, parent)) = name.split_once('.')
                && let Some(key) = self.wildcard.get(parent)
            {
                return Some(key.clone());
            }
        }
        self.fallback.clone()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(client_hello.server_name())
    }
}

fn protocol_versions(
    versions: &[i32],
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, TlsError> {
    if versions.is_empty() {
        return Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]);
    }
    versions
        .iter()
        .map(|version| match TlsVersion::try_from(*version) {
            Ok(TlsVersion::TlsV12) => Ok(&rustls::version::TLS12),
            Ok(TlsVersion::TlsV13) => Ok(&rustls::version::TLS13),
            Ok(other) => Err(format!(
                "TLS version {} is not supported (TLS 1.2 and 1.3 are)",
                other.as_str_name()
            )),
            Err(_) => Err(format!("{version} is not a TLS version")),
        })
        .collect()
}

fn group_name(name: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "x25519" => "X25519".into(),
        "p-256" | "prime256v1" | "secp256r1" => "secp256r1".into(),
        "p-384" | "secp384r1" => "secp384r1".into(),
        "x25519mlkem768" => "X25519MLKEM768".into(),
        "secp256r1mlkem768" | "p256mlkem768" => "secp256r1MLKEM768".into(),
        "mlkem768" => "MLKEM768".into(),
        "mlkem1024" => "MLKEM1024".into(),
        other => other.into(),
    }
}

/// The crypto provider restricted to the listener's cipher suites and
/// key-exchange groups. Names the provider lacks are refused.
fn listener_provider(config: &HttpsListenerConfig) -> Result<CryptoProvider, TlsError> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    let mut wanted: Vec<&String> = config.cipher_suites.iter().collect();
    if wanted.is_empty() {
        wanted = config.cipher_list.iter().collect();
    }
    if !wanted.is_empty() {
        let all = provider.cipher_suites.clone();
        let mut chosen = Vec::new();
        for name in wanted {
            let suite = all
                .iter()
                .find(|suite| suite.suite().as_str() == Some(name.as_str()))
                .ok_or_else(|| format!("cipher suite {name} is not supported by this proxy"))?;
            if !chosen.contains(suite) {
                chosen.push(*suite);
            }
        }
        provider.cipher_suites = chosen;
    }
    if !config.groups_list.is_empty() {
        let all = rustls::crypto::aws_lc_rs::ALL_KX_GROUPS;
        let mut chosen = Vec::new();
        for name in &config.groups_list {
            let wanted = group_name(name);
            let group = all
                .iter()
                .find(|group| format!("{:?}", group.name()) == wanted)
                .ok_or_else(|| {
                    format!("key exchange group {name} is not supported by this proxy")
                })?;
            chosen.push(*group);
        }
        provider.kx_groups = chosen;
    }
    Ok(provider)
}

/// Builds the rustls configuration of a listener with `resolver`.
pub fn server_config(
    config: &HttpsListenerConfig,
    resolver: Arc<SniResolver>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let versions = protocol_versions(&config.versions)?;
    let provider = listener_provider(config)?;
    let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&versions)
        .map_err(|error| format!("TLS settings refused: {error}"))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    server.alpn_protocols = alpn(config);
    server.send_tls13_tickets = usize::try_from(config.send_tls13_tickets).unwrap_or(usize::MAX);
    Ok(Arc::new(server))
}

/// The ALPN protocols offered: the listener's list (default `h2`,
/// `http/1.1`), without `http/1.1` when `disable_http11` is set.
fn alpn(config: &HttpsListenerConfig) -> Vec<Vec<u8>> {
    let mut protocols: Vec<String> = if config.alpn_protocols.is_empty() {
        vec!["h2".into(), "http/1.1".into()]
    } else {
        config.alpn_protocols.clone()
    };
    if config.disable_http11 == Some(true) {
        protocols.retain(|protocol| protocol != "http/1.1");
    }
    protocols.into_iter().map(String::into_bytes).collect()
}

/// Checks settings that would otherwise only fail at the first handshake.
pub fn check_listener(config: &HttpsListenerConfig) -> Result<(), TlsError> {
    protocol_versions(&config.versions)?;
    listener_provider(config)?;
    for protocol in &config.alpn_protocols {
        if protocol != "h2" && protocol != "http/1.1" {
            return Err(format!(
                "ALPN protocol {protocol} is not supported (h2 and http/1.1 are)"
            ));
        }
    }
    listener_default(config)?;
    Ok(())
}
