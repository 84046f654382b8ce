//! `apply -f FILE [--dry-run] [--prune]` and `diff -f FILE [--prune]`:
//! make the live configuration match a file by sending only the difference.
//!
//! The live state is rebuilt from listing requests every Sozu daemon
//! answers, so this works against Sozu too:
//!
//! - listeners from `ListListeners` (with their `active` flag);
//! - cluster ids from `QueryClustersHashes`, then each cluster's settings and
//!   backends from `QueryClusterById`;
//! - frontends (deny rules included) from `ListFrontends`;
//! - certificates from `QueryCertificatesFromTheState`, placed on their
//!   listeners with the addresses `QueryCertificatesFromWorkers` reports.
//!
//! The desired state is the file's requests applied to an empty state. The
//! plan is `state::diff::diff(live, target)`, which adds before it removes so
//! traffic never meets a gap. Without `--prune`, the target is the file plus
//! everything live that the file does not mention (by identity: listener
//! address, cluster id, backend id and address, frontend routing key,
//! certificate fingerprint on a listener), so nothing is removed that the
//! file does not replace, and the plan stays one `diff` guarantees valid.
//! With `--prune`, the target is the file alone. Either way, applying twice
//! sends nothing the second time.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{Value, json};
use sozu_command::config::Config;
use sozu_command::proto::command::{
    AddCertificate, CertificatesWithFingerprints, FrontendFilters, Request, RequestHttpFrontend,
    request::RequestType, response_content::ContentType,
};
use sozu_command::requests;
use sozu_command::state::{ConfigState, diff::diff};

use crate::error::CliError;
use crate::output::{Block, Output};
use crate::render;
use crate::session::{Session, content_of};

/// `apply`'s arguments.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct ApplyArgs {
    /// The desired configuration (TOML, as for `start`)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,
    /// Print the plan, send nothing
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Also remove what is live but not in the file
    #[arg(long = "prune")]
    pub prune: bool,
}

/// `diff`'s arguments.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct DiffArgs {
    /// The desired configuration (TOML, as for `start`)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,
    /// Plan the removal of what is live but not in the file, as `apply
    /// --prune` would
    #[arg(long = "prune")]
    pub prune: bool,
}

/// What a step of a plan does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Creates something (or turns a listener on).
    Add,
    /// Changes something that stays.
    Change,
    /// Removes something (or turns a listener off).
    Remove,
}

impl Action {
    /// The word shown and written in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Change => "change",
            Action::Remove => "remove",
        }
    }
}

/// One request of a plan, with what it means for a person.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// What it does.
    pub action: Action,
    /// What it is about, e.g. `cluster web`.
    pub description: String,
    /// The request sent.
    pub request: Request,
}

impl Step {
    fn json(&self) -> Value {
        json!({
            "action": self.action.name(),
            "kind": self.request.kind_name(),
            "description": self.description,
            "request": self.request,
        })
    }
}

fn http_frontend_text(frontend: &RequestHttpFrontend) -> String {
    let target = frontend
        .cluster_id
        .as_deref()
        .map(|id| format!("cluster {id}"))
        .unwrap_or_else(|| "deny".to_owned());
    let method = frontend
        .method
        .as_deref()
        .map(|method| format!(" [{method}]"))
        .unwrap_or_default();
    format!(
        "{} {} {}{method} -> {target}",
        frontend.address,
        frontend.hostname,
        render::path_text(&frontend.path)
    )
}

