//! `metrics enable|disable|clear|get`.

use std::time::Duration;

use clap::Subcommand;
use std::io::Write as _;

use sozu_command::proto::command::{MetricsConfiguration, response_content::ContentType};
use sozu_command::requests::{self, MetricsQuery};

use crate::error::CliError;
use crate::render;
use crate::session::{Session, content_json, content_of};

/// `metrics …`
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum MetricsCmd {
    /// Collect per-cluster and per-backend metrics again
    Enable,
    /// Stop collecting per-cluster and per-backend metrics (proxy-wide ones go on, as in Sozu)
    Disable,
    /// Forget the metrics collected so far
    Clear,
    /// Show metrics, filtered, or the list of available metrics
    Get {
        /// List the names of the available metrics
        #[arg(short = 'l', long = "list")]
        list: bool,
        /// Show again every SECS seconds, until interrupted
        #[arg(short = 'r', long = "refresh", value_name = "SECS",
              value_parser = clap::value_parser!(u32).range(1..))]
        refresh: Option<u32>,
        /// Only these metrics (comma-separated)
        #[arg(
            short = 'n',
            long = "names",
            value_delimiter = ',',
            value_name = "NAMES"
        )]
        names: Vec<String>,
        /// Only these clusters (comma-separated ids)
        #[arg(
            short = 'k',
            long = "clusters",
            value_delimiter = ',',
            value_name = "IDS"
        )]
        clusters: Vec<String>,
        /// Only these backends (comma-separated ids)
        #[arg(
            short = 'b',
            long = "backends",
            value_delimiter = ',',
            value_name = "IDS"
        )]
        backends: Vec<String>,
        /// Only the main process and workers, no cluster metrics
        #[arg(long = "no-clusters")]
        no_clusters: bool,
        /// Each worker's metrics apart instead of merged
        #[arg(short = 'w', long = "workers")]
        workers: bool,
        /// Print the Prometheus text exposition, as the daemon's /metrics
        /// endpoint serves it
        #[arg(long = "prometheus", conflicts_with_all = ["list", "refresh", "workers"])]
        prometheus: bool,
    },
}

/// Runs a `metrics` subcommand.
pub fn run(session: &mut Session, cmd: &MetricsCmd) -> Result<(), CliError> {
    let (configuration, summary) = match cmd {
        MetricsCmd::Enable => (MetricsConfiguration::Enabled, "metrics enabled"),
        MetricsCmd::Disable => (MetricsConfiguration::Disabled, "metrics disabled"),
        MetricsCmd::Clear => (MetricsConfiguration::Clear, "metrics cleared"),
        MetricsCmd::Get {
            list,
            refresh,
            names,
            clusters,
            backends,
            no_clusters,
            workers,
            prometheus,
        } => {
            let query = MetricsQuery {
                list: *list,
                names: names.clone(),
                cluster_ids: clusters.clone(),
                backend_ids: backends.clone(),
                no_clusters: *no_clusters,
                workers: *workers,
            };
            if *prometheus {
                return exposition(session, &query);
            }
            return get(session, &query, *refresh);
        }
    };
    session.run(&requests::configure_metrics(configuration), summary)
}

/// `metrics get --prometheus`: the exposition text on stdout.
fn exposition(session: &mut Session, query: &MetricsQuery) -> Result<(), CliError> {
    let answer = session.request(&requests::query_metrics(query))?;
    let Some(ContentType::Metrics(metrics)) =
        answer.content.and_then(|content| content.content_type)
    else {
        return Err(CliError::failure(
            "the daemon answered without metrics".to_owned(),
        ));
    };
    let text = sozu_command::prometheus::render(&metrics);
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::failure(
            format!("cannot write the metrics: {error}"),
        )),
        _ => Ok(()),
    }
}

/// `metrics get`, once or every `refresh` seconds. Refreshed JSON output is
/// one document per line, so a reader can take each as it comes.
fn get(session: &mut Session, query: &MetricsQuery, refresh: Option<u32>) -> Result<(), CliError> {
    let request = requests::query_metrics(query);
    let Some(seconds) = refresh else {
        return session.run(&request, "metrics");
    };
    // Once the daemon has answered, the refresh is a stream: it waits as long
    // as the daemon needs.
    let mut timeout = session.timeout();
    loop {
        let answer = session.request_waiting(&request, timeout)?;
        timeout = None;
        let written = if session.out.is_json() {
            session.out.json_line(&content_json(content_of(&answer)))
        } else {
            session.out.clear_screen();
            session
                .out
                .result_line(&format!("metrics (every {seconds}s, Ctrl-C to stop)"));
            if let Some(content) = content_of(&answer) {
                session.out.blocks(&render::content(content));
            }
            true
        };
        if !written {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(u64::from(seconds)));
    }
}
