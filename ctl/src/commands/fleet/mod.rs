//! `sozu fleet push|diff|history|status|agent`: one desired state in etcd
//! for many daemons ([fleet](../../../../doc/fleet.md)).
//!
//! The keys, the stored documents and the etcd client are in `sozu_fleet`;
//! this module parses the flags, prints, and runs the agent, which drives
//! its daemon with `apply`'s engine (live state, plan, pruning).

mod agent;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use sozu_command::state::ConfigState;
use sozu_fleet::store::{self, DEFAULT_MAX_CONTENT, check_node_name};
use sozu_fleet::{Document, Etcd, EtcdOptions, FleetError, Keys, converged, merge};

use crate::commands::apply::Plan;
use crate::error::{CliError, ErrorKind};
use crate::output::Block;
use crate::render;
use crate::session::Session;

pub use agent::AgentArgs;

/// Where the fleet's etcd is and how to reach it.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct EtcdArgs {
    /// etcd endpoints, http(s)://HOST:PORT, comma-separated
    #[arg(long = "etcd", value_name = "URL", env = "SOZU_ETCD", global = true)]
    pub etcd: Option<String>,
    /// The fleet's key prefix in etcd, e.g. /sozu/prod
    #[arg(
        long = "prefix",
        value_name = "PREFIX",
        env = "SOZU_FLEET_PREFIX",
        global = true
    )]
    pub prefix: Option<String>,
    /// etcd user (with --etcd-password)
    #[arg(
        long = "etcd-user",
        value_name = "USER",
        env = "SOZU_ETCD_USER",
        global = true
    )]
    pub user: Option<String>,
    /// etcd password (better through $SOZU_ETCD_PASSWORD)
    #[arg(
        long = "etcd-password",
        value_name = "PASSWORD",
        env = "SOZU_ETCD_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub password: Option<String>,
    /// CA certificate(s) signing etcd's certificate (PEM), for https:// endpoints
    #[arg(long = "etcd-ca", value_name = "FILE", global = true)]
    pub ca: Option<PathBuf>,
    /// Client certificate presented to etcd (PEM)
    #[arg(long = "etcd-cert", value_name = "FILE", global = true)]
    pub cert: Option<PathBuf>,
    /// Private key of --etcd-cert (PEM)
    #[arg(long = "etcd-key", value_name = "FILE", global = true)]
    pub key: Option<PathBuf>,
    /// Wait for each etcd answer, e.g. 5s
    #[arg(long = "etcd-timeout", value_name = "DURATION", default_value = "5s", value_parser = parse_duration, global = true)]
    pub etcd_timeout: Duration,
}

/// `sozu fleet …`.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum FleetCmd {
    /// Store FILE as the fleet's desired state (or as a node's override)
    Push {
        /// The configuration (TOML, as for `apply`); certificates are read
        /// from the files it names
        #[arg(value_name = "FILE", required_unless_present = "revision")]
        file: Option<PathBuf>,
        /// Store FILE as this node's override instead
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
        /// Write only if the desired state (or the override) is still at
        /// this revision (0: never pushed)
        #[arg(long = "expect-revision", value_name = "N")]
        expect_revision: Option<i64>,
        /// Roll back: make the push of revision N the desired state again
        #[arg(long, value_name = "N", conflicts_with_all = ["file", "node"])]
        revision: Option<i64>,
        /// Refuse a document larger than this once compressed (bytes)
        #[arg(long = "max-bytes", value_name = "BYTES", default_value_t = DEFAULT_MAX_CONTENT)]
        max_bytes: usize,
    },
    /// Show what pushing FILE would change against the desired state
    Diff {
        /// The configuration (TOML)
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Compare FILE as this node's override, on the node's whole state
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
    },
    /// List every push with its revision
    History,
    /// Every node: applied revision, converged or not, heartbeat, last error
    Status {
        /// Wait until every node has converged, at most this long (e.g. 30s)
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        wait: Option<Duration>,
        /// Also require at least this many nodes to report
        #[arg(long, value_name = "N", default_value_t = 1)]
        nodes: usize,
    },
    /// Keep the local daemon equal to the desired state (run beside it)
    Agent(AgentArgs),
}

