//! The actions the console asks the daemon for (remove a backend or a
//! frontend, change a backend's weight, activate or deactivate a
//! listener): the questions it asks first, in popups, and the effects it
//! returns once confirmed. Refused under `--read-only`.

use std::time::SystemTime;

use ratatui::crossterm::event::{KeyCode, KeyEvent};
use sozu_command::proto::command::request::RequestType;
use sozu_command::proto::command::{AddBackend, LoadBalancingParams, RemoveBackend, Request};
use sozu_command::requests;

use super::App;
use crate::table::{Frontend, RowKey, listener_kind};

/// Something the console asks the daemon to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// What it does, in words.
    pub description: String,
    /// The request (boxed: requests are large).
    pub request: Box<Request>,
}

/// What the loop around the app must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send this action to the daemon.
    Run(Action),
    /// Ask every source to poll now.
    RefreshNow,
    /// Leave.
    Quit,
}

/// A question in a popup.
#[derive(Debug, Clone, PartialEq)]
pub enum Modal {
    /// Run this action? (y/n)
    Confirm(Action),
    /// The new weight of a backend.
    Weight {
        /// The backend.
        backend: AddBackend,
        /// What was typed so far.
        input: String,
    },
}

impl App {
    pub(super) fn refuse_read_only(&mut self, wall: SystemTime) -> bool {
        if self.settings.read_only {
            self.say("read-only: actions are disabled (--read-only)", true, wall);
        }
        self.settings.read_only
    }

    pub(super) fn ask_remove(&mut self, wall: SystemTime) {
        let Some(row) = self.selected_row(wall) else {
            return;
        };
        let action = match row.key {
            RowKey::Backend(backend) => Action {
                description: format!(
                    "remove backend {} ({}) of cluster {}",
                    backend.backend_id, backend.address, backend.cluster_id
                ),
                request: Box::new(
                    RequestType::RemoveBackend(RemoveBackend {
                        cluster_id: backend.cluster_id.clone(),
                        backend_id: backend.backend_id.clone(),
                        address: backend.address,
                    })
                    .into(),
                ),
            },
            RowKey::Frontend(frontend) => {
                let (description, request) = match frontend {
                    Frontend::Http(front) => (
                        format!(
                            "remove http frontend {}{} on {}",
                            front.hostname, front.path.value, front.address
                        ),
                        RequestType::RemoveHttpFrontend(front),
                    ),
                    Frontend::Https(front) => (
                        format!(
                            "remove https frontend {}{} on {}",
                            front.hostname, front.path.value, front.address
                        ),
                        RequestType::RemoveHttpsFrontend(front),
                    ),
                    Frontend::Tcp(front) => (
                        format!(
                            "remove tcp frontend of {} on {}",
                            front.cluster_id, front.address
                        ),
                        RequestType::RemoveTcpFrontend(front),
                    ),
                };
                Action {
                    description,
                    request: Box::new(request.into()),
                }
            }
            _ => {
                self.say(
                    "d removes a backend or a frontend: select one first",
                    true,
                    wall,
                );
                return;
            }
        };
        if !self.refuse_read_only(wall) {
            self.modal = Some(Modal::Confirm(action));
        }
    }

    pub(super) fn ask_weight(&mut self, wall: SystemTime) {
        let Some(row) = self.selected_row(wall) else {
            return;
        };
        let RowKey::Backend(backend) = row.key else {
            self.say(
                "w changes a backend's weight: select a backend first",
                true,
                wall,
            );
            return;
        };
        if !self.refuse_read_only(wall) {
            self.modal = Some(Modal::Weight {
                backend,
                input: String::new(),
            });
        }
    }

    pub(super) fn ask_toggle_listener(&mut self, wall: SystemTime) {
        let Some(row) = self.selected_row(wall) else {
            return;
        };
        let RowKey::Listener(listener) = row.key else {
            self.say(
                "a activates or deactivates a listener: select one first",
                true,
                wall,
            );
            return;
        };
        let kind = listener_kind(listener.kind);
        let action = if listener.active {
            Action {
                description: format!("deactivate {kind} listener {}", listener.address),
                request: Box::new(requests::listener_deactivate(
                    listener.address,
                    listener.kind,
                    None,
                )),
            }
        } else {
            Action {
                description: format!("activate {kind} listener {}", listener.address),
                request: Box::new(requests::listener_activate(
                    listener.address,
                    listener.kind,
                    None,
                )),
            }
        };
        if !self.refuse_read_only(wall) {
            self.modal = Some(Modal::Confirm(action));
        }
    }

    pub(super) fn modal_key(
        &mut self,
        modal: Modal,
        key: KeyEvent,
        wall: SystemTime,
    ) -> Vec<Effect> {
        match modal {
            Modal::Confirm(action) => match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                    self.pending += 1;
                    self.say(
                        format!("{}: waiting for the daemon", action.description),
                        false,
                        wall,
                    );
                    vec![Effect::Run(action)]
                }
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => {
                    self.say(format!("{}: cancelled", action.description), false, wall);
                    Vec::new()
                }
                _ => {
                    self.modal = Some(Modal::Confirm(action));
                    Vec::new()
                }
            },
            Modal::Weight { backend, mut input } => {
                match key.code {
                    KeyCode::Esc => {
                        self.say("weight change cancelled", false, wall);
                        return Vec::new();
                    }
                    KeyCode::Backspace => {
                        input.pop();
                    }
                    KeyCode::Char(c) if c.is_ascii_digit() && input.len() < 9 => input.push(c),
                    KeyCode::Enter => {
                        let weight = match input.parse::<i32>() {
                            Ok(weight) if weight > 0 => weight,
                            _ => {
                                // The proxy reads 0 as "no weight given"
                                // (the default, 100): it would not drain.
                                self.say(
                                    "a weight is a whole number from 1; to stop a backend's traffic, remove it (d)",
                                    true,
                                    wall,
                                );
                                self.modal = Some(Modal::Weight { backend, input });
                                return Vec::new();
                            }
                        };
                        let mut changed = backend.clone();
                        changed.load_balancing_parameters = Some(LoadBalancingParams { weight });
                        self.modal = Some(Modal::Confirm(Action {
                            description: format!(
                                "set weight of backend {} ({}) of cluster {} to {weight}",
                                backend.backend_id, backend.address, backend.cluster_id
                            ),
                            request: Box::new(RequestType::AddBackend(changed).into()),
                        }));
                        return Vec::new();
                    }
                    _ => {}
                }
                self.modal = Some(Modal::Weight { backend, input });
                Vec::new()
            }
        }
    }
}
