//! Who asked for what: one audit record per configuration change, state
//! load, reload, upgrade and stop.
//!
//! Each record names the client (uid, gid, pid and command name from the
//! connection's credentials), the request (its kind and a summary: the
//! cluster, frontend, backend, listener or certificate it is about; never a
//! private key) and the outcome. Records go to the main log (target
//! `audit`, written whatever the log level), and, when configured, as text
//! lines to `audit_logs_target` and as JSON lines to
//! `audit_logs_json_target`. What clients sent (names, paths, hostnames) is
//! written with its control characters escaped, so nobody can forge a line.

use std::fmt;
use std::sync::{Arc, OnceLock};

use sozu_command::config::Config;
use sozu_command::proto::command::{
    CertificateAndKey, PathRule, PathRuleKind, Request, SocketAddress, request::RequestType,
};
use sozu_proxy::access_log::escaped;

use crate::log_sink::{Sink, Target};

/// The process on the other end of a command connection.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    /// User id, from SO_PEERCRED.
    pub uid: Option<u32>,
    /// Group id, from SO_PEERCRED.
    pub gid: Option<u32>,
    /// Process id, from SO_PEERCRED.
    pub pid: Option<i32>,
    /// Command name, from /proc/PID/comm (or the signal that asked).
    pub command: Option<String>,
    /// The descriptor of the connection (kept when a main process upgrade
    /// must answer the client from the new program).
    pub fd: Option<std::os::fd::RawFd>,
}

impl Peer {
    /// Credentials of the client of `stream`.
    pub fn of(stream: &tokio::net::UnixStream) -> Peer {
        use std::os::fd::AsRawFd;
        let fd = Some(stream.as_raw_fd());
        let Ok(credentials) = stream.peer_cred() else {
            return Peer {
                fd,
                ..Peer::default()
            };
        };
        let pid = credentials.pid();
        let command = pid.and_then(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .ok()
                .map(|name| name.trim().to_owned())
        });
        Peer {
            uid: Some(credentials.uid()),
            gid: Some(credentials.gid()),
            pid,
            command,
            fd,
        }
    }

    /// A request that came as a signal (`SIGTERM`, `SIGINT`): its sender is
    /// not known.
    pub fn signal(name: &str) -> Peer {
        Peer {
            command: Some(name.to_owned()),
            ..Peer::default()
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or_unknown = |value: Option<String>| value.unwrap_or_else(|| "?".to_owned());
        write!(
            f,
            "uid={} gid={} pid={} command={}",
            or_unknown(self.uid.map(|uid| uid.to_string())),
            or_unknown(self.gid.map(|gid| gid.to_string())),
            or_unknown(self.pid.map(|pid| pid.to_string())),
            escaped(self.command.as_deref().unwrap_or("?"))
        )
    }
}

/// The audit files of this process, once [`open`] opened them.
struct Files {
    text: Option<Arc<Sink>>,
    json: Option<Arc<Sink>>,
}

static FILES: OnceLock<Files> = OnceLock::new();

/// Opens `audit_logs_target` and `audit_logs_json_target` (a target as for
/// `log_target`, or a file path); an error names the key.
pub fn open(config: &Config) -> Result<(), String> {
    let open = |key: &str, text: &Option<String>| -> Result<Option<Arc<Sink>>, String> {
        let Some(text) = text else { return Ok(None) };
        let target = Target::parse(key, text, true)?;
        Sink::open(target)
            .map(Some)
            .map_err(|error| format!("{key} = {text:?}: {error}"))
    };
    let files = Files {
        text: open("audit_logs_target", &config.audit_logs_target)?,
        json: open("audit_logs_json_target", &config.audit_logs_json_target)?,
    };
    let _ = FILES.set(files);
    Ok(())
}

/// Writes the audit record of one request: `kind` (`ADD_CLUSTER`),
/// `summary` (what it is about, as the client sent it) and its outcome.
pub fn record(peer: &Peer, kind: &str, summary: &str, result: Result<(), &str>) {
    let outcome = match result {
        Ok(()) => "result=ok".to_owned(),
        Err(reason) => format!("result=failure reason=\"{}\"", escaped(reason)),
    };
    let line = format!(
        "{peer} request={kind} {outcome} target=\"{}\"",
        escaped(summary)
    );
    tracing::info!(target: "audit", "{line}");
    let Some(files) = FILES.get() else { return };
    let now = sozu_proxy::access_log::rfc3339(std::time::SystemTime::now());
    if let Some(sink) = &files.text {
        sink.write_line(5, "audit", format!("{now} {line}").as_bytes());
    }
    if let Some(sink) = &files.json {
        let line = serde_json::json!({
            "time": now,
            "uid": peer.uid,
            "gid": peer.gid,
            "pid": peer.pid,
            "command": peer.command,
            "request": kind,
            "target": summary,
            "result": if result.is_ok() { "ok" } else { "failure" },
            "reason": result.err(),
        });
        sink.write_line(5, "audit", line.to_string().as_bytes());
    }
}

/// Writes the audit record of a change request (its kind and summary).
pub fn record_request(peer: &Peer, request: &Request, result: Result<(), &str>) {
    record(peer, &request.kind_name(), &summary(request), result);
}

