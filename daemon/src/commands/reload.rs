//! `reload_configuration`: read the configuration file again and apply the
//! difference (additions, changes and removals) to the running daemon.

use std::rc::Rc;

use sozu_command::config::Config;
use sozu_command::proto::command::{EventKind, Response};
use sozu_command::state::{ConfigState, diff::diff};
use tokio::sync::mpsc::UnboundedSender;

use crate::audit::Peer;
use crate::commands::apply_change;
use crate::events;
use crate::main_process::{Main, resolve};

/// Reloads from `path`, or from the file the daemon started with when
/// `path` is empty.
pub async fn reload(main: &Rc<Main>, path: &str, peer: &Peer, answers: &UnboundedSender<Response>) {
    let path = if path.is_empty() {
        match main.config.borrow().config_path.clone() {
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
    let mut desired = ConfigState::new();
    let mut settings = Vec::new();
    for request in config.requests() {
        if let Err(reason) = sozu_proxy::support::check(&request) {
            let _ = answers.send(Response::failure(format!(
                "configuration not reloaded: {} in {}: {reason}",
                request.kind_name(),
                path.display()
            )));
            return;
        }
        if ConfigState::changes_state(&request) {
            if let Err(error) = desired.dispatch(&request) {
                let _ = answers.send(Response::failure(format!(
                    "configuration not reloaded: {} in {}: {error}",
                    request.kind_name(),
                    path.display()
                )));
                return;
            }
        } else {
            settings.push(request);
        }
    }
    let mut changes = diff(&main.state.borrow(), &desired);
    changes.extend(settings);
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
    // Settings that only matter at start (socket, workers) stay as they are.
    {
        let mut current = main.config.borrow_mut();
        current.automatic_state_save = config.automatic_state_save;
        current.saved_state = config.saved_state.clone();
        current.worker_automatic_restart = config.worker_automatic_restart;
        current.config_path = Some(path.clone());
    }
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
