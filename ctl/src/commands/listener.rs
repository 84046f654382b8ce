//! `listener http|https|tcp add|remove|activate|deactivate|update` and
//! `listener list`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Args, FromArgMatches, Subcommand, ValueEnum};
use sozu_command::h2_settings::{H2Fields, H2Setting, H2Values};
use sozu_command::proto::command::{
    AlpnProtocols, ForwardedHeaders, ListenerType, TlsVersion, UpdateHttpListenerConfig,
    UpdateHttpsListenerConfig, UpdateTcpListenerConfig,
};
use sozu_command::requests::{
    self, AnswerFiles, HttpListenerSettings, TcpListenerSettings, TlsSettings,
};

use crate::error::CliError;
use crate::session::Session;

/// `listener …`
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
// Update flags make some variants large; they are built once per run.
#[allow(clippy::large_enum_variant)]
pub enum ListenerCmd {
    /// HTTP listeners
    Http {
        #[command(subcommand)]
        cmd: HttpListenerCmd,
    },
    /// HTTPS listeners
    Https {
        #[command(subcommand)]
        cmd: HttpsListenerCmd,
    },
    /// TCP listeners
    Tcp {
        #[command(subcommand)]
        cmd: TcpListenerCmd,
    },
    /// List every listener
    List,
}

/// Which forwarding headers a listener adds.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedArg {
    /// X-Forwarded-* and Forwarded (RFC 7239)
    #[value(name = "both")]
    Both,
    /// X-Forwarded-* only
    #[value(name = "x_forwarded")]
    XForwarded,
    /// Forwarded (RFC 7239) only
    #[value(name = "rfc7239")]
    Rfc7239,
    /// None
    #[value(name = "none")]
    None,
}

impl From<ForwardedArg> for ForwardedHeaders {
    fn from(arg: ForwardedArg) -> Self {
        match arg {
            ForwardedArg::Both => ForwardedHeaders::Both,
            ForwardedArg::XForwarded => ForwardedHeaders::XForwarded,
            ForwardedArg::Rfc7239 => ForwardedHeaders::Rfc7239,
            ForwardedArg::None => ForwardedHeaders::None,
        }
    }
}

fn tls_version(text: &str) -> Result<TlsVersion, String> {
    requests::tls_version(text).map_err(|error| error.to_string())
}

/// A listener named by its address (and interface, if it has one).
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct ListenerAddress {
    /// The listener address, IP:PORT
    #[arg(short = 'a', long = "address")]
    pub address: SocketAddr,
    /// The network interface it was added with, if any
    #[arg(long = "interface")]
    pub interface: Option<String>,
}

/// What `listener http add` and `listener https add` share.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct HttpAdd {
    /// The address to bind, IP:PORT
    #[arg(short = 'a', long = "address")]
    pub address: SocketAddr,
    /// Bind to this network interface only (e.g. wg0)
    #[arg(long = "interface")]
    pub interface: Option<String>,
    /// Address shown in logs and forwarded headers instead of the bound one
    #[arg(long = "public-address")]
    pub public_address: Option<SocketAddr>,
    /// File holding the answer sent when no frontend matches
    #[arg(long = "answer-404", value_name = "FILE")]
    pub answer_404: Option<PathBuf>,
    /// File holding the answer sent when no backend is available
    #[arg(long = "answer-503", value_name = "FILE")]
    pub answer_503: Option<PathBuf>,
    /// Expect a PROXY protocol header from clients
    #[arg(long = "expect-proxy")]
    pub expect_proxy: bool,
    /// Sticky session cookie name (default SOZUBALANCEID)
    #[arg(long = "sticky-name")]
    pub sticky_name: Option<String>,
    /// Client socket inactivity timeout, seconds
    #[arg(long = "front-timeout", value_name = "SECS")]
    pub front_timeout: Option<u32>,
    /// Backend socket inactivity timeout, seconds
    #[arg(long = "back-timeout", value_name = "SECS")]
    pub back_timeout: Option<u32>,
    /// Time allowed for a whole request, seconds
    #[arg(long = "request-timeout", value_name = "SECS")]
    pub request_timeout: Option<u32>,
    /// Backend connection timeout, seconds
    #[arg(long = "connect-timeout", value_name = "SECS")]
    pub connect_timeout: Option<u32>,
    /// Forwarding headers added to requests (default: both)
    #[arg(long = "forwarded-headers", value_enum)]
    pub forwarded_headers: Option<ForwardedArg>,
}

