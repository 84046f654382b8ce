//! The `sozu` binary: runs the daemon (`start`) and drives it through its
//! command socket (every other subcommand).
//!
//! This file is glue: parse, pick the family, report the outcome with its
//! exit code. The families of subcommands live in `commands/`, one file
//! each; requests are built by `sozu_command::requests`, the exchange lives
//! in `session`, printing in `output` and `render`.

mod cli;
mod commands;
mod error;
mod output;
mod render;
mod session;

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind as ClapErrorKind;

use crate::cli::{Args, Command};
use crate::commands::{
    apply, backend, certificate, cluster, config_check, connection_limit, control, docs, events,
    fleet, frontend, listener, metrics, state, top,
};
use crate::error::CliError;
use crate::output::Output;
use crate::session::{Globals, Session};

/// mimalloc instead of the system allocator: the proxy's request path
/// allocates and frees many small blocks (headers, bodies' bookkeeping,
/// hyper's per-request state), which glibc's malloc serves more slowly
/// (bench/http.sh, doc/benchmark.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let (arguments, not_text) = text_arguments(std::env::args_os());
    let json = cli::wants_json(&arguments);
    if let Some(refusal) = not_text {
        Output::detect(json).error(&CliError::usage(refusal));
        return ExitCode::from(error::ErrorKind::Usage.exit_code());
    }
    let args = match Args::try_parse_from(cli::normalize(arguments)) {
        Ok(args) => args,
        Err(error) => return clap_failure(error, json),
    };
    let out = Output::detect(args.json);
    match run(args, &out) {
        Ok(code) => code,
        Err(error) => {
            out.error(&error);
            ExitCode::from(error.kind.exit_code())
        }
    }
}

/// The arguments as text, and the refusal of the first one that is not
/// UTF-8: everything sent to the daemon is protocol text, and replacing the
/// bytes with U+FFFD would silently name something else. The program's own
/// name (argument 0) may be anything.
fn text_arguments(
    arguments: impl IntoIterator<Item = std::ffi::OsString>,
) -> (Vec<String>, Option<String>) {
    let mut texts = Vec::new();
    let mut refusal = None;
    for (position, argument) in arguments.into_iter().enumerate() {
        match argument.into_string() {
            Ok(text) => texts.push(text),
            Err(raw) => {
                if position > 0 && refusal.is_none() {
                    refusal = Some(format!(
                        "argument {position} ({}) is not valid UTF-8: names, paths and values \
                         sent to the daemon must be text",
                        raw.to_string_lossy()
                    ));
                }
                texts.push(raw.to_string_lossy().into_owned());
            }
        }
    }
    (texts, refusal)
}

/// Help and version are successes; anything else is a usage error, printed
/// as JSON on stdout when JSON was asked for.
fn clap_failure(error: clap::Error, json: bool) -> ExitCode {
    match error.kind() {
        ClapErrorKind::DisplayHelp | ClapErrorKind::DisplayVersion => {
            error.print().ok();
            ExitCode::SUCCESS
        }
        _ if json => {
            let message = error.render().to_string();
            let message = message
                .trim()
                .trim_start_matches("error: ")
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned();
            Output::detect(true).error(&CliError::usage(message));
            ExitCode::from(error::ErrorKind::Usage.exit_code())
        }
        _ => {
            error.print().ok();
            ExitCode::from(error::ErrorKind::Usage.exit_code())
        }
    }
}

fn run(args: Args, out: &Output) -> Result<ExitCode, CliError> {
    // Commands that do not talk to a daemon.
    match &args.command {
        Command::Start { prometheus_address } => {
            return Ok(sozu_daemon::start(sozu_daemon::StartOptions {
                config: args.config,
                prometheus_address: *prometheus_address,
            }));
        }
        Command::Worker => return Ok(sozu_daemon::worker()),
        Command::Completions { shell } => {
            return docs::completions(*shell).map(|()| ExitCode::SUCCESS);
        }
        Command::Man => return docs::man().map(|()| ExitCode::SUCCESS),
        Command::Config {
            cmd: config_check::ConfigCmd::Check,
        } => {
            return config_check::check(out, args.config.as_deref()).map(|()| ExitCode::SUCCESS);
        }
        _ => {}
    }
    let mut session = Session::new(Globals {
        config: args.config.clone(),
        timeout: args.timeout,
        json: args.json,
        socket: args.socket.clone(),
    })?;
    if let Command::Top(top_args) = &args.command {
        return top::run(&session, top_args, args.timeout);
    }
    let session = &mut session;
    match &args.command {
        Command::Status => control::status(session),
        Command::Shutdown { hard } => control::shutdown(session, *hard),
        Command::Upgrade { worker } => control::upgrade(session, *worker),
        Command::Reload { file } => control::reload(session, file.as_deref()),
        Command::Logging { filter } => control::logging(session, filter),
        Command::Events => events::events(session),
        Command::State { cmd } => state::run(session, cmd),
        Command::Metrics { cmd } => metrics::run(session, cmd),
        Command::Cluster { cmd } => cluster::run(session, cmd),
        Command::Backend { cmd } => backend::run(session, cmd),
        Command::Frontend { cmd } => frontend::run(session, cmd),
        Command::Listener { cmd } => listener::run(session, cmd),
        Command::Certificate { cmd } => certificate::run(session, cmd),
        Command::ConnectionLimit { cmd } => connection_limit::run(session, cmd),
        Command::Apply(apply_args) => apply::run_apply(session, apply_args),
        Command::Diff(diff_args) => apply::run_diff(session, diff_args),
        Command::Fleet { etcd, cmd } => fleet::run(session, etcd, cmd),
        Command::Start { .. }
        | Command::Worker
        | Command::Completions { .. }
        | Command::Man
        | Command::Config { .. }
        | Command::Top(_) => unreachable!("handled before connecting"),
    }
    .map(|()| ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    #[test]
    fn a_non_utf8_argument_is_refused_by_its_position() {
        let arguments = ["sozu", "cluster", "add", "--id"]
            .map(std::ffi::OsString::from)
            .into_iter()
            .chain([std::ffi::OsString::from_vec(b"a\xffb".to_vec())]);
        let (texts, refusal) = text_arguments(arguments);
        assert_eq!(texts.len(), 5);
        let refusal = refusal.unwrap();
        assert!(refusal.starts_with("argument 4 (a\u{fffd}b)"), "{refusal}");
        let (_, refusal) = text_arguments(["sozu", "status"].map(std::ffi::OsString::from));
        assert_eq!(refusal, None);
    }
}
