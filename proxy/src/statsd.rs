//! Sending a server's metrics to a StatsD server over UDP, once a second.
//!
//! Nothing here runs on the request path: the request path only updates
//! [`Metrics`] (and, with a StatsD target, keeps latency samples in a
//! bounded list). Once a second, [`Statsd::run`] reads the counters, sends
//! what grew since the last send as `|c` lines, the gauges as `|g` lines
//! and the kept latency samples as `|ms` lines, packed into datagrams of at
//! most [`MAX_DATAGRAM`] bytes, on a non-blocking socket: a datagram the
//! socket cannot take now is dropped and counted (`statsd.dropped_datagrams`
//! of `metrics get`), never waited for.
//!
//! Names follow Sozu's two shapes. Plain:
//! `PREFIX.ORIGIN.KEY`, `PREFIX.ORIGIN.cluster.CLUSTER.KEY`,
//! `PREFIX.ORIGIN.cluster.CLUSTER.backend.BACKEND.KEY`. Tagged:
//! `PREFIX.KEY,origin=ORIGIN,version=V`,
//! `PREFIX.cluster.KEY,origin=ORIGIN,version=V,cluster_id=CLUSTER`,
//! `PREFIX.backend.KEY,origin=ORIGIN,version=V,cluster_id=CLUSTER,backend_id=BACKEND`.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::time::Duration;

use crate::context::Shared;
use crate::metrics::{LiveGauges, Metrics, Traffic};
use crate::options::{StatsdDetail, StatsdOptions};

/// Largest datagram sent: fits a 1500-byte Ethernet frame with IPv6 and
/// UDP headers and some room for tunnels.
pub(crate) const MAX_DATAGRAM: usize = 1432;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where a metric belongs.
#[derive(Clone, Copy)]
enum Scope<'a> {
    Proxy,
    Cluster(&'a str),
    Backend(&'a str, &'a str),
}

impl Scope<'_> {
    fn detail(self) -> StatsdDetail {
        match self {
            Scope::Proxy => StatsdDetail::Process,
            Scope::Cluster(_) => StatsdDetail::Cluster,
            Scope::Backend(..) => StatsdDetail::Backend,
        }
    }
}

/// The StatsD sender of one server.
pub(crate) struct Statsd {
    socket: UdpSocket,
    options: StatsdOptions,
    origin: String,
    /// Counter values already sent, by metric name.
    sent: HashMap<String, u64>,
}

impl Statsd {
    /// A sender for `options`, named `origin` (the worker) in its lines.
    pub(crate) fn new(options: StatsdOptions, origin: &str) -> std::io::Result<Statsd> {
        let local: SocketAddr = if options.address.is_ipv4() {
            "0.0.0.0:0".parse().expect("a valid address")
        } else {
            "[::]:0".parse().expect("a valid address")
        };
        let socket = UdpSocket::bind(local)?;
        socket.connect(options.address)?;
        socket.set_nonblocking(true)?;
        let origin = match origin.parse::<u32>() {
            Ok(id) => format!("WRK-{id:02}"),
            Err(_) => clean(origin),
        };
        Ok(Statsd {
            socket,
            options,
            origin,
            sent: HashMap::new(),
        })
    }

    /// Sends once a second until the server's tasks are dropped.
    pub(crate) async fn run(mut self, shared: Rc<Shared>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tick.tick().await;
        loop {
            tick.tick().await;
            let live = shared.live_gauges();
            let lines = self.lines(&mut shared.metrics.borrow_mut(), &live);
            let dropped = self.send(&pack(&lines));
            shared.metrics.borrow_mut().statsd_dropped += dropped;
        }
    }

    /// Sends datagrams; returns how many were dropped.
    fn send(&self, datagrams: &[Vec<u8>]) -> u64 {
        let mut dropped = 0;
        for (index, datagram) in datagrams.iter().enumerate() {
            match self.socket.send(datagram) {
                Ok(_) => {}
                Err(error) if error.kind() == ErrorKind::WouldBlock => {
                    // The socket is full: what is left waits for no one.
                    return dropped + (datagrams.len() - index) as u64;
                }
                // Refused (nobody listens yet) or any other error: this
                // datagram is lost, the next may go.
                Err(_) => dropped += 1,
            }
        }
        dropped
    }

