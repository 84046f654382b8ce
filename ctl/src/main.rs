//! Temporary entry point until the CLI lands: `start [-c FILE]` and `worker`.
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("start") => {
            let config = args
                .iter()
                .position(|a| a == "-c" || a == "--config")
                .and_then(|i| args.get(i + 1))
                .map(std::path::PathBuf::from);
            sozu_daemon::start(sozu_daemon::StartOptions { config })
        }
        Some("worker") => sozu_daemon::worker(),
        _ => {
            eprintln!("usage: sozu start [-c FILE]");
            ExitCode::from(2)
        }
    }
}