/// What a request does, for a plan.
pub fn describe(request: &Request) -> (Action, String) {
    use RequestType as R;
    let Some(request_type) = &request.request_type else {
        return (Action::Change, "empty request".to_owned());
    };
    match request_type {
        R::AddHttpListener(l) => (Action::Add, format!("HTTP listener {}", l.address)),
        R::AddHttpsListener(l) | R::AddHttpsListenerWithClientAuth(l) => {
            (Action::Add, format!("HTTPS listener {}", l.address))
        }
        R::AddTcpListener(l) => (Action::Add, format!("TCP listener {}", l.address)),
        R::ActivateListener(l) => (Action::Add, format!("activation of listener {}", l.address)),
        R::DeactivateListener(l) => (
            Action::Remove,
            format!("activation of listener {}", l.address),
        ),
        R::UpdateHttpListener(l) => (Action::Change, format!("HTTP listener {}", l.address)),
        R::UpdateHttpsListener(l) => (Action::Change, format!("HTTPS listener {}", l.address)),
        R::UpdateTcpListener(l) => (Action::Change, format!("TCP listener {}", l.address)),
        R::RemoveListener(l) => (Action::Remove, format!("listener {}", l.address)),
        R::AddCluster(c) => (Action::Add, format!("cluster {}", c.cluster_id)),
        R::RemoveCluster(id) => (Action::Remove, format!("cluster {id} (and what names it)")),
        R::AddBackend(b) => (
            Action::Add,
            format!("backend {}/{} {}", b.cluster_id, b.backend_id, b.address),
        ),
        R::RemoveBackend(b) => (
            Action::Remove,
            format!("backend {}/{} {}", b.cluster_id, b.backend_id, b.address),
        ),
        R::AddHttpFrontend(f) => (
            Action::Add,
            format!("HTTP frontend {}", http_frontend_text(f)),
        ),
        R::AddHttpsFrontend(f) => (
            Action::Add,
            format!("HTTPS frontend {}", http_frontend_text(f)),
        ),
        R::RemoveHttpFrontend(f) => (
            Action::Remove,
            format!("HTTP frontend {}", http_frontend_text(f)),
        ),
        R::RemoveHttpsFrontend(f) => (
            Action::Remove,
            format!("HTTPS frontend {}", http_frontend_text(f)),
        ),
        R::AddTcpFrontend(f) => (
            Action::Add,
            format!("TCP frontend {} -> cluster {}", f.address, f.cluster_id),
        ),
        R::RemoveTcpFrontend(f) => (
            Action::Remove,
            format!("TCP frontend {} -> cluster {}", f.address, f.cluster_id),
        ),
        R::AddCertificate(c) => {
            let fingerprint =
                sozu_command::certificate::fingerprint_hex(&c.certificate.certificate)
                    .unwrap_or_else(|_| "?".to_owned());
            (
                Action::Add,
                format!("certificate {} on {}", short(&fingerprint), c.address),
            )
        }
        R::ReplaceCertificate(c) => (
            Action::Change,
            format!("certificate {} on {}", short(&c.old_fingerprint), c.address),
        ),
        R::RemoveCertificate(c) => (
            Action::Remove,
            format!("certificate {} on {}", short(&c.fingerprint), c.address),
        ),
        R::SetHealthCheck(h) => (Action::Change, format!("health check of {}", h.cluster_id)),
        R::RemoveHealthCheck(id) => (Action::Remove, format!("health check of {id}")),
        _ => (Action::Change, request.kind_name()),
    }
}

fn short(fingerprint: &str) -> &str {
    fingerprint.get(..16).unwrap_or(fingerprint)
}

/// The steps of a list of requests. A removal immediately followed by the
/// addition that takes its place (a frontend whose target changes) is one
/// change, shown as two "change" steps.
pub fn steps(requests: &[Request]) -> Vec<Step> {
    let mut steps: Vec<Step> = requests
        .iter()
        .map(|request| {
            let (action, description) = describe(request);
            Step {
                action,
                description,
                request: request.clone(),
            }
        })
        .collect();
    for index in 1..steps.len() {
        let replaces = matches!(
            (&steps[index - 1].request.request_type, &steps[index].request.request_type),
            (Some(RequestType::RemoveHttpFrontend(old)), Some(RequestType::AddHttpFrontend(new)))
                | (Some(RequestType::RemoveHttpsFrontend(old)), Some(RequestType::AddHttpsFrontend(new)))
                if old.address == new.address && old.hostname == new.hostname && old.path == new.path
        ) || matches!(
            (&steps[index - 1].request.request_type, &steps[index].request.request_type),
            (Some(RequestType::RemoveTcpFrontend(old)), Some(RequestType::AddTcpFrontend(new)))
                if old.address == new.address && old.sni == new.sni
        );
        if replaces {
            steps[index - 1].action = Action::Change;
            steps[index].action = Action::Change;
        }
    }
    steps
}

/// Marks as changes the additions of what `live` holds already: a
/// cluster's new settings, a backend's new weight or stickiness.
fn changes_of(live: &ConfigState, mut steps: Vec<Step>) -> Vec<Step> {
    for step in &mut steps {
        let exists = match &step.request.request_type {
            Some(RequestType::AddCluster(cluster)) => {
                live.clusters.contains_key(&cluster.cluster_id)
            }
            Some(RequestType::AddBackend(backend)) => live
                .backends
                .get(&backend.cluster_id)
                .is_some_and(|backends| {
                    backends
                        .get(&backend.backend_id, backend.address.to_socket_addr())
                        .is_some()
                }),
            _ => false,
        };
        if exists && step.action == Action::Add {
            step.action = Action::Change;
        }
    }
    steps
}

