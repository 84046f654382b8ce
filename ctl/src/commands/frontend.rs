//! `frontend http|https|tcp add|remove` and `frontend list`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use clap::{Args, Subcommand};
use sozu_command::proto::command::FrontendFilters;
use sozu_command::requests::{self, FrontendTarget, HttpFrontendSettings, TcpFrontendSettings};

use crate::error::CliError;
use crate::session::Session;

fn tags(text: &str) -> Result<BTreeMap<String, String>, String> {
    requests::parse_tags(text).map_err(|error| match error {
        requests::RequestError::Invalid { reason, .. } => reason,
        other => other.to_string(),
    })
}

/// `frontend …`
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum FrontendCmd {
    /// HTTP frontends
    Http {
        #[command(subcommand)]
        cmd: HttpFrontendCmd,
    },
    /// HTTPS frontends
    Https {
        #[command(subcommand)]
        cmd: HttpFrontendCmd,
    },
    /// TCP frontends
    Tcp {
        #[command(subcommand)]
        cmd: TcpFrontendCmd,
    },
    /// List frontends, of every kind unless some are chosen
    List {
        /// HTTP frontends
        #[arg(long = "http")]
        http: bool,
        /// HTTPS frontends
        #[arg(long = "https")]
        https: bool,
        /// TCP frontends
        #[arg(long = "tcp")]
        tcp: bool,
        /// Only frontends whose hostname contains this
        #[arg(short = 'd', long = "domain")]
        domain: Option<String>,
        /// Only the frontends of this cluster
        #[arg(short = 'i', long = "cluster-id")]
        cluster_id: Option<String>,
    },
}

/// Where matching traffic goes, written after the options.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Send traffic to the backends of this cluster
    Id {
        /// The cluster id
        id: String,
    },
    /// Refuse matching traffic
    Deny,
}

/// What identifies an HTTP or HTTPS frontend.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    /// The listener address, IP:PORT
    #[arg(short = 'a', long = "address")]
    pub address: SocketAddr,
    /// The hostname, exact or wildcard (*.example.com)
    #[arg(long = "hostname", alias = "host")]
    pub hostname: String,
    /// Match paths starting with this
    #[arg(short = 'p', long = "path-prefix", alias = "path", group = "path_rule")]
    pub path_prefix: Option<String>,
    /// Match paths matching this regular expression
    #[arg(long = "path-regex", group = "path_rule")]
    pub path_regex: Option<String>,
    /// Match exactly this path
    #[arg(long = "path-equals", group = "path_rule")]
    pub path_equals: Option<String>,
    /// Match only this HTTP method (case-sensitive)
    #[arg(short = 'm', long = "method")]
    pub method: Option<String>,
}

/// `frontend http|https …`
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum HttpFrontendCmd {
    /// Add a frontend: options first, then `id CLUSTER` or `deny`
    Add {
        #[command(flatten)]
        route: HttpRoute,
        /// Tags written in access logs: 'key=value, other=value'
        #[arg(long = "tags", value_parser = tags)]
        tags: Option<BTreeMap<String, String>>,
        #[command(subcommand)]
        target: Target,
    },
    /// Remove a frontend: options first, then `id CLUSTER` or `deny`
    Remove {
        #[command(flatten)]
        route: HttpRoute,
        #[command(subcommand)]
        target: Target,
    },
}

/// `frontend tcp …`
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum TcpFrontendCmd {
    /// Add a TCP frontend
    Add {
        /// The cluster id
        #[arg(short = 'i', long = "id")]
        id: String,
        /// The listener address, IP:PORT
        #[arg(short = 'a', long = "address")]
        address: SocketAddr,
        /// Tags written in access logs: 'key=value, other=value'
        #[arg(long = "tags", value_parser = tags)]
        tags: Option<BTreeMap<String, String>>,
        /// TLS SNI hostname to match (exact or *.wildcard)
        #[arg(long = "sni")]
        sni: Option<String>,
        /// ALPN protocol to match (repeatable)
        #[arg(long = "alpn")]
        alpn: Vec<String>,
    },
    /// Remove a TCP frontend
    Remove {
        /// The cluster id
        #[arg(short = 'i', long = "id")]
        id: String,
        /// The listener address, IP:PORT
        #[arg(short = 'a', long = "address")]
        address: SocketAddr,
        /// The SNI it was added with
        #[arg(long = "sni")]
        sni: Option<String>,
        /// The ALPN protocols it was added with (repeatable)
        #[arg(long = "alpn")]
        alpn: Vec<String>,
    },
}

fn http_settings(
    route: &HttpRoute,
    target: &Target,
    tags: Option<&BTreeMap<String, String>>,
) -> Result<HttpFrontendSettings, CliError> {
    let path = requests::path_rule(
        route.path_prefix.as_deref(),
        route.path_regex.as_deref(),
        route.path_equals.as_deref(),
    )
    .map_err(|error| {
        CliError::from_request(
            error,
            &[("path", "-p/--path-prefix, --path-regex, --path-equals")],
        )
    })?;
    if route.hostname.trim().is_empty() {
        return Err(CliError::usage("--hostname: the hostname is empty"));
    }
    Ok(HttpFrontendSettings {
        address: route.address,
        target: match target {
            Target::Id { id } => FrontendTarget::Cluster(id.clone()),
            Target::Deny => FrontendTarget::Deny,
        },
        hostname: route.hostname.clone(),
        path,
        method: route.method.clone(),
        tags: tags.cloned().unwrap_or_default(),
    })
}