    /// Every line to send now: counters that grew, gauges, kept samples.
    fn lines(&mut self, metrics: &mut Metrics, live: &LiveGauges) -> Vec<String> {
        let mut out = Lines {
            statsd: self,
            lines: Vec::new(),
            seen: HashMap::new(),
        };
        out.traffic(Scope::Proxy, &mut metrics.proxy, "http.requests");
        out.gauge(Scope::Proxy, "client.connections", live.connections as u64);
        out.counter(Scope::Proxy, "listener.accepted.total", metrics.accepted);
        let mut cluster_ids: Vec<&String> = metrics.clusters.keys().collect();
        cluster_ids.sort();
        let cluster_ids: Vec<String> = cluster_ids.into_iter().cloned().collect();
        for cluster_id in &cluster_ids {
            // A removed cluster's counters stay in the metrics; its lines
            // are not sent any more.
            if !live.available_backends.contains_key(cluster_id) {
                continue;
            }
            let Some((traffic, backends)) = metrics.clusters.get_mut(cluster_id) else {
                continue;
            };
            let cluster = clean(cluster_id);
            out.traffic(Scope::Cluster(&cluster), traffic, "requests");
            if let Some(available) = live.available_backends.get(cluster_id) {
                out.gauge(
                    Scope::Cluster(&cluster),
                    "cluster.available_backends",
                    *available as u64,
                );
            }
            let up = live.backends_up.get(cluster_id);
            for (backend_id, traffic) in backends.iter_mut() {
                let backend = clean(backend_id);
                let scope = Scope::Backend(&cluster, &backend);
                out.traffic(scope, traffic, "requests");
                out.gauge(scope, "connections", traffic.connections);
                if let Some((_, available)) =
                    up.into_iter().flatten().find(|(id, _)| id == backend_id)
                {
                    out.gauge(scope, "backend.available", u64::from(*available));
                }
            }
        }
        let Lines { lines, seen, .. } = out;
        // Names not seen any more (a removed cluster) are forgotten.
        self.sent = seen;
        lines
    }

    fn name(&self, scope: Scope<'_>, key: &str) -> String {
        let (prefix, origin) = (&self.options.prefix, &self.origin);
        if self.options.tagged {
            match scope {
                Scope::Proxy => format!("{prefix}.{key},origin={origin},version={VERSION}"),
                Scope::Cluster(cluster) => format!(
                    "{prefix}.cluster.{key},origin={origin},version={VERSION},cluster_id={cluster}"
                ),
                Scope::Backend(cluster, backend) => format!(
                    "{prefix}.backend.{key},origin={origin},version={VERSION},cluster_id={cluster},backend_id={backend}"
                ),
            }
        } else {
            match scope {
                Scope::Proxy => format!("{prefix}.{origin}.{key}"),
                Scope::Cluster(cluster) => format!("{prefix}.{origin}.cluster.{cluster}.{key}"),
                Scope::Backend(cluster, backend) => {
                    format!("{prefix}.{origin}.cluster.{cluster}.backend.{backend}.{key}")
                }
            }
        }
    }
}

/// Lines being built for one send.
struct Lines<'a> {
    statsd: &'a Statsd,
    lines: Vec<String>,
    /// Counter values of this send, by name (the next `sent`).
    seen: HashMap<String, u64>,
}