/// The state a configuration file describes.
pub fn desired_state(config: &Config) -> Result<ConfigState, CliError> {
    // Process settings (metrics switches) are not configuration objects;
    // apply leaves them alone.
    let initial = config
        .initial_state(|_| Ok(()))
        .map_err(|refused| cannot_apply(&refused))?;
    Ok(initial.state)
}

/// The error of a file whose request the state refuses.
pub fn cannot_apply(refused: &sozu_command::config::initial::RefusedRequest) -> CliError {
    CliError::usage(format!(
        "-f/--file: {} cannot be applied: {}",
        describe(&refused.request).1,
        refused.reason
    ))
}

/// `desired` plus everything in `live` the file does not mention, so that
/// the difference from `live` removes nothing the file does not replace.
pub fn keep_unmentioned(live: &ConfigState, desired: &ConfigState) -> ConfigState {
    let mut target = desired.clone();
    let desired_listeners: BTreeSet<SocketAddr> = desired
        .http_listeners
        .keys()
        .chain(desired.https_listeners.keys())
        .chain(desired.tcp_listeners.keys())
        .copied()
        .collect();
    let mut kept_listeners = BTreeSet::new();
    for request in live.generate_requests() {
        let Some(request_type) = &request.request_type else {
            continue;
        };
        let keep = match request_type {
            RequestType::AddHttpListener(l) => {
                new_listener(&l.address, &desired_listeners, &mut kept_listeners)
            }
            RequestType::AddHttpsListener(l) => {
                new_listener(&l.address, &desired_listeners, &mut kept_listeners)
            }
            RequestType::AddTcpListener(l) => {
                new_listener(&l.address, &desired_listeners, &mut kept_listeners)
            }
            RequestType::ActivateListener(a) => {
                kept_listeners.contains(&a.address.to_socket_addr())
            }
            RequestType::AddCluster(cluster) => !desired.clusters.contains_key(&cluster.cluster_id),
            RequestType::AddBackend(backend) => !desired
                .backends
                .get(&backend.cluster_id)
                .is_some_and(|backends| {
                    backends
                        .get(&backend.backend_id, backend.address.to_socket_addr())
                        .is_some()
                }),
            RequestType::AddCertificate(AddCertificate {
                address,
                certificate,
                ..
            }) => {
                let fingerprint =
                    sozu_command::certificate::fingerprint_hex(&certificate.certificate)
                        .unwrap_or_default();
                !desired
                    .certificates
                    .get(&address.to_socket_addr())
                    .is_some_and(|certificates| certificates.contains_key(&fingerprint))
            }
            // A frontend whose routing key the file uses is replaced by the
            // file's; the state refuses the duplicate below.
            RequestType::AddHttpFrontend(_) | RequestType::AddHttpsFrontend(_) => true,
            RequestType::AddTcpFrontend(frontend) => !desired
                .tcp_frontends
                .values()
                .flatten()
                .any(|wanted| wanted.address == frontend.address && wanted.sni == frontend.sni),
            _ => false,
        };
        if keep {
            // Refusals mean the file's version of the same thing wins.
            let _ = target.dispatch(&request);
        }
    }
    target
}

fn new_listener(
    address: &sozu_command::proto::command::SocketAddress,
    desired: &BTreeSet<SocketAddr>,
    kept: &mut BTreeSet<SocketAddr>,
) -> bool {
    let address = address.to_socket_addr();
    if desired.contains(&address) {
        return false;
    }
    kept.insert(address);
    true
}

/// The plan and what is kept without `--prune`.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The requests to send, in order.
    pub steps: Vec<Step>,
    /// Removals `--prune` would add (empty with `--prune`).
    pub kept: Vec<Step>,
}

impl Plan {
    /// The plan from `live` to `desired`.
    pub fn new(live: &ConfigState, desired: &ConfigState, prune: bool) -> Self {
        let full = changes_of(live, steps(&diff(live, desired)));
        if prune {
            return Plan {
                steps: full,
                kept: Vec::new(),
            };
        }
        let steps = changes_of(live, steps(&diff(live, &keep_unmentioned(live, desired))));
        let kept = full
            .into_iter()
            .filter(|step| step.action == Action::Remove && !steps.contains(step))
            .collect();
        Plan { steps, kept }
    }

