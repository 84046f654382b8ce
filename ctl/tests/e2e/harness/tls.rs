//! TLS pieces of the end-to-end tests: a test certificate authority and the
//! certificates it issues, HTTPS listeners and certificates added to a
//! daemon, and a blocking TLS client (rustls) that tells which certificate,
//! version and ALPN protocol the server chose.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme, SupportedProtocolVersion};
use sozu_command::proto::command::{
    ActivateListener, AddCertificate, CertificateAndKey, HttpsListenerConfig, ListenerType,
    ReplaceCertificate, RequestHttpFrontend, request::RequestType,
};

use super::client::Answer;
use super::{Daemon, local};

/// A certificate authority made for one test.
pub struct Authority {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

/// A certificate and its key, as PEM, with the DER of the leaf to compare
/// with what a client received.
#[derive(Clone, Debug)]
pub struct Issued {
    pub certificate: String,
    pub key: String,
    pub der: Vec<u8>,
    /// The authority's certificate.
    pub chain: Vec<String>,
}

impl Issued {
    /// The certificate as the protocol carries it.
    pub fn certificate_and_key(&self) -> CertificateAndKey {
        CertificateAndKey {
            certificate: self.certificate.clone(),
            certificate_chain: self.chain.clone(),
            key: self.key.clone(),
            versions: Vec::new(),
            names: Vec::new(),
        }
    }

    /// Its fingerprint, as `RemoveCertificate` and `ReplaceCertificate` name it.
    pub fn fingerprint(&self) -> String {
        sozu_command::certificate::fingerprint_hex(&self.certificate).unwrap()
    }
}

impl Default for Authority {
    fn default() -> Self {
        Self::new()
    }
}

impl Authority {
    pub fn new() -> Authority {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sozu test authority");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        Authority {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    /// The authority's certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// The authority's certificate, DER (a client's trust anchor).
    pub fn der(&self) -> Vec<u8> {
        self.issuer.der().to_vec()
    }

    /// Writes the authority's certificate in `folder` (for curl's
    /// `--cacert`) and returns its path.
    pub fn write_pem(&self, folder: &Path) -> std::path::PathBuf {
        let path = folder.join("test-authority.pem");
        std::fs::write(&path, self.pem()).unwrap();
        path
    }

    /// A certificate for `names` valid until the start of 2040.
    pub fn issue(&self, names: &[&str]) -> Issued {
        self.issue_until(names, 2040)
    }

    /// A certificate for `names` valid until the start of `year`.
    pub fn issue_until(&self, names: &[&str], year: i32) -> Issued {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0].as_str());
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(year, 1, 1);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        Issued {
            certificate: certificate.pem(),
            key: key.serialize_pem(),
            der: certificate.der().to_vec(),
            chain: vec![self.pem()],
        }
    }
}

/// An HTTPS listener on `127.0.0.1:port` with the protocol's defaults
/// (timeouts as in Sozu, every TLS version and cipher suite of the
/// provider), for a test to adjust.
pub fn https_listener(port: u16) -> HttpsListenerConfig {
    HttpsListenerConfig {
        address: local(port),
        sticky_name: "SOZUBALANCEID".into(),
        front_timeout: 60,
        back_timeout: 30,
        connect_timeout: 3,
        request_timeout: 10,
        ..Default::default()
    }
}

impl Daemon {
    /// Adds and activates an HTTPS listener.
    pub fn add_https_listener(&self, config: HttpsListenerConfig) {
        let address = config.address;
        self.ok(RequestType::AddHttpsListener(config));
        self.ok(RequestType::ActivateListener(ActivateListener {
            address,
            proxy: ListenerType::Https as i32,
            from_scm: false,
            interface: None,
        }));
    }

    /// Adds a certificate to the HTTPS listener on `port`.
    pub fn add_certificate(&self, port: u16, issued: &Issued) {
        self.ok(RequestType::AddCertificate(AddCertificate {
            address: local(port),
            certificate: issued.certificate_and_key(),
            expired_at: None,
        }));
    }

