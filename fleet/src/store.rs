//! The fleet's keys in etcd and the operations on them.
//!
//! Under a prefix `P` (e.g. `/sozu/prod`):
//!
//! - `P/desired`: a small JSON [`Desired`] record naming the content key.
//!   Its modification revision is **the fleet's revision**.
//! - `P/content/SHA256`: a stored [`Document`] (gzip JSON), by digest.
//! - `P/history/ID`: a copy of each [`Desired`] record ever written, in the
//!   same transaction as `P/desired`, so its creation revision is the
//!   revision of that push. Compaction keeps the latest version of every
//!   key, so history and contents survive it.
//! - `P/overrides/NODE`: a node's override document (gzip JSON); its
//!   modification revision is the override's revision.
//! - `P/nodes/NODE`: a node agent's [`NodeReport`], on the agent's lease.

use serde::{Deserialize, Serialize};

use crate::document::{Document, DocumentError};
use crate::etcd::{Etcd, EtcdError, Put};

/// etcd's default limit on a request (`--max-request-bytes`), less room
/// for the keys and records that travel with the content.
pub const DEFAULT_MAX_CONTENT: usize = 1_572_864 - 16 * 1024;

/// The keys of one fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// The keys under `prefix` (a trailing `/` is ignored).
    pub fn new(prefix: &str) -> Result<Keys, FleetError> {
        let prefix = prefix.trim_end_matches('/');
        if !prefix.starts_with('/') || prefix.len() < 2 {
            return Err(FleetError::Usage(format!(
                "--prefix {prefix:?}: expected a key path such as /sozu/prod"
            )));
        }
        Ok(Keys {
            prefix: prefix.to_owned(),
        })
    }
    /// `P/desired`.
    pub fn desired(&self) -> String {
        format!("{}/desired", self.prefix)
    }
    /// `P/content/DIGEST`.
    pub fn content(&self, digest: &str) -> String {
        format!("{}/content/{digest}", self.prefix)
    }
    /// `P/history/`.
    pub fn history(&self) -> String {
        format!("{}/history/", self.prefix)
    }
    /// `P/overrides/NODE`.
    pub fn override_of(&self, node: &str) -> String {
        format!("{}/overrides/{node}", self.prefix)
    }
    /// `P/nodes/`.
    pub fn nodes(&self) -> String {
        format!("{}/nodes/", self.prefix)
    }
    /// `P/nodes/NODE`.
    pub fn node(&self, node: &str) -> String {
        format!("{}/nodes/{node}", self.prefix)
    }
}

/// Checks a node name: letters, digits, `.`, `-` and `_`.
pub fn check_node_name(node: &str) -> Result<(), FleetError> {
    if node.is_empty()
        || node.len() > 128
        || !node
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
    {
        return Err(FleetError::Usage(format!(
            "--node {node:?}: expected letters, digits, '.', '-' or '_' (at most 128)"
        )));
    }
    Ok(())
}

/// Why a fleet operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    /// etcd failed or was away.
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    /// A stored or pushed document is wrong.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// `--expect-revision` did not match.
    #[error(
        "the desired state is at revision {current}, not {expected}: someone else pushed; nothing was written"
    )]
    Conflict {
        /// What the push expected.
        expected: i64,
        /// What etcd holds.
        current: i64,
    },
    /// Something asked for does not exist, or an argument is wrong.
    #[error("{0}")]
    Usage(String),
}

/// The record at `P/desired` (and its copies under `P/history/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    /// The key of the content.
    pub content: String,
    /// The SHA-256 of the stored content.
    pub sha256: String,
    /// The stored content's size in bytes (compressed).
    pub bytes: usize,
    /// The file pushed.
    pub source: String,
    /// When, milliseconds since the epoch.
    pub pushed_at: u64,
    /// For a rollback (`push --revision N`): N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<i64>,
}

/// What a node agent reports at `P/nodes/NODE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NodeReport {
    /// The node's name.
    pub node: String,
    /// The fleet revision applied whole and served (0: none yet).
    pub revision: i64,
    /// The revision of the node's override applied with it (0: none).
    pub override_revision: i64,
    /// When that was applied, milliseconds since the epoch.
    pub applied_at: Option<u64>,
    /// When this report was written, milliseconds since the epoch.
    pub heartbeat_at: u64,
    /// The last failure, if the latest revision failed on this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The revision that failed (rolled back to `revision`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_revision: Option<i64>,
    /// The override revision that failed with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_override_revision: Option<i64>,
    /// The last hand-made change reverted, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
}