    fn count(&self, action: Action) -> usize {
        self.steps
            .iter()
            .filter(|step| step.action == action)
            .count()
    }

    /// `3 to add, 1 to change, 0 to remove` (and what is kept).
    pub fn summary(&self) -> String {
        let mut text = format!(
            "{} to add, {} to change, {} to remove",
            self.count(Action::Add),
            self.count(Action::Change),
            self.count(Action::Remove)
        );
        if !self.kept.is_empty() {
            text.push_str(&format!(
                "; {} live item(s) not in the file kept (--prune removes them)",
                self.kept.len()
            ));
        }
        text
    }

    /// The plan as tables.
    pub fn blocks(&self) -> Vec<Block> {
        let mut blocks = Vec::new();
        if !self.steps.is_empty() {
            let mut table = render::table(&["#", "action", "what"]);
            for (index, step) in self.steps.iter().enumerate() {
                render::add_row(
                    &mut table,
                    &[
                        (index + 1).to_string(),
                        step.action.name().to_owned(),
                        step.description.clone(),
                    ],
                );
            }
            blocks.push(Block::Table(table));
        }
        if !self.kept.is_empty() {
            let mut table = render::table(&["kept (not in the file)"]);
            for step in &self.kept {
                render::add_row(&mut table, std::slice::from_ref(&step.description));
            }
            blocks.push(Block::Table(table));
        }
        blocks
    }

    /// The plan as JSON.
    pub fn json(&self) -> Value {
        json!({
            "plan": self.steps.iter().map(Step::json).collect::<Vec<_>>(),
            "kept": self.kept.iter().map(Step::json).collect::<Vec<_>>(),
            "summary": {
                "add": self.count(Action::Add),
                "change": self.count(Action::Change),
                "remove": self.count(Action::Remove),
                "kept": self.kept.len(),
            },
        })
    }
}

fn expect<'a, T>(
    answer: &'a sozu_command::proto::command::Response,
    what: &str,
    pick: impl Fn(&'a ContentType) -> Option<T>,
) -> Result<T, CliError> {
    content_of(answer)
        .and_then(pick)
        .ok_or_else(|| CliError::protocol(format!("unexpected answer to the {what} query")))
}

/// Every content of an answer that may come straight or per worker, the
/// main process's first.
fn per_worker(content: &ContentType) -> Vec<&ContentType> {
    match content {
        ContentType::WorkerResponses(responses) => {
            let mut contents: Vec<(&String, &ContentType)> = responses
                .map
                .iter()
                .filter_map(|(worker, content)| content.content_type.as_ref().map(|c| (worker, c)))
                .collect();
            contents.sort_by_key(|(worker, _)| worker.as_str() != "main");
            contents.into_iter().map(|(_, content)| content).collect()
        }
        other => vec![other],
    }
}