fn describe(route: &HttpRoute, target: &Target) -> String {
    // As `frontend list` shows paths: a prefix as is, `~ REGEX`, `= PATH`.
    let path = match (&route.path_prefix, &route.path_regex, &route.path_equals) {
        (Some(prefix), _, _) => prefix.clone(),
        (None, Some(regex), _) => format!(" ~ {regex}"),
        (None, None, Some(exact)) => format!(" = {exact}"),
        (None, None, None) => String::new(),
    };
    let target = match target {
        Target::Id { id } => format!("cluster {id}"),
        Target::Deny => "deny".to_owned(),
    };
    format!("{} {}{path} -> {target}", route.address, route.hostname)
}

/// Runs a `frontend` subcommand.
pub fn run(session: &mut Session, cmd: &FrontendCmd) -> Result<(), CliError> {
    match cmd {
        FrontendCmd::Http { cmd } => http(session, cmd, false),
        FrontendCmd::Https { cmd } => http(session, cmd, true),
        FrontendCmd::Tcp { cmd } => tcp(session, cmd),
        FrontendCmd::List {
            http,
            https,
            tcp,
            domain,
            cluster_id,
        } => session.run(
            &requests::list_frontends(FrontendFilters {
                http: *http,
                https: *https,
                tcp: *tcp,
                domain: domain.clone(),
                cluster_id: cluster_id.clone(),
            }),
            "frontends",
        ),
    }
}

fn http(session: &mut Session, cmd: &HttpFrontendCmd, https: bool) -> Result<(), CliError> {
    let kind = if https { "HTTPS" } else { "HTTP" };
    match cmd {
        HttpFrontendCmd::Add {
            route,
            tags,
            target,
        } => {
            let settings = http_settings(route, target, tags.as_ref())?;
            session.run(
                &requests::frontend_http_add(&settings, https),
                &format!("{kind} frontend {} added", describe(route, target)),
            )
        }
        HttpFrontendCmd::Remove { route, target } => {
            let settings = http_settings(route, target, None)?;
            session.run(
                &requests::frontend_http_remove(&settings, https),
                &format!("{kind} frontend {} removed", describe(route, target)),
            )
        }
    }
}

fn tcp(session: &mut Session, cmd: &TcpFrontendCmd) -> Result<(), CliError> {
    match cmd {
        TcpFrontendCmd::Add {
            id,
            address,
            tags,
            sni,
            alpn,
        } => {
            let settings = TcpFrontendSettings {
                cluster_id: id.clone(),
                address: *address,
                tags: tags.clone().unwrap_or_default(),
                sni: sni.clone(),
                alpn: alpn.clone(),
            };
            session.run(
                &requests::frontend_tcp_add(&settings),
                &format!("TCP frontend {address} -> cluster {id} added"),
            )
        }
        TcpFrontendCmd::Remove {
            id,
            address,
            sni,
            alpn,
        } => {
            let settings = TcpFrontendSettings {
                cluster_id: id.clone(),
                address: *address,
                tags: BTreeMap::new(),
                sni: sni.clone(),
                alpn: alpn.clone(),
            };
            session.run(
                &requests::frontend_tcp_remove(&settings),
                &format!("TCP frontend {address} -> cluster {id} removed"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Command;
    use clap::Parser;

    fn frontend(arguments: &[&str]) -> Result<FrontendCmd, clap::Error> {
        let mut all = vec!["sozu", "frontend"];
        all.extend_from_slice(arguments);
        match crate::cli::Args::try_parse_from(all)?.command {
            Command::Frontend { cmd } => Ok(cmd),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn http_add_takes_the_target_last() {
        let cmd = frontend(&[
            "http",
            "add",
            "-a",
            "127.0.0.1:28080",
            "--hostname",
            "new.example.com",
            "-p",
            "/x",
            "--tags",
            "owner=a, env=prod",
            "id",
            "newapp",
        ])
        .unwrap();
        let FrontendCmd::Http {
            cmd:
                HttpFrontendCmd::Add {
                    route,
                    tags,
                    target,
                },
        } = cmd
        else {
            panic!("http add");
        };
        assert_eq!(route.path_prefix.as_deref(), Some("/x"));
        assert_eq!(tags.unwrap()["env"], "prod");
        assert_eq!(
            target,
            Target::Id {
                id: "newapp".into()
            }
        );
        let deny = frontend(&[
            "https",
            "remove",
            "-a",
            "127.0.0.1:443",
            "--host",
            "x",
            "deny",
        ]);
        assert!(matches!(
            deny.unwrap(),
            FrontendCmd::Https {
                cmd: HttpFrontendCmd::Remove {
                    target: Target::Deny,
                    ..
                }
            }
        ));
    }

    #[test]
    fn path_options_are_exclusive_and_tags_checked() {
        let both = frontend(&[
            "http",
            "add",
            "-a",
            "127.0.0.1:80",
            "--hostname",
            "x",
            "-p",
            "/a",
            "--path-regex",
            "b",
            "id",
            "c",
        ]);
        assert!(both.is_err());
        let bad_tags = frontend(&[
            "http",
            "add",
            "-a",
            "127.0.0.1:80",
            "--hostname",
            "x",
            "--tags",
            "nokey",
            "id",
            "c",
        ])
        .unwrap_err();
        assert!(bad_tags.to_string().contains("--tags"), "{bad_tags}");
        assert!(frontend(&["http", "add", "-a", "127.0.0.1:80", "--hostname", "x"]).is_err());
    }

    #[test]
    fn list_filters_parse() {
        assert_eq!(
            frontend(&["list", "--http", "-d", "example"]).unwrap(),
            FrontendCmd::List {
                http: true,
                https: false,
                tcp: false,
                domain: Some("example".into()),
                cluster_id: None
            }
        );
    }
}