/// A difference found between the daemon and the applied state, reverted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// When, milliseconds since the epoch.
    pub at: u64,
    /// The requests sent to revert it.
    pub steps: usize,
    /// What they were (the first ten).
    pub what: Vec<String>,
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

fn record<T: for<'a> Deserialize<'a>>(key: &str, value: &[u8]) -> Result<T, FleetError> {
    serde_json::from_slice(value).map_err(|error| {
        FleetError::Document(DocumentError(format!(
            "{key} is not a valid record: {error}"
        )))
    })
}

/// The current desired record and its revision, if anything was pushed.
pub async fn desired(etcd: &Etcd, keys: &Keys) -> Result<Option<(i64, Desired)>, FleetError> {
    let range = etcd.get(&keys.desired()).await?;
    match range.kvs.first() {
        Some(kv) => Ok(Some((kv.mod_revision, record(&kv.key, &kv.value)?))),
        None => Ok(None),
    }
}

/// The document a desired record names.
pub async fn content(etcd: &Etcd, desired: &Desired) -> Result<Document, FleetError> {
    let range = etcd.get(&desired.content).await?;
    let kv = range
        .kvs
        .first()
        .ok_or_else(|| FleetError::Usage(format!("{} is missing from etcd", desired.content)))?;
    if Document::digest(&kv.value) != desired.sha256 {
        return Err(FleetError::Document(DocumentError(format!(
            "{} does not match its digest",
            desired.content
        ))));
    }
    Ok(Document::decode(&kv.value)?)
}

/// Every push, oldest first, each with its revision.
pub async fn history(etcd: &Etcd, keys: &Keys) -> Result<Vec<(i64, Desired)>, FleetError> {
    let range = etcd.get_prefix(&keys.history()).await?;
    let mut entries = Vec::new();
    for kv in range.kvs {
        entries.push((kv.create_revision, record(&kv.key, &kv.value)?));
    }
    entries.sort_by_key(|(revision, _)| *revision);
    Ok(entries)
}

async fn write_desired(
    etcd: &Etcd,
    keys: &Keys,
    desired: &Desired,
    content: Option<Vec<u8>>,
    expect: Option<i64>,
) -> Result<i64, FleetError> {
    let record = serde_json::to_vec(desired).expect("a record serializes");
    let mut puts = Vec::new();
    if let Some(content) = content {
        puts.push(Put {
            key: desired.content.clone(),
            value: content,
        });
    }
    puts.push(Put {
        key: keys.desired(),
        value: record.clone(),
    });
    // Time first, so keys sort by push; a random part, so two pushes of
    // the same content in the same millisecond keep two entries.
    let salt = {
        use std::hash::{BuildHasher, Hasher};
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    };
    puts.push(Put {
        key: format!(
            "{}{:016x}-{}-{salt:016x}",
            keys.history(),
            desired.pushed_at,
            &desired.sha256[..12]
        ),
        value: record,
    });
    let (applied, revision) = etcd.put_if(&keys.desired(), expect, &puts).await?;
    if applied {
        return Ok(revision);
    }
    let current = self::desired(etcd, keys)
        .await?
        .map_or(0, |(revision, _)| revision);
    Err(FleetError::Conflict {
        expected: expect.unwrap_or(0),
        current,
    })
}

/// Stores a document as the desired state; returns its revision. With
/// `expect`, only if the desired state is still at that revision (0: never
/// pushed).
pub async fn push(
    etcd: &Etcd,
    keys: &Keys,
    document: &Document,
    expect: Option<i64>,
    max_content: usize,
) -> Result<i64, FleetError> {
    let encoded = document.encode();
    if encoded.len() > max_content {
        return Err(FleetError::Usage(format!(
            "{}: {} bytes once compressed, over the {max_content} bytes etcd accepts in one request \
             (raise etcd's --max-request-bytes and pass --max-bytes)",
            document.source,
            encoded.len()
        )));
    }
    let sha256 = Document::digest(&encoded);
    let desired = Desired {
        content: keys.content(&sha256),
        sha256,
        bytes: encoded.len(),
        source: document.source.clone(),
        pushed_at: now_ms(),
        rollback_of: None,
    };
    write_desired(etcd, keys, &desired, Some(encoded), expect).await
}