/// Rebuilds the live state from listing requests. Things the daemon holds
/// that this state cannot (UDP listeners) are reported in the notes.
pub fn live_state(session: &mut Session) -> Result<(ConfigState, Vec<String>), CliError> {
    let mut notes = Vec::new();
    // Listed listeners carry their `active` flag, which the state keeps as
    // given: no activation requests are needed to rebuild it.
    let mut listeners = Vec::new();
    let answer = session.request(&requests::list_listeners())?;
    let list = expect(&answer, "listener", |content| match content {
        ContentType::ListenersList(list) => Some(list.clone()),
        _ => None,
    })?;
    for listener in list.http_listeners.values() {
        listeners.push(Request::from(RequestType::AddHttpListener(
            listener.clone(),
        )));
    }
    for listener in list.https_listeners.values() {
        listeners.push(Request::from(RequestType::AddHttpsListener(
            listener.clone(),
        )));
    }
    for listener in list.tcp_listeners.values() {
        listeners.push(Request::from(RequestType::AddTcpListener(listener.clone())));
    }
    for address in list.udp_listeners.keys() {
        notes.push(format!(
            "UDP listener {address} left alone (not managed by apply)"
        ));
    }

    let answer = session.request(&requests::query_clusters_hashes())?;
    let mut cluster_ids = BTreeSet::new();
    for content in content_of(&answer).map(per_worker).unwrap_or_default() {
        if let ContentType::ClusterHashes(hashes) = content {
            cluster_ids.extend(hashes.map.keys().cloned());
        }
    }
    let mut clusters = Vec::new();
    let mut backends = Vec::new();
    for cluster_id in &cluster_ids {
        let answer = session.request(&requests::query_cluster_by_id(cluster_id))?;
        let information = content_of(&answer)
            .map(per_worker)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|content| match content {
                ContentType::Clusters(clusters) => clusters
                    .vec
                    .iter()
                    .find(|information| {
                        information
                            .configuration
                            .as_ref()
                            .is_some_and(|cluster| &cluster.cluster_id == cluster_id)
                    })
                    .cloned(),
                _ => None,
            })
            .next();
        let Some(information) = information else {
            notes.push(format!(
                "cluster {cluster_id} vanished while it was being read"
            ));
            continue;
        };
        if let Some(cluster) = information.configuration {
            clusters.push(Request::from(RequestType::AddCluster(cluster)));
        }
        for backend in information.backends {
            backends.push(Request::from(RequestType::AddBackend(backend)));
        }
    }

    let answer = session.request(&requests::list_frontends(FrontendFilters::default()))?;
    let frontends = expect(&answer, "frontend", |content| match content {
        ContentType::FrontendList(list) => Some(list.clone()),
        _ => None,
    })?;

    let answer = session.request(&requests::query_certificates(None, None, false))?;
    let certificates = expect(&answer, "certificate", |content| match content {
        ContentType::CertificatesWithFingerprints(certificates) => Some(certificates.clone()),
        _ => None,
    })?;
    let mut placed = Vec::new();
    if !certificates.certs.is_empty() {
        placed = certificate_addresses(session, &certificates, &frontends.https_frontends)?;
    }

    let mut state = ConfigState::new();
    let mut apply = |request: Request, notes: &mut Vec<String>| {
        if let Err(error) = state.dispatch(&request) {
            notes.push(format!(
                "live {} not understood: {error}",
                describe(&request).1
            ));
        }
    };
    for request in listeners {
        apply(request, &mut notes);
    }
    for request in clusters.into_iter().chain(backends) {
        apply(request, &mut notes);
    }
    for (address, certificate) in placed {
        apply(
            RequestType::AddCertificate(AddCertificate {
                address: address.into(),
                certificate,
                expired_at: None,
            })
            .into(),
            &mut notes,
        );
    }
    for frontend in frontends.http_frontends {
        apply(RequestType::AddHttpFrontend(frontend).into(), &mut notes);
    }
    for frontend in frontends.https_frontends {
        apply(RequestType::AddHttpsFrontend(frontend).into(), &mut notes);
    }
    for frontend in frontends.tcp_frontends {
        apply(RequestType::AddTcpFrontend(frontend).into(), &mut notes);
    }
    Ok((state, notes))
}

/// Where each certificate of the state is installed: the addresses the
/// workers report, or, from a daemon that does not say, the HTTPS listeners
/// whose frontends serve one of the certificate's names.
fn certificate_addresses(
    session: &mut Session,
    certificates: &CertificatesWithFingerprints,
    https_frontends: &[RequestHttpFrontend],
) -> Result<Vec<(SocketAddr, sozu_command::proto::command::CertificateAndKey)>, CliError> {
    let mut addresses: BTreeMap<String, BTreeSet<SocketAddr>> = BTreeMap::new();
    if let Ok(answer) = session.request(&requests::query_certificates(None, None, true)) {
        for content in content_of(&answer).map(per_worker).unwrap_or_default() {
            if let ContentType::CertificatesByAddress(list) = content {
                for by_address in &list.certificates {
                    for summary in &by_address.certificate_summaries {
                        addresses
                            .entry(summary.fingerprint.to_ascii_lowercase())
                            .or_default()
                            .insert(by_address.address.to_socket_addr());
                    }
                }
            }
        }
    }
    let mut placed = Vec::new();
    for (fingerprint, certificate) in &certificates.certs {
        let known = addresses.get(&fingerprint.to_ascii_lowercase());
        let found: BTreeSet<SocketAddr> = match known {
            Some(known) => known.clone(),
            None => https_frontends
                .iter()
                .filter(|frontend| {
                    certificate
                        .names
                        .iter()
                        .any(|name| name_matches(name, &frontend.hostname))
                })
                .map(|frontend| frontend.address.to_socket_addr())
                .collect(),
        };
        for address in found {
            placed.push((address, certificate.clone()));
        }
    }
    Ok(placed)
}

