//! `cluster list|add|remove|health-check`.

use clap::{Subcommand, ValueEnum};
use sozu_command::proto::command::{HealthCheckConfig, HealthCheckMode, LoadBalancingAlgorithms};
use sozu_command::requests::{self, ClusterQuery, ClusterSettings};

use crate::error::CliError;
use crate::session::Session;

fn policy(text: &str) -> Result<LoadBalancingAlgorithms, String> {
    requests::load_balancing(text).map_err(|error| match error {
        requests::RequestError::Invalid { reason, .. } => reason,
        other => other.to_string(),
    })
}

/// `cluster …`
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum ClusterCmd {
    /// List every cluster (a hash per worker), one cluster, or the clusters
    /// of a domain
    List {
        /// The cluster to show in full
        #[arg(short = 'i', long = "id", conflicts_with = "domain")]
        id: Option<String>,
        /// The clusters a hostname routes to, written HOST or HOST/PATH
        #[arg(short = 'd', long = "domain", value_name = "HOST[/PATH]")]
        domain: Option<String>,
    },
    /// Add a cluster, or replace the settings of an existing one
    Add {
        /// The cluster id
        #[arg(short = 'i', long = "id")]
        id: String,
        /// Keep each client on one backend with a cookie
        #[arg(short = 's', long = "sticky-session")]
        sticky_session: bool,
        /// Redirect plain HTTP requests to HTTPS
        #[arg(short = 'r', long = "https-redirect")]
        https_redirect: bool,
        /// Port of the HTTPS redirect's location (default: the listener's)
        #[arg(long = "https-redirect-port", value_name = "PORT",
              value_parser = clap::value_parser!(u16).range(1..))]
        https_redirect_port: Option<u16>,
        /// Send a PROXY protocol v2 header to backends
        #[arg(long = "send-proxy")]
        send_proxy: bool,
        /// Expect a PROXY protocol v2 header from clients
        #[arg(long = "expect-proxy")]
        expect_proxy: bool,
        /// round_robin, random, least_loaded, power_of_two, hrw or maglev
        #[arg(long = "load-balancing-policy", value_name = "POLICY", value_parser = policy)]
        load_balancing_policy: LoadBalancingAlgorithms,
        /// Speak HTTP/2 to the backends
        #[arg(long = "http2")]
        http2: bool,
        /// Answer template for a status: CODE=BODY or CODE=file://PATH (repeatable)
        #[arg(long = "answer", value_name = "CODE=BODY")]
        answer: Vec<String>,
        /// WWW-Authenticate realm of 401 answers
        #[arg(long = "www-authenticate", value_name = "REALM")]
        www_authenticate: Option<String>,
        /// Accepted credential USER:HEX(SHA256(PASSWORD)) (repeatable)
        #[arg(long = "authorized-hash", value_name = "USER:HASH")]
        authorized_hash: Vec<String>,
        /// Backend connections a request may try, 1 to 255
        #[arg(long = "max-connection-attempts", value_name = "N")]
        max_connection_attempts: Option<u32>,
    },
    /// Remove a cluster with every frontend and backend that names it
    Remove {
        /// The cluster id
        #[arg(short = 'i', long = "id")]
        id: String,
    },
    /// Set, remove or list backend health checks
    HealthCheck {
        #[command(subcommand)]
        cmd: HealthCheckCmd,
    },
}

/// How a health check probes.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeMode {
    /// `GET URI`, healthy when the status is accepted
    Http,
    /// Healthy when a TCP connection opens
    Tcp,
}