    /// Replaces `old` with `new` on the HTTPS listener on `port`.
    pub fn replace_certificate(&self, port: u16, old: &Issued, new: &Issued) {
        self.ok(RequestType::ReplaceCertificate(ReplaceCertificate {
            address: local(port),
            new_certificate: new.certificate_and_key(),
            old_fingerprint: old.fingerprint(),
            new_expired_at: None,
        }));
    }

    /// Adds an HTTPS frontend (`frontend`'s protocol is the caller's).
    pub fn add_https_frontend(&self, frontend: RequestHttpFrontend) {
        self.ok(RequestType::AddHttpsFrontend(frontend));
    }
}

/// Accepts any server certificate: the tests look at which one came.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What a test client offers.
pub struct ClientSettings {
    /// TLS versions offered (both when empty).
    pub versions: Vec<&'static SupportedProtocolVersion>,
    /// ALPN protocols offered, in order.
    pub alpn: Vec<&'static str>,
    /// Verify the server's certificate against this authority (its DER)
    /// and the server name; `None` accepts any certificate.
    pub authority: Option<Vec<u8>>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            versions: Vec::new(),
            alpn: vec!["http/1.1"],
            authority: None,
        }
    }
}

/// A rustls client configuration from `settings`.
pub fn client_config(settings: &ClientSettings) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let versions = if settings.versions.is_empty() {
        vec![&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        settings.versions.clone()
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .unwrap();
    let mut config = match &settings.authority {
        Some(der) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(CertificateDer::from(der.clone())).unwrap();
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth(),
    };
    config.alpn_protocols = settings
        .alpn
        .iter()
        .map(|protocol| protocol.as_bytes().to_vec())
        .collect();
    Arc::new(config)
}

/// A server name for rustls: a DNS name sends SNI, an IP address does not.
fn server_name(name: &str) -> ServerName<'static> {
    ServerName::try_from(name.to_owned()).unwrap()
}

/// The blocking TLS stream of a test client.
pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Connects to `127.0.0.1:port` and completes the handshake, asking for
/// `name` (an IP address sends no SNI).
pub fn handshake(port: u16, name: &str, config: &Arc<ClientConfig>) -> std::io::Result<TlsStream> {
    let mut tcp = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)))?;
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut connection = rustls::ClientConnection::new(config.clone(), server_name(name))
        .map_err(std::io::Error::other)?;
    while connection.is_handshaking() {
        connection.complete_io(&mut tcp)?;
    }
    Ok(rustls::StreamOwned::new(connection, tcp))
}

/// An HTTP/1.1 connection over TLS, kept open across requests.
pub struct TlsConnection {
    reader: BufReader<TlsStream>,
}

impl TlsConnection {
    /// Connects with the settings' client and completes the handshake.
    pub fn open(port: u16, name: &str, settings: &ClientSettings) -> std::io::Result<Self> {
        Self::open_with(port, name, &client_config(settings))
    }

    pub fn open_with(port: u16, name: &str, config: &Arc<ClientConfig>) -> std::io::Result<Self> {
        Ok(TlsConnection {
            reader: BufReader::new(handshake(port, name, config)?),
        })
    }

    fn tls(&self) -> &rustls::ClientConnection {
        &self.reader.get_ref().conn
    }

    /// The DER of the certificate the server presented.
    pub fn peer_certificate(&self) -> Vec<u8> {
        self.tls().peer_certificates().unwrap()[0].to_vec()
    }

    /// The negotiated TLS version.
    pub fn version(&self) -> rustls::ProtocolVersion {
        self.tls().protocol_version().unwrap()
    }

