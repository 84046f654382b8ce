//! The end-to-end tests: the real `sozu` binary, its workers, backends and
//! clients on 127.0.0.1, each test in a temporary folder of its own.
//!
//! One test binary with one module per area, so the shared [`harness`] is
//! compiled once. Adding a module is a file `NAME.rs` here (starting with
//! `use crate::harness;`) and one `mod NAME;` line below; doc/testing.md
//! lists what each module covers. Run one module with
//! `cargo test -p sozu-ctl --test e2e NAME::`.

mod harness;

mod apply_e2e;
mod apply_state;
mod atomic;
mod audit_log;
mod cli_e2e;
mod control;
mod daemon;
mod daemon_e2e;
mod differential;
mod fault;
mod fleet;
mod health;
mod http2;
mod http_answers;
mod http_bad_input;
mod http_balancing;
mod http_bodies;
mod http_pool;
mod http_relay;
mod http_relay_rewrite;
mod http_relay_upgrade;
mod http_routing;
mod http_splice;
mod logs;
mod prometheus;
mod reliability;
mod statsd;
mod systemd;
mod tcp;
mod tls;
mod top;
mod upgrade;
mod websocket;
mod wire_bytes;
