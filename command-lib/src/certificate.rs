//! TLS certificates as the protocol carries them: PEM text in, facts out.
//!
//! A [`CertificateAndKey`] travels as PEM strings. Before anything stores or
//! serves one, it must be checked: the certificate must parse, the key must be
//! of a kind the TLS stack can sign with, and the key must belong to the leaf
//! certificate. [`ParsedCertificate::from_pem`] does all of this once and
//! keeps the DER forms the proxy needs for TLS; [`CertificateInfo`] holds the
//! facts the rest of the system works with:
//!
//! - the **fingerprint**, SHA-256 of the leaf certificate's DER bytes, written
//!   as lowercase hex (Sozu's identifier for a certificate; a fingerprint typed
//!   by a user is accepted in either case, see [`Fingerprint`]);
//! - the **names** the certificate answers for: its subjectAltName DNS names,
//!   or its subject common name when it has none (duplicates removed, order
//!   kept);
//! - its **validity** window, in unix seconds.
//!
//! Nothing here panics on arbitrary input: every failure is a
//! [`CertificateError`] that says what was wrong.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rustls::crypto::{CryptoProvider, KeyProvider};
use rustls::pki_types::pem::{self, PemObject, SectionKind};
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};
use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::proto::command::CertificateAndKey;

/// Why a certificate, chain or key was refused.
///
/// Messages are written for the person who supplied the PEM: they say which
/// part was wrong and, where it helps, what was expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// The text holds no PEM block at all (no `-----BEGIN` line).
    #[error("the {what} is not PEM: no \"-----BEGIN ...-----\" line was found")]
    NotPem {
        /// Which input: "certificate", "certificate chain" or "private key".
        what: &'static str,
    },
    /// A PEM block is damaged (bad base64, no END line, bad BEGIN line).
    #[error("the {what} is not valid PEM: {reason}")]
    InvalidPem {
        /// Which input: "certificate", "certificate chain" or "private key".
        what: &'static str,
        /// What the PEM parser found wrong.
        reason: String,
    },
    /// The PEM holds blocks, but none is a `CERTIFICATE`.
    #[error("the {what} holds no \"BEGIN CERTIFICATE\" block")]
    NoCertificate {
        /// Which input: "certificate" or "certificate chain".
        what: &'static str,
    },
    /// A `CERTIFICATE` block does not decode as an X.509 certificate.
    #[error("certificate #{index} of the {what} is not a valid X.509 certificate: {reason}")]
    InvalidDer {
        /// Which input: "certificate" or "certificate chain".
        what: &'static str,
        /// Position of the block in its input, from 0 (0 is the leaf in the
        /// certificate input).
        index: usize,
        /// What the X.509 parser found wrong.
        reason: String,
    },
    /// The key input holds no private key block.
    #[error(
        "no private key found: expected a \"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\" block"
    )]
    NoKey,
    /// The key is encrypted; only unencrypted keys can be loaded.
    #[error("the private key is encrypted: give it unencrypted (e.g. `openssl pkey -in key.pem`)")]
    EncryptedKey,
    /// The TLS stack cannot sign with this key (unknown algorithm or curve,
    /// or damaged key bytes).
    #[error("unsupported or invalid private key: {reason}")]
    UnsupportedKey {
        /// What the TLS stack reported.
        reason: String,
    },
    /// The key is valid but belongs to another certificate.
    #[error("the private key does not match the certificate's public key")]
    KeyMismatch,
    /// A fingerprint given by a user is not 64 hexadecimal digits.
    #[error("invalid fingerprint {given:?}: expected 64 hexadecimal digits (a SHA-256 hash)")]
    InvalidFingerprint {
        /// The text that was given.
        given: String,
    },
}

