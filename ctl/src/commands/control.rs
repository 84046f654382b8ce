//! The main process itself: `status`, `shutdown`, `upgrade`, `reload`,
//! `logging`.

use std::path::Path;

use serde_json::json;
use sozu_command::channel::ChannelError;
use sozu_command::proto::command::RunState;
use sozu_command::proto::command::response_content::ContentType;
use sozu_command::requests;

use crate::error::{CliError, ErrorKind};
use crate::session::{Session, content_of, result_line};

/// `status`.
pub fn status(session: &mut Session) -> Result<(), CliError> {
    session.run(&requests::status(), "workers")
}

/// `shutdown [--hard]`. A daemon that closes the connection instead of
/// answering has stopped, which is what was asked.
pub fn shutdown(session: &mut Session, hard: bool) -> Result<(), CliError> {
    let request = if hard {
        requests::hard_stop()
    } else {
        requests::soft_stop()
    };
    let summary = if hard {
        "hard stop"
    } else {
        "soft stop (connections drain first)"
    };
    let progress = session.out.spinner();
    let timeout = session.timeout();
    let channel = session.channel()?;
    let answer = channel.exchange(&request, timeout, |answer| {
        progress.message(&answer.message)
    });
    progress.finish();
    match answer {
        Ok(answer) => {
            let answer = crate::session::final_answer(answer)?;
            session.print_answer(&answer, summary);
            Ok(())
        }
        Err(ChannelError::ConnectionClosed) => {
            session
                .out
                .result_line(&format!("{summary}: the daemon closed the connection"));
            if session.out.is_json() {
                session.out.json(&json!({}));
            }
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

/// `upgrade [--worker ID]`: one worker, or the main process and then every
/// running worker one by one. Fails if any worker upgrade fails.
pub fn upgrade(session: &mut Session, worker: Option<u32>) -> Result<(), CliError> {
    if let Some(worker) = worker {
        return session.run(
            &requests::upgrade_worker(worker),
            &format!("worker {worker} upgraded"),
        );
    }
    let answer = session.request(&requests::upgrade_main())?;
    session
        .out
        .result_line(&result_line("main process upgraded", &answer.message));
    // The new main process listens on the same socket; the old connection
    // belonged to the process that just left.
    session.reconnect();
    let answer = session.request(&requests::list_workers())?;
    let Some(ContentType::Workers(workers)) = content_of(&answer) else {
        return Err(CliError::protocol(
            "the new main process did not list its workers",
        ));
    };
    let mut upgraded = Vec::new();
    let mut failures = Vec::new();
    for worker in &workers.vec {
        // Workers already being replaced refuse another upgrade.
        if worker.run_state == RunState::Stopping as i32
            || worker.run_state == RunState::Stopped as i32
        {
            continue;
        }
        match session.request(&requests::upgrade_worker(worker.id)) {
            Ok(answer) => {
                session.out.result_line(&result_line(
                    &format!("worker {} upgraded", worker.id),
                    &answer.message,
                ));
                upgraded.push(worker.id);
            }
            Err(error) if error.kind == ErrorKind::Failure => {
                session
                    .out
                    .note(&format!("worker {}: {}", worker.id, error.message));
                failures.push(format!("worker {}: {}", worker.id, error.message));
            }
            Err(error) => return Err(error),
        }
    }
    if !failures.is_empty() {
        return Err(CliError::failure(format!(
            "main process upgraded, but {} worker upgrade(s) failed: {}",
            failures.len(),
            failures.join("; ")
        )));
    }
    if session.out.is_json() {
        session.out.json(&json!({}));
    } else {
        session.out.result_line(&format!(
            "upgrade done: {} worker(s) replaced",
            upgraded.len()
        ));
    }
    Ok(())
}

/// `reload [-f FILE]`: the file is made absolute against the working
/// directory, since the daemon resolves paths against its own.
pub fn reload(session: &mut Session, file: Option<&Path>) -> Result<(), CliError> {
    let file = match file {
        Some(file) => {
            let absolute = std::path::absolute(file).map_err(|error| {
                CliError::usage(format!("-f/--file: {}: {error}", file.display()))
            })?;
            if !absolute.is_file() {
                return Err(CliError::usage(format!(
                    "-f/--file: {} is not a readable file",
                    absolute.display()
                )));
            }
            Some(absolute)
        }
        None => None,
    };
    session.run(
        &requests::reload_configuration(file.as_deref()),
        "configuration reloaded",
    )
}

/// `logging FILTER`.
pub fn logging(session: &mut Session, filter: &str) -> Result<(), CliError> {
    if filter.trim().is_empty() {
        return Err(CliError::usage("FILTER: the log filter is empty"));
    }
    session.run(
        &requests::logging(filter),
        &format!("log filter set to {filter}"),
    )
}
