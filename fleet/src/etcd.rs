//! A small etcd v3 client over etcd's JSON gateway (`/v3/...`), HTTP/1.1
//! with hyper, TLS with rustls.
//!
//! Only what the fleet needs: `range`, `put`, `txn` (compare the
//! modification revision, then puts), `watch` (as a stream of "something
//! changed" signals), `lease/grant`, `lease/keepalive` and
//! `auth/authenticate`. Keys and values travel base64-encoded, numbers of
//! 64 bits as strings, as the gateway's JSON mapping of etcd's protobuf
//! messages does. Every request opens its own connection: the fleet sends
//! few requests, and a fresh connection never carries a stale state across
//! an etcd restart.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

/// Where etcd is and how to authenticate to it.
#[derive(Debug, Clone, Default)]
pub struct EtcdOptions {
    /// `http://host:port` or `https://host:port`; tried in order.
    pub endpoints: Vec<String>,
    /// User name for etcd's authentication (with `password`).
    pub user: Option<String>,
    /// Password of `user`.
    pub password: Option<String>,
    /// CA certificates (PEM) that sign etcd's certificate; required for
    /// `https` endpoints.
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) presented to etcd, with `key`.
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of `cert`.
    pub key: Option<PathBuf>,
    /// The wait for a connection and for each answer (not for a watch).
    pub timeout: Duration,
}

/// Why an etcd request failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EtcdError {
    /// No endpoint could be reached or the connection broke: retry later.
    #[error("etcd unreachable: {0}")]
    Unreachable(String),
    /// etcd answered with an error (authentication, limits, bad request).
    #[error("etcd refused the request: {0}")]
    Refused(String),
    /// etcd's answer was not what the gateway sends.
    #[error("etcd's answer could not be read: {0}")]
    Protocol(String),
    /// The options are wrong (an unreadable CA file, a bad endpoint).
    #[error("{0}")]
    Options(String),
}

impl EtcdError {
    /// Whether the failure is etcd being away (as opposed to a refusal).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, EtcdError::Unreachable(_))
    }
}

/// One key and its value as etcd holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value's bytes.
    pub value: Vec<u8>,
    /// The revision that created the key.
    pub create_revision: i64,
    /// The revision that last changed it.
    pub mod_revision: i64,
}

/// The answer to a range: the store's revision when it was read, and the keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// etcd's revision at the time of the read.
    pub revision: i64,
    /// The keys found, in key order.
    pub kvs: Vec<KeyValue>,
}

/// One put of a transaction.
#[derive(Debug, Clone)]
pub struct Put {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
}

#[derive(Debug)]
struct Endpoint {
    tls: bool,
    host: String,
    port: u16,
    text: String,
}

fn parse_endpoint(text: &str) -> Result<Endpoint, EtcdError> {
    let bad = |why: &str| EtcdError::Options(format!("--etcd {text}: {why}"));
    let (tls, rest) = if let Some(rest) = text.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = text.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(bad("expected http://HOST:PORT or https://HOST:PORT"));
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| bad("the port is missing"))?;
    let port: u16 = port.parse().map_err(|_| bad("the port is not a number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || rest.contains('/') {
        return Err(bad("expected http://HOST:PORT or https://HOST:PORT"));
    }
    Ok(Endpoint {
        tls,
        host: host.to_owned(),
        port,
        text: text.to_owned(),
    })
}

/// A connection-less etcd client; cheap to clone.
#[derive(Clone)]
pub struct Etcd {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("endpoints", &self.inner.endpoints)
            .finish()
    }
}

struct Inner {
    endpoints: Vec<Endpoint>,
    tls: Option<tokio_rustls::TlsConnector>,
    credentials: Option<(String, String)>,
    token: Mutex<Option<String>>,
    timeout: Duration,
}