impl HttpAdd {
    fn settings(&self) -> HttpListenerSettings {
        HttpListenerSettings {
            address: Some(self.address),
            interface: self.interface.clone(),
            public_address: self.public_address,
            expect_proxy: self.expect_proxy,
            sticky_name: self.sticky_name.clone(),
            front_timeout: self.front_timeout,
            back_timeout: self.back_timeout,
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            answer_404: self.answer_404.clone(),
            answer_503: self.answer_503.clone(),
            forwarded_headers: self.forwarded_headers.map(Into::into),
        }
    }
}

/// HTTP/2 protection limits a listener update may change: one
/// `--h2-…` option per setting of [`H2Setting::ALL`], in that order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct H2Limits {
    /// The options given.
    pub values: H2Values,
}

impl FromArgMatches for H2Limits {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut limits = H2Limits::default();
        limits.update_from_arg_matches(matches)?;
        Ok(limits)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for &setting in H2Setting::ALL {
            let value = if setting.is_u64() {
                matches.get_one::<u64>(setting.name()).copied()
            } else {
                matches
                    .get_one::<u32>(setting.name())
                    .copied()
                    .map(u64::from)
            };
            if value.is_some() {
                self.values.set_h2(setting, value);
            }
        }
        Ok(())
    }
}

