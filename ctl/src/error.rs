//! Why a command failed, and what that means for its exit code and its JSON.
//!
//! Every failure ends as one [`CliError`]: a [`ErrorKind`] that scripts can
//! branch on (it is both the exit code and the `kind` of the JSON error) and
//! a message for the person reading it.

use std::fmt;

use serde_json::{Value, json};
use sozu_command::channel::ChannelError;
use sozu_command::requests::RequestError;

/// The classes of failure, each with its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The daemon answered FAILURE (exit 1).
    Failure,
    /// The command line or its inputs are wrong; nothing was sent (exit 2).
    Usage,
    /// No daemon could be reached (exit 3).
    Connect,
    /// The daemon did not answer in time (exit 4).
    Timeout,
    /// Reading or writing failed after connecting (exit 5).
    Io,
    /// The daemon answered something that is not a valid answer (exit 5).
    Protocol,
}

impl ErrorKind {
    /// The name used as `kind` in JSON errors.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Failure => "failure",
            ErrorKind::Usage => "usage",
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Io => "io",
            ErrorKind::Protocol => "protocol",
        }
    }

    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Failure => 1,
            ErrorKind::Usage => 2,
            ErrorKind::Connect => 3,
            ErrorKind::Timeout => 4,
            ErrorKind::Io | ErrorKind::Protocol => 5,
        }
    }
}

/// A failed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// What class of failure this is.
    pub kind: ErrorKind,
    /// What happened, for a person.
    pub message: String,
    /// The command already printed its result document on stdout (a status
    /// that exits non-zero, say): with `--json` the error then goes to
    /// stderr, so that stdout still holds exactly one JSON document.
    pub result_printed: bool,
}

impl CliError {
    /// A failure of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CliError {
            kind,
            message: message.into(),
            result_printed: false,
        }
    }

    /// The same error, marked as following a result already printed on
    /// stdout.
    pub fn after_result(mut self) -> Self {
        self.result_printed = true;
        self
    }

    /// The daemon refused.
    pub fn failure(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Failure, message)
    }

    /// Bad command line or input.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }

    /// An invalid answer.
    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Protocol, message)
    }

    /// A request that could not be built, reported against the flag that
    /// supplied the field: `flags` maps protocol field names to flags.
    pub fn from_request(error: RequestError, flags: &[(&str, &str)]) -> Self {
        let field = error.field();
        let flag = flags
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, flag)| *flag);
        match flag {
            Some(flag) => Self::usage(format!("{flag}: {error}")),
            None => Self::usage(error.to_string()),
        }
    }

    /// The JSON document printed on stdout with `--json`.
    pub fn to_json(&self) -> Value {
        json!({ "error": { "kind": self.kind.name(), "message": self.message } })
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ChannelError> for CliError {
    fn from(error: ChannelError) -> Self {
        let kind = match &error {
            ChannelError::Connect { .. } => ErrorKind::Connect,
            ChannelError::Timeout { .. } => ErrorKind::Timeout,
            ChannelError::Io(_) | ChannelError::ConnectionClosed => ErrorKind::Io,
            _ => ErrorKind::Protocol,
        };
        let message = match &error {
            ChannelError::Timeout { .. } => {
                format!("the daemon did not answer: {error} (raise it with -t MS, 0 waits forever)")
            }
            _ => error.to_string(),
        };
        CliError::new(kind, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn kinds_have_their_exit_codes() {
        let codes: Vec<u8> = [
            ErrorKind::Failure,
            ErrorKind::Usage,
            ErrorKind::Connect,
            ErrorKind::Timeout,
            ErrorKind::Io,
            ErrorKind::Protocol,
        ]
        .iter()
        .map(|kind| kind.exit_code())
        .collect();
        assert_eq!(codes, [1, 2, 3, 4, 5, 5]);
    }

    #[test]
    fn channel_errors_are_classified() {
        let timeout = CliError::from(ChannelError::Timeout {
            waited: Duration::from_millis(10),
        });
        assert_eq!(timeout.kind, ErrorKind::Timeout);
        assert_eq!(
            CliError::from(ChannelError::ConnectionClosed).kind,
            ErrorKind::Io
        );
        assert_eq!(
            CliError::from(ChannelError::FrameTooSmall { declared: 2 }).kind,
            ErrorKind::Protocol
        );
    }

    #[test]
    fn json_errors_have_kind_and_message() {
        let error = CliError::failure("no such cluster");
        assert_eq!(
            error.to_json(),
            json!({"error": {"kind": "failure", "message": "no such cluster"}})
        );
    }

    #[test]
    fn request_errors_name_the_flag() {
        let error = sozu_command::requests::parse_tags("oops").unwrap_err();
        let error = CliError::from_request(error, &[("tags", "--tags")]);
        assert_eq!(error.kind, ErrorKind::Usage);
        assert!(error.message.starts_with("--tags: "), "{}", error.message);
    }
}