impl Lines<'_> {
    fn wanted(&self, scope: Scope<'_>) -> bool {
        scope.detail() <= self.statsd.options.detail
    }

    /// What a counter grew by since the last send (all of it after a
    /// `metrics clear` made it smaller).
    fn counter(&mut self, scope: Scope<'_>, key: &str, value: u64) {
        if !self.wanted(scope) {
            return;
        }
        let name = self.statsd.name(scope, key);
        let last = self.statsd.sent.get(&name).copied().unwrap_or(0);
        let delta = if value >= last { value - last } else { value };
        if delta > 0 {
            self.lines.push(format!("{name}:{delta}|c"));
        }
        self.seen.insert(name, value);
    }

    fn gauge(&mut self, scope: Scope<'_>, key: &str, value: u64) {
        if self.wanted(scope) {
            let name = self.statsd.name(scope, key);
            self.lines.push(format!("{name}:{value}|g"));
        }
    }

    /// The counters of a cluster, a backend or the whole proxy, and its
    /// kept latency samples (taken out, sent or not).
    fn traffic(&mut self, scope: Scope<'_>, traffic: &mut Traffic, requests: &str) {
        let samples = std::mem::take(&mut traffic.pending);
        if !self.wanted(scope) {
            return;
        }
        self.counter(scope, requests, traffic.requests);
        let mut classes = [0u64; 6];
        for (status, times) in &traffic.statuses {
            classes[usize::from((status / 100).min(5))] += times;
        }
        for (class, times) in classes.iter().enumerate().skip(1) {
            self.counter(scope, &format!("http.status.{class}xx"), *times);
        }
        self.counter(scope, "bytes_in", traffic.bytes_in);
        self.counter(scope, "bytes_out", traffic.bytes_out);
        if traffic.sessions > 0 {
            self.counter(scope, "tcp.sessions", traffic.sessions);
        }
        for (timing, millis) in samples {
            let name = self.statsd.name(scope, timing.name());
            self.lines.push(format!("{name}:{millis}|ms"));
        }
    }
}

