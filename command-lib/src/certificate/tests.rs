use super::*;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

fn fixture(name: &str) -> String {
    let path = crate::fixtures_dir().join("sozu-2.3").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// A self-signed certificate for `names` (SANs) and/or `common_name`.
fn generate(names: &[&str], common_name: Option<&str>, key: &KeyPair) -> String {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
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

    let list: serde_json::Value = serde_json::from_str(&fixture("certificate-list.json")).unwrap();
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

    let error =
        ParsedCertificate::from_pem(&fixture("cert.pem"), &[], &key.serialize_pem()).unwrap_err();
    assert!(matches!(error, CertificateError::KeyMismatch), "{error}");
}

#[test]
fn chains_are_kept_in_order_and_checked() {
    let ca_key = KeyPair::generate().unwrap();
    let ca = generate(&[], Some("Test CA"), &ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = generate(&["leaf.example.com"], None, &leaf_key);

    // The chain given separately and appended to the certificate.
    let separate =
        ParsedCertificate::from_pem(&leaf, std::slice::from_ref(&ca), &leaf_key.serialize_pem())
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
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
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
