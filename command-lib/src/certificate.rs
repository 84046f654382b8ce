//! Temporary minimal certificate support; replaced by the full module.

use crate::proto::command::CertificateAndKey;
use sha2::{Digest, Sha256};

/// What the state needs to know about a certificate.
#[derive(Debug, Clone)]
pub struct CertificateInfo {
    /// Lowercase hex SHA-256 of the leaf DER.
    pub fingerprint: String,
    /// SAN DNS names, else CN.
    pub names: Vec<String>,
}

impl CertificateInfo {
    /// Parses the leaf.
    pub fn from_certificate_and_key(certificate: &CertificateAndKey) -> Result<Self, String> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(certificate.certificate.as_bytes())
            .map_err(|e| e.to_string())?;
        let fingerprint = hex::encode(Sha256::digest(&pem.contents));
        Ok(CertificateInfo {
            fingerprint,
            names: vec![],
        })
    }
}