/// `cluster health-check …`
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum HealthCheckCmd {
    /// Set or replace the health check of a cluster
    Set {
        /// The cluster id
        #[arg(short = 'i', long = "id")]
        id: String,
        /// Probe mode
        #[arg(long = "mode", value_enum, default_value = "http")]
        mode: ProbeMode,
        /// Path probed in http mode
        #[arg(short = 'u', long = "uri", default_value = "/")]
        uri: String,
        /// Seconds between probes
        #[arg(long = "interval", default_value_t = 10, value_name = "SECS")]
        interval: u32,
        /// Seconds a probe may take (`--timeout` here is this, in seconds;
        /// use -t before the subcommand for the command timeout)
        #[arg(long = "probe-timeout", default_value_t = 5, value_name = "SECS")]
        probe_timeout: u32,
        /// Successes in a row that mark a backend up
        #[arg(long = "healthy-threshold", default_value_t = 3, value_name = "N")]
        healthy_threshold: u32,
        /// Failures in a row that mark a backend down
        #[arg(long = "unhealthy-threshold", default_value_t = 3, value_name = "N")]
        unhealthy_threshold: u32,
        /// The one accepted status (0: any 2xx)
        #[arg(long = "expected-status", default_value_t = 0, value_name = "CODE")]
        expected_status: u32,
        /// Accepted statuses: codes, ranges, classes or any (e.g. 200-399,404)
        #[arg(long = "accepted-statuses", value_delimiter = ',', value_name = "LIST")]
        accepted_statuses: Vec<String>,
        /// Port probed on the backend's IP (default: the backend's port)
        #[arg(long = "port")]
        port: Option<u32>,
    },
    /// Remove the health check of a cluster
    Remove {
        /// The cluster id
        #[arg(short = 'i', long = "id")]
        id: String,
    },
    /// List health checks, of every cluster or of one
    List {
        /// The cluster id
        #[arg(short = 'i', long = "id")]
        id: Option<String>,
    },
}

/// Runs a `cluster` subcommand.
pub fn run(session: &mut Session, cmd: &ClusterCmd) -> Result<(), CliError> {
    match cmd {
        ClusterCmd::List { id, domain } => {
            let query = match (id, domain) {
                (Some(id), _) => ClusterQuery::Id(id.clone()),
                (None, Some(domain)) => ClusterQuery::domain(domain).map_err(|error| {
                    CliError::from_request(error, &[("hostname", "-d/--domain")])
                })?,
                (None, None) => ClusterQuery::All,
            };
            session.run(&requests::query_clusters(&query), "clusters")
        }
        ClusterCmd::Add {
            id,
            sticky_session,
            https_redirect,
            https_redirect_port,
            send_proxy,
            expect_proxy,
            load_balancing_policy,
            http2,
            answer,
            www_authenticate,
            authorized_hash,
            max_connection_attempts,
        } => {
            let flags = [
                ("answers", "--answer"),
                ("authorized_hashes", "--authorized-hash"),
                ("max_connection_attempts", "--max-connection-attempts"),
                ("https_redirect_port", "--https-redirect-port"),
            ];
            let mut settings = ClusterSettings::new(id.clone(), *load_balancing_policy);
            settings.sticky_session = *sticky_session;
            settings.https_redirect = *https_redirect;
            settings.https_redirect_port = *https_redirect_port;
            settings.send_proxy = *send_proxy;
            settings.expect_proxy = *expect_proxy;
            settings.http2 = *http2;
            settings.www_authenticate = www_authenticate.clone();
            settings.authorized_hashes = authorized_hash.clone();
            settings.max_connection_attempts = *max_connection_attempts;
            for entry in answer {
                let (code, body) = requests::answer_entry(entry)
                    .map_err(|error| CliError::from_request(error, &flags))?;
                settings.answers.insert(code, body);
            }
            let request = requests::cluster_add(&settings)
                .map_err(|error| CliError::from_request(error, &flags))?;
            session.run(&request, &format!("cluster {id} added"))
        }
        ClusterCmd::Remove { id } => session.run(
            &requests::cluster_remove(id),
            &format!("cluster {id} removed"),
        ),
        ClusterCmd::HealthCheck { cmd } => health_check(session, cmd),
    }
}

