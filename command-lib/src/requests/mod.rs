//! The requests a client sends, built from values it has already parsed.
//!
//! Every program that drives a daemon (the `sozu` command line, the console,
//! scripts written in Rust) builds its requests here, so that the same order
//! is always the same bytes on the wire. The values match what Sozu 2.3.3's
//! command line sends for the same command, field for field: frontends are
//! sent with position TREE, a backend without an explicit weight carries
//! `weight: 0`, certificates travel with an empty `names` list (the daemon
//! fills it), fingerprints travel as lowercase hex.
//!
//! Functions that only wrap values are infallible. Functions that read files
//! (certificates, keys, answer templates) or interpret text (tags, TLS
//! versions, fingerprints, `code=body` answers) check everything before a
//! request exists and fail with a [`RequestError`] that names the field; a
//! command line maps that field to its flag.
//!
//! Nothing here knows about argument parsers, terminals or sockets.

mod certificate;
mod cluster;
mod control;
mod frontend;
mod listener;
#[cfg(test)]
mod tests;

pub use certificate::*;
pub use cluster::*;
pub use control::*;
pub use frontend::*;
pub use listener::*;

use std::path::{Path, PathBuf};

use crate::certificate::CertificateError;

/// A TCP listener's `sni_preread_timeout` when not given, seconds.
pub const DEFAULT_SNI_PREREAD_TIMEOUT: u32 = 5;
/// A TCP listener's `sni_preread_max_bytes` when not given.
pub const DEFAULT_SNI_PREREAD_MAX_BYTES: u32 = 16_384;

/// Why a request could not be built. Nothing was sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// A file named by the request could not be read.
    #[error("could not read the {field} file {}: {source}", path.display())]
    ReadFile {
        /// Which input the file was for (`certificate`, `key`, `answer`, …).
        field: &'static str,
        /// The path as given.
        path: PathBuf,
        /// What the system reported.
        #[source]
        source: std::io::Error,
    },
    /// Certificate material was refused before sending.
    #[error("{field}: {source}")]
    Certificate {
        /// Which input was wrong (`certificate`, `certificate_chain`, `key`,
        /// `fingerprint`).
        field: &'static str,
        /// What was wrong with it.
        #[source]
        source: CertificateError,
    },
    /// A value cannot be used.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field, named as the protocol names it.
        field: &'static str,
        /// What is wrong and, where it helps, what was expected.
        reason: String,
    },
}

impl RequestError {
    /// The field the error is about, as the protocol names it; callers map
    /// it to their own vocabulary (a command line flag, a form field).
    pub fn field(&self) -> &'static str {
        match self {
            RequestError::ReadFile { field, .. }
            | RequestError::Certificate { field, .. }
            | RequestError::Invalid { field, .. } => field,
        }
    }

    fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        RequestError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

fn read_text(field: &'static str, path: &Path) -> Result<String, RequestError> {
    std::fs::read_to_string(path).map_err(|source| RequestError::ReadFile {
        field,
        path: path.to_owned(),
        source,
    })
}