/// `30s`, `500ms`, `2m`, or seconds alone.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |at| (&text[..at], &text[at..]));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a duration such as 30s, 500ms or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|error| format!("{text:?}: {error}"))
}

fn fleet_error(error: FleetError) -> CliError {
    match &error {
        FleetError::Etcd(inner) if inner.is_unreachable() => {
            CliError::new(ErrorKind::Connect, error.to_string())
        }
        FleetError::Etcd(sozu_fleet::EtcdError::Options(_))
        | FleetError::Document(_)
        | FleetError::Usage(_) => CliError::usage(error.to_string()),
        _ => CliError::failure(error.to_string()),
    }
}

fn connect(args: &EtcdArgs) -> Result<(Etcd, Keys), CliError> {
    let etcd = args
        .etcd
        .clone()
        .ok_or_else(|| CliError::usage("--etcd URL (or $SOZU_ETCD) is required"))?;
    let prefix = args
        .prefix
        .as_deref()
        .ok_or_else(|| CliError::usage("--prefix PREFIX (or $SOZU_FLEET_PREFIX) is required"))?;
    let keys = Keys::new(prefix).map_err(fleet_error)?;
    let etcd = Etcd::new(&EtcdOptions {
        endpoints: vec![etcd],
        user: args.user.clone(),
        password: args.password.clone(),
        ca: args.ca.clone(),
        cert: args.cert.clone(),
        key: args.key.clone(),
        timeout: args.etcd_timeout,
    })
    .map_err(|error| fleet_error(error.into()))?;
    Ok((etcd, keys))
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| CliError::new(ErrorKind::Io, format!("async runtime: {error}")))
}

/// Runs a `fleet` subcommand.
pub fn run(session: &mut Session, etcd_args: &EtcdArgs, cmd: &FleetCmd) -> Result<(), CliError> {
    let (etcd, keys) = connect(etcd_args)?;
    if let FleetCmd::Agent(args) = cmd {
        return agent::run(session, etcd, keys, args);
    }
    let rt = runtime()?;
    rt.block_on(async {
        match cmd {
            FleetCmd::Push {
                file,
                node,
                expect_revision,
                revision,
                max_bytes,
            } => {
                push(
                    session,
                    &etcd,
                    &keys,
                    file.as_deref(),
                    node.as_deref(),
                    *expect_revision,
                    *revision,
                    *max_bytes,
                )
                .await
            }
            FleetCmd::Diff { file, node } => {
                diff(session, &etcd, &keys, file, node.as_deref()).await
            }
            FleetCmd::History => history(session, &etcd, &keys).await,
            FleetCmd::Status { wait, nodes } => status(session, &etcd, &keys, *wait, *nodes).await,
            FleetCmd::Agent(_) => unreachable!("handled above"),
        }
    })
}

fn read_document(file: &std::path::Path) -> Result<Document, CliError> {
    Document::read(file).map_err(|error| CliError::usage(format!("FILE: {error}")))
}

#[allow(clippy::too_many_arguments)]
async fn push(
    session: &mut Session,
    etcd: &Etcd,
    keys: &Keys,
    file: Option<&std::path::Path>,
    node: Option<&str>,
    expect: Option<i64>,
    rollback: Option<i64>,
    max_bytes: usize,
) -> Result<(), CliError> {
    let out = &session.out;
    if let Some(revision) = rollback {
        let new = store::rollback(etcd, keys, revision, expect)
            .await
            .map_err(fleet_error)?;
        if out.is_json() {
            out.json(&json!({"revision": new, "rollback_of": revision}));
        }
        out.result_line(&format!(
            "pushed revision {new}: the configuration of revision {revision} again"
        ));
        return Ok(());
    }
    let file = file.ok_or_else(|| CliError::usage("FILE is required without --revision"))?;
    let document = read_document(file)?;
    if let Some(node) = node {
        check_node_name(node).map_err(fleet_error)?;
        document
            .check_override()
            .map_err(|error| CliError::usage(error.to_string()))?;
        // The override must make a valid state with the current shared one.
        if let Some((_, desired)) = store::desired(etcd, keys).await.map_err(fleet_error)? {
            let shared = store::content(etcd, &desired).await.map_err(fleet_error)?;
            merge(&shared, Some(&document))
                .and_then(|merged| merged.state())
                .map_err(|error| CliError::usage(format!("--node {node}: {error}")))?;
        }
        let revision = store::push_override(etcd, keys, node, &document, expect, max_bytes)
            .await
            .map_err(fleet_error)?;
        if out.is_json() {
            out.json(&json!({"node": node, "override_revision": revision}));
        }
        out.result_line(&format!(
            "pushed the override of {node}: revision {revision}"
        ));
        return Ok(());
    }
    let state = document
        .state()
        .map_err(|error| CliError::usage(format!("FILE: {error}")))?;
    let revision = store::push(etcd, keys, &document, expect, max_bytes)
        .await
        .map_err(fleet_error)?;
    if out.is_json() {
        out.json(&json!({
            "revision": revision,
            "clusters": state.clusters.len(),
            "bytes": document.encode().len(),
        }));
    }
    out.result_line(&format!(
        "pushed revision {revision} ({} clusters)",
        state.clusters.len()
    ));
    Ok(())
}

