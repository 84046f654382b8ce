//! Log output of the daemon's processes, and its filter changed live.
//!
//! Each process (the main one and every worker) writes its logs to
//! `log_target` and its access records (events with target `access`, and
//! the request records the proxy hands the access layer directly, see
//! `sozu_proxy::access_log`) to `access_logs_target`, or to `log_target`
//! when that is not set, in `access_logs_format`. Access records and audit
//! lines are written whatever the log level (they are not debug output),
//! unless the filter names them (`access=off`). SIGUSR1 reopens file
//! targets.

use std::io;
use std::sync::{Arc, OnceLock};

use sozu_command::config::{AccessLogFormat as ConfigFormat, Config};
use sozu_command::proto::command::{ProtobufAccessLogFormat, ServerConfig};
use sozu_proxy::access_log::{AccessLogFormat, AccessLogLayer, AccessLogWriter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Layered;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, Layer, Registry, filter, reload};

use crate::log_sink::{Sink, Target};

/// The live filter of this process, once [`init`] installed it.
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();
/// The access log format of this process, passed on to its workers.
static ACCESS_FORMAT: OnceLock<AccessLogFormat> = OnceLock::new();

/// The environment variable that tells a worker the access log format when
/// the `ServerConfig` cannot (`json`: the Sozu schema only has `ascii` and
/// `protobuf`).
pub const ENV_ACCESS_FORMAT: &str = "SOZU_ACCESS_LOG_FORMAT";

/// What a process's logging is set up from.
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub level: String,
    pub target: String,
    pub colored: bool,
    pub access_target: Option<String>,
    pub access_format: AccessLogFormat,
}

impl LogSettings {
    /// The main process's settings. Keys that do nothing are named in the
    /// returned warnings.
    pub fn of_config(config: &Config) -> (LogSettings, Vec<String>) {
        let mut warnings = Vec::new();
        if config.access_logs_colored.is_some() {
            warnings.push(
                "access_logs_colored is ignored: access records are never coloured".to_owned(),
            );
        }
        let settings = LogSettings {
            level: config.log_level.clone(),
            target: config.log_target.clone(),
            colored: config.log_colored,
            access_target: config.access_logs_target.clone(),
            access_format: match config.access_logs_format {
                Some(ConfigFormat::Protobuf) => AccessLogFormat::Protobuf,
                Some(ConfigFormat::Json) => AccessLogFormat::Json,
                Some(ConfigFormat::Ascii) | None => AccessLogFormat::Ascii,
            },
        };
        (settings, warnings)
    }

    /// A worker's settings: its `ServerConfig`, and the JSON format from
    /// [`ENV_ACCESS_FORMAT`].
    pub fn of_worker(config: &ServerConfig) -> LogSettings {
        let access_format = match std::env::var(ENV_ACCESS_FORMAT).as_deref() {
            Ok("json") => AccessLogFormat::Json,
            _ => match ProtobufAccessLogFormat::try_from(config.access_log_format) {
                Ok(ProtobufAccessLogFormat::Protobuf) => AccessLogFormat::Protobuf,
                _ => AccessLogFormat::Ascii,
            },
        };
        LogSettings {
            level: config.log_level.clone(),
            target: config.log_target.clone(),
            colored: config.log_colored,
            access_target: config.access_logs_target.clone(),
            access_format,
        }
    }
}

/// The value of [`ENV_ACCESS_FORMAT`] for workers, when they need it.
pub fn worker_access_format() -> Option<&'static str> {
    match ACCESS_FORMAT.get() {
        Some(AccessLogFormat::Json) => Some("json"),
        _ => None,
    }
}

/// The targets of `settings`, checked: an error names a target that is not
/// one, or that cannot be opened.
fn open_targets(settings: &LogSettings) -> Result<(Arc<Sink>, Arc<Sink>), String> {
    let open = |key: &str, text: &str| {
        let target = Target::parse(key, text, false)?;
        Sink::open(target).map_err(|error| format!("{key} = {text:?}: {error}"))
    };
    let main = open("log_target", &settings.target)?;
    let access = match &settings.access_target {
        Some(text) if *text != settings.target => open("access_logs_target", text)?,
        _ => main.clone(),
    };
    Ok((main, access))
}

