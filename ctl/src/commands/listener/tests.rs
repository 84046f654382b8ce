use super::*;
use crate::cli::{Args, Command};
use clap::Parser;

fn listener(arguments: &[&str]) -> Result<ListenerCmd, clap::Error> {
    let mut all = vec!["sozu", "listener"];
    all.extend_from_slice(arguments);
    match Args::try_parse_from(all)?.command {
        Command::Listener { cmd } => Ok(cmd),
        other => panic!("{other:?}"),
    }
}

#[test]
fn add_takes_short_and_long_address() {
    for flag in ["-a", "--address"] {
        let parsed = listener(&["http", "add", flag, "0.0.0.0:80", "--sticky-name", "S"]).unwrap();
        let ListenerCmd::Http {
            cmd: HttpListenerCmd::Add(add),
        } = parsed
        else {
            panic!("http add");
        };
        assert_eq!(add.address, "0.0.0.0:80".parse().unwrap());
        assert_eq!(add.settings().sticky_name.as_deref(), Some("S"));
    }
}

#[test]
fn https_add_parses_versions() {
    let parsed = listener(&[
        "https",
        "add",
        "-a",
        "0.0.0.0:443",
        "--tls-versions",
        "TLS_V12",
        "--tls-versions",
        "TLS_V13",
    ])
    .unwrap();
    let ListenerCmd::Https {
        cmd: HttpsListenerCmd::Add { tls_versions, .. },
    } = parsed
    else {
        panic!("https add");
    };
    assert_eq!(tls_versions, [TlsVersion::TlsV12, TlsVersion::TlsV13]);
    assert!(
        listener(&[
            "https",
            "add",
            "-a",
            "0.0.0.0:443",
            "--tls-versions",
            "SSLv3"
        ])
        .is_err()
    );
}

#[test]
fn update_toggles_are_tri_state() {
    let update = |extra: &[&str]| {
        let mut arguments = vec!["http", "update", "-a", "127.0.0.1:80"];
        arguments.extend_from_slice(extra);
        let ListenerCmd::Http {
            cmd: HttpListenerCmd::Update(update),
        } = listener(&arguments).unwrap()
        else {
            panic!("http update");
        };
        http_patch(&update).unwrap()
    };
    assert_eq!(update(&[]).expect_proxy, None);
    assert_eq!(update(&["--expect-proxy"]).expect_proxy, Some(true));
    assert_eq!(update(&["--no-expect-proxy"]).expect_proxy, Some(false));
    assert_eq!(update(&["--front-timeout", "9"]).front_timeout, Some(9));
    assert!(update(&[]).http_answers.is_none());
    let ListenerCmd::Http {
        cmd: HttpListenerCmd::Update(zero),
    } = listener(&[
        "http",
        "update",
        "-a",
        "127.0.0.1:80",
        "--h2-max-ping-per-window",
        "0",
    ])
    .unwrap()
    else {
        panic!("http update");
    };
    assert!(
        http_patch(&zero)
            .unwrap_err()
            .message
            .contains("--h2-max-ping-per-window")
    );
}

#[test]
fn hsts_disabled_conflicts_with_enabling_options() {
    assert!(
        listener(&[
            "https",
            "update",
            "-a",
            "127.0.0.1:443",
            "--hsts-disabled",
            "--hsts-preload"
        ])
        .is_err()
    );
}