/// The SHA-256 fingerprint of a leaf certificate.
///
/// `Display` writes 64 lowercase hex digits, the form Sozu uses as the key of
/// its certificate maps; `FromStr` accepts either case (and surrounding
/// whitespace), so a fingerprint copied from any tool compares equal.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        Fingerprint(Sha256::digest(der).into())
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = CertificateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || CertificateError::InvalidFingerprint {
            given: text.to_owned(),
        };
        let mut bytes = [0u8; 32];
        // `hex` accepts both cases; the length check is implied by the array.
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| invalid())?;
        Ok(Fingerprint(bytes))
    }
}

/// Compares a fingerprint written by a user with a computed one, ignoring
/// case and surrounding whitespace. An unparsable `given` never matches.
pub fn fingerprint_matches(given: &str, expected: &Fingerprint) -> bool {
    given
        .parse::<Fingerprint>()
        .is_ok_and(|given| &given == expected)
}

/// What the rest of the system needs to know about a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateInfo {
    /// SHA-256 of the leaf certificate's DER bytes.
    pub fingerprint: Fingerprint,
    /// subjectAltName DNS names, else the subject common name(s); never
    /// holds duplicates; may be empty for a certificate that has neither.
    pub names: Vec<String>,
    /// Start of validity, unix seconds.
    pub not_before: i64,
    /// End of validity, unix seconds.
    pub not_after: i64,
}

/// A certificate chain and its private key, checked and decoded.
///
/// Built only by [`ParsedCertificate::from_pem`] (or
/// [`ParsedCertificate::from_certificate_and_key`]), so holding one means: the
/// leaf and every chain certificate parse as X.509, the key is one the TLS
/// stack can sign with, and the key matches the leaf.
#[derive(Debug)]
pub struct ParsedCertificate {
    /// Fingerprint, names and validity of the leaf.
    pub info: CertificateInfo,
    /// The leaf first, then every further certificate of the certificate
    /// input, then those of the chain inputs, in order.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key, as found in the PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PrivateKeyDer<'static>,
}

