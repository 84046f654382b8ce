//! Certificate requests, with the files they read checked first.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::certificate::{self, CertificateError, Fingerprint, ParsedCertificate};
use crate::proto::command::{
    AddCertificate, CertificateAndKey, QueryCertificatesFilters, RemoveCertificate,
    ReplaceCertificate, Request, TlsVersion, request::RequestType,
};

use super::{RequestError, read_text};

/// A TLS version as written on a command line: `TLS_V12`, `TLS_V13` (the
/// configuration file's names), `TLSv1.2`, `TLSv1.3`, `1.2`, `1.3`; older
/// versions as `TLS_V10`/`TLSv1`/`TLS_V11`/`TLSv1.1`. Any case.
pub fn tls_version(text: &str) -> Result<TlsVersion, RequestError> {
    let normalized: String = text
        .to_ascii_uppercase()
        .chars()
        .filter(|c| !matches!(c, '_' | '.' | '-'))
        .collect();
    match normalized.as_str() {
        "TLSV13" | "13" => Ok(TlsVersion::TlsV13),
        "TLSV12" | "12" => Ok(TlsVersion::TlsV12),
        "TLSV11" | "11" => Ok(TlsVersion::TlsV11),
        "TLSV10" | "TLSV1" | "10" => Ok(TlsVersion::TlsV10),
        _ => Err(RequestError::invalid(
            "versions",
            format!("unknown TLS version {text:?}; expected TLS_V12 or TLS_V13"),
        )),
    }
}

/// The three files of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    /// The leaf certificate (PEM; further blocks are taken as chain).
    pub certificate: PathBuf,
    /// The intermediate certificates (PEM, any number of blocks).
    pub chain: PathBuf,
    /// The private key (PEM, unencrypted).
    pub key: PathBuf,
}

/// Reads and checks a certificate, its chain and its key: every PEM block
/// must parse and the key must match the certificate. The result carries the
/// files' text as Sozu's command line sends it: the chain split into one PEM
/// per certificate, `names` empty (the daemon fills them).
pub fn load_certificate(
    files: &CertificateFiles,
    versions: &[TlsVersion],
) -> Result<CertificateAndKey, RequestError> {
    let certificate = read_text("certificate", &files.certificate)?;
    let chain_text = read_text("certificate_chain", &files.chain)?;
    let key = read_text("key", &files.key)?;
    let certificate_chain = certificate::split_certificate_chain(&chain_text);
    // Check each input alone first so the error names the right file.
    certificate::certificate_info(&certificate).map_err(|source| RequestError::Certificate {
        field: "certificate",
        source,
    })?;
    if !chain_text.trim().is_empty() {
        ParsedCertificate::from_pem(&certificate, std::slice::from_ref(&chain_text), &key)
            .map_err(|source| RequestError::Certificate {
                field: certificate_field(&source, "certificate_chain"),
                source,
            })?;
    } else {
        ParsedCertificate::from_pem(&certificate, &[], &key).map_err(|source| {
            RequestError::Certificate {
                field: certificate_field(&source, "certificate"),
                source,
            }
        })?;
    }
    Ok(CertificateAndKey {
        certificate,
        certificate_chain,
        key,
        versions: versions.iter().map(|version| *version as i32).collect(),
        names: Vec::new(),
    })
}

/// Which input a certificate error is about.
fn certificate_field(error: &CertificateError, certificates: &'static str) -> &'static str {
    match error {
        CertificateError::NoKey
        | CertificateError::EncryptedKey
        | CertificateError::UnsupportedKey { .. }
        | CertificateError::KeyMismatch => "key",
        CertificateError::NotPem { what, .. }
        | CertificateError::InvalidPem { what, .. }
        | CertificateError::NoCertificate { what }
        | CertificateError::InvalidDer { what, .. } => match *what {
            "certificate" => "certificate",
            "private key" => "key",
            _ => certificates,
        },
        _ => certificates,
    }
}

/// A fingerprint typed by a user (64 hex digits, any case), as the lowercase
/// hex the protocol uses.
pub fn fingerprint(text: &str) -> Result<String, RequestError> {
    text.parse::<Fingerprint>()
        .map(|fingerprint| fingerprint.to_string())
        .map_err(|source| RequestError::Certificate {
            field: "fingerprint",
            source,
        })
}

/// The fingerprint of the first certificate of a PEM file.
pub fn fingerprint_of_file(path: &Path) -> Result<String, RequestError> {
    let pem = read_text("certificate", path)?;
    certificate::certificate_info(&pem)
        .map(|info| info.fingerprint.to_string())
        .map_err(|source| RequestError::Certificate {
            field: "certificate",
            source,
        })
}

/// `certificate add`.
pub fn certificate_add(address: SocketAddr, certificate: CertificateAndKey) -> Request {
    RequestType::AddCertificate(AddCertificate {
        address: address.into(),
        certificate,
        expired_at: None,
    })
    .into()
}

/// `certificate remove`: `fingerprint` as lowercase hex (see
/// [`fingerprint`]).
pub fn certificate_remove(address: SocketAddr, fingerprint: &str) -> Request {
    RequestType::RemoveCertificate(RemoveCertificate {
        address: address.into(),
        fingerprint: fingerprint.to_owned(),
    })
    .into()
}

/// `certificate replace`.
pub fn certificate_replace(
    address: SocketAddr,
    new_certificate: CertificateAndKey,
    old_fingerprint: &str,
) -> Request {
    RequestType::ReplaceCertificate(ReplaceCertificate {
        address: address.into(),
        new_certificate,
        old_fingerprint: old_fingerprint.to_owned(),
        new_expired_at: None,
    })
    .into()
}

/// `certificate list`: from the main process's state, or (`from_workers`)
/// from every worker.
pub fn query_certificates(
    fingerprint: Option<&str>,
    domain: Option<&str>,
    from_workers: bool,
) -> Request {
    let filters = QueryCertificatesFilters {
        domain: domain.map(str::to_owned),
        fingerprint: fingerprint.map(str::to_owned),
    };
    if from_workers {
        RequestType::QueryCertificatesFromWorkers(filters)
    } else {
        RequestType::QueryCertificatesFromTheState(filters)
    }
    .into()
}