impl clap::Args for H2Limits {
    fn augment_args(command: clap::Command) -> clap::Command {
        H2Setting::ALL.iter().fold(command, |command, &setting| {
            // The command is built once per run; clap keeps names as
            // `&'static str` (its `string` feature is off).
            let arg = Arg::new(setting.name())
                .long(setting.option_name().leak() as &'static str)
                .value_name(setting.name().to_uppercase().leak() as &'static str)
                .action(ArgAction::Set)
                .help(setting.description());
            command.arg(if setting.is_u64() {
                arg.value_parser(clap::value_parser!(u64))
            } else {
                arg.value_parser(clap::value_parser!(u32))
            })
        })
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

/// What `listener http update` and `listener https update` share: only the
/// options given change.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct HttpUpdate {
    /// The listener address, IP:PORT
    #[arg(short = 'a', long = "address")]
    pub address: SocketAddr,
    /// Address shown in logs and forwarded headers
    #[arg(long = "public-address")]
    pub public_address: Option<SocketAddr>,
    /// Sticky session cookie name
    #[arg(long = "sticky-name")]
    pub sticky_name: Option<String>,
    /// Client socket inactivity timeout, seconds
    #[arg(long = "front-timeout", value_name = "SECS")]
    pub front_timeout: Option<u32>,
    /// Backend socket inactivity timeout, seconds
    #[arg(long = "back-timeout", value_name = "SECS")]
    pub back_timeout: Option<u32>,
    /// Backend connection timeout, seconds
    #[arg(long = "connect-timeout", value_name = "SECS")]
    pub connect_timeout: Option<u32>,
    /// Time allowed for a whole request, seconds
    #[arg(long = "request-timeout", value_name = "SECS")]
    pub request_timeout: Option<u32>,
    /// Expect a PROXY protocol header from clients
    #[arg(long = "expect-proxy", overrides_with = "no_expect_proxy")]
    pub expect_proxy: bool,
    /// Do not expect a PROXY protocol header
    #[arg(long = "no-expect-proxy", overrides_with = "expect_proxy")]
    pub no_expect_proxy: bool,
    /// Name of the request id header added to requests (e.g. Sozu-Id)
    #[arg(long = "sozu-id-header")]
    pub sozu_id_header: Option<String>,
    /// Forwarding headers added to requests
    #[arg(long = "forwarded-headers", value_enum)]
    pub forwarded_headers: Option<ForwardedArg>,
    /// File holding the 301 answer
    #[arg(long = "answer-301", value_name = "FILE")]
    pub answer_301: Option<PathBuf>,
    /// File holding the 401 answer
    #[arg(long = "answer-401", value_name = "FILE")]
    pub answer_401: Option<PathBuf>,
    /// File holding the 404 answer
    #[arg(long = "answer-404", value_name = "FILE")]
    pub answer_404: Option<PathBuf>,
    /// File holding the 408 answer
    #[arg(long = "answer-408", value_name = "FILE")]
    pub answer_408: Option<PathBuf>,
    /// File holding the 413 answer
    #[arg(long = "answer-413", value_name = "FILE")]
    pub answer_413: Option<PathBuf>,
    /// File holding the 421 answer
    #[arg(long = "answer-421", value_name = "FILE")]
    pub answer_421: Option<PathBuf>,
    /// File holding the 429 answer
    #[arg(long = "answer-429", value_name = "FILE")]
    pub answer_429: Option<PathBuf>,
    /// File holding the 502 answer
    #[arg(long = "answer-502", value_name = "FILE")]
    pub answer_502: Option<PathBuf>,
    /// File holding the 503 answer
    #[arg(long = "answer-503", value_name = "FILE")]
    pub answer_503: Option<PathBuf>,
    /// File holding the 504 answer
    #[arg(long = "answer-504", value_name = "FILE")]
    pub answer_504: Option<PathBuf>,
    /// File holding the 507 answer
    #[arg(long = "answer-507", value_name = "FILE")]
    pub answer_507: Option<PathBuf>,
    #[command(flatten)]
    pub h2: H2Limits,
}

impl HttpUpdate {
    fn expect_proxy(&self) -> Option<bool> {
        toggle(self.expect_proxy, self.no_expect_proxy)
    }

    fn answers(&self) -> AnswerFiles {
        let given = [
            ("301", &self.answer_301),
            ("401", &self.answer_401),
            ("404", &self.answer_404),
            ("408", &self.answer_408),
            ("413", &self.answer_413),
            ("421", &self.answer_421),
            ("429", &self.answer_429),
            ("502", &self.answer_502),
            ("503", &self.answer_503),
            ("504", &self.answer_504),
            ("507", &self.answer_507),
        ];
        AnswerFiles {
            files: given
                .into_iter()
                .filter_map(|(code, path)| path.clone().map(|path| (code, path)))
                .collect(),
        }
    }
}

/// An option pair `--x` / `--no-x`: `Some` only when one is given.
fn toggle(on: bool, off: bool) -> Option<bool> {
    match (on, off) {
        (true, _) => Some(true),
        (false, true) => Some(false),
        (false, false) => None,
    }
}

/// `listener http …`
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum HttpListenerCmd {
    /// Add an HTTP listener (inactive until activated)
    Add(HttpAdd),
    /// Remove an HTTP listener
    Remove(ListenerAddress),
    /// Start accepting connections
    Activate(ListenerAddress),
    /// Stop accepting connections
    Deactivate(ListenerAddress),
    /// Change a running HTTP listener
    Update(HttpUpdate),
}

/// `listener https …`
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum HttpsListenerCmd {
    /// Add an HTTPS listener (inactive until activated)
    Add {
        #[command(flatten)]
        http: HttpAdd,
        /// TLS versions offered: TLS_V12, TLS_V13 (repeatable; default both)
        #[arg(long = "tls-versions", value_parser = tls_version, value_delimiter = ',')]
        tls_versions: Vec<TlsVersion>,
        /// Cipher list (repeatable or comma-separated; default Sozu's)
        #[arg(long = "tls-cipher-list", value_delimiter = ',')]
        cipher_list: Option<Vec<String>>,
    },
    /// Remove an HTTPS listener
    Remove(ListenerAddress),
    /// Start accepting connections
    Activate(ListenerAddress),
    /// Stop accepting connections
    Deactivate(ListenerAddress),
    /// Change a running HTTPS listener
    Update {
        #[command(flatten)]
        http: HttpUpdate,
        /// Require the Host to match the TLS SNI
        #[arg(long = "strict-sni-binding", overrides_with = "no_strict_sni_binding")]
        strict_sni_binding: bool,
        /// Allow the Host to differ from the TLS SNI
        #[arg(long = "no-strict-sni-binding", overrides_with = "strict_sni_binding")]
        no_strict_sni_binding: bool,
        /// Accept only HTTP/2 connections
        #[arg(long = "disable-http11", overrides_with = "enable_http11")]
        disable_http11: bool,
        /// Accept HTTP/1.1 connections again
        #[arg(long = "enable-http11", overrides_with = "disable_http11")]
        enable_http11: bool,
        /// ALPN protocols offered (comma-separated: h2,http/1.1)
        #[arg(
            long = "alpn-protocols",
            value_delimiter = ',',
            conflicts_with = "reset_alpn"
        )]
        alpn_protocols: Option<Vec<String>>,
        /// Offer the default ALPN protocols again
        #[arg(long = "reset-alpn")]
        reset_alpn: bool,
        /// HSTS max-age, seconds (turns HSTS on)
        #[arg(long = "hsts-max-age", value_name = "SECS")]
        hsts_max_age: Option<u32>,
        /// HSTS includeSubDomains (turns HSTS on)
        #[arg(long = "hsts-include-subdomains")]
        hsts_include_subdomains: bool,
        /// HSTS preload (turns HSTS on)
        #[arg(long = "hsts-preload")]
        hsts_preload: bool,
        /// Turn HSTS off
        #[arg(long = "hsts-disabled", conflicts_with_all = ["hsts_max_age", "hsts_include_subdomains", "hsts_preload", "hsts_force_replace_backend"])]
        hsts_disabled: bool,
        /// Replace a backend's own Strict-Transport-Security header (turns HSTS on)
        #[arg(long = "hsts-force-replace-backend")]
        hsts_force_replace_backend: bool,
    },
}

/// `listener tcp …`
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum TcpListenerCmd {
    /// Add a TCP listener (inactive until activated)
    Add {
        /// The address to bind, IP:PORT
        #[arg(short = 'a', long = "address")]
        address: SocketAddr,
        /// Bind to this network interface only
        #[arg(long = "interface")]
        interface: Option<String>,
        /// Address shown in logs instead of the bound one
        #[arg(long = "public-address")]
        public_address: Option<SocketAddr>,
        /// Expect a PROXY protocol header from clients
        #[arg(long = "expect-proxy")]
        expect_proxy: bool,
        /// Seconds allowed to read the TLS ClientHello for SNI routing
        #[arg(long = "sni-preread-timeout", value_name = "SECS")]
        sni_preread_timeout: Option<u32>,
        /// Bytes read at most to find the SNI
        #[arg(long = "sni-preread-max-bytes", value_name = "BYTES")]
        sni_preread_max_bytes: Option<u32>,
    },
    /// Remove a TCP listener
    Remove(ListenerAddress),
    /// Start accepting connections
    Activate(ListenerAddress),
    /// Stop accepting connections
    Deactivate(ListenerAddress),
    /// Change a running TCP listener
    Update {
        /// The listener address, IP:PORT
        #[arg(short = 'a', long = "address")]
        address: SocketAddr,
        /// Address shown in logs
        #[arg(long = "public-address")]
        public_address: Option<SocketAddr>,
        /// Client socket inactivity timeout, seconds
        #[arg(long = "front-timeout", value_name = "SECS")]
        front_timeout: Option<u32>,
        /// Backend socket inactivity timeout, seconds
        #[arg(long = "back-timeout", value_name = "SECS")]
        back_timeout: Option<u32>,
        /// Backend connection timeout, seconds
        #[arg(long = "connect-timeout", value_name = "SECS")]
        connect_timeout: Option<u32>,
        /// Expect a PROXY protocol header from clients
        #[arg(long = "expect-proxy", overrides_with = "no_expect_proxy")]
        expect_proxy: bool,
        /// Do not expect a PROXY protocol header
        #[arg(long = "no-expect-proxy", overrides_with = "expect_proxy")]
        no_expect_proxy: bool,
    },
}

const ADD_FLAGS: [(&str, &str); 3] = [
    ("answer", "--answer-404/--answer-503"),
    ("public_address", "--public-address"),
    ("address", "-a/--address"),
];

/// Checks the HTTP/2 limits against their minimum (1, or 2 for the
/// shrink ratio).
fn check_h2(h2: &H2Limits) -> Result<(), CliError> {
    match H2Setting::first_below_minimum(&h2.values) {
        Some((setting, value)) => Err(CliError::usage(format!(
            "--{}: {value} is below the minimum of {}",
            setting.option_name(),
            setting.minimum()
        ))),
        None => Ok(()),
    }
}

fn http_patch(update: &HttpUpdate) -> Result<UpdateHttpListenerConfig, CliError> {
    check_h2(&update.h2)?;
    let http_answers = update
        .answers()
        .load()
        .map_err(|error| CliError::from_request(error, &[("answer", "--answer-NNN")]))?;
    let mut patch = UpdateHttpListenerConfig {
        address: update.address.into(),
        public_address: update.public_address.map(Into::into),
        expect_proxy: update.expect_proxy(),
        sticky_name: update.sticky_name.clone(),
        front_timeout: update.front_timeout,
        back_timeout: update.back_timeout,
        connect_timeout: update.connect_timeout,
        request_timeout: update.request_timeout,
        http_answers,
        sozu_id_header: update.sozu_id_header.clone(),
        forwarded_headers: update
            .forwarded_headers
            .map(|mode| ForwardedHeaders::from(mode) as i32),
        ..UpdateHttpListenerConfig::default()
    };
    patch.copy_h2_from(&update.h2.values);
    Ok(patch)
}

/// Runs a `listener` subcommand.
pub fn run(session: &mut Session, cmd: &ListenerCmd) -> Result<(), CliError> {
    match cmd {
        ListenerCmd::List => session.run(&requests::list_listeners(), "listeners"),
        ListenerCmd::Http { cmd } => match cmd {
            HttpListenerCmd::Add(add) => {
                let request =
                    requests::listener_http_add(&add.settings(), &session.listener_defaults())
                        .map_err(|error| CliError::from_request(error, &ADD_FLAGS))?;
                session.run(&request, &format!("HTTP listener {} added", add.address))
            }
            HttpListenerCmd::Remove(listener) => remove(session, listener, ListenerType::Http),
            HttpListenerCmd::Activate(listener) => activate(session, listener, ListenerType::Http),
            HttpListenerCmd::Deactivate(listener) => {
                deactivate(session, listener, ListenerType::Http)
            }
            HttpListenerCmd::Update(update) => {
                let patch = http_patch(update)?;
                session.run(
                    &requests::listener_http_update(patch),
                    &format!("HTTP listener {} updated", update.address),
                )
            }
        },
        ListenerCmd::Https { cmd } => https(session, cmd),
        ListenerCmd::Tcp { cmd } => tcp(session, cmd),
    }
}

fn https(session: &mut Session, cmd: &HttpsListenerCmd) -> Result<(), CliError> {
    match cmd {
        HttpsListenerCmd::Add {
            http,
            tls_versions,
            cipher_list,
        } => {
            let tls = TlsSettings {
                versions: tls_versions.clone(),
                cipher_list: cipher_list.clone(),
            };
            let request =
                requests::listener_https_add(&http.settings(), &tls, &session.listener_defaults())
                    .map_err(|error| CliError::from_request(error, &ADD_FLAGS))?;
            session.run(&request, &format!("HTTPS listener {} added", http.address))
        }
        HttpsListenerCmd::Remove(listener) => remove(session, listener, ListenerType::Https),
        HttpsListenerCmd::Activate(listener) => activate(session, listener, ListenerType::Https),
        HttpsListenerCmd::Deactivate(listener) => {
            deactivate(session, listener, ListenerType::Https)
        }
        HttpsListenerCmd::Update {
            http,
            strict_sni_binding,
            no_strict_sni_binding,
            disable_http11,
            enable_http11,
            alpn_protocols,
            reset_alpn,
            hsts_max_age,
            hsts_include_subdomains,
            hsts_preload,
            hsts_disabled,
            hsts_force_replace_backend,
        } => {
            if let Some(unknown) = alpn_protocols
                .iter()
                .flatten()
                .find(|protocol| !matches!(protocol.as_str(), "h2" | "http/1.1"))
            {
                return Err(CliError::usage(format!(
                    "--alpn-protocols: unknown protocol {unknown:?}; expected h2 or http/1.1"
                )));
            }
            let hsts = requests::hsts(
                *hsts_max_age,
                *hsts_include_subdomains,
                *hsts_preload,
                *hsts_disabled,
                *hsts_force_replace_backend,
            )
            .map_err(|error| CliError::from_request(error, &[("hsts", "--hsts-*")]))?;
            let base = http_patch(http)?;
            let mut patch = UpdateHttpsListenerConfig {
                address: base.address,
                public_address: base.public_address,
                expect_proxy: base.expect_proxy,
                sticky_name: base.sticky_name,
                front_timeout: base.front_timeout,
                back_timeout: base.back_timeout,
                connect_timeout: base.connect_timeout,
                request_timeout: base.request_timeout,
                http_answers: base.http_answers,
                alpn_protocols: if *reset_alpn {
                    Some(AlpnProtocols { values: Vec::new() })
                } else {
                    alpn_protocols
                        .clone()
                        .map(|values| AlpnProtocols { values })
                },
                strict_sni_binding: toggle(*strict_sni_binding, *no_strict_sni_binding),
                disable_http11: toggle(*disable_http11, *enable_http11),
                sozu_id_header: base.sozu_id_header,
                hsts,
                forwarded_headers: base.forwarded_headers,
                ..UpdateHttpsListenerConfig::default()
            };
            patch.copy_h2_from(&http.h2.values);
            session.run(
                &requests::listener_https_update(patch),
                &format!("HTTPS listener {} updated", http.address),
            )
        }
    }
}

fn tcp(session: &mut Session, cmd: &TcpListenerCmd) -> Result<(), CliError> {
    match cmd {
        TcpListenerCmd::Add {
            address,
            interface,
            public_address,
            expect_proxy,
            sni_preread_timeout,
            sni_preread_max_bytes,
        } => {
            let settings = TcpListenerSettings {
                address: Some(*address),
                interface: interface.clone(),
                public_address: *public_address,
                expect_proxy: *expect_proxy,
                sni_preread_timeout: *sni_preread_timeout,
                sni_preread_max_bytes: *sni_preread_max_bytes,
            };
            let request = requests::listener_tcp_add(&settings, &session.listener_defaults())
                .map_err(|error| CliError::from_request(error, &ADD_FLAGS))?;
            session.run(&request, &format!("TCP listener {address} added"))
        }
        TcpListenerCmd::Remove(listener) => remove(session, listener, ListenerType::Tcp),
        TcpListenerCmd::Activate(listener) => activate(session, listener, ListenerType::Tcp),
        TcpListenerCmd::Deactivate(listener) => deactivate(session, listener, ListenerType::Tcp),
        TcpListenerCmd::Update {
            address,
            public_address,
            front_timeout,
            back_timeout,
            connect_timeout,
            expect_proxy,
            no_expect_proxy,
        } => session.run(
            &requests::listener_tcp_update(UpdateTcpListenerConfig {
                address: (*address).into(),
                public_address: public_address.map(Into::into),
                expect_proxy: toggle(*expect_proxy, *no_expect_proxy),
                front_timeout: *front_timeout,
                back_timeout: *back_timeout,
                connect_timeout: *connect_timeout,
            }),
            &format!("TCP listener {address} updated"),
        ),
    }
}

fn kind_name(kind: ListenerType) -> &'static str {
    match kind {
        ListenerType::Http => "HTTP",
        ListenerType::Https => "HTTPS",
        ListenerType::Tcp => "TCP",
        ListenerType::Udp => "UDP",
    }
}

fn remove(
    session: &mut Session,
    listener: &ListenerAddress,
    kind: ListenerType,
) -> Result<(), CliError> {
    session.run(
        &requests::listener_remove(listener.address, kind, listener.interface.as_deref()),
        &format!("{} listener {} removed", kind_name(kind), listener.address),
    )
}

fn activate(
    session: &mut Session,
    listener: &ListenerAddress,
    kind: ListenerType,
) -> Result<(), CliError> {
    session.run(
        &requests::listener_activate(listener.address, kind, listener.interface.as_deref()),
        &format!(
            "{} listener {} activated",
            kind_name(kind),
            listener.address
        ),
    )
}

fn deactivate(
    session: &mut Session,
    listener: &ListenerAddress,
    kind: ListenerType,
) -> Result<(), CliError> {
    session.run(
        &requests::listener_deactivate(listener.address, kind, listener.interface.as_deref()),
        &format!(
            "{} listener {} deactivated",
            kind_name(kind),
            listener.address
        ),
    )
}

#[cfg(test)]
mod tests;