/// Checks the log, access and audit targets of `config` without opening
/// them (`sozu config check`): an error names the key and the target.
pub fn check_targets(config: &Config) -> Result<(), String> {
    let log_target = Target::parse("log_target", &config.log_target, false)?;
    let access_target = match &config.access_logs_target {
        Some(text) => Target::parse("access_logs_target", text, false)?,
        None => log_target,
    };
    // A syslog datagram carries a line of text under an RFC 5424 header;
    // binary protobuf records belong in a file or a stream.
    if config.access_logs_format == Some(sozu_command::config::AccessLogFormat::Protobuf)
        && matches!(access_target, Target::Udp(_) | Target::Unix(_))
    {
        return Err(
            "access_logs_format = \"protobuf\" cannot go to a syslog target (udp:// or unix://): \
             set access_logs_target to a file, stdout or stderr, or choose ascii or json"
                .to_owned(),
        );
    }
    if let Some(text) = &config.audit_logs_target {
        Target::parse("audit_logs_target", text, true)?;
    }
    if let Some(text) = &config.audit_logs_json_target {
        Target::parse("audit_logs_json_target", text, true)?;
    }
    Ok(())
}

type Base = Layered<reload::Layer<EnvFilter, Registry>, Registry>;

/// Sets up this process's logging from `settings` (`process` names it in
/// the access records: `main`, `worker-0`). `RUST_LOG` overrides the level
/// when set. The filter can be changed later with [`set_level`]. A target
/// that is not one, or cannot be opened, is refused with its key named.
pub fn init(settings: &LogSettings, process: &str) -> Result<(), String> {
    let (main_sink, access_sink) = open_targets(settings)?;
    let _ = ACCESS_FORMAT.set(settings.access_format);
    // RUST_LOG, when set, replaces `log_level`; audit and access records
    // are kept either way.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|level| parse(&level).ok())
        .map_or_else(|| parse(&settings.level), Ok)
        .unwrap_or_else(|_| EnvFilter::new("info,audit=info,access=info"));
    let (filter, handle) = reload::Layer::new(filter);
    let ansi = settings.colored
        && matches!(main_sink.target(), Target::Stdout | Target::Stderr)
        && std::env::var_os("NO_COLOR").is_none();
    let syslog = main_sink.target().is_syslog();
    let writer = SinkWriter(main_sink);
    let not_access = filter::filter_fn(|meta| meta.target() != sozu_proxy::access_log::TARGET);
    let output: Box<dyn Layer<Base> + Send + Sync> = if syslog {
        // The syslog header carries the time already.
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .without_time()
            .with_writer(writer)
            .with_filter(not_access)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(writer)
            .with_filter(not_access)
            .boxed()
    };
    // Direct: the proxy's request records skip `tracing` events and go
    // straight to this layer when the filter enables access events (no
    // other layer here wants them: the fmt layer leaves them out).
    let access = AccessLogLayer::new(
        settings.access_format,
        Arc::new(AccessSink(access_sink)),
        process,
    )
    .direct();
    if tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .with(access)
        .try_init()
        .is_ok()
    {
        let _ = FILTER.set(handle);
    }
    tracing::debug!(process, "logging started");
    Ok(())
}

/// Sets up the main process's logging from its configuration, and names
/// the keys that do nothing.
pub fn init_main(config: &Config) -> Result<(), String> {
    let (settings, warnings) = LogSettings::of_config(config);
    init(&settings, "main")?;
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    Ok(())
}

/// Reopens this process's file targets (SIGUSR1, after logrotate moved
/// them); errors are logged where the logs still go.
pub fn reopen() {
    let errors = crate::log_sink::reopen_all();
    for error in &errors {
        tracing::error!(%error, "could not reopen a log file");
    }
    tracing::info!(failed = errors.len(), "log files reopened");
}

