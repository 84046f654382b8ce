//! `sozu_fleet`: many proxies kept identical from one desired state in
//! etcd ([fleet](../../doc/fleet.md)).
//!
//! - [`etcd`]: a small client of etcd's JSON gateway (no protobuf code
//!   generation, so no `protoc`), with user/password authentication and
//!   TLS (CA, client certificate).
//! - [`document`]: a configuration and the files it names, as stored; the
//!   merge of a node's override over the shared configuration.
//! - [`store`]: the keys of a fleet and the operations on them (push with
//!   compare-and-swap, history, rollback, overrides, node reports).
//!
//! The agent that drives a daemon lives in the `sozu` binary (`sozu fleet
//! agent`), beside the `apply` engine it uses.

pub mod document;
pub mod etcd;
pub mod store;

pub use document::{Document, DocumentError, merge};
pub use etcd::{Etcd, EtcdError, EtcdOptions};
pub use store::{FleetError, Keys, NodeReport};

/// Whether a node's report shows the fleet's current revision (and its own
/// override's) applied, without a failure.
pub fn converged(report: &NodeReport, revision: i64, override_revision: i64) -> bool {
    report.revision == revision
        && report.override_revision == override_revision
        && report.error.is_none()
}