impl Clone for ParsedCertificate {
    fn clone(&self) -> Self {
        ParsedCertificate {
            info: self.info.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl ParsedCertificate {
    /// Parses and checks a certificate, its chain and its key.
    ///
    /// `certificate` is PEM whose first `CERTIFICATE` block is the leaf (any
    /// further blocks are taken as chain certificates); each element of
    /// `chain` is PEM holding one or more chain certificates; `key` is PEM
    /// holding an unencrypted PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key.
    pub fn from_pem(
        certificate: &str,
        chain: &[String],
        key: &str,
    ) -> Result<Self, CertificateError> {
        let mut ders = certificate_blocks(certificate, "certificate")?;
        for pem in chain {
            ders.extend(certificate_blocks(pem, "certificate chain")?);
        }
        let mut parsed = ders.iter();
        // `certificate_blocks` never returns an empty list.
        let leaf_der = parsed.next().ok_or(CertificateError::NoCertificate {
            what: "certificate",
        })?;
        let leaf = parse_x509(leaf_der, "certificate", 0)?;
        for (index, der) in parsed.enumerate() {
            // The chain is not used for anything but serving, yet a damaged
            // block would only fail later, at handshake time: refuse it now.
            parse_x509(der, "certificate chain", index + 1)?;
        }

        let key = private_key(key)?;
        check_key_matches(&key, leaf.public_key().raw)?;

        let info = info_of(leaf_der, &leaf);
        Ok(ParsedCertificate {
            info,
            chain: ders.into_iter().map(CertificateDer::from).collect(),
            key,
        })
    }

    /// [`ParsedCertificate::from_pem`] on the fields of a protocol message.
    /// The message's `names` and `versions` are not looked at.
    pub fn from_certificate_and_key(
        certificate: &CertificateAndKey,
    ) -> Result<Self, CertificateError> {
        Self::from_pem(
            &certificate.certificate,
            &certificate.certificate_chain,
            &certificate.key,
        )
    }
}

/// Checks a [`CertificateAndKey`] completely (see
/// [`ParsedCertificate::from_pem`]) and returns the leaf's facts.
///
/// This is what must accept a certificate before it is stored
/// (AddCertificate, ReplaceCertificate); a caller fills an empty `names`
/// from [`CertificateInfo::names`].
pub fn parse_certificate_and_key(
    certificate: &CertificateAndKey,
) -> Result<CertificateInfo, CertificateError> {
    ParsedCertificate::from_certificate_and_key(certificate).map(|parsed| parsed.info)
}

/// The facts of the first certificate of a PEM text, without any key check.
pub fn certificate_info(pem: &str) -> Result<CertificateInfo, CertificateError> {
    let ders = certificate_blocks(pem, "certificate")?;
    let leaf_der = ders.first().ok_or(CertificateError::NoCertificate {
        what: "certificate",
    })?;
    let leaf = parse_x509(leaf_der, "certificate", 0)?;
    Ok(info_of(leaf_der, &leaf))
}

/// The lowercase hex fingerprint of the first certificate of a PEM text.
///
/// Only the PEM framing is checked, not the X.509 content, so this also
/// identifies a certificate that was stored before it could be validated.
pub fn fingerprint_hex(pem: &str) -> Result<String, CertificateError> {
    let ders = certificate_blocks(pem, "certificate")?;
    let leaf = ders.first().ok_or(CertificateError::NoCertificate {
        what: "certificate",
    })?;
    Ok(Fingerprint::of_der(leaf).to_string())
}

/// Splits a PEM text holding several certificates into one PEM string per
/// certificate, as Sozu stores a chain file in `certificate_chain`.
///
/// Each piece runs up to and including its `-----END CERTIFICATE-----` line
/// and is trimmed; text after the last END line is dropped. The pieces are
/// not decoded: [`ParsedCertificate::from_pem`] checks them.
pub fn split_certificate_chain(pem: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    let mut pieces = Vec::new();
    let mut rest = pem;
    while let Some(position) = rest.find(END) {
        let (piece, after) = rest.split_at(position + END.len());
        pieces.push(piece.trim().to_owned());
        rest = after;
    }
    pieces
}

/// The DER bytes of every `CERTIFICATE` block of `pem`, in order; never empty.
fn certificate_blocks(pem: &str, what: &'static str) -> Result<Vec<Vec<u8>>, CertificateError> {
    let sections = pem_sections(pem, what)?;
    let certificates: Vec<Vec<u8>> = sections
        .into_iter()
        .filter(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| der)
        .collect();
    if certificates.is_empty() {
        return Err(CertificateError::NoCertificate { what });
    }
    Ok(certificates)
}

/// Every PEM section of a kind rustls knows, in order. Sections with other
/// labels are skipped by the parser.
fn pem_sections(
    text: &str,
    what: &'static str,
) -> Result<Vec<(SectionKind, Vec<u8>)>, CertificateError> {
    if !text.contains("-----BEGIN ") {
        return Err(CertificateError::NotPem { what });
    }
    <(SectionKind, Vec<u8>)>::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|error| CertificateError::InvalidPem {
            what,
            reason: pem_error_reason(&error),
        })
}

fn pem_error_reason(error: &pem::Error) -> String {
    match error {
        pem::Error::MissingSectionEnd { end_marker } => {
            let label = String::from_utf8_lossy(end_marker);
            format!("a {label} block has no \"-----END {label}-----\" line")
        }
        pem::Error::IllegalSectionStart { line } => {
            format!("malformed BEGIN line {:?}", String::from_utf8_lossy(line))
        }
        pem::Error::Base64Decode(reason) => format!("bad base64 content ({reason})"),
        other => other.to_string(),
    }
}

fn parse_x509<'a>(
    der: &'a [u8],
    what: &'static str,
    index: usize,
) -> Result<X509Certificate<'a>, CertificateError> {
    match X509Certificate::from_der(der) {
        Ok((_, certificate)) => Ok(certificate),
        Err(error) => Err(CertificateError::InvalidDer {
            what,
            index,
            reason: error.to_string(),
        }),
    }
}