fn tls_connector(options: &EtcdOptions) -> Result<tokio_rustls::TlsConnector, EtcdError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let ca = options.ca.as_ref().ok_or_else(|| {
        EtcdError::Options(
            "an https:// etcd endpoint needs --etcd-ca (the CA that signs etcd's certificate)"
                .to_owned(),
        )
    })?;
    let mut roots = rustls::RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(ca)
        .map_err(|error| EtcdError::Options(format!("--etcd-ca {}: {error}", ca.display())))?;
    for certificate in certificates {
        let certificate = certificate
            .map_err(|error| EtcdError::Options(format!("--etcd-ca {}: {error}", ca.display())))?;
        roots
            .add(certificate)
            .map_err(|error| EtcdError::Options(format!("--etcd-ca {}: {error}", ca.display())))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| EtcdError::Options(format!("TLS: {error}")))?
        .with_root_certificates(roots);
    let config = match (&options.cert, &options.key) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .and_then(|certificates| certificates.collect())
                .map_err(|error| {
                    EtcdError::Options(format!("--etcd-cert {}: {error}", cert.display()))
                })?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|error| {
                EtcdError::Options(format!("--etcd-key {}: {error}", key.display()))
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|error| EtcdError::Options(format!("--etcd-cert/--etcd-key: {error}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(EtcdError::Options(
                "--etcd-cert and --etcd-key go together".to_owned(),
            ));
        }
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// The end of the key range holding every key that starts with `prefix`.
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn number(value: &Value) -> i64 {
    match value {
        Value::String(text) => text.parse().unwrap_or(0),
        Value::Number(number) => number.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn bytes_of(value: &Value) -> Result<Vec<u8>, EtcdError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::String(text) => BASE64
            .decode(text)
            .map_err(|error| EtcdError::Protocol(format!("bad base64: {error}"))),
        _ => Err(EtcdError::Protocol(
            "a key or value is not a string".to_owned(),
        )),
    }
}

fn key_values(answer: &Value) -> Result<Vec<KeyValue>, EtcdError> {
    let mut kvs = Vec::new();
    for kv in answer["kvs"].as_array().into_iter().flatten() {
        kvs.push(KeyValue {
            key: String::from_utf8_lossy(&bytes_of(&kv["key"])?).into_owned(),
            value: bytes_of(&kv["value"])?,
            create_revision: number(&kv["create_revision"]),
            mod_revision: number(&kv["mod_revision"]),
        });
    }
    Ok(kvs)
}

/// What a watch reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEvent {
    /// The watch is in place (at this store revision).
    Created(i64),
    /// A watched key changed (at this revision).
    Changed(i64),
}

impl Etcd {
    /// A client for these endpoints; nothing is connected yet.
    pub fn new(options: &EtcdOptions) -> Result<Self, EtcdError> {
        if options.endpoints.is_empty() {
            return Err(EtcdError::Options("--etcd: no endpoint given".to_owned()));
        }
        let endpoints = options
            .endpoints
            .iter()
            .flat_map(|text| text.split(','))
            .map(parse_endpoint)
            .collect::<Result<Vec<_>, _>>()?;
        let tls = if endpoints.iter().any(|endpoint| endpoint.tls) {
            Some(tls_connector(options)?)
        } else {
            if options.ca.is_some() || options.cert.is_some() || options.key.is_some() {
                return Err(EtcdError::Options(
                    "--etcd-ca/--etcd-cert/--etcd-key need an https:// endpoint".to_owned(),
                ));
            }
            None
        };
        let credentials = match (&options.user, &options.password) {
            (Some(user), Some(password)) => Some((user.clone(), password.clone())),
            (None, None) => None,
            _ => {
                return Err(EtcdError::Options(
                    "--etcd-user and --etcd-password go together".to_owned(),
                ));
            }
        };
        Ok(Etcd {
            inner: Arc::new(Inner {
                endpoints,
                tls,
                credentials,
                token: Mutex::new(None),
                timeout: if options.timeout.is_zero() {
                    Duration::from_secs(5)
                } else {
                    options.timeout
                },
            }),
        })
    }

