//! `config check`: load a configuration file completely (certificates,
//! answers and backend names included), check that its requests build a
//! consistent state, and show what it would apply.

use std::path::Path;

use clap::Subcommand;
use serde_json::json;
use sozu_command::config::Config;

use sozu_command::state::file;

use super::apply::{cannot_apply, describe, steps};
use crate::error::CliError;
use crate::output::{Block, Output};
use crate::render;

/// `config …`
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum ConfigCmd {
    /// Check the configuration file (-c/--config) and show what it applies
    Check,
}

/// Checks the `saved_state` file the daemon would load at start, when there
/// is one: each record must apply on top of the configuration, with the
/// checks the daemon applies (`sozu_command::validate` through the state,
/// and what the workers can enforce). The file is read as the daemon reads
/// it: only a regular file, at most `max_state_file_size` bytes.
fn check_saved_state(
    config: &Config,
    state: &sozu_command::state::ConfigState,
) -> Result<(), CliError> {
    let Some(saved) = config.saved_state.as_ref().filter(|path| path.exists()) else {
        return Ok(());
    };
    let bytes = file::read_bounded(saved, config.max_state_file_size)
        .map_err(|error| CliError::usage(format!("saved_state: {error}")))?;
    let report = file::load_checked(&mut state.clone(), &bytes, sozu_proxy::enforceable::check);
    if report.errors.is_empty() {
        return Ok(());
    }
    let problems: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    Err(CliError::usage(format!(
        "saved_state {}: {} of {} records cannot be applied: {}",
        saved.display(),
        problems.len(),
        problems.len() + report.applied,
        problems.join("; ")
    )))
}

/// The state the file describes, refused as `sozu start` refuses it: a
/// request the state refuses (worded as `sozu apply` words it), or one
/// asking for something this daemon's workers cannot enforce.
fn startable_state(config: &Config) -> Result<sozu_command::state::ConfigState, CliError> {
    let initial = config
        .initial_state(sozu_proxy::enforceable::check)
        .map_err(|refused| {
            if sozu_proxy::enforceable::check(&refused.request).is_err() {
                CliError::usage(format!(
                    "{} cannot be started by this daemon: {}",
                    describe(&refused.request).1,
                    refused.reason
                ))
            } else {
                cannot_apply(&refused)
            }
        })?;
    Ok(initial.state)
}

/// `config check`: exit 0 when the file is valid, 2 when it is not.
pub fn check(out: &Output, file: Option<&Path>) -> Result<(), CliError> {
    let Some(file) = file else {
        return Err(CliError::usage(
            "config check needs a configuration file: -c/--config FILE or $SOZU_CONFIG",
        ));
    };
    let config = Config::load(file).map_err(|error| CliError::usage(error.to_string()))?;
    sozu_daemon::check_log_targets(&config)
        .map_err(|error| CliError::usage(format!("{}: {error}", file.display())))?;
    let state = startable_state(&config)?;
    check_saved_state(&config, &state)?;
    let requests = config.requests();
    let warnings = config.warnings();
    if out.is_json() {
        out.json(&json!({
            "file": file,
            "valid": true,
            "warnings": warnings,
            "command_socket": config.command_socket,
            "requests": requests,
        }));
        return Ok(());
    }
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    out.result_line(&format!(
        "{} is valid: {} listener(s), {} cluster(s), {} frontend(s), {} backend(s), {} certificate(s)",
        file.display(),
        state.http_listeners.len() + state.https_listeners.len() + state.tcp_listeners.len(),
        state.clusters.len(),
        state.frontend_count(),
        state.backend_count(),
        state.certificates.values().map(|by_fingerprint| by_fingerprint.len()).sum::<usize>(),
    ));
    let mut table = render::table(&["#", "request", "what"]);
    for (index, step) in steps(&requests).iter().enumerate() {
        render::add_row(
            &mut table,
            &[
                (index + 1).to_string(),
                step.request.kind_name(),
                step.description.clone(),
            ],
        );
    }
    out.blocks(&[Block::Table(table)]);
    Ok(())
}