/// The filter a `log_level` or a `logging` request names, audit and access
/// records included (unless it names `access` itself); an error that names
/// the filter when it is not one.
pub fn parse(level: &str) -> Result<EnvFilter, String> {
    if level.trim().is_empty() {
        return Err("the log filter is empty".to_owned());
    }
    let access = if level.contains("access=") {
        ""
    } else {
        ",access=info"
    };
    EnvFilter::try_new(format!("{level},audit=info{access}"))
        .map_err(|error| format!("'{level}' is not a log filter: {error}"))
}

/// Replaces this process's log filter now (a `logging` request).
pub fn set_level(level: &str) -> Result<(), String> {
    let filter = parse(level)?;
    let handle = FILTER
        .get()
        .ok_or("the log filter of this process cannot be changed (logging was set up elsewhere)")?;
    handle
        .reload(filter)
        .map_err(|error| format!("could not change the log filter: {error}"))?;
    tracing::info!(filter = level, "log filter changed");
    Ok(())
}

/// The fmt layer's writer: one line per event, to a sink.
struct SinkWriter(Arc<Sink>);

/// One event's line, written to the sink when dropped.
pub struct LineWriter<'a> {
    sink: &'a Sink,
    severity: u8,
    msgid: &'static str,
    line: Vec<u8>,
}

impl io::Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.sink.write_line(self.severity, self.msgid, &self.line);
        }
    }
}

impl<'a> MakeWriter<'a> for SinkWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> LineWriter<'a> {
        LineWriter {
            sink: &self.0,
            severity: 6,
            msgid: "-",
            line: Vec::with_capacity(256),
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> LineWriter<'a> {
        let mut writer = self.make_writer();
        writer.severity = severity(*meta.level());
        if meta.target() == "audit" {
            writer.msgid = "audit";
        }
        writer
    }
}

/// The syslog severity of a level.
pub fn severity(level: tracing::Level) -> u8 {
    match level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 6,
        _ => 7,
    }
}

/// Access records to a sink.
struct AccessSink(Arc<Sink>);

impl AccessLogWriter for AccessSink {
    fn write_text(&self, record: &[u8]) {
        self.0.write_line(6, "access", record);
    }
    fn write_binary(&self, record: &[u8]) {
        self.0.write_raw(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_records_are_refused_on_a_syslog_target_by_name() {
        let config = |text: &str| {
            sozu_command::config::Config::from_toml(text, std::path::Path::new("/tmp/sozu.toml"))
                .unwrap()
        };
        let error = check_targets(&config(
            "log_target = \"udp://127.0.0.1:514\"\naccess_logs_format = \"protobuf\"\n",
        ))
        .unwrap_err();
        assert!(
            error.contains("protobuf") && error.contains("syslog"),
            "{error}"
        );
        assert!(
            check_targets(&config(
                "log_target = \"unix:///dev/log\"\naccess_logs_target = \"stdout\"\naccess_logs_format = \"protobuf\"\n"
            ))
            .is_ok()
        );
        assert!(
            check_targets(&config(
                "log_target = \"udp://127.0.0.1:514\"\naccess_logs_format = \"json\"\n"
            ))
            .is_ok()
        );
    }

    #[test]
    fn filters_are_parsed_and_bad_ones_named() {
        assert!(parse("debug").is_ok());
        assert!(parse("warn,sozu_proxy=trace").is_ok());
        assert!(parse("warn,access=off").is_ok());
        let error = parse("sozu_proxy=loud").unwrap_err();
        assert!(error.contains("sozu_proxy=loud"), "{error}");
        assert!(parse(" ").is_err());
    }

    #[test]
    fn an_unsupported_target_is_refused_by_key_and_scheme() {
        let settings = LogSettings {
            level: "info".into(),
            target: "tcp://127.0.0.1:514".into(),
            colored: false,
            access_target: None,
            access_format: AccessLogFormat::Ascii,
        };
        let error = open_targets(&settings).unwrap_err();
        assert!(
            error.contains("log_target") && error.contains("tcp://"),
            "{error}"
        );
        let settings = LogSettings {
            target: "stderr".into(),
            access_target: Some("file:///nonexistent-folder/access.log".into()),
            ..settings
        };
        let error = open_targets(&settings).unwrap_err();
        assert!(error.contains("access_logs_target"), "{error}");
        assert!(error.contains("/nonexistent-folder/access.log"), "{error}");
    }
}