    /// The negotiated ALPN protocol, if any.
    pub fn alpn(&self) -> Option<String> {
        self.tls()
            .alpn_protocol()
            .map(|protocol| String::from_utf8_lossy(protocol).into_owned())
    }

    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let stream = self.reader.get_mut();
        stream.write_all(bytes)?;
        stream.flush()
    }

    /// A keep-alive `GET` and its answer.
    pub fn get(&mut self, host: &str, path: &str) -> std::io::Result<Answer> {
        self.request(&format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"))
    }

    /// Sends a whole request head (no body) and reads its answer.
    pub fn request(&mut self, head: &str) -> std::io::Result<Answer> {
        self.send(head.as_bytes())?;
        read_answer(&mut self.reader)
    }

    /// Whether the server sent something (or ended the connection) within
    /// `wait`, without consuming it: what arrived is read next as usual.
    pub fn answered_within(&mut self, wait: Duration) -> bool {
        self.reader
            .get_ref()
            .sock
            .set_read_timeout(Some(wait))
            .unwrap();
        let arrived = match self.reader.fill_buf() {
            Ok(_) => true,
            Err(error) => !matches!(
                error.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        self.reader
            .get_ref()
            .sock
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        arrived
    }

    /// The stream under the reader (for protocols after an upgrade).
    pub fn reader(&mut self) -> &mut BufReader<TlsStream> {
        &mut self.reader
    }
}

/// Reads one HTTP/1.1 answer (Content-Length, chunked, or no body for a
/// 1xx, 204 or 304).
pub fn read_answer(reader: &mut impl BufRead) -> std::io::Result<Answer> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((key, value)) = header.split_once(':') {
            headers.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let mut answer = Answer {
        status,
        headers,
        body: Vec::new(),
    };
    if status < 200 || status == 204 || status == 304 {
        return Ok(answer);
    }
    if answer
        .header("transfer-encoding")
        .is_some_and(|value| value.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {size:?}")))?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                return Ok(answer);
            }
            answer.body.extend_from_slice(&chunk[..size]);
        }
    }
    let length = answer
        .header("content-length")
        .and_then(|value| value.parse::<usize>().ok());
    match length {
        Some(length) => {
            answer.body = vec![0; length];
            reader.read_exact(&mut answer.body)?;
        }
        None => {
            reader.read_to_end(&mut answer.body)?;
        }
    }
    Ok(answer)
}

/// `GET path` over a new TLS connection (SNI `name`, `Host: host`), closed
/// after.
pub fn get(port: u16, name: &str, host: &str, path: &str) -> std::io::Result<Answer> {
    let mut connection = TlsConnection::open(port, name, &ClientSettings::default())?;
    connection.request(&format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    ))
}

/// A daemon with an HTTP listener (from its configuration) and an HTTPS
/// listener (added by request), and the authority of the test's
/// certificates: the shape of most HTTPS tests.
pub struct HttpsSite {
    pub daemon: Daemon,
    pub http_port: u16,
    pub https_port: u16,
    pub authority: Authority,
}

impl HttpsSite {
    /// `workers` workers; `configure` adjusts the HTTPS listener.
    pub fn start(workers: u16, configure: impl FnOnce(&mut HttpsListenerConfig)) -> HttpsSite {
        let http_port = super::free_port();
        let https_port = super::free_port();
        let daemon = Daemon::start(&super::config(http_port, workers, "", ""));
        let mut listener = https_listener(https_port);
        configure(&mut listener);
        daemon.add_https_listener(listener);
        HttpsSite {
            daemon,
            http_port,
            https_port,
            authority: Authority::new(),
        }
    }

    /// Issues a certificate for `names` and adds it to the HTTPS listener.
    pub fn certificate(&self, names: &[&str]) -> Issued {
        let issued = self.authority.issue(names);
        self.daemon.add_certificate(self.https_port, &issued);
        issued
    }

    /// A cluster `cluster` (if `Some`, else an existing one is assumed)
    /// with frontends for `host` on both listeners.
    pub fn route(&self, host: &str, cluster: &str) {
        self.daemon
            .add_frontend(super::frontend(self.http_port, host, Some(cluster)));
        self.daemon
            .add_https_frontend(super::frontend(self.https_port, host, Some(cluster)));
    }

    /// A cluster with one backend, reachable as `host` on both listeners.
    pub fn serve(&self, host: &str, cluster: &str, backend: SocketAddr) {
        self.daemon.add_cluster(super::cluster(cluster));
        self.daemon
            .add_backend(super::backend(cluster, cluster, backend));
        self.route(host, cluster);
    }
}