async fn current_document(etcd: &Etcd, keys: &Keys) -> Result<Option<(i64, Document)>, CliError> {
    match store::desired(etcd, keys).await.map_err(fleet_error)? {
        Some((revision, desired)) => Ok(Some((
            revision,
            store::content(etcd, &desired).await.map_err(fleet_error)?,
        ))),
        None => Ok(None),
    }
}

async fn diff(
    session: &mut Session,
    etcd: &Etcd,
    keys: &Keys,
    file: &std::path::Path,
    node: Option<&str>,
) -> Result<(), CliError> {
    let document = read_document(file)?;
    let current = current_document(etcd, keys).await?;
    let to_state = |document: &Document| {
        document
            .state()
            .map_err(|error| CliError::usage(format!("FILE: {error}")))
    };
    let (old, new) = match node {
        None => (
            match &current {
                Some((_, shared)) => to_state(shared)?,
                None => ConfigState::new(),
            },
            to_state(&document)?,
        ),
        Some(node) => {
            check_node_name(node).map_err(fleet_error)?;
            let (_, shared) = current.ok_or_else(|| {
                CliError::usage("--node: nothing was pushed yet to merge the override over")
            })?;
            let over = store::override_of(etcd, keys, node)
                .await
                .map_err(fleet_error)?;
            let old = merge(&shared, over.as_ref().map(|(_, over)| over))
                .and_then(|merged| merged.state())
                .map_err(|error| CliError::usage(error.to_string()))?;
            let new = merge(&shared, Some(&document))
                .and_then(|merged| merged.state())
                .map_err(|error| CliError::usage(format!("FILE: {error}")))?;
            (old, new)
        }
    };
    let plan = Plan::new(&old, &new, true);
    let out = &session.out;
    if out.is_json() {
        out.json(&plan.json());
        return Ok(());
    }
    if plan.steps.is_empty() {
        out.result_line("nothing to do: the desired state matches the file");
    } else {
        out.result_line(&format!("plan: {}", plan.summary()));
    }
    out.blocks(&plan.blocks());
    Ok(())
}

fn time_text(millis: u64) -> String {
    render::format_unix_date((millis / 1000) as i64)
}

async fn history(session: &mut Session, etcd: &Etcd, keys: &Keys) -> Result<(), CliError> {
    let entries = store::history(etcd, keys).await.map_err(fleet_error)?;
    let current = store::desired(etcd, keys)
        .await
        .map_err(fleet_error)?
        .map_or(0, |(revision, _)| revision);
    let out = &session.out;
    if out.is_json() {
        let list: Vec<Value> = entries
            .iter()
            .map(|(revision, desired)| {
                json!({
                    "revision": revision,
                    "current": *revision == current,
                    "pushed_at": desired.pushed_at,
                    "source": desired.source,
                    "bytes": desired.bytes,
                    "sha256": desired.sha256,
                    "rollback_of": desired.rollback_of,
                })
            })
            .collect();
        out.json(&json!({"current": current, "history": list}));
        return Ok(());
    }
    let mut table = render::table(&["revision", "pushed", "source", "bytes", "note"]);
    for (revision, desired) in &entries {
        let mut note = Vec::new();
        if *revision == current {
            note.push("current".to_owned());
        }
        if let Some(of) = desired.rollback_of {
            note.push(format!("rollback to {of}"));
        }
        render::add_row(
            &mut table,
            &[
                revision.to_string(),
                time_text(desired.pushed_at),
                desired.source.clone(),
                desired.bytes.to_string(),
                note.join(", "),
            ],
        );
    }
    out.result_line(&format!(
        "{} push(es), current revision {current}",
        entries.len()
    ));
    out.blocks(&[Block::Table(table)]);
    Ok(())
}

