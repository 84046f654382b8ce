//! The system's curl, for tests that want a client nobody here wrote
//! (Debian's curl is built with nghttp2 and OpenSSL).

use std::path::Path;
use std::process::{Command, Output};

/// What curl printed and how it ended.
#[derive(Debug)]
pub struct CurlRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `curl -sS` with `args`. Panics when curl is not installed: these
/// tests need it.
pub fn curl(args: &[String]) -> CurlRun {
    let output: Output = Command::new("curl")
        .arg("-sS")
        .args(["--max-time", "30"])
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("curl could not run (is it installed?): {error}"));
    CurlRun {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The arguments that make curl trust `authority` and reach `name` on
/// `127.0.0.1:port`, followed by the URL of `path` there.
pub fn https_args(authority: &Path, name: &str, port: u16, path: &str) -> Vec<String> {
    vec![
        "--cacert".into(),
        authority.display().to_string(),
        "--resolve".into(),
        format!("{name}:{port}:127.0.0.1"),
        format!("https://{name}:{port}{path}"),
    ]
}

/// Whether this curl speaks HTTP/2 (`curl --version` lists HTTP2).
pub fn supports_http2() -> bool {
    let output = Command::new("curl").arg("--version").output();
    output.is_ok_and(|output| String::from_utf8_lossy(&output.stdout).contains("HTTP2"))
}