/// Whether a certificate name (maybe `*.example.com`) covers a hostname.
fn name_matches(name: &str, hostname: &str) -> bool {
    match name.strip_prefix("*.") {
        Some(suffix) => hostname
            .split_once('.')
            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(suffix)),
        None => name.eq_ignore_ascii_case(hostname),
    }
}

fn load_desired(file: &Path) -> Result<ConfigState, CliError> {
    let config =
        Config::load(file).map_err(|error| CliError::usage(format!("-f/--file: {error}")))?;
    desired_state(&config)
}

fn plan_for(session: &mut Session, file: &Path, prune: bool) -> Result<Plan, CliError> {
    let desired = load_desired(file)?;
    let (live, notes) = live_state(session)?;
    for note in notes {
        session.out.note(&format!("note: {note}"));
    }
    Ok(Plan::new(&live, &desired, prune))
}

/// `diff -f FILE`.
pub fn run_diff(session: &mut Session, args: &DiffArgs) -> Result<(), CliError> {
    let plan = plan_for(session, &args.file, args.prune)?;
    print_plan(&session.out, &plan, None);
    Ok(())
}

fn print_plan(out: &Output, plan: &Plan, extra: Option<(&str, Value)>) {
    if out.is_json() {
        let mut value = plan.json();
        if let (Some((key, extra)), Value::Object(object)) = (extra, &mut value) {
            object.insert(key.to_owned(), extra);
        }
        out.json(&value);
        return;
    }
    if plan.steps.is_empty() {
        out.result_line("nothing to do: the live configuration matches the file");
    } else {
        out.result_line(&format!("plan: {}", plan.summary()));
    }
    out.blocks(&plan.blocks());
    if plan.steps.is_empty() && !plan.kept.is_empty() {
        out.note(&plan.summary());
    }
}

