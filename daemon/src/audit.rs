//! Who asked for what: one audit line per configuration change.

use std::fmt;

/// The process on the other end of a command connection.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    /// User id, from SO_PEERCRED.
    pub uid: Option<u32>,
    /// Process id, from SO_PEERCRED.
    pub pid: Option<i32>,
    /// Command name, from /proc/PID/comm.
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
            pid,
            command,
            fd,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unknown = "?".to_owned();
        write!(
            f,
            "uid={} pid={} command={}",
            self.uid.map_or(unknown.clone(), |uid| uid.to_string()),
            self.pid.map_or(unknown.clone(), |pid| pid.to_string()),
            self.command.as_deref().unwrap_or("?")
        )
    }
}

/// Writes the audit line of one change.
pub fn record(peer: &Peer, request: &str, result: Result<(), &str>) {
    match result {
        Ok(()) => tracing::info!(target: "audit", "{peer} request={request} result=ok"),
        Err(reason) => {
            tracing::info!(target: "audit", "{peer} request={request} result=failure reason={reason:?}")
        }
    }
}