struct Snapshot {
    revision: i64,
    rows: Vec<Value>,
    lagging: usize,
}

async fn snapshot(etcd: &Etcd, keys: &Keys) -> Result<Snapshot, CliError> {
    let revision = store::desired(etcd, keys)
        .await
        .map_err(fleet_error)?
        .map_or(0, |(revision, _)| revision);
    let overrides = store::override_revisions(etcd, keys)
        .await
        .map_err(fleet_error)?;
    let reports = store::node_reports(etcd, keys).await.map_err(fleet_error)?;
    let now = store::now_ms();
    let mut lagging = 0;
    let rows = reports
        .iter()
        .map(|report| {
            let override_revision = overrides.get(&report.node).copied().unwrap_or(0);
            let done = converged(report, revision, override_revision);
            if !done {
                lagging += 1;
            }
            json!({
                "node": report.node,
                "revision": report.revision,
                "override_revision": report.override_revision,
                "expected_override_revision": override_revision,
                "converged": done,
                "applied_at": report.applied_at,
                "heartbeat_age_ms": now.saturating_sub(report.heartbeat_at),
                "error": report.error,
                "failed_revision": report.failed_revision,
                "drift": report.drift,
            })
        })
        .collect();
    Ok(Snapshot {
        revision,
        rows,
        lagging,
    })
}

async fn status(
    session: &mut Session,
    etcd: &Etcd,
    keys: &Keys,
    wait: Option<Duration>,
    nodes: usize,
) -> Result<(), CliError> {
    let deadline = Instant::now() + wait.unwrap_or_default();
    let snapshot = loop {
        let snapshot = snapshot(etcd, keys).await?;
        let done = snapshot.lagging == 0 && snapshot.rows.len() >= nodes;
        if done || Instant::now() >= deadline {
            break snapshot;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let out = &session.out;
    let converged_all = snapshot.lagging == 0 && snapshot.rows.len() >= nodes;
    if out.is_json() {
        out.json(&json!({
            "revision": snapshot.revision,
            "converged": converged_all,
            "nodes": snapshot.rows,
        }));
    } else {
        let mut table = render::table(&[
            "node",
            "revision",
            "override",
            "converged",
            "heartbeat",
            "last error",
        ]);
        for row in &snapshot.rows {
            render::add_row(
                &mut table,
                &[
                    row["node"].as_str().unwrap_or("").to_owned(),
                    row["revision"].to_string(),
                    row["override_revision"].to_string(),
                    if row["converged"] == json!(true) {
                        "yes"
                    } else {
                        "no"
                    }
                    .to_owned(),
                    format!(
                        "{:.1}s ago",
                        row["heartbeat_age_ms"].as_u64().unwrap_or(0) as f64 / 1000.0
                    ),
                    row["error"].as_str().unwrap_or("").to_owned(),
                ],
            );
        }
        out.result_line(&format!(
            "revision {}: {} node(s), {} converged",
            snapshot.revision,
            snapshot.rows.len(),
            snapshot.rows.len() - snapshot.lagging
        ));
        out.blocks(&[Block::Table(table)]);
    }
    if converged_all {
        Ok(())
    } else {
        Err(CliError::failure(format!(
            "{} node(s) lag or failed, {} of at least {nodes} reporting",
            snapshot.lagging,
            snapshot.rows.len()
        ))
        .after_result())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(
            parse_duration("3 weeks")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_duration("soon").is_err());
    }
}