/// `apply -f FILE [--dry-run] [--prune]`.
pub fn run_apply(session: &mut Session, args: &ApplyArgs) -> Result<(), CliError> {
    let plan = plan_for(session, &args.file, args.prune)?;
    if args.dry_run || plan.steps.is_empty() {
        print_plan(&session.out, &plan, Some(("applied", json!(0))));
        return Ok(());
    }
    if !session.out.is_json() {
        session
            .out
            .result_line(&format!("plan: {}", plan.summary()));
        session.out.blocks(&plan.blocks());
    }
    let total = plan.steps.len();
    for (index, step) in plan.steps.iter().enumerate() {
        match session.request(&step.request) {
            Ok(_) => {
                if !session.out.is_json() {
                    session.out.stream_line(&format!(
                        "[{}/{total}] {} {}: ok",
                        index + 1,
                        step.action.name(),
                        step.description
                    ));
                }
            }
            Err(error) => {
                return Err(CliError::new(
                    error.kind,
                    format!(
                        "step {}/{total} ({} {}) failed: {}; {index} of {total} steps were applied",
                        index + 1,
                        step.action.name(),
                        step.description,
                        error.message
                    ),
                ));
            }
        }
    }
    if session.out.is_json() {
        print_plan(&session.out, &plan, Some(("applied", json!(total))));
    } else {
        session.out.result_line(&format!("applied {total} step(s)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_config() -> Config {
        let folder = sozu_command::fixtures_dir().join("sozu-2.3");
        Config::load(folder.join("config.toml")).unwrap()
    }

    fn config(text: &str) -> ConfigState {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        desired_state(&Config::load(&path).unwrap()).unwrap()
    }

    const BASE: &str = r#"
[[listeners]]
protocol = "http"
address = "127.0.0.1:18080"

[clusters.app]
protocol = "http"
frontends = [{ address = "127.0.0.1:18080", hostname = "app.example.com" }]
backends = [{ address = "127.0.0.1:9001" }]
"#;

    #[test]
    fn a_state_against_itself_needs_nothing() {
        let desired = desired_state(&fixture_config()).unwrap();
        for prune in [false, true] {
            let plan = Plan::new(&desired, &desired, prune);
            assert!(plan.steps.is_empty() && plan.kept.is_empty(), "{plan:?}");
        }
    }

    #[test]
    fn without_prune_unmentioned_things_stay() {
        let live = desired_state(&fixture_config()).unwrap();
        let desired = config(BASE);
        let plan = Plan::new(&live, &desired, false);
        assert!(
            plan.steps.iter().all(|step| step.action == Action::Add),
            "{plan:?}"
        );
        assert!(!plan.kept.is_empty());
        // Applying the plan reaches a state the same plan maps to nothing.
        let mut after = live.clone();
        for step in &plan.steps {
            after.dispatch(&step.request).unwrap();
        }
        assert!(Plan::new(&after, &desired, false).steps.is_empty());
        assert!(after.clusters.contains_key("web") && after.clusters.contains_key("app"));
    }

    #[test]
    fn prune_removes_what_the_file_does_not_mention() {
        let live = desired_state(&fixture_config()).unwrap();
        let desired = config(BASE);
        let plan = Plan::new(&live, &desired, true);
        assert!(plan.steps.iter().any(|step| step.action == Action::Remove));
        let mut after = live.clone();
        for step in &plan.steps {
            after.dispatch(&step.request).unwrap();
        }
        assert_eq!(after, desired);
        assert!(Plan::new(&after, &desired, true).steps.is_empty());
    }

    #[test]
    fn a_retargeted_frontend_is_a_change_even_without_prune() {
        let live = config(BASE);
        let desired = config(&BASE.replace(
            "[clusters.app]",
            "[clusters.other]\nprotocol = \"http\"\n\n[clusters.app]",
        ).replace(
            "frontends = [{ address = \"127.0.0.1:18080\", hostname = \"app.example.com\" }]\nbackends = [{ address = \"127.0.0.1:9001\" }]",
            "backends = [{ address = \"127.0.0.1:9001\" }]",
        ).replace(
            "[clusters.other]\nprotocol = \"http\"",
            "[clusters.other]\nprotocol = \"http\"\nfrontends = [{ address = \"127.0.0.1:18080\", hostname = \"app.example.com\" }]",
        ));
        let plan = Plan::new(&live, &desired, false);
        let actions: Vec<Action> = plan.steps.iter().map(|step| step.action).collect();
        assert!(actions.contains(&Action::Change), "{plan:#?}");
        let mut after = live.clone();
        for step in &plan.steps {
            after.dispatch(&step.request).unwrap();
        }
        let frontend = after.http_frontends.values().next().unwrap();
        assert_eq!(frontend.cluster_id.as_deref(), Some("other"));
        assert!(Plan::new(&after, &desired, false).steps.is_empty());
    }

    #[test]
    fn new_settings_of_what_exists_are_changes() {
        let live = config(BASE);
        let desired = config(
            &BASE
                .replace(
                    "[clusters.app]\nprotocol = \"http\"",
                    "[clusters.app]\nprotocol = \"http\"\nload_balancing = \"RANDOM\"",
                )
                .replace(
                    "{ address = \"127.0.0.1:9001\" }",
                    "{ address = \"127.0.0.1:9001\", weight = 10 }",
                ),
        );
        let plan = Plan::new(&live, &desired, true);
        let actions: Vec<(Action, String)> = plan
            .steps
            .iter()
            .map(|step| (step.action, step.request.kind_name()))
            .collect();
        assert_eq!(
            actions,
            [
                (Action::Change, "ADD_CLUSTER".to_owned()),
                (Action::Change, "ADD_BACKEND".to_owned())
            ],
            "{plan:#?}"
        );
        assert_eq!(plan.summary(), "0 to add, 2 to change, 0 to remove");
    }

    #[test]
    fn plans_render_for_people_and_scripts() {
        let live = ConfigState::new();
        let desired = config(BASE);
        let plan = Plan::new(&live, &desired, false);
        let text: String = plan.blocks().iter().map(Block::plain).collect();
        assert!(text.contains("cluster app"), "{text}");
        assert!(
            text.contains("HTTP frontend 127.0.0.1:18080 app.example.com * -> cluster app"),
            "{text}"
        );
        let value = plan.json();
        assert_eq!(value["summary"]["add"], json!(plan.steps.len()));
        assert_eq!(value["plan"][0]["kind"], json!("ADD_HTTP_LISTENER"));
    }

    #[test]
    fn certificate_names_cover_wildcards() {
        assert!(name_matches("*.example.com", "www.example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(name_matches("Secure.example.com", "secure.example.com"));
    }
}
