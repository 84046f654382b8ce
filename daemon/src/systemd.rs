//! Running under systemd (`Type=notify`) and the pid file.
//!
//! When systemd starts the daemon it names a datagram socket in
//! `NOTIFY_SOCKET`; the main process tells it there, one datagram of
//! `KEY=VALUE` lines each time:
//!
//! - `READY=1` once the workers serve the listeners and the command socket
//!   answers (after `sozu start`, and after an upgrade of the main process,
//!   with `MAINPID=`: the pid stays the same, the program is replaced in
//!   place, but systemd is told again which process to watch);
//! - `RELOADING=1` (with `MONOTONIC_USEC=`) when a reload or an upgrade
//!   begins, then `READY=1` when it is over;
//! - `STOPPING=1` when a stop begins;
//! - `STATUS=` with the number of workers, alongside each of them.
//!
//! Without `NOTIFY_SOCKET` nothing is sent. A notification that cannot be
//! sent is logged and otherwise ignored: the proxy keeps serving.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Sends `state` (newline-separated `KEY=VALUE` lines) to systemd, if it
/// asked for notifications.
pub fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(error) = send(Path::new(&socket), state) {
        tracing::warn!(%error, socket = %Path::new(&socket).display(), "could not notify systemd");
    }
}

fn send(socket: &Path, state: &str) -> io::Result<()> {
    let datagram = UnixDatagram::unbound()?;
    let bytes = socket.as_os_str().as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket (systemd's own are).
        use std::os::linux::net::SocketAddrExt;
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        datagram.send_to_addr(state.as_bytes(), &address)?;
    } else {
        datagram.send_to(state.as_bytes(), socket)?;
    }
    Ok(())
}

/// `READY=1`, with the worker count.
pub fn ready(workers: usize) {
    notify(&format!("READY=1\nSTATUS={}", status(workers)));
}

/// `READY=1` after an upgrade of the main process, naming it.
pub fn ready_after_upgrade(workers: usize) {
    notify(&format!(
        "MAINPID={}\nREADY=1\nSTATUS={}",
        std::process::id(),
        status(workers)
    ));
}

/// `RELOADING=1`, saying why.
pub fn reloading(why: &str) {
    notify(&format!(
        "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS={why}",
        monotonic_usec()
    ));
}

/// `STOPPING=1`.
pub fn stopping(how: &str) {
    notify(&format!("STOPPING=1\nSTATUS={how}"));
}

fn status(workers: usize) -> String {
    format!("{workers} workers running")
}

/// CLOCK_MONOTONIC in microseconds, as systemd wants it with `RELOADING=1`.
fn monotonic_usec() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    (now.tv_sec as u64) * 1_000_000 + (now.tv_nsec as u64) / 1000
}

/// The pid file, written when the daemon is ready and removed when it
/// exits (dropped); an upgrade keeps it (same pid, and `exec` drops
/// nothing).
#[derive(Debug)]
pub struct PidFile(PathBuf);

impl PidFile {
    /// Writes this process's pid to `path`, atomically: a reader sees the
    /// old file or the whole new one, never a partial one.
    pub fn write(path: &Path) -> io::Result<PidFile> {
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(format!(".{}.tmp", std::process::id()));
        let temporary = PathBuf::from(temporary);
        std::fs::write(&temporary, format!("{}\n", std::process::id()))
            .and_then(|()| std::fs::rename(&temporary, path))
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&temporary);
            })
            .map_err(|error| {
                io::Error::new(error.kind(), format!("{}: {error}", path.display()))
            })?;
        Ok(PidFile(path.to_owned()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only our own: a file another process wrote since is left alone.
        let ours = std::fs::read_to_string(&self.0)
            .is_ok_and(|text| text.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pid_file_holds_our_pid_and_goes_away_when_dropped() {
        let folder = std::env::temp_dir().join(format!("sozu-pid-test-{}", std::process::id()));
        std::fs::create_dir_all(&folder).unwrap();
        let path = folder.join("sozu.pid");
        let file = PidFile::write(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        drop(file);
        assert!(!path.exists());
        let error = PidFile::write(&folder.join("missing/sozu.pid")).unwrap_err();
        assert!(error.to_string().contains("missing/sozu.pid"), "{error}");
        std::fs::remove_dir_all(&folder).unwrap();
    }

    #[test]
    fn notifications_reach_a_socket_path() {
        let folder = std::env::temp_dir().join(format!("sozu-notify-test-{}", std::process::id()));
        std::fs::create_dir_all(&folder).unwrap();
        let path = folder.join("notify.sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        send(&path, "READY=1\nSTATUS=2 workers running").unwrap();
        let mut buffer = [0u8; 256];
        let len = receiver.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..len], b"READY=1\nSTATUS=2 workers running");
        std::fs::remove_dir_all(&folder).unwrap();
    }
}
