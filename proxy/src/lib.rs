//! The data plane of the proxy, as a library any program can embed.
//!
//! A [`Server`] owns listeners, routing tables, clusters and their
//! backends, and runs on one thread with a single-threaded event loop. It is
//! configured and queried with the protocol messages of `sozu_command`
//! (the same ones the daemon's workers receive), through a [`ProxyHandle`]:
//!
//! - [`CommandSender`] (cheap to clone, usable from any thread) sends
//!   `WorkerRequest`s: each carries an id chosen by the sender;
//! - [`ResponseReceiver`] yields exactly one `WorkerResponse` per request,
//!   with the same id, status `OK` or `FAILURE` (with the reason), plus the
//!   events the server observes (a backend going down, …) with the id
//!   [`handle::EVENT_ID`] and status `PROCESSING`.
//!
//! A request the server cannot enforce is refused, never acknowledged and
//! ignored ([`enforceable`] lists what is refused).
//!
//! # The whole flow
//!
//! ```no_run
//! use sozu_command::proto::command::{
//!     AddBackend, Cluster, HttpListenerConfig, PathRule, RequestHttpFrontend, RulePosition,
//!     request::RequestType,
//! };
//! use sozu_proxy::ProxyOptions;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // 1. Start a server on a thread of its own.
//! let (handle, thread) = sozu_proxy::spawn(ProxyOptions::default())?;
//! let (sender, mut receiver) = (handle.sender, handle.receiver);
//!
//! // 2. Configure it: a listener (active at once), a cluster, a frontend
//! //    routing a host to the cluster, a backend of the cluster.
//! let listen: std::net::SocketAddr = "127.0.0.1:8080".parse()?;
//! sender.request("listener", RequestType::AddHttpListener(HttpListenerConfig {
//!     address: listen.into(),
//!     sticky_name: "SOZUBALANCEID".into(),
//!     front_timeout: 60, back_timeout: 30, connect_timeout: 3, request_timeout: 10,
//!     active: true,
//!     ..Default::default()
//! }))?;
//! sender.request("cluster", RequestType::AddCluster(Cluster {
//!     cluster_id: "app".into(),
//!     ..Default::default()
//! }))?;
//! sender.request("frontend", RequestType::AddHttpFrontend(RequestHttpFrontend {
//!     cluster_id: Some("app".into()),
//!     address: listen.into(),
//!     hostname: "app.example.com".into(),
//!     path: PathRule::default(),
//!     position: RulePosition::Tree as i32,
//!     ..Default::default()
//! }))?;
//! sender.request("backend", RequestType::AddBackend(AddBackend {
//!     cluster_id: "app".into(),
//!     backend_id: "app-0".into(),
//!     address: "127.0.0.1:9000".parse::<std::net::SocketAddr>()?.into(),
//!     ..Default::default()
//! }))?;
//!
//! // 3. Read the acknowledgements, one per request, matched by id.
//! for _ in 0..4 {
//!     let ack = receiver.blocking_recv().expect("running");
//!     println!("{}: {}", ack.id, if ack.status == 0 { "ok" } else { &ack.message });
//! }
//!
//! // 4. Requests to app.example.com:8080 now reach 127.0.0.1:9000; other
//! //    hosts get the listener's 404 answer (its `answers` map can replace it).
//!
//! // 5. Stop: `soft_stop` finishes in-flight requests, `hard_stop` does not.
//! sender.soft_stop("stop")?;
//! thread.join().expect("proxy thread")?;
//! # Ok(())
//! # }
//! ```
//!
//! `examples/embedded.rs` runs this flow against a backend it starts itself.
//! To run the server on a thread you manage, build it there with
//! [`Server::new`] and call [`Server::run_blocking`], or await
//! [`Server::run`] inside a `tokio::task::LocalSet` on a current-thread
//! runtime. The server is not `Send`: it uses `Rc` internally, so nothing is
//! ever locked on the request path.

#![warn(missing_docs)]

// The modules in layers, bottom to top: a module imports from its own layer
// or the ones before it, never from a later one, and
// `scripts/check-module-dag.sh` checks that the imports form no cycle.
//
// Building blocks, which know nothing of the running server:
pub mod access_log;
mod answers;
mod auth;
mod balancer;
mod body;
mod buffers;
mod date;
mod deadline;
pub mod enforceable;
pub mod error;
mod forwarding;
pub mod handle;
pub mod log_limit;
mod metrics;
pub mod options;
mod per_ip;
mod pool;
mod proxy_protocol;
mod router;
mod sessions;
mod settings;
mod shared_stream;
mod splice;
mod tls;
mod write_deadline;
// The runtime context every connection shares with the command loop:
mod context;
// The protocols, each serving connections with the context:
mod health;
mod http;
mod http1;
mod http2;
mod proxy_protocol_io;
mod statsd;
mod tcp;
// The listeners, which accept connections and hand them to a protocol:
pub mod listener;
// The server's command loop, which owns the listeners and the context:
mod server;

pub use error::ProxyError;
pub use handle::{CommandSender, EVENT_ID, ListenSocket, ProxyHandle, ResponseReceiver};
pub use options::{LogFilter, ProxyOptions, StatsdDetail, StatsdOptions};
pub use server::{Server, spawn};

/// The router and the balancer, for this crate's benchmarks only: not part
/// of the embedding API, and free to change at any time.
#[doc(hidden)]
pub mod bench {
    pub use crate::balancer::Balancer;
    pub use crate::router::Router;
}
