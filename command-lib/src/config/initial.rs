//! A configuration turned into what a daemon starts with: the state its
//! requests build, and the process settings (logging, metrics, limits) that
//! are not part of the state.
//!
//! The daemon at start and at reload, and `sozu apply` planning against a
//! file, all read a configuration this one way.

use std::fmt;

use super::Config;
use crate::proto::command::Request;
use crate::state::ConfigState;

/// What a configuration stands for.
#[derive(Debug, Clone, Default)]
pub struct InitialState {
    /// The state built by applying, in order, every request of the
    /// configuration that changes state.
    pub state: ConfigState,
    /// The other requests (process-wide settings), in the configuration's
    /// order.
    pub settings: Vec<Request>,
}

/// The first request of a configuration that could not be used, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RefusedRequest {
    /// The request as the configuration generated it (boxed: requests are
    /// large).
    pub request: Box<Request>,
    /// Why: the caller's check refused it, or the state did.
    pub reason: String,
}

impl fmt::Display for RefusedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.request.kind_name(), self.reason)
    }
}

impl std::error::Error for RefusedRequest {}

impl Config {
    /// The state and process settings this configuration stands for, built
    /// from [`Config::requests`] in order. Each request is first given to
    /// `check` (a daemon refuses there what it cannot enforce; pass
    /// `|_| Ok(())` to accept everything); a state change is then applied
    /// to the state, anything else is kept as a setting. Stops at the first
    /// request refused by `check` or by the state: no partial state is
    /// returned.
    pub fn initial_state(
        &self,
        mut check: impl FnMut(&Request) -> Result<(), String>,
    ) -> Result<InitialState, RefusedRequest> {
        let mut initial = InitialState::default();
        for request in self.requests() {
            if let Err(reason) = check(&request) {
                return Err(RefusedRequest {
                    request: Box::new(request),
                    reason,
                });
            }
            if ConfigState::changes_state(&request) {
                if let Err(error) = initial.state.dispatch(&request) {
                    let reason = error.to_string();
                    return Err(RefusedRequest {
                        request: Box::new(request),
                        reason,
                    });
                }
            } else {
                initial.settings.push(request);
            }
        }
        Ok(initial)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::proto::command::request::RequestType;

    const FILE: &str = r#"
disable_cluster_metrics = true

[[listeners]]
protocol = "http"
address = "127.0.0.1:18080"

[clusters.app]
protocol = "http"
frontends = [{ address = "127.0.0.1:18080", hostname = "app.example.com" }]
backends = [{ address = "127.0.0.1:9001" }]
"#;

    fn config(text: &str) -> Config {
        Config::from_toml(text, Path::new("/nowhere/sozu.toml")).expect("valid configuration")
    }

    #[test]
    fn state_changes_build_the_state_and_the_rest_are_settings() {
        let config = config(FILE);
        let initial = config.initial_state(|_| Ok(())).unwrap();
        assert_eq!(initial.state.http_listeners.len(), 1);
        assert!(initial.state.clusters.contains_key("app"));
        assert_eq!(initial.state.http_frontends.len(), 1);
        assert_eq!(initial.state.backend_count(), 1);
        assert_eq!(initial.settings.len(), 1, "{:?}", initial.settings);
        assert!(matches!(
            initial.settings[0].request_type,
            Some(RequestType::ConfigureMetrics(_))
        ));
        let mut by_hand = ConfigState::new();
        for request in config.requests() {
            if ConfigState::changes_state(&request) {
                by_hand.dispatch(&request).unwrap();
            }
        }
        assert_eq!(initial.state, by_hand);
    }

    #[test]
    fn the_first_request_refused_by_the_check_is_named() {
        let config = config(FILE);
        let refused = config
            .initial_state(|request| match request.request_type {
                Some(RequestType::AddBackend(_)) => Err("no backends here".to_owned()),
                _ => Ok(()),
            })
            .unwrap_err();
        assert_eq!(refused.request.kind_name(), "ADD_BACKEND");
        assert_eq!(refused.reason, "no backends here");
        assert_eq!(refused.to_string(), "ADD_BACKEND: no backends here");
    }
}
