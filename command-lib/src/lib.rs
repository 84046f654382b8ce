//! The Sozu command protocol, as a library.
//!
//! Everything a program needs to talk to a Sozu-compatible daemon, or to be
//! one, without any process or socket policy:
//!
//! - [`proto`]: the generated message types of `proto/command.proto`, with
//!   serde in Sozu's JSON shape, and small conveniences on them;
//! - [`channel`]: the frame format and a blocking client channel, plus an
//!   async codec for servers, all built on the same framing code;
//! - [`requests`]: the requests a client sends, built from values it has
//!   already parsed (the `sozu` command line and the console use it);
//! - [`config`]: the TOML configuration file and the requests it implies;
//! - [`h2_settings`]: the one list of the HTTP/2 tuning settings of
//!   listeners, with getters and setters on every message that carries them;
//! - [`state`]: `ConfigState`, the configuration held by a daemon, its
//!   changes and their undo, its diff, its queries, and the state file
//!   format;
//! - [`validate`]: the check of a change's own content that every process
//!   runs before accepting it;
//! - [`certificate`]: PEM parsing, fingerprints, names and validity.
//!
//! This crate never prints to a terminal and never spawns processes.

pub mod certificate;
pub mod channel;
pub mod config;
pub mod h2_settings;
pub mod prometheus;
pub mod proto;
pub mod requests;
pub mod state;
pub mod validate;

/// The folder of the Sozu recordings this repository keeps for its own
/// tests (`tests/fixtures/` at the workspace root: `sozu-2.3/`, `sozu-2.1/`).
/// Only meaningful inside a checkout of this repository.
#[doc(hidden)]
pub fn fixtures_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}
