//! `config check`: load a configuration file completely (certificates,
//! answers and backend names included), check that its requests build a
//! consistent state, and show what it would apply.

use std::path::Path;

use clap::Subcommand;
use serde_json::json;
use sozu_command::config::Config;

use crate::apply::{desired_state, steps};
use crate::error::CliError;
use crate::output::{Block, Output};
use crate::render;

/// `config …`
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum ConfigCmd {
    /// Check the configuration file (-c/--config) and show what it applies
    Check,
}

/// `config check`: exit 0 when the file is valid, 2 when it is not.
pub fn check(out: &Output, file: Option<&Path>) -> Result<(), CliError> {
    let Some(file) = file else {
        return Err(CliError::usage(
            "config check needs a configuration file: -c/--config FILE or $SOZU_CONFIG",
        ));
    };
    let config = Config::load(file).map_err(|error| CliError::usage(error.to_string()))?;
    let state = desired_state(&config)?;
    let requests = config.requests();
    if out.is_json() {
        out.json(&json!({
            "file": file,
            "valid": true,
            "command_socket": config.command_socket,
            "requests": requests,
        }));
        return Ok(());
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
