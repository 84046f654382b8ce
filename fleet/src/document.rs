//! A configuration as the fleet stores it: the TOML text `sozu apply`
//! reads, with the files it names (certificates, keys, answer templates)
//! carried inside, so that any node can rebuild the same state; and the
//! per-node override merged over it.
//!
//! At push time every value of a file key (`certificate`,
//! `certificate_chain`, `key`, `answer_*`, the values of `answers`,
//! `client_ca_certificates`, `client_ca_crls`) that names an existing file
//! is replaced by `files/NAME` and the file's text is stored under that
//! name. A node writes the text and the files into a private temporary
//! folder and loads them with the same configuration loader as `apply`.
//!
//! Stored form: the document as JSON, gzip-compressed (flate2's pure-Rust
//! backend). A 5,000-cluster state compresses far below etcd's 1.5 MiB
//! default value limit; a document that still does not fit is refused at
//! push time with its size.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sozu_command::config::Config;
use sozu_command::state::ConfigState;

/// The largest decompressed document a node accepts (a bound against a
/// value crafted to expand without end).
pub const MAX_DECOMPRESSED: u64 = 512 * 1024 * 1024;

/// A configuration and the files it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// The TOML text; file keys name `files/...` entries of `files`.
    pub config: String,
    /// The text of each file, by the name `config` uses.
    pub files: BTreeMap<String, String>,
    /// The file it was read from, for people.
    pub source: String,
}

/// Why a document could not be read, merged or turned into a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DocumentError(pub String);

fn is_file_key(parent: Option<&str>, key: &str) -> bool {
    matches!(
        key,
        "certificate" | "certificate_chain" | "key" | "client_ca_certificates" | "client_ca_crls"
    ) || key.starts_with("answer_")
        || parent == Some("answers")
}

fn safe_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

struct Packer<'a> {
    base: &'a Path,
    files: BTreeMap<String, String>,
    error: Option<DocumentError>,
}

impl Packer<'_> {
    fn pack_string(&mut self, key_path: &str, text: &mut String) {
        let path = Path::new(text.as_str());
        let path: PathBuf = if path.is_absolute() {
            path.to_owned()
        } else {
            self.base.join(path)
        };
        if !path.is_file() {
            return;
        }
        match std::fs::read_to_string(&path) {
            Ok(content) => {
                let digest = hex::encode(Sha256::digest(content.as_bytes()));
                let name = format!("files/{}-{}", &digest[..16], safe_name(&path));
                self.files.insert(name.clone(), content);
                *text = name;
            }
            Err(error) => {
                self.error.get_or_insert(DocumentError(format!(
                    "{key_path}: could not read {}: {error}",
                    path.display()
                )));
            }
        }
    }

    fn walk(&mut self, key_path: &str, parent: Option<&str>, key: &str, value: &mut toml::Value) {
        match value {
            toml::Value::String(text) if is_file_key(parent, key) => {
                self.pack_string(key_path, text);
            }
            toml::Value::Array(items) => {
                for (index, item) in items.iter_mut().enumerate() {
                    self.walk(&format!("{key_path}[{index}]"), parent, key, item);
                }
            }
            toml::Value::Table(table) => {
                for (child, item) in table.iter_mut() {
                    let child_path = if key_path.is_empty() {
                        child.clone()
                    } else {
                        format!("{key_path}.{child}")
                    };
                    self.walk(&child_path, Some(key), child, item);
                }
            }
            _ => {}
        }
    }
}

fn parse_table(text: &str, what: &str) -> Result<toml::Table, DocumentError> {
    text.parse::<toml::Table>()
        .map_err(|error| DocumentError(format!("{what}: {error}")))
}