/// An id made safe for a StatsD name: the characters that delimit names,
/// values, types and tags become `_`.
fn clean(id: &str) -> String {
    id.chars()
        .map(|c| match c {
            ':' | '|' | ',' | '=' | '@' | '#' | ' ' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect()
}

/// Lines packed into datagrams of at most [`MAX_DATAGRAM`] bytes, one line
/// per `\n`-terminated row; a longer line travels alone.
fn pack(lines: &[String]) -> Vec<Vec<u8>> {
    let mut datagrams = Vec::new();
    let mut current: Vec<u8> = Vec::with_capacity(MAX_DATAGRAM);
    for line in lines {
        if !current.is_empty() && current.len() + line.len() + 1 > MAX_DATAGRAM {
            datagrams.push(std::mem::replace(
                &mut current,
                Vec::with_capacity(MAX_DATAGRAM),
            ));
        }
        current.extend_from_slice(line.as_bytes());
        current.push(b'\n');
    }
    if !current.is_empty() {
        datagrams.push(current);
    }
    datagrams
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Answered;

    fn answered(status: u16) -> Answered {
        Answered {
            status,
            bytes_in: 10,
            bytes_out: 100,
            connect_time: Some(Duration::from_millis(3)),
            response_time: Some(Duration::from_millis(7)),
            service_time: Duration::from_millis(9),
        }
    }

    fn sender(tagged: bool, detail: StatsdDetail) -> (Statsd, UdpSocket) {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let options = StatsdOptions {
            address: receiver.local_addr().unwrap(),
            tagged,
            prefix: "sozu".to_owned(),
            detail,
        };
        (Statsd::new(options, "3").unwrap(), receiver)
    }

    /// The gauges of a server whose one cluster is `web`.
    fn live_web() -> LiveGauges {
        LiveGauges {
            available_backends: [("web".to_owned(), 1)].into(),
            ..LiveGauges::default()
        }
    }

    #[test]
    fn a_removed_cluster_is_not_sent() {
        let (mut statsd, _receiver) = sender(false, StatsdDetail::Backend);
        let mut metrics = Metrics::new("w");
        metrics.record(Some("gone"), Some("gone-0"), &answered(200));
        let lines = statsd.lines(&mut metrics, &live_web());
        assert!(lines.iter().all(|line| !line.contains("gone")), "{lines:?}");
    }

    #[test]
    fn counters_are_sent_as_what_they_grew_by() {
        let (mut statsd, _receiver) = sender(false, StatsdDetail::Backend);
        let mut metrics = Metrics::new("w");
        metrics.keep_timings = true;
        for _ in 0..3 {
            metrics.record(Some("web"), Some("web-0"), &answered(200));
        }
        metrics.record(Some("web"), None, &answered(404));
        let live = live_web();
        let lines = statsd.lines(&mut metrics, &live);
        assert!(lines.contains(&"sozu.WRK-03.cluster.web.requests:3|c".to_owned()));
        assert!(lines.contains(&"sozu.WRK-03.cluster.web.http.status.2xx:3|c".to_owned()));
        assert!(lines.contains(&"sozu.WRK-03.cluster.web.http.status.4xx:1|c".to_owned()));
        assert!(lines.contains(&"sozu.WRK-03.cluster.web.backend.web-0.requests:3|c".to_owned()));
        assert!(lines.contains(
            &"sozu.WRK-03.cluster.web.backend.web-0.backend_response_time:7|ms".to_owned()
        ));
        assert!(lines.contains(&"sozu.WRK-03.http.requests:4|c".to_owned()));
        // Nothing new: no counter line, the samples were taken.
        let lines = statsd.lines(&mut metrics, &live);
        assert!(lines.iter().all(|line| !line.ends_with("|c")), "{lines:?}");
        assert!(lines.iter().all(|line| !line.ends_with("|ms")), "{lines:?}");
        metrics.record(Some("web"), Some("web-0"), &answered(200));
        let lines = statsd.lines(&mut metrics, &live);
        assert!(lines.contains(&"sozu.WRK-03.cluster.web.requests:1|c".to_owned()));
    }

    #[test]
    fn tagged_lines_and_detail() {
        let (mut statsd, _receiver) = sender(true, StatsdDetail::Cluster);
        let mut metrics = Metrics::new("w");
        metrics.record(Some("web"), Some("web-0"), &answered(200));
        let lines = statsd.lines(&mut metrics, &live_web());
        let version = VERSION;
        assert!(lines.contains(&format!(
            "sozu.cluster.requests,origin=WRK-03,version={version},cluster_id=web:1|c"
        )));
        assert!(lines.contains(&format!(
            "sozu.http.requests,origin=WRK-03,version={version}:1|c"
        )));
        // `cluster` detail: no backend line.
        assert!(
            lines.iter().all(|line| !line.contains("backend_id")),
            "{lines:?}"
        );
    }

    #[test]
    fn datagrams_hold_whole_lines_under_the_limit() {
        let lines: Vec<String> = (0..200).map(|i| format!("sozu.x.metric{i}:1|c")).collect();
        let datagrams = pack(&lines);
        assert!(datagrams.len() > 1);
        let mut rebuilt = Vec::new();
        for datagram in &datagrams {
            assert!(datagram.len() <= MAX_DATAGRAM);
            assert_eq!(datagram.last(), Some(&b'\n'));
            rebuilt.extend(
                String::from_utf8(datagram.clone())
                    .unwrap()
                    .lines()
                    .map(str::to_owned),
            );
        }
        assert_eq!(rebuilt, lines);
    }

    #[test]
    fn a_refused_datagram_is_counted_not_waited_for() {
        let (statsd, receiver) = sender(false, StatsdDetail::Process);
        // Nobody listens any more: the kernel reports the refusal on a
        // later send, which counts it as dropped and goes on.
        drop(receiver);
        let datagrams = vec![b"sozu.x:1|c\n".to_vec(); 2];
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut dropped = 0;
        while dropped == 0 && std::time::Instant::now() < deadline {
            dropped += statsd.send(&datagrams);
        }
        assert!(dropped > 0, "a refused datagram is counted");
    }

    #[test]
    fn ids_cannot_break_a_line() {
        assert_eq!(clean("a:b|c,d=e f\n"), "a_b_c_d_e_f_");
    }
}
