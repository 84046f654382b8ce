//! One run of a control command: which daemon, how long to wait, and the
//! conversation with it.
//!
//! The configuration file is read only for what a client needs (the command
//! socket, `ctl_command_timeout`, the frame limit and the listener default
//! timeouts): certificates and backend names are left alone, so a control
//! command never fails on a missing key file or a DNS outage.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use sozu_command::channel::{CommandChannel, DEFAULT_MAX_BUFFER_SIZE};
use sozu_command::config::{
    DEFAULT_BACK_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_CTL_COMMAND_TIMEOUT,
    DEFAULT_FRONT_TIMEOUT, DEFAULT_MAX_STATE_FILE_SIZE, DEFAULT_REQUEST_TIMEOUT, FileConfig,
};
use sozu_command::proto::command::response_content::ContentType;
use sozu_command::proto::command::{Request, Response, ResponseStatus};
use sozu_command::requests::ListenerDefaults;

use crate::error::{CliError, ErrorKind};
use crate::output::{Output, Progress};
use crate::render;

/// Where the command socket is looked for when neither `--socket` nor a
/// configuration names it, after `$SOZU_SOCKET`.
pub const FALLBACK_SOCKETS: [&str; 2] = ["./sozu.sock", "/run/sozu/sozu.sock"];

/// The global flags, as parsed.
#[derive(Debug, Clone, Default)]
pub struct Globals {
    /// `-c/--config` or `$SOZU_CONFIG`.
    pub config: Option<PathBuf>,
    /// `-t/--timeout`, milliseconds.
    pub timeout: Option<u64>,
    /// `-j/--json`.
    pub json: bool,
    /// `--socket`.
    pub socket: Option<PathBuf>,
}

/// What a client takes from a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// The file it came from.
    pub path: PathBuf,
    /// The command socket, resolved against the file's folder.
    pub command_socket: PathBuf,
    /// `ctl_command_timeout`, milliseconds.
    pub ctl_command_timeout: u64,
    /// `max_command_buffer_size`, bytes.
    pub max_command_buffer_size: usize,
    /// Timeouts a new listener takes by default.
    pub listener_defaults: ListenerDefaults,
    /// `max_state_file_size`, bytes: the largest state file `state load`
    /// reads.
    pub max_state_file_size: u64,
}

impl ClientSettings {
    /// Reads the client settings of a configuration file.
    pub fn load(path: &Path) -> Result<Self, CliError> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            CliError::usage(format!(
                "-c/--config: could not read {}: {error}",
                path.display()
            ))
        })?;
        let file = FileConfig::parse(&text, path)
            .map_err(|error| CliError::usage(format!("-c/--config: {error}")))?;
        let folder = std::path::absolute(path)
            .ok()
            .and_then(|absolute| absolute.parent().map(Path::to_owned))
            .unwrap_or_else(|| PathBuf::from("."));
        let command_socket = match &file.command_socket {
            Some(socket) if Path::new(socket).is_absolute() => PathBuf::from(socket),
            Some(socket) => folder.join(socket),
            // As the daemon does: `sozu.sock` in the working directory.
            None => std::path::absolute("sozu.sock").unwrap_or_else(|_| "sozu.sock".into()),
        };
        let max_command_buffer_size = file
            .max_command_buffer_size
            .and_then(|size| usize::try_from(size).ok())
            .unwrap_or(DEFAULT_MAX_BUFFER_SIZE);
        Ok(ClientSettings {
            path: path.to_owned(),
            command_socket,
            ctl_command_timeout: file
                .ctl_command_timeout
                .unwrap_or(DEFAULT_CTL_COMMAND_TIMEOUT),
            max_command_buffer_size,
            max_state_file_size: file
                .max_state_file_size
                .unwrap_or(DEFAULT_MAX_STATE_FILE_SIZE),
            listener_defaults: ListenerDefaults {
                front_timeout: file.front_timeout.unwrap_or(DEFAULT_FRONT_TIMEOUT),
                back_timeout: file.back_timeout.unwrap_or(DEFAULT_BACK_TIMEOUT),
                connect_timeout: file.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
                request_timeout: file.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT),
            },
        })
    }
}

