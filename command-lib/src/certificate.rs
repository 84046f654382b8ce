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
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

    fn fixture(name: &str) -> String {
        let path = crate::fixtures_dir().join("sozu-2.3").join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
    }

    /// A self-signed certificate for `names` (SANs) and/or `common_name`.
    fn generate(names: &[&str], common_name: Option<&str>, key: &KeyPair) -> String {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let mut subject = DistinguishedName::new();
        if let Some(common_name) = common_name {
            subject.push(DnType::CommonName, common_name);
        }
        params.distinguished_name = subject;
        params.self_signed(key).unwrap().pem()
    }

    #[test]
    fn fixture_certificate_has_sozus_fingerprint_and_names() {
        let certificate = fixture("cert.pem");
        let key = fixture("key.pem");
        let parsed = ParsedCertificate::from_pem(&certificate, &[], &key).unwrap();

        let list: serde_json::Value =
            serde_json::from_str(&fixture("certificate-list.json")).unwrap();
        let certs = list["CERTIFICATES_WITH_FINGERPRINTS"]["certs"]
            .as_object()
            .unwrap();
        let (expected, entry) = certs.iter().next().unwrap();
        assert!(expected.starts_with("a5ca0ce0"));
        assert_eq!(&parsed.info.fingerprint.to_string(), expected);
        assert_eq!(fingerprint_hex(&certificate).unwrap(), *expected);
        let names: Vec<String> = serde_json::from_value(entry["names"].clone()).unwrap();
        assert_eq!(parsed.info.names, names);
        assert!(parsed.info.not_before < parsed.info.not_after);
        assert_eq!(parsed.chain.len(), 1);
        assert!(matches!(parsed.key, PrivateKeyDer::Pkcs8(_)));
    }

    #[test]
    fn fingerprints_parse_in_either_case() {
        let fingerprint = Fingerprint::of_der(b"anything");
        let lower = fingerprint.to_string();
        assert_eq!(lower, lower.to_lowercase());
        assert_eq!(lower.len(), 64);
        assert_eq!(lower.parse::<Fingerprint>().unwrap(), fingerprint);
        assert_eq!(
            lower.to_uppercase().parse::<Fingerprint>().unwrap(),
            fingerprint
        );
        assert!(fingerprint_matches(
            &format!(" {} ", lower.to_uppercase()),
            &fingerprint
        ));
        for bad in ["", "abc", "zz", &lower[..62], &format!("{lower}00")] {
            let error = bad.parse::<Fingerprint>().unwrap_err();
            assert!(matches!(error, CertificateError::InvalidFingerprint { .. }));
            assert!(error.to_string().contains("64 hexadecimal digits"));
        }
    }

    #[test]
    fn san_names_win_over_the_common_name_and_wildcards_are_kept() {
        let key = KeyPair::generate().unwrap();
        let pem = generate(
            &["*.example.com", "example.com", "*.example.com"],
            Some("ignored.example.org"),
            &key,
        );
        let parsed = ParsedCertificate::from_pem(&pem, &[], &key.serialize_pem()).unwrap();
        assert_eq!(parsed.info.names, ["*.example.com", "example.com"]);
    }

    #[test]
    fn common_name_is_used_without_dns_names() {
        let key = KeyPair::generate().unwrap();
        let pem = generate(&[], Some("cn-only.example.com"), &key);
        let info = certificate_info(&pem).unwrap();
        assert_eq!(info.names, ["cn-only.example.com"]);
        assert_eq!(info.fingerprint.to_string(), fingerprint_hex(&pem).unwrap());
    }

    #[test]
    fn validity_is_reported_in_unix_seconds() {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["v.example.com".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2030, 1, 1);
        let pem = params.self_signed(&key).unwrap().pem();
        let info = certificate_info(&pem).unwrap();
        assert_eq!(info.not_before, 1_577_836_800);
        assert_eq!(info.not_after, 1_893_456_000);
    }

    #[test]
    fn ec_p384_ed25519_and_rsa_pkcs1_keys_are_accepted() {
        for algorithm in [&rcgen::PKCS_ECDSA_P384_SHA384, &rcgen::PKCS_ED25519] {
            let key = KeyPair::generate_for(algorithm).unwrap();
            let pem = generate(&["ec.example.com"], None, &key);
            ParsedCertificate::from_pem(&pem, &[], &key.serialize_pem()).unwrap();
        }

        // The fixture key rewritten as PKCS#1 ("BEGIN RSA PRIVATE KEY"): the
        // PKCS#8 wrapper around an RSA key ends with the PKCS#1 structure.
        let pkcs8 = PrivatePkcs8KeyDer::from_pem_slice(fixture("key.pem").as_bytes()).unwrap();
        let pkcs8 = pkcs8.secret_pkcs8_der();
        let pkcs1 = rsa_pkcs1_from_pkcs8(pkcs8);
        let pem = pem_encode("RSA PRIVATE KEY", &pkcs1);
        let parsed = ParsedCertificate::from_pem(&fixture("cert.pem"), &[], &pem).unwrap();
        assert!(matches!(parsed.key, PrivateKeyDer::Pkcs1(_)));
    }

    #[test]
    fn sec1_ec_keys_are_accepted() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let pem = generate(&["sec1.example.com"], None, &key);
        let sec1 = sec1_from_pkcs8(&key.serialize_der());
        let key_pem = pem_encode("EC PRIVATE KEY", &sec1);
        let parsed = ParsedCertificate::from_pem(&pem, &[], &key_pem).unwrap();
        assert!(matches!(parsed.key, PrivateKeyDer::Sec1(_)));
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let key = KeyPair::generate().unwrap();
        let other = KeyPair::generate().unwrap();
        let pem = generate(&["a.example.com"], None, &key);
        let error = ParsedCertificate::from_pem(&pem, &[], &other.serialize_pem()).unwrap_err();
        assert!(matches!(error, CertificateError::KeyMismatch), "{error}");
        assert!(error.to_string().contains("does not match"));

        let error = ParsedCertificate::from_pem(&fixture("cert.pem"), &[], &key.serialize_pem())
            .unwrap_err();
        assert!(matches!(error, CertificateError::KeyMismatch), "{error}");
    }

    #[test]
    fn chains_are_kept_in_order_and_checked() {
        let ca_key = KeyPair::generate().unwrap();
        let ca = generate(&[], Some("Test CA"), &ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = generate(&["leaf.example.com"], None, &leaf_key);

        // The chain given separately and appended to the certificate.
        let separate = ParsedCertificate::from_pem(
            &leaf,
            std::slice::from_ref(&ca),
            &leaf_key.serialize_pem(),
        )
        .unwrap();
        let appended =
            ParsedCertificate::from_pem(&format!("{leaf}{ca}"), &[], &leaf_key.serialize_pem())
                .unwrap();
        assert_eq!(separate.chain.len(), 2);
        assert_eq!(separate.chain, appended.chain);
        assert_eq!(separate.info, appended.info);
        assert_eq!(separate.info.names, ["leaf.example.com"]);

        let split = split_certificate_chain(&format!("\n{leaf}\n{ca}trailing"));
        assert_eq!(split, [leaf.trim(), ca.trim()]);

        let error = ParsedCertificate::from_pem(
            &leaf,
            &["no pem here".to_owned()],
            &leaf_key.serialize_pem(),
        )
        .unwrap_err();
        assert!(
            matches!(
                error,
                CertificateError::NotPem {
                    what: "certificate chain"
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn garbage_is_refused_with_the_right_error() {
        let certificate = fixture("cert.pem");
        let key = fixture("key.pem");

        let error = ParsedCertificate::from_pem("garbage", &[], &key).unwrap_err();
        assert!(matches!(
            error,
            CertificateError::NotPem {
                what: "certificate"
            }
        ));
        assert!(error.to_string().contains("not PEM"));

        // A key where the certificate should be.
        let error = ParsedCertificate::from_pem(&key, &[], &key).unwrap_err();
        assert!(
            matches!(error, CertificateError::NoCertificate { .. }),
            "{error}"
        );

        // Well-formed PEM around bytes that are not X.509.
        let junk = pem_encode("CERTIFICATE", b"this is not a certificate at all");
        let error = ParsedCertificate::from_pem(&junk, &[], &key).unwrap_err();
        assert!(
            matches!(error, CertificateError::InvalidDer { index: 0, .. }),
            "{error}"
        );
        assert!(
            fingerprint_hex(&junk).is_ok(),
            "framing alone gives a fingerprint"
        );

        let broken = certificate.replace("-----END CERTIFICATE-----", "");
        let error = ParsedCertificate::from_pem(&broken, &[], &key).unwrap_err();
        assert!(
            matches!(error, CertificateError::InvalidPem { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("END CERTIFICATE"), "{error}");

        let error = ParsedCertificate::from_pem(&certificate, &[], "").unwrap_err();
        assert!(matches!(
            error,
            CertificateError::NotPem {
                what: "private key"
            }
        ));

        let error = ParsedCertificate::from_pem(&certificate, &[], &certificate).unwrap_err();
        assert!(matches!(error, CertificateError::NoKey), "{error}");

        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let error = ParsedCertificate::from_pem(&certificate, &[], encrypted).unwrap_err();
        assert!(matches!(error, CertificateError::EncryptedKey), "{error}");

        let bad_key = pem_encode("PRIVATE KEY", b"not a key");
        let error = ParsedCertificate::from_pem(&certificate, &[], &bad_key).unwrap_err();
        assert!(
            matches!(error, CertificateError::UnsupportedKey { .. }),
            "{error}"
        );
    }

    #[test]
    fn certificate_and_key_messages_are_checked_whole() {
        let message = CertificateAndKey {
            certificate: fixture("cert.pem"),
            certificate_chain: vec![],
            key: fixture("key.pem"),
            versions: vec![],
            names: vec![],
        };
        let info = parse_certificate_and_key(&message).unwrap();
        assert_eq!(info.names.len(), 2);
        let wrong_key = CertificateAndKey {
            key: KeyPair::generate().unwrap().serialize_pem(),
            ..message
        };
        assert!(matches!(
            parse_certificate_and_key(&wrong_key),
            Err(CertificateError::KeyMismatch)
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_input_never_panics(certificate in ".*", key in ".*") {
            let _ = ParsedCertificate::from_pem(&certificate, &[], &key);
            let _ = fingerprint_hex(&certificate);
            let _ = certificate.parse::<Fingerprint>();
        }

        #[test]
        fn damaged_fixture_never_panics(position in 0usize..1400, byte in 0u8..128) {
            let mut certificate = fixture("cert.pem").into_bytes();
            let index = position % certificate.len();
            certificate[index] = byte;
            let certificate = String::from_utf8_lossy(&certificate);
            let _ = ParsedCertificate::from_pem(&certificate, &[], &fixture("key.pem"));
        }
    }

    fn pem_encode(label: &str, der: &[u8]) -> String {
        // Enough base64 for tests; the standard alphabet with padding.
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut encoded = String::new();
        for chunk in der.chunks(3) {
            let bytes = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    encoded.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    encoded.push('=');
                }
            }
        }
        let mut pem = format!("-----BEGIN {label}-----\n");
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap());
            pem.push('\n');
        }
        pem.push_str(&format!("-----END {label}-----\n"));
        pem
    }

    /// Reads one DER TLV at `input`, returning (header length, content length).
    fn der_header(input: &[u8]) -> (usize, usize) {
        let first = input[1];
        if first < 0x80 {
            (2, first as usize)
        } else {
            let count = (first & 0x7f) as usize;
            let mut length = 0usize;
            for byte in &input[2..2 + count] {
                length = (length << 8) | *byte as usize;
            }
            (2 + count, length)
        }
    }

    /// PKCS#8 is SEQUENCE { version INTEGER, algorithm SEQUENCE, key OCTET
    /// STRING }; the OCTET STRING holds the PKCS#1 RSAPrivateKey.
    fn rsa_pkcs1_from_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
        let (header, _) = der_header(pkcs8);
        let mut position = header;
        for _ in 0..2 {
            let (h, l) = der_header(&pkcs8[position..]);
            position += h + l;
        }
        let (h, l) = der_header(&pkcs8[position..]);
        pkcs8[position + h..position + h + l].to_vec()
    }

    /// For EC keys the PKCS#8 OCTET STRING holds the SEC1 ECPrivateKey, but
    /// without the curve parameters; rustls needs them only when loading
    /// SEC1, and rcgen's P-256 keys carry the public key, so inserting the
    /// `[0] OID prime256v1` element yields a complete SEC1 key.
    fn sec1_from_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
        let inner = rsa_pkcs1_from_pkcs8(pkcs8);
        // inner: SEQUENCE { INTEGER 1, OCTET STRING key, [1] public key }
        let (header, _) = der_header(&inner);
        let mut position = header;
        let mut elements = Vec::new();
        while position < inner.len() {
            let (h, l) = der_header(&inner[position..]);
            elements.push(inner[position..position + h + l].to_vec());
            position += h + l;
        }
        // [0] { OID 1.2.840.10045.3.1.7 }
        let curve: &[u8] = &[
            0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
        ];
        let mut body = Vec::new();
        body.extend_from_slice(&elements[0]);
        body.extend_from_slice(&elements[1]);
        if !elements.iter().any(|element| element[0] == 0xa0) {
            body.extend_from_slice(curve);
        }
        for element in &elements[2..] {
            body.extend_from_slice(element);
        }
        let mut sec1 = vec![0x30];
        if body.len() < 0x80 {
            sec1.push(body.len() as u8);
        } else {
            sec1.push(0x81);
            sec1.push(body.len() as u8);
        }
        sec1.extend_from_slice(&body);
        sec1
    }
}