/// The first private key of a PEM text.
fn private_key(text: &str) -> Result<PrivateKeyDer<'static>, CertificateError> {
    let sections = pem_sections(text, "private key")?;
    let key = sections.into_iter().find_map(|(kind, der)| match kind {
        SectionKind::PrivateKey => Some(PrivateKeyDer::from(PrivatePkcs8KeyDer::from(der))),
        SectionKind::RsaPrivateKey => Some(PrivateKeyDer::from(PrivatePkcs1KeyDer::from(der))),
        SectionKind::EcPrivateKey => Some(PrivateKeyDer::from(PrivateSec1KeyDer::from(der))),
        _ => None,
    });
    match key {
        Some(key) => Ok(key),
        // The PEM parser skips labels it does not know, encrypted keys among
        // them; say why instead of "no key".
        None if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") => {
            Err(CertificateError::EncryptedKey)
        }
        None => Err(CertificateError::NoKey),
    }
}

/// The key loader of the process's TLS provider: the one installed as the
/// process default if any, else aws-lc-rs (rustls' default). Only key
/// parsing is used, so either provider gives the same answers for the key
/// types that matter (RSA, ECDSA P-256/P-384, Ed25519).
fn key_provider() -> &'static dyn KeyProvider {
    match CryptoProvider::get_default() {
        Some(provider) => provider.key_provider,
        None => rustls::crypto::aws_lc_rs::default_provider().key_provider,
    }
}

fn check_key_matches(
    key: &PrivateKeyDer<'static>,
    leaf_spki: &[u8],
) -> Result<(), CertificateError> {
    let signing_key: Arc<dyn rustls::sign::SigningKey> = key_provider()
        .load_private_key(key.clone_key())
        .map_err(|error| CertificateError::UnsupportedKey {
            reason: error.to_string(),
        })?;
    match signing_key.public_key() {
        // rustls encodes the SubjectPublicKeyInfo canonically, as every
        // certificate authority does; a byte comparison is the same check
        // `rustls::sign::CertifiedKey::keys_match` makes.
        Some(key_spki) if key_spki.as_ref() == leaf_spki => Ok(()),
        Some(_) => Err(CertificateError::KeyMismatch),
        // Every key type of rustls' own providers reports its public key; a
        // provider that cannot is not one this project installs.
        None => Err(CertificateError::UnsupportedKey {
            reason: "the TLS provider cannot tell this key's public half".to_owned(),
        }),
    }
}

fn info_of(der: &[u8], certificate: &X509Certificate<'_>) -> CertificateInfo {
    let validity = certificate.validity();
    CertificateInfo {
        fingerprint: Fingerprint::of_der(der),
        names: names_of(certificate),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
    }
}

/// subjectAltName DNS names, else the subject common names (RFC 6125: when a
/// certificate lists DNS names, its CN is not an identity).
fn names_of(certificate: &X509Certificate<'_>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut push = |name: String| {
        if !names.contains(&name) {
            names.push(name);
        }
    };
    // A malformed or duplicated SAN extension counts as no SAN: the CN then
    // names the certificate, as for any certificate without DNS names.
    let mut has_dns_name = false;
    if let Ok(Some(san)) = certificate.subject_alternative_name() {
        for general_name in &san.value.general_names {
            if let GeneralName::DNSName(name) = general_name {
                has_dns_name = true;
                push((*name).to_owned());
            }
        }
    }
    if !has_dns_name {
        for attribute in certificate.subject().iter_common_name() {
            let name = match attribute.as_str() {
                Ok(name) => name.to_owned(),
                Err(_) => String::from_utf8_lossy(attribute.as_slice()).into_owned(),
            };
            push(name);
        }
    }
    names
}

#[cfg(test)]
mod tests;
