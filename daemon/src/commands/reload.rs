//! `reload_configuration`: read the configuration file again and apply the
//! difference (additions, changes and removals) to the running daemon.

use std::rc::Rc;

use sozu_command::config::Config;
use sozu_command::proto::command::{EventKind, Response};
use sozu_command::state::diff::diff;

use super::{Answers, forward_audited, resolve};
use crate::audit::Peer;
use crate::changes::apply_change;
use crate::events;
use crate::main_process::Main;
use crate::systemd;

/// Reloads from `path` (see [`reload_inner`]), telling systemd and the
/// audit log.
pub async fn reload(main: &Rc<Main>, path: &str, peer: &Peer, answers: &Answers) {
    systemd::reloading("reloading the configuration");
    let (forward, outcome) = tokio::sync::mpsc::unbounded_channel();
    reload_inner(main, path, peer, &forward).await;
    drop(forward);
    let summary = format!("path={path}");
    forward_audited(outcome, answers, peer, "RELOAD_CONFIGURATION", &summary).await;
    systemd::ready(main.workers().len());
}

/// Reloads from `path`, or from the file the daemon started with when
/// `path` is empty.
async fn reload_inner(main: &Rc<Main>, path: &str, peer: &Peer, answers: &Answers) {
    let path = if path.is_empty() {
        match main.config().config_path.clone() {
            Some(path) => path,
            None => {
                let _ = answers.send(Response::failure(
                    "no configuration file to reload: the daemon runs on its built-in default; give a file",
                ));
                return;
            }
        }
    } else {
        resolve(path)
    };
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(error) => {
            let _ = answers.send(Response::failure(format!(
                "configuration not reloaded: {error}"
            )));
            return;
        }
    };
    let initial = match config.initial_state(sozu_proxy::enforceable::check) {
        Ok(initial) => initial,
        Err(refused) => {
            let _ = answers.send(Response::failure(format!(
                "configuration not reloaded: {} in {}: {}",
                refused.request.kind_name(),
                path.display(),
                refused.reason
            )));
            return;
        }
    };
    let mut changes = diff(&main.state(), &initial.state);
    changes.extend(initial.settings);
    let total = changes.len();
    let _ = answers.send(Response::processing(format!(
        "Applying {total} changes from {}",
        path.display()
    )));
    let mut failures = Vec::new();
    for change in &changes {
        if let Err(error) = apply_change(main, change, peer, None).await {
            failures.push(format!("{}: {error}", change.kind_name()));
        }
    }
    main.reloaded(&config, path.clone());
    main.event(events::event(EventKind::ConfigurationReloaded));
    let _ = answers.send(if failures.is_empty() {
        Response::ok(
            format!("Reloaded {}: {total} changes applied", path.display()),
            None,
        )
    } else {
        Response::failure(format!(
            "Reloaded {} partially: {} of {total} changes failed: {}",
            path.display(),
            failures.len(),
            failures.join("; ")
        ))
    });
}