    async fn send(
        &self,
        endpoint: &Endpoint,
        path: &str,
        body: &Value,
        token: Option<&str>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, EtcdError> {
        let unreachable = |error: &dyn std::fmt::Display| {
            EtcdError::Unreachable(format!("{}: {error}", endpoint.text))
        };
        let tcp = tokio::time::timeout(
            self.inner.timeout,
            TcpStream::connect((endpoint.host.as_str(), endpoint.port)),
        )
        .await
        .map_err(|_| unreachable(&"connection timed out"))?
        .map_err(|error| unreachable(&error))?;
        let _ = tcp.set_nodelay(true);
        let request = hyper::Request::post(path)
            .header(
                hyper::header::HOST,
                format!("{}:{}", endpoint.host, endpoint.port),
            )
            .header(hyper::header::CONTENT_TYPE, "application/json");
        let request = match token {
            Some(token) => request.header(hyper::header::AUTHORIZATION, token),
            None => request,
        };
        let request = request
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|error| EtcdError::Options(format!("request: {error}")))?;
        macro_rules! exchange {
            ($io:expr) => {{
                let (mut sender, connection) = hyper::client::conn::http1::handshake($io)
                    .await
                    .map_err(|error| unreachable(&error))?;
                tokio::spawn(connection);
                tokio::time::timeout(self.inner.timeout, sender.send_request(request))
                    .await
                    .map_err(|_| unreachable(&"no answer in time"))?
                    .map_err(|error| unreachable(&error))
            }};
        }
        if endpoint.tls {
            let connector = self
                .inner
                .tls
                .as_ref()
                .ok_or_else(|| EtcdError::Options("TLS is not configured".to_owned()))?;
            let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone())
                .map_err(|error| EtcdError::Options(format!("{}: {error}", endpoint.text)))?;
            let stream = tokio::time::timeout(self.inner.timeout, connector.connect(name, tcp))
                .await
                .map_err(|_| unreachable(&"TLS handshake timed out"))?
                .map_err(|error| unreachable(&error))?;
            exchange!(TokioIo::new(stream))
        } else {
            exchange!(TokioIo::new(tcp))
        }
    }

    async fn post_once(
        &self,
        path: &str,
        body: &Value,
        token: Option<&str>,
    ) -> Result<Value, EtcdError> {
        let mut last = EtcdError::Unreachable("no endpoint".to_owned());
        for endpoint in &self.inner.endpoints {
            let response = match self.send(endpoint, path, body, token).await {
                Ok(response) => response,
                Err(error @ EtcdError::Unreachable(_)) => {
                    last = error;
                    continue;
                }
                Err(error) => return Err(error),
            };
            let status = response.status();
            let bytes = tokio::time::timeout(self.inner.timeout, response.into_body().collect())
                .await
                .map_err(|_| {
                    EtcdError::Unreachable(format!("{}: answer cut short", endpoint.text))
                })?
                .map_err(|error| EtcdError::Unreachable(format!("{}: {error}", endpoint.text)))?
                .to_bytes();
            if !status.is_success() && serde_json::from_slice::<Value>(&bytes).is_err() {
                return Err(EtcdError::Refused(format!(
                    "{} {path} answered {status}: {}",
                    endpoint.text,
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).trim()
                )));
            }
            let value: Value = serde_json::from_slice(&bytes).map_err(|error| {
                EtcdError::Protocol(format!(
                    "{} {path} answered {status} with {}: {error}",
                    endpoint.text,
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                ))
            })?;
            if !status.is_success() || value.get("error").is_some() {
                let message = value["message"]
                    .as_str()
                    .or(value["error"].as_str())
                    .unwrap_or("unknown error");
                // A leader election or a stopping member: another try later.
                if status.is_server_error() && message.contains("leader") {
                    last = EtcdError::Unreachable(format!("{}: {message}", endpoint.text));
                    continue;
                }
                return Err(EtcdError::Refused(message.to_owned()));
            }
            return Ok(value);
        }
        Err(last)
    }

    async fn authenticate(&self) -> Result<Option<String>, EtcdError> {
        let Some((user, password)) = &self.inner.credentials else {
            return Ok(None);
        };
        let answer = self
            .post_once(
                "/v3/auth/authenticate",
                &json!({"name": user, "password": password}),
                None,
            )
            .await?;
        let token = answer["token"]
            .as_str()
            .ok_or_else(|| EtcdError::Protocol("authenticate answered no token".to_owned()))?
            .to_owned();
        *self.inner.token.lock().expect("token lock") = Some(token.clone());
        Ok(Some(token))
    }

    async fn token(&self) -> Result<Option<String>, EtcdError> {
        let known = self.inner.token.lock().expect("token lock").clone();
        match known {
            Some(token) => Ok(Some(token)),
            None => self.authenticate().await,
        }
    }

    /// Posts a gateway request, authenticating first (and again once if
    /// etcd says the token is no longer valid).
    pub async fn call(&self, path: &str, body: Value) -> Result<Value, EtcdError> {
        let token = self.token().await?;
        match self.post_once(path, &body, token.as_deref()).await {
            Err(EtcdError::Refused(message))
                if self.inner.credentials.is_some() && message.contains("token") =>
            {
                let token = self.authenticate().await?;
                self.post_once(path, &body, token.as_deref()).await
            }
            other => other,
        }
    }

    /// The key `key` (none if absent).
    pub async fn get(&self, key: &str) -> Result<Range, EtcdError> {
        let answer = self
            .call("/v3/kv/range", json!({"key": BASE64.encode(key)}))
            .await?;
        Ok(Range {
            revision: number(&answer["header"]["revision"]),
            kvs: key_values(&answer)?,
        })
    }

    /// Every key starting with `prefix`.
    pub async fn get_prefix(&self, prefix: &str) -> Result<Range, EtcdError> {
        let answer = self
            .call(
                "/v3/kv/range",
                json!({"key": BASE64.encode(prefix), "range_end": BASE64.encode(prefix_end(prefix))}),
            )
            .await?;
        Ok(Range {
            revision: number(&answer["header"]["revision"]),
            kvs: key_values(&answer)?,
        })
    }

    /// Puts a value, on a lease if given; returns the new revision.
    pub async fn put(&self, key: &str, value: &[u8], lease: Option<i64>) -> Result<i64, EtcdError> {
        let mut body = json!({"key": BASE64.encode(key), "value": BASE64.encode(value)});
        if let Some(lease) = lease {
            body["lease"] = json!(lease.to_string());
        }
        let answer = self.call("/v3/kv/put", body).await?;
        Ok(number(&answer["header"]["revision"]))
    }

    /// Puts every value in one transaction if `key`'s modification
    /// revision is `expected` (0: the key does not exist), or
    /// unconditionally without `expected`. Returns whether it was applied
    /// and the store's revision (the puts' revision when applied).
    pub async fn put_if(
        &self,
        key: &str,
        expected: Option<i64>,
        puts: &[Put],
    ) -> Result<(bool, i64), EtcdError> {
        let compare: Vec<Value> = expected
            .map(|expected| {
                json!({"target": "MOD", "result": "EQUAL", "key": BASE64.encode(key),
                       "mod_revision": expected.to_string()})
            })
            .into_iter()
            .collect();
        let success: Vec<Value> = puts
            .iter()
            .map(|put| {
                json!({"request_put": {"key": BASE64.encode(&put.key), "value": BASE64.encode(&put.value)}})
            })
            .collect();
        let answer = self
            .call(
                "/v3/kv/txn",
                json!({"compare": compare, "success": success, "failure": []}),
            )
            .await?;
        Ok((
            answer["succeeded"].as_bool().unwrap_or(false),
            number(&answer["header"]["revision"]),
        ))
    }

    /// A new lease of `ttl` seconds; returns its id.
    pub async fn grant(&self, ttl: i64) -> Result<i64, EtcdError> {
        let answer = self
            .call("/v3/lease/grant", json!({"TTL": ttl.to_string()}))
            .await?;
        let id = number(&answer["ID"]);
        if id == 0 {
            return Err(EtcdError::Protocol("lease grant answered no id".to_owned()));
        }
        Ok(id)
    }

    /// Renews a lease; returns its remaining time to live (0 or less: the
    /// lease is gone).
    pub async fn keep_alive(&self, lease: i64) -> Result<i64, EtcdError> {
        let answer = self
            .call("/v3/lease/keepalive", json!({"ID": lease.to_string()}))
            .await?;
        Ok(number(&answer["result"]["TTL"]))
    }

    /// Watches `key` (every key under it when `prefix`) and calls
    /// `on_event` for the watch's creation and for each change, until the
    /// stream ends (an error: etcd went away or cancelled the watch).
    pub async fn watch(
        &self,
        key: &str,
        prefix: bool,
        mut on_event: impl FnMut(WatchEvent),
    ) -> Result<(), EtcdError> {
        let token = self.token().await?;
        let mut create = json!({"key": BASE64.encode(key)});
        if prefix {
            create["range_end"] = json!(BASE64.encode(prefix_end(key)));
        }
        let body = json!({"create_request": create});
        let mut last = EtcdError::Unreachable("no endpoint".to_owned());
        for endpoint in &self.inner.endpoints {
            let response = match self
                .send(endpoint, "/v3/watch", &body, token.as_deref())
                .await
            {
                Ok(response) => response,
                Err(error @ EtcdError::Unreachable(_)) => {
                    last = error;
                    continue;
                }
                Err(error) => return Err(error),
            };
            if !response.status().is_success() {
                let status = response.status();
                if self.inner.credentials.is_some() {
                    *self.inner.token.lock().expect("token lock") = None;
                }
                return Err(EtcdError::Refused(format!("watch answered {status}")));
            }
            let mut body = response.into_body();
            let mut pending: Vec<u8> = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|error| {
                    EtcdError::Unreachable(format!("{}: watch: {error}", endpoint.text))
                })?;
                let Some(data) = frame.data_ref() else {
                    continue;
                };
                pending.extend_from_slice(data);
                while let Some(end) = pending.iter().position(|byte| *byte == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let message: Value = serde_json::from_slice(&line)
                        .map_err(|error| EtcdError::Protocol(format!("watch message: {error}")))?;
                    if let Some(error) = message.get("error") {
                        let text = error["message"].as_str().unwrap_or("watch error");
                        if text.contains("token") && self.inner.credentials.is_some() {
                            *self.inner.token.lock().expect("token lock") = None;
                        }
                        return Err(EtcdError::Refused(text.to_owned()));
                    }
                    let result = &message["result"];
                    let revision = number(&result["header"]["revision"]);
                    if result["canceled"].as_bool() == Some(true) {
                        let reason = result["cancel_reason"].as_str().unwrap_or("no reason");
                        if reason.contains("token") && self.inner.credentials.is_some() {
                            *self.inner.token.lock().expect("token lock") = None;
                        }
                        return Err(EtcdError::Refused(format!("watch cancelled: {reason}")));
                    }
                    if result["created"].as_bool() == Some(true) {
                        on_event(WatchEvent::Created(revision));
                    }
                    if result["events"]
                        .as_array()
                        .is_some_and(|events| !events.is_empty())
                    {
                        on_event(WatchEvent::Changed(revision));
                    }
                }
            }
            return Err(EtcdError::Unreachable(format!(
                "{}: the watch stream ended",
                endpoint.text
            )));
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked() {
        assert!(parse_endpoint("http://127.0.0.1:2379").is_ok());
        let endpoint = parse_endpoint("https://etcd.example:2379/").unwrap();
        assert!(endpoint.tls && endpoint.host == "etcd.example" && endpoint.port == 2379);
        for bad in [
            "127.0.0.1:2379",
            "http://127.0.0.1",
            "http://h:x",
            "http://h:1/v3",
        ] {
            let error = parse_endpoint(bad).unwrap_err().to_string();
            assert!(error.contains(bad), "{error}");
        }
    }

    #[test]
    fn a_prefix_range_ends_after_its_last_key() {
        assert_eq!(prefix_end("/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
    }

    #[test]
    fn tls_options_need_tls_endpoints_and_pairs() {
        let mut options = EtcdOptions {
            endpoints: vec!["http://127.0.0.1:1".to_owned()],
            ca: Some("/nonexistent".into()),
            ..EtcdOptions::default()
        };
        assert!(
            Etcd::new(&options)
                .unwrap_err()
                .to_string()
                .contains("https://")
        );
        options.ca = None;
        options.user = Some("root".to_owned());
        assert!(
            Etcd::new(&options)
                .unwrap_err()
                .to_string()
                .contains("--etcd-password")
        );
        options.endpoints = vec!["https://127.0.0.1:1".to_owned()];
        options.user = None;
        assert!(
            Etcd::new(&options)
                .unwrap_err()
                .to_string()
                .contains("--etcd-ca")
        );
    }
}