impl Document {
    /// Reads a configuration file and every file it names.
    pub fn read(path: &Path) -> Result<Document, DocumentError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| DocumentError(format!("{}: {error}", path.display())))?;
        let table = parse_table(&text, &path.display().to_string())?;
        let base = std::path::absolute(path)
            .ok()
            .and_then(|absolute| absolute.parent().map(Path::to_owned))
            .unwrap_or_else(|| PathBuf::from("."));
        let mut packer = Packer {
            base: &base,
            files: BTreeMap::new(),
            error: None,
        };
        let mut value = toml::Value::Table(table);
        packer.walk("", None, "", &mut value);
        if let Some(error) = packer.error {
            return Err(DocumentError(format!("{}: {error}", path.display())));
        }
        let config = toml::to_string(&value)
            .map_err(|error| DocumentError(format!("{}: {error}", path.display())))?;
        Ok(Document {
            config,
            files: packer.files,
            source: path.display().to_string(),
        })
    }

    /// The configuration state this document describes, loaded as `sozu
    /// apply` loads a file.
    pub fn state(&self) -> Result<ConfigState, DocumentError> {
        let folder = tempfile::Builder::new()
            .prefix("sozu-fleet-")
            .tempdir()
            .map_err(|error| DocumentError(format!("temporary folder: {error}")))?;
        for (name, text) in &self.files {
            if !name.starts_with("files/") || name.contains("..") || name[6..].contains('/') {
                return Err(DocumentError(format!(
                    "a stored file has a bad name: {name}"
                )));
            }
            let path = folder.path().join(name);
            std::fs::create_dir_all(folder.path().join("files"))
                .and_then(|()| std::fs::write(&path, text))
                .map_err(|error| DocumentError(format!("{}: {error}", path.display())))?;
        }
        let path = folder.path().join("config.toml");
        std::fs::write(&path, &self.config)
            .map_err(|error| DocumentError(format!("{}: {error}", path.display())))?;
        let config = Config::load(&path).map_err(|error| {
            DocumentError(
                error
                    .to_string()
                    .replace(&path.display().to_string(), &self.source),
            )
        })?;
        let initial = config.initial_state(|_| Ok(())).map_err(|refused| {
            DocumentError(format!(
                "{}: {} cannot be applied: {}",
                self.source,
                refused.request.kind_name(),
                refused.reason
            ))
        })?;
        Ok(initial.state)
    }

    /// The stored bytes: JSON, gzip-compressed.
    pub fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("a document serializes");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&json).expect("writing to memory");
        encoder.finish().expect("writing to memory")
    }

    /// A document from its stored bytes.
    pub fn decode(bytes: &[u8]) -> Result<Document, DocumentError> {
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .take(MAX_DECOMPRESSED)
            .read_to_end(&mut json)
            .map_err(|error| DocumentError(format!("a stored document is not gzip: {error}")))?;
        serde_json::from_slice(&json)
            .map_err(|error| DocumentError(format!("a stored document is not valid: {error}")))
    }

    /// The SHA-256 of the stored bytes, in hex.
    pub fn digest(encoded: &[u8]) -> String {
        hex::encode(Sha256::digest(encoded))
    }

    /// Checks an override: its `[fleet]` table may hold only `addresses`,
    /// a table of address to address.
    pub fn check_override(&self) -> Result<(), DocumentError> {
        let table = parse_table(&self.config, &self.source)?;
        fleet_addresses(&table, &self.source).map(|_| ())
    }
}

fn fleet_addresses(
    table: &toml::Table,
    source: &str,
) -> Result<BTreeMap<String, String>, DocumentError> {
    let mut addresses = BTreeMap::new();
    let Some(fleet) = table.get("fleet") else {
        return Ok(addresses);
    };
    let fleet = fleet
        .as_table()
        .ok_or_else(|| DocumentError(format!("{source}: fleet: expected a table")))?;
    for (key, value) in fleet {
        if key != "addresses" {
            return Err(DocumentError(format!(
                "{source}: fleet.{key}: unknown key (the [fleet] table of an override holds only `addresses`)"
            )));
        }
        let map = value.as_table().ok_or_else(|| {
            DocumentError(format!(
                "{source}: fleet.addresses: expected a table of \"ADDRESS\" = \"ADDRESS\""
            ))
        })?;
        for (from, to) in map {
            let to = to.as_str().ok_or_else(|| {
                DocumentError(format!(
                    "{source}: fleet.addresses.\"{from}\": expected an address string"
                ))
            })?;
            for (what, text) in [(from.as_str(), from.as_str()), (to, to)] {
                if text.parse::<std::net::SocketAddr>().is_err() {
                    return Err(DocumentError(format!(
                        "{source}: fleet.addresses.\"{from}\": {what} is not an IP:PORT address"
                    )));
                }
            }
            addresses.insert(from.clone(), to.to_owned());
        }
    }
    Ok(addresses)
}

fn merge_tables(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base_table)), toml::Value::Table(over_table)) => {
                merge_tables(base_table, over_table);
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn rewrite_addresses(value: &mut toml::Value, addresses: &BTreeMap<String, String>) {
    match value {
        toml::Value::String(text) => {
            if let Some(to) = addresses.get(text.as_str()) {
                *text = to.clone();
            }
        }
        toml::Value::Array(items) => items
            .iter_mut()
            .for_each(|item| rewrite_addresses(item, addresses)),
        toml::Value::Table(table) => table
            .iter_mut()
            .for_each(|(_, item)| rewrite_addresses(item, addresses)),
        _ => {}
    }
}

/// The shared document with a node's override over it: tables merge key
/// by key, any other value of the override replaces the shared one (an
/// array as a whole), then every string equal to an address of the
/// override's `[fleet.addresses]` becomes the address it maps to.
pub fn merge(shared: &Document, over: Option<&Document>) -> Result<Document, DocumentError> {
    let Some(over) = over else {
        return Ok(shared.clone());
    };
    let mut base = parse_table(&shared.config, &shared.source)?;
    let mut over_table = parse_table(&over.config, &over.source)?;
    let addresses = fleet_addresses(&over_table, &over.source)?;
    over_table.remove("fleet");
    merge_tables(&mut base, over_table);
    let mut value = toml::Value::Table(base);
    rewrite_addresses(&mut value, &addresses);
    let mut files = shared.files.clone();
    files.extend(over.files.clone());
    Ok(Document {
        config: toml::to_string(&value).map_err(|error| DocumentError(error.to_string()))?,
        files,
        source: format!("{} with override {}", shared.source, over.source),
    })
}

#[cfg(test)]
mod tests;
