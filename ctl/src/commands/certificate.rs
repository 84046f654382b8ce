//! `certificate list|add|remove|replace`.
//!
//! Certificate, chain and key files are read and checked before anything is
//! sent: every PEM block must parse and the key must match the certificate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{ArgGroup, Subcommand};
use sozu_command::proto::command::TlsVersion;
use sozu_command::requests::{self, CertificateFiles};

use crate::error::CliError;
use crate::session::Session;

fn tls_version(text: &str) -> Result<TlsVersion, String> {
    requests::tls_version(text).map_err(|error| error.to_string())
}

/// `certificate …`
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum CertificateCmd {
    /// List certificates, all or filtered, from the main process's state (or
    /// from every worker with -w)
    List {
        /// Only the certificate with this fingerprint
        #[arg(short = 'f', long = "fingerprint")]
        fingerprint: Option<String>,
        /// Only certificates for this domain
        #[arg(short = 'd', long = "domain")]
        domain: Option<String>,
        /// Ask every worker instead of the main process's state
        #[arg(short = 'w', long = "workers")]
        workers: bool,
    },
    /// Add a certificate to an HTTPS listener
    Add {
        /// The HTTPS listener address, IP:PORT
        #[arg(short = 'a', long = "address")]
        address: SocketAddr,
        /// The certificate file (PEM)
        #[arg(long = "certificate", value_name = "FILE")]
        certificate: PathBuf,
        /// The intermediate certificates file (PEM)
        #[arg(long = "certificate-chain", value_name = "FILE")]
        chain: PathBuf,
        /// The private key file (PEM)
        #[arg(long = "key", value_name = "FILE")]
        key: PathBuf,
        /// TLS versions for this certificate: TLS_V12, TLS_V13 (repeatable)
        #[arg(long = "tls-versions", value_parser = tls_version, value_delimiter = ',')]
        tls_versions: Vec<TlsVersion>,
    },
    /// Remove a certificate, named by its file or its fingerprint
    #[command(group(ArgGroup::new("which").required(true).args(["certificate", "fingerprint"])))]
    Remove {
        /// The HTTPS listener address, IP:PORT
        #[arg(short = 'a', long = "address")]
        address: SocketAddr,
        /// The certificate file (PEM)
        #[arg(long = "certificate", alias = "cert", value_name = "FILE")]
        certificate: Option<PathBuf>,
        /// The certificate's SHA-256 fingerprint (hex)
        #[arg(short = 'f', long = "fingerprint")]
        fingerprint: Option<String>,
    },
    /// Replace a certificate, named by its file or its fingerprint
    #[command(group(ArgGroup::new("old").required(true).args(["old_certificate", "fingerprint"])))]
    Replace {
        /// The HTTPS listener address, IP:PORT
        #[arg(short = 'a', long = "address")]
        address: SocketAddr,
        /// The new certificate file (PEM)
        #[arg(long = "new-certificate", value_name = "FILE")]
        certificate: PathBuf,
        /// The new intermediate certificates file (PEM)
        #[arg(long = "new-certificate-chain", value_name = "FILE")]
        chain: PathBuf,
        /// The new private key file (PEM)
        #[arg(long = "new-key", value_name = "FILE")]
        key: PathBuf,
        /// The certificate to replace, as a file (PEM)
        #[arg(long = "old-certificate", alias = "old-cert", value_name = "FILE")]
        old_certificate: Option<PathBuf>,
        /// The certificate to replace, as a fingerprint (hex)
        #[arg(short = 'f', long = "fingerprint")]
        fingerprint: Option<String>,
        /// TLS versions for the new certificate (repeatable)
        #[arg(long = "tls-versions", value_parser = tls_version, value_delimiter = ',')]
        tls_versions: Vec<TlsVersion>,
    },
}

/// Loads the three files of a certificate, naming the flag of the one that
/// is wrong. `prefix` is `""` for `add`, `"new-"` for `replace`.
fn load(
    certificate: &Path,
    chain: &Path,
    key: &Path,
    versions: &[TlsVersion],
    prefix: &str,
) -> Result<sozu_command::proto::command::CertificateAndKey, CliError> {
    let files = CertificateFiles {
        certificate: certificate.to_owned(),
        chain: chain.to_owned(),
        key: key.to_owned(),
    };
    let certificate_flag = format!("--{prefix}certificate");
    let chain_flag = format!("--{prefix}certificate-chain");
    let key_flag = format!("--{prefix}key");
    requests::load_certificate(&files, versions).map_err(|error| {
        CliError::from_request(
            error,
            &[
                ("certificate", &certificate_flag),
                ("certificate_chain", &chain_flag),
                ("key", &key_flag),
            ],
        )
    })
}