/// The wait for each answer: the flag, else the configuration, else 1000 ms;
/// 0 is "forever" (`None`).
pub fn answer_timeout(flag: Option<u64>, settings: Option<&ClientSettings>) -> Option<Duration> {
    let millis = flag
        .or(settings.map(|settings| settings.ctl_command_timeout))
        .unwrap_or(DEFAULT_CTL_COMMAND_TIMEOUT);
    (millis != 0).then(|| Duration::from_millis(millis))
}

/// The sockets to try, in order, each with where it came from.
pub fn socket_candidates(
    flag: Option<&Path>,
    settings: Option<&ClientSettings>,
    environment: Option<PathBuf>,
) -> Vec<(PathBuf, String)> {
    if let Some(socket) = flag {
        return vec![(socket.to_owned(), "--socket".to_owned())];
    }
    if let Some(settings) = settings {
        return vec![(
            settings.command_socket.clone(),
            format!("command_socket of {}", settings.path.display()),
        )];
    }
    let mut candidates = Vec::new();
    if let Some(socket) = environment.filter(|socket| !socket.as_os_str().is_empty()) {
        candidates.push((socket, "$SOZU_SOCKET".to_owned()));
    }
    for fallback in FALLBACK_SOCKETS {
        candidates.push((PathBuf::from(fallback), "default".to_owned()));
    }
    candidates
}

/// A control command's run.
pub struct Session {
    /// How results are printed.
    pub out: Output,
    globals: Globals,
    settings: Option<ClientSettings>,
    channel: Option<CommandChannel>,
}

impl Session {
    /// Reads the configuration if one is given; connects later, on first use.
    pub fn new(globals: Globals) -> Result<Self, CliError> {
        let out = Output::detect(globals.json);
        let settings = match &globals.config {
            Some(path) => Some(ClientSettings::load(path)?),
            None => None,
        };
        Ok(Session {
            out,
            globals,
            settings,
            channel: None,
        })
    }

    /// The wait for each answer (`None`: forever).
    pub fn timeout(&self) -> Option<Duration> {
        answer_timeout(self.globals.timeout, self.settings.as_ref())
    }

    /// The largest state file `state load` reads: the configuration's
    /// `max_state_file_size`, else the default.
    pub fn max_state_file_size(&self) -> u64 {
        self.settings
            .as_ref()
            .map_or(DEFAULT_MAX_STATE_FILE_SIZE, |settings| {
                settings.max_state_file_size
            })
    }

    /// The timeouts a new listener takes when not given.
    pub fn listener_defaults(&self) -> ListenerDefaults {
        self.settings
            .as_ref()
            .map(|settings| settings.listener_defaults)
            .unwrap_or_default()
    }

    /// The connection to the daemon, opened on first use.
    pub fn channel(&mut self) -> Result<&mut CommandChannel, CliError> {
        if self.channel.is_none() {
            self.channel = Some(self.connect()?);
        }
        Ok(self.channel.as_mut().expect("connected just above"))
    }

    /// Drops the connection; the next request opens a new one (after an
    /// upgrade of the main process).
    pub fn reconnect(&mut self) {
        self.channel = None;
    }

    /// The socket a console should use: the first candidate that exists,
    /// else the first one (the console then waits for the daemon).
    pub fn socket_path(&self) -> PathBuf {
        let candidates = socket_candidates(
            self.globals.socket.as_deref(),
            self.settings.as_ref(),
            std::env::var_os("SOZU_SOCKET").map(PathBuf::from),
        );
        let found = candidates
            .iter()
            .find(|(path, _)| path.exists())
            .or_else(|| candidates.first())
            .map(|(path, _)| path.clone())
            .unwrap_or_else(|| PathBuf::from(FALLBACK_SOCKETS[0]));
        std::path::absolute(&found).unwrap_or(found)
    }