/// Makes the push of revision `revision` the desired state again (a new
/// revision with the same content); returns the new revision.
pub async fn rollback(
    etcd: &Etcd,
    keys: &Keys,
    revision: i64,
    expect: Option<i64>,
) -> Result<i64, FleetError> {
    let entries = history(etcd, keys).await?;
    let (_, old) = entries
        .into_iter()
        .find(|(entry, _)| *entry == revision)
        .ok_or_else(|| {
            FleetError::Usage(format!(
                "--revision {revision}: no push has that revision (see `sozu fleet history`)"
            ))
        })?;
    // The content must still be there and intact.
    content(etcd, &old).await?;
    let desired = Desired {
        pushed_at: now_ms(),
        rollback_of: Some(revision),
        ..old
    };
    write_desired(etcd, keys, &desired, None, expect).await
}

/// Stores a node's override; returns its revision.
pub async fn push_override(
    etcd: &Etcd,
    keys: &Keys,
    node: &str,
    document: &Document,
    expect: Option<i64>,
    max_content: usize,
) -> Result<i64, FleetError> {
    document.check_override()?;
    let encoded = document.encode();
    if encoded.len() > max_content {
        return Err(FleetError::Usage(format!(
            "{}: {} bytes once compressed, over {max_content} bytes",
            document.source,
            encoded.len()
        )));
    }
    let key = keys.override_of(node);
    let (applied, _) = etcd
        .put_if(
            &key,
            expect,
            &[Put {
                key: key.clone(),
                value: encoded,
            }],
        )
        .await?;
    let current = etcd
        .get(&key)
        .await?
        .kvs
        .first()
        .map_or(0, |kv| kv.mod_revision);
    if applied {
        return Ok(current);
    }
    Err(FleetError::Conflict {
        expected: expect.unwrap_or(0),
        current,
    })
}

/// A node's override and its revision, if it has one.
pub async fn override_of(
    etcd: &Etcd,
    keys: &Keys,
    node: &str,
) -> Result<Option<(i64, Document)>, FleetError> {
    let range = etcd.get(&keys.override_of(node)).await?;
    match range.kvs.first() {
        Some(kv) => Ok(Some((kv.mod_revision, Document::decode(&kv.value)?))),
        None => Ok(None),
    }
}

/// The revision of every node's override, by node.
pub async fn override_revisions(
    etcd: &Etcd,
    keys: &Keys,
) -> Result<std::collections::BTreeMap<String, i64>, FleetError> {
    let prefix = keys.override_of("");
    let range = etcd.get_prefix(&prefix).await?;
    Ok(range
        .kvs
        .into_iter()
        .map(|kv| (kv.key[prefix.len()..].to_owned(), kv.mod_revision))
        .collect())
}

/// Every node's report, by node name.
pub async fn node_reports(etcd: &Etcd, keys: &Keys) -> Result<Vec<NodeReport>, FleetError> {
    let range = etcd.get_prefix(&keys.nodes()).await?;
    let mut reports = Vec::new();
    for kv in range.kvs {
        reports.push(record::<NodeReport>(&kv.key, &kv.value)?);
    }
    Ok(reports)
}

/// Writes a node's report on a lease.
pub async fn report(
    etcd: &Etcd,
    keys: &Keys,
    report: &NodeReport,
    lease: i64,
) -> Result<(), FleetError> {
    let value = serde_json::to_vec(report).expect("a report serializes");
    etcd.put(&keys.node(&report.node), &value, Some(lease))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_live_under_the_prefix() {
        let keys = Keys::new("/sozu/prod/").unwrap();
        assert_eq!(keys.desired(), "/sozu/prod/desired");
        assert_eq!(keys.node("web1"), "/sozu/prod/nodes/web1");
        assert_eq!(keys.override_of("web1"), "/sozu/prod/overrides/web1");
        assert!(keys.node("web1").starts_with(&keys.nodes()));
        for bad in ["", "/", "sozu/prod"] {
            assert!(Keys::new(bad).unwrap_err().to_string().contains("--prefix"));
        }
    }

    #[test]
    fn node_names_are_key_safe() {
        assert!(check_node_name("web-1.eu_west").is_ok());
        for bad in ["", "a/b", "a b", "..\\x"] {
            assert!(
                check_node_name(bad)
                    .unwrap_err()
                    .to_string()
                    .contains("--node")
            );
        }
    }

    #[test]
    fn a_node_converges_on_both_revisions_without_error() {
        let mut report = NodeReport {
            node: "n".to_owned(),
            revision: 7,
            override_revision: 3,
            ..NodeReport::default()
        };
        assert!(crate::converged(&report, 7, 3));
        assert!(!crate::converged(&report, 8, 3));
        assert!(!crate::converged(&report, 7, 4));
        report.error = Some("refused".to_owned());
        assert!(!crate::converged(&report, 7, 3));
    }
}