fn health_check(session: &mut Session, cmd: &HealthCheckCmd) -> Result<(), CliError> {
    match cmd {
        HealthCheckCmd::Set {
            id,
            mode,
            uri,
            interval,
            probe_timeout,
            healthy_threshold,
            unhealthy_threshold,
            expected_status,
            accepted_statuses,
            port,
        } => {
            let flags = [
                ("accepted_statuses", "--accepted-statuses"),
                ("interval", "--interval"),
                ("timeout", "--timeout"),
                ("threshold", "--healthy-threshold/--unhealthy-threshold"),
                ("uri", "-u/--uri"),
                ("port", "--port"),
            ];
            let accepted_statuses = accepted_statuses
                .iter()
                .map(|text| requests::status_range(text))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| CliError::from_request(error, &flags))?;
            let config = HealthCheckConfig {
                uri: uri.clone(),
                interval: *interval,
                timeout: *probe_timeout,
                healthy_threshold: *healthy_threshold,
                unhealthy_threshold: *unhealthy_threshold,
                expected_status: *expected_status,
                mode: match mode {
                    ProbeMode::Http => HealthCheckMode::Http,
                    ProbeMode::Tcp => HealthCheckMode::Tcp,
                } as i32,
                accepted_statuses,
                port: *port,
                headers: Vec::new(),
            };
            if probe_timeout >= interval {
                session.out.note(&format!(
                    "warning: the probe timeout ({probe_timeout}s) is not below the interval ({interval}s): probes may overlap"
                ));
            }
            let request = requests::health_check_set(id, config)
                .map_err(|error| CliError::from_request(error, &flags))?;
            session.run(&request, &format!("health check of {id} set"))
        }
        HealthCheckCmd::Remove { id } => session.run(
            &requests::health_check_remove(id),
            &format!("health check of {id} removed"),
        ),
        HealthCheckCmd::List { id } => {
            session.run(&requests::health_check_list(id.as_deref()), "health checks")
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::{Args, Command, normalize};
    use clap::Parser;

    use super::*;

    fn cluster(arguments: &[&str]) -> Result<ClusterCmd, clap::Error> {
        let mut all = vec!["sozu".to_owned(), "cluster".to_owned()];
        all.extend(arguments.iter().map(|a| (*a).to_owned()));
        match Args::try_parse_from(normalize(all))?.command {
            Command::Cluster { cmd } => Ok(cmd),
            other => panic!("not a cluster command: {other:?}"),
        }
    }

    #[test]
    fn add_takes_sozu_flags_and_a_case_insensitive_policy() {
        let ClusterCmd::Add {
            id,
            load_balancing_policy,
            sticky_session,
            https_redirect,
            answer,
            ..
        } = cluster(&[
            "add",
            "-i",
            "app",
            "--load-balancing-policy",
            "ROUND_ROBIN",
            "-s",
            "-r",
            "--answer",
            "503=busy",
            "--answer",
            "404=gone",
        ])
        .unwrap()
        else {
            panic!("cluster add");
        };
        assert_eq!(id, "app");
        assert_eq!(load_balancing_policy, LoadBalancingAlgorithms::RoundRobin);
        assert!(sticky_session && https_redirect);
        assert_eq!(answer, ["503=busy", "404=gone"]);
    }

    #[test]
    fn add_refuses_unknown_policies_and_missing_ids() {
        let error = cluster(&["add", "-i", "a", "--load-balancing-policy", "fastest"]).unwrap_err();
        assert!(
            error.to_string().contains("--load-balancing-policy"),
            "{error}"
        );
        assert!(cluster(&["add", "--load-balancing-policy", "random"]).is_err());
        assert!(
            cluster(&[
                "add",
                "-i",
                "a",
                "--https-redirect-port",
                "0",
                "--load-balancing-policy",
                "random"
            ])
            .is_err()
        );
    }

    #[test]
    fn list_takes_an_id_or_a_domain_not_both() {
        assert!(cluster(&["list", "-i", "a", "-d", "x.com"]).is_err());
        assert_eq!(
            cluster(&["list", "-d", "x.com/api"]).unwrap(),
            ClusterCmd::List {
                id: None,
                domain: Some("x.com/api".into())
            }
        );
    }

    #[test]
    fn health_check_set_defaults_and_timeout_spellings() {
        let parsed = |extra: &[&str]| {
            let mut arguments = vec!["health-check", "set", "-i", "app"];
            arguments.extend_from_slice(extra);
            match cluster(&arguments).unwrap() {
                ClusterCmd::HealthCheck {
                    cmd:
                        HealthCheckCmd::Set {
                            probe_timeout,
                            interval,
                            mode,
                            uri,
                            ..
                        },
                } => (probe_timeout, interval, mode, uri),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(parsed(&[]), (5, 10, ProbeMode::Http, "/".to_owned()));
        assert_eq!(parsed(&["--timeout", "2"]).0, 2);
        assert_eq!(parsed(&["--probe-timeout", "3", "--mode", "tcp"]).0, 3);
    }
}