/// A fingerprint from `--fingerprint` or from a certificate file.
fn fingerprint(
    file: Option<&Path>,
    file_flag: &str,
    fingerprint: Option<&String>,
) -> Result<String, CliError> {
    match (file, fingerprint) {
        (Some(file), _) => requests::fingerprint_of_file(file)
            .map_err(|error| CliError::from_request(error, &[("certificate", file_flag)])),
        (None, Some(fingerprint)) => requests::fingerprint(fingerprint)
            .map_err(|error| CliError::from_request(error, &[("fingerprint", "-f/--fingerprint")])),
        (None, None) => Err(CliError::usage(format!(
            "give {file_flag} or -f/--fingerprint"
        ))),
    }
}

/// Runs a `certificate` subcommand.
pub fn run(session: &mut Session, cmd: &CertificateCmd) -> Result<(), CliError> {
    match cmd {
        CertificateCmd::List {
            fingerprint,
            domain,
            workers,
        } => {
            let fingerprint = fingerprint
                .as_deref()
                .map(requests::fingerprint)
                .transpose()
                .map_err(|error| {
                    CliError::from_request(error, &[("fingerprint", "-f/--fingerprint")])
                })?;
            session.run(
                &requests::query_certificates(fingerprint.as_deref(), domain.as_deref(), *workers),
                "certificates",
            )
        }
        CertificateCmd::Add {
            address,
            certificate,
            chain,
            key,
            tls_versions,
        } => {
            let loaded = load(certificate, chain, key, tls_versions, "")?;
            let fingerprint = requests::fingerprint_of_file(certificate)
                .map_err(|error| CliError::from_request(error, &[]))?;
            session.run(
                &requests::certificate_add(*address, loaded),
                &format!("certificate {fingerprint} added to {address}"),
            )
        }
        CertificateCmd::Remove {
            address,
            certificate,
            fingerprint: given,
        } => {
            let fingerprint = fingerprint(certificate.as_deref(), "--certificate", given.as_ref())?;
            session.run(
                &requests::certificate_remove(*address, &fingerprint),
                &format!("certificate {fingerprint} removed from {address}"),
            )
        }
        CertificateCmd::Replace {
            address,
            certificate,
            chain,
            key,
            old_certificate,
            fingerprint: given,
            tls_versions,
        } => {
            let old = fingerprint(
                old_certificate.as_deref(),
                "--old-certificate",
                given.as_ref(),
            )?;
            let loaded = load(certificate, chain, key, tls_versions, "new-")?;
            session.run(
                &requests::certificate_replace(*address, loaded, &old),
                &format!("certificate {old} replaced on {address}"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Args, Command};
    use crate::error::ErrorKind;
    use clap::Parser;

    fn certificate(arguments: &[&str]) -> Result<CertificateCmd, clap::Error> {
        let mut all = vec!["sozu", "certificate"];
        all.extend_from_slice(arguments);
        match Args::try_parse_from(all)?.command {
            Command::Certificate { cmd } => Ok(cmd),
            other => panic!("{other:?}"),
        }
    }

    fn fixture(name: &str) -> PathBuf {
        sozu_command::fixtures_dir().join("sozu-2.3").join(name)
    }

    #[test]
    fn remove_needs_exactly_one_of_file_and_fingerprint() {
        assert!(certificate(&["remove", "-a", "127.0.0.1:443"]).is_err());
        assert!(
            certificate(&[
                "remove",
                "-a",
                "127.0.0.1:443",
                "--cert",
                "c.pem",
                "-f",
                "ab"
            ])
            .is_err()
        );
        assert!(certificate(&["remove", "-a", "127.0.0.1:443", "--cert", "c.pem"]).is_ok());
    }

    #[test]
    fn files_are_checked_and_errors_name_the_flag() {
        let cert = fixture("cert.pem");
        let key = fixture("key.pem");
        let loaded = load(&cert, &cert, &key, &[TlsVersion::TlsV13], "").unwrap();
        assert_eq!(loaded.versions, [TlsVersion::TlsV13 as i32]);
        assert!(loaded.names.is_empty());
        let missing = load(
            &cert,
            &cert,
            &PathBuf::from("/nonexistent.pem"),
            &[],
            "new-",
        )
        .unwrap_err();
        assert_eq!(missing.kind, ErrorKind::Usage);
        assert!(
            missing.message.starts_with("--new-key: "),
            "{}",
            missing.message
        );
        // A key given as the certificate is not a certificate.
        let swapped = load(&key, &cert, &key, &[], "").unwrap_err();
        assert!(
            swapped.message.starts_with("--certificate: "),
            "{}",
            swapped.message
        );
    }

    #[test]
    fn fingerprints_come_from_files_or_text() {
        let expected = "a5ca0ce08dec59c4151910c1439cb84ef7744d571a266d74cdff8e01605acffb";
        let cert = fixture("cert.pem");
        assert_eq!(
            fingerprint(Some(cert.as_path()), "--certificate", None).unwrap(),
            expected
        );
        let upper = expected.to_ascii_uppercase();
        assert_eq!(
            fingerprint(None, "--certificate", Some(&upper)).unwrap(),
            expected
        );
        let bad = fingerprint(None, "--certificate", Some(&"xyz".to_owned())).unwrap_err();
        assert!(
            bad.message.starts_with("-f/--fingerprint: "),
            "{}",
            bad.message
        );
    }
}