/// What a request is about, in a few words; no secret (a certificate is
/// named by its names, never by its key).
pub fn summary(request: &Request) -> String {
    let Some(request_type) = &request.request_type else {
        return String::new();
    };
    let at = |address: &SocketAddress| address.to_socket_addr().to_string();
    match request_type {
        RequestType::AddCluster(cluster) => format!("cluster={}", cluster.cluster_id),
        RequestType::RemoveCluster(id) | RequestType::RemoveHealthCheck(id) => {
            format!("cluster={id}")
        }
        RequestType::AddHttpFrontend(front)
        | RequestType::RemoveHttpFrontend(front)
        | RequestType::AddHttpsFrontend(front)
        | RequestType::RemoveHttpsFrontend(front)
        | RequestType::AddHttpFrontendWithHeaderPredicates(front)
        | RequestType::RemoveHttpFrontendWithHeaderPredicates(front)
        | RequestType::AddHttpsFrontendWithHeaderPredicates(front)
        | RequestType::RemoveHttpsFrontendWithHeaderPredicates(front)
        | RequestType::AddHttpFrontendWithSilentClose(front)
        | RequestType::AddHttpsFrontendWithSilentClose(front) => format!(
            "frontend={} host={} path={} cluster={}",
            at(&front.address),
            front.hostname,
            path_rule(&front.path),
            front.cluster_id.as_deref().unwrap_or("-")
        ),
        RequestType::AddTcpFrontend(front) | RequestType::RemoveTcpFrontend(front) => {
            format!(
                "frontend={} cluster={}",
                at(&front.address),
                front.cluster_id
            )
        }
        RequestType::AddBackend(backend) | RequestType::AddUnixBackend(backend) => format!(
            "backend={} address={} cluster={}",
            backend.backend_id,
            backend
                .unix_path
                .clone()
                .unwrap_or_else(|| at(&backend.address)),
            backend.cluster_id
        ),
        RequestType::RemoveBackend(backend) => format!(
            "backend={} address={} cluster={}",
            backend.backend_id,
            at(&backend.address),
            backend.cluster_id
        ),
        RequestType::AddHttpListener(listener) => format!("listener={}", at(&listener.address)),
        RequestType::AddHttpsListener(listener)
        | RequestType::AddHttpsListenerWithClientAuth(listener) => {
            format!("listener={}", at(&listener.address))
        }
        RequestType::AddTcpListener(listener) => format!("listener={}", at(&listener.address)),
        RequestType::RemoveListener(listener) => format!("listener={}", at(&listener.address)),
        RequestType::ActivateListener(listener) => format!("listener={}", at(&listener.address)),
        RequestType::DeactivateListener(listener) => {
            format!("listener={}", at(&listener.address))
        }
        RequestType::UpdateHttpListener(update) => format!("listener={}", at(&update.address)),
        RequestType::UpdateHttpsListener(update)
        | RequestType::UpdateHttpsListenerWithClientAuth(update) => {
            format!("listener={}", at(&update.address))
        }
        RequestType::UpdateTcpListener(update) => format!("listener={}", at(&update.address)),
        RequestType::AddCertificate(add) => format!(
            "certificate {} listener={}",
            certificate(&add.certificate),
            at(&add.address)
        ),
        RequestType::ReplaceCertificate(replace) => format!(
            "certificate old_fingerprint={} {} listener={}",
            replace.old_fingerprint,
            certificate(&replace.new_certificate),
            at(&replace.address)
        ),
        RequestType::RemoveCertificate(remove) => format!(
            "certificate fingerprint={} listener={}",
            remove.fingerprint,
            at(&remove.address)
        ),
        RequestType::Logging(filter) => format!("filter={filter}"),
        RequestType::SetHealthCheck(check) => format!("cluster={}", check.cluster_id),
        RequestType::CloseSessions(close) => format!("cluster={}", close.cluster_id),
        RequestType::LoadState(path)
        | RequestType::SaveState(path)
        | RequestType::ReloadConfiguration(path) => format!("path={path}"),
        RequestType::UpgradeWorker(id) => format!("worker={id}"),
        RequestType::SetMaxConnectionsPerIp(limit)
        | RequestType::SetMaxConnectionsPerSubnet(limit) => format!("limit={limit}"),
        _ => String::new(),
    }
}

/// A certificate by its fingerprint and names (the names the client gave,
/// else those in the certificate).
fn certificate(given: &CertificateAndKey) -> String {
    let info = sozu_command::certificate::certificate_info(&given.certificate).ok();
    let names = if given.names.is_empty() {
        info.as_ref()
            .map(|info| info.names.join(","))
            .unwrap_or_default()
    } else {
        given.names.join(",")
    };
    match info {
        Some(info) => format!("fingerprint={} names={names}", info.fingerprint),
        None => format!("names={names}"),
    }
}

fn path_rule(rule: &PathRule) -> String {
    match PathRuleKind::try_from(rule.kind) {
        Ok(PathRuleKind::Prefix) => format!("prefix:{}", rule.value),
        Ok(PathRuleKind::Regex) => format!("regex:{}", rule.value),
        Ok(PathRuleKind::Equals) => format!("equals:{}", rule.value),
        Err(_) => rule.value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sozu_command::proto::command::{AddCertificate, Cluster};

    #[test]
    fn summaries_name_the_object_and_never_a_key() {
        let request: Request = RequestType::AddCluster(Cluster {
            cluster_id: "app".into(),
            ..Default::default()
        })
        .into();
        assert_eq!(summary(&request), "cluster=app");
        let request: Request = RequestType::AddCertificate(AddCertificate {
            certificate: CertificateAndKey {
                key: "-----BEGIN PRIVATE KEY-----secret".into(),
                names: vec!["a.test".into()],
                ..Default::default()
            },
            ..Default::default()
        })
        .into();
        let text = summary(&request);
        assert!(text.contains("a.test"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn peers_show_every_credential_and_escape_the_command() {
        let peer = Peer {
            uid: Some(1000),
            gid: Some(100),
            pid: Some(42),
            command: Some("evil\nuid=0".into()),
            fd: None,
        };
        let text = peer.to_string();
        assert_eq!(text, "uid=1000 gid=100 pid=42 command=evil\\x0auid=0");
    }
}