    /// The largest frame accepted from the daemon.
    pub fn max_frame_size(&self) -> usize {
        self.settings
            .as_ref()
            .map(|settings| {
                settings
                    .max_command_buffer_size
                    .max(DEFAULT_MAX_BUFFER_SIZE)
            })
            .unwrap_or(DEFAULT_MAX_BUFFER_SIZE)
    }

    fn connect(&self) -> Result<CommandChannel, CliError> {
        let candidates = socket_candidates(
            self.globals.socket.as_deref(),
            self.settings.as_ref(),
            std::env::var_os("SOZU_SOCKET").map(PathBuf::from),
        );
        let max_frame_size = self.max_frame_size();
        let mut tried = Vec::new();
        for (path, origin) in &candidates {
            match CommandChannel::connect(path) {
                Ok(channel) => return Ok(channel.with_max_frame_size(max_frame_size)),
                Err(sozu_command::channel::ChannelError::Connect { source, .. }) => {
                    tried.push(format!("{} ({origin}): {source}", path.display()));
                }
                Err(other) => return Err(other.into()),
            }
        }
        Err(CliError::new(
            ErrorKind::Connect,
            format!(
                "could not connect to the daemon, is it running? Tried: {}",
                tried.join("; ")
            ),
        ))
    }

    /// Sends one request and waits for its final answer, showing progress
    /// messages as a spinner. A FAILURE answer is an error.
    pub fn request(&mut self, request: &Request) -> Result<Response, CliError> {
        self.request_waiting(request, self.timeout())
    }

    /// As [`Session::request`] with another wait for each answer (`None`:
    /// forever), for streams that are already known to be alive.
    pub fn request_waiting(
        &mut self,
        request: &Request,
        timeout: Option<Duration>,
    ) -> Result<Response, CliError> {
        let progress = self.out.spinner();
        let channel = self.channel()?;
        let answer = channel.exchange(request, timeout, |answer| progress.message(&answer.message));
        progress.finish();
        final_answer(answer?)
    }

    /// As [`Session::request`], with a chosen display of progress answers.
    pub fn request_with(
        &mut self,
        request: &Request,
        progress: &Progress,
        mut on_progress: impl FnMut(&Progress, &Response),
    ) -> Result<Response, CliError> {
        let timeout = self.timeout();
        let channel = self.channel()?;
        let answer = channel.exchange(request, timeout, |answer| on_progress(progress, answer));
        progress.finish();
        final_answer(answer?)
    }

    /// Sends one request and prints the answer: the result line and tables
    /// for people, the content in Sozu's JSON shape for scripts.
    pub fn run(&mut self, request: &Request, summary: &str) -> Result<(), CliError> {
        let answer = self.request(request)?;
        self.print_answer(&answer, summary);
        Ok(())
    }

    /// Prints a final OK answer.
    pub fn print_answer(&self, answer: &Response, summary: &str) {
        let content = content_of(answer);
        if self.out.is_json() {
            match content {
                Some(content) => self.out.document(content),
                None => self.out.document(&json!({})),
            }
            return;
        }
        self.out.result_line(&result_line(summary, &answer.message));
        if let Some(content) = content {
            self.out.blocks(&render::content(content));
        }
    }
}

/// `summary: daemon message`, or the summary alone.
pub fn result_line(summary: &str, message: &str) -> String {
    match message.trim() {
        "" => summary.to_owned(),
        message => format!("{summary}: {message}"),
    }
}

/// Checks the status of a final answer.
pub fn final_answer(answer: Response) -> Result<Response, CliError> {
    match ResponseStatus::try_from(answer.status) {
        Ok(ResponseStatus::Ok) => Ok(answer),
        Ok(ResponseStatus::Failure) => Err(CliError::failure(if answer.message.is_empty() {
            "the daemon refused the request without saying why".to_owned()
        } else {
            answer.message
        })),
        _ => Err(CliError::protocol(format!(
            "the daemon answered with unknown status {}",
            answer.status
        ))),
    }
}

