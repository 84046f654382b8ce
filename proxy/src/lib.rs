//! The data plane of the proxy, as a library any program can embed.
//!
//! A [`Server`] owns listeners, routing tables, clusters and their backends,
//! and runs on one thread. It is driven through a [`ProxyHandle`] with the
//! same protocol messages the daemon uses: each `WorkerRequest` gets exactly
//! one `WorkerResponse` with the same id, and events (a backend going down,
//! …) arrive on the same channel with the id [`handle::EVENT_ID`].
//!
//! ```no_run
//! use sozu_proxy::ProxyOptions;
//!
//! let (handle, thread) = sozu_proxy::spawn(ProxyOptions::default()).unwrap();
//! // send requests with handle.sender, read answers from handle.receiver
//! handle.sender.hard_stop("stop").unwrap();
//! thread.join().unwrap().unwrap();
//! ```

pub mod answers;
pub mod auth;
pub mod balancer;
pub mod body;
pub mod error;
pub mod forwarding;
pub mod handle;
mod http;
pub mod listener;
pub mod metrics;
pub mod options;
mod pool;
pub mod proxy_protocol;
pub mod router;
mod server;
pub mod support;
mod tcp;

pub use error::ProxyError;
pub use handle::{CommandSender, ListenSocket, ProxyHandle, ResponseReceiver};
pub use options::ProxyOptions;
pub use server::{Server, spawn};