/// The content of an answer, if it has one.
pub fn content_of(answer: &Response) -> Option<&ContentType> {
    answer
        .content
        .as_ref()
        .and_then(|content| content.content_type.as_ref())
}

/// The JSON document for an answer's content: Sozu's externally tagged form
/// (`{"WORKERS": …}`), or `{}` without content.
pub fn content_json(content: Option<&ContentType>) -> Value {
    match content {
        Some(content) => serde_json::to_value(content).unwrap_or_else(|_| json!({})),
        None => json!({}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn settings(socket: &str, timeout: u64) -> ClientSettings {
        ClientSettings {
            path: PathBuf::from("/etc/sozu/config.toml"),
            command_socket: PathBuf::from(socket),
            ctl_command_timeout: timeout,
            max_command_buffer_size: DEFAULT_MAX_BUFFER_SIZE,
            listener_defaults: ListenerDefaults::default(),
            max_state_file_size: DEFAULT_MAX_STATE_FILE_SIZE,
        }
    }

    #[test]
    fn timeout_comes_from_flag_then_config_then_default() {
        let config = settings("/s", 250);
        assert_eq!(
            answer_timeout(Some(40), Some(&config)),
            Some(Duration::from_millis(40))
        );
        assert_eq!(
            answer_timeout(None, Some(&config)),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            answer_timeout(None, None),
            Some(Duration::from_millis(1000))
        );
        assert_eq!(answer_timeout(Some(0), Some(&config)), None);
    }

    #[test]
    fn sockets_come_from_flag_then_config_then_fallbacks() {
        let config = settings("/var/run/sozu.sock", 1000);
        let flag = socket_candidates(Some(Path::new("/x.sock")), Some(&config), None);
        assert_eq!(flag, [(PathBuf::from("/x.sock"), "--socket".to_owned())]);
        let from_config = socket_candidates(None, Some(&config), Some("/env".into()));
        assert_eq!(from_config[0].0, PathBuf::from("/var/run/sozu.sock"));
        assert_eq!(from_config.len(), 1);
        let fallbacks = socket_candidates(None, None, Some("/env.sock".into()));
        let paths: Vec<&Path> = fallbacks.iter().map(|(path, _)| path.as_path()).collect();
        assert_eq!(
            paths,
            [
                Path::new("/env.sock"),
                Path::new("./sozu.sock"),
                Path::new("/run/sozu/sozu.sock")
            ]
        );
        assert_eq!(socket_candidates(None, None, None).len(), 2);
    }

    #[test]
    fn client_settings_resolve_the_socket_against_the_config_folder() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("config.toml");
        let mut file = std::fs::File::create(&path).unwrap();
        writeln!(
            file,
            "command_socket = \"run/sozu.sock\"\nctl_command_timeout = 1500\nfront_timeout = 7\n\
             [clusters.web]\nprotocol = \"http\"\nbackends = [{{ address = \"unresolvable.invalid:80\" }}]"
        )
        .unwrap();
        let settings = ClientSettings::load(&path).unwrap();
        assert_eq!(settings.command_socket, folder.path().join("run/sozu.sock"));
        assert_eq!(settings.ctl_command_timeout, 1500);
        assert_eq!(settings.listener_defaults.front_timeout, 7);
        let broken = folder.path().join("broken.toml");
        std::fs::write(&broken, "worker_count = \"two\"").unwrap();
        let error = ClientSettings::load(&broken).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Usage);
    }

    #[test]
    fn final_answers_are_checked() {
        assert!(final_answer(Response::ok("done", None)).is_ok());
        let refused = final_answer(Response::failure("no")).unwrap_err();
        assert_eq!(
            (refused.kind, refused.message.as_str()),
            (ErrorKind::Failure, "no")
        );
        let odd = final_answer(Response {
            status: 9,
            ..Response::default()
        })
        .unwrap_err();
        assert_eq!(odd.kind, ErrorKind::Protocol);
    }
}
