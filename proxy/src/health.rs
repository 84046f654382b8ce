//! Active health checks: each cluster with a health check probes its
//! backends on a timer, and a backend whose answers change its verdict
//! enters or leaves the balancer's candidate set.
//!
//! A probe is one connection per backend: HTTP mode sends
//! `GET <uri> HTTP/1.1` with `Host: <ip:port>` and `Connection: close` and
//! reads the status line, or, for a cluster whose backends speak HTTP/2
//! (`http2`), the same `GET` in HTTP/2 cleartext with `:authority
//! <ip:port>`; TCP mode only connects. `healthy_threshold`
//! consecutive successes make a backend healthy, `unhealthy_threshold`
//! consecutive failures unhealthy; each change is reported as a
//! HEALTH_CHECK_HEALTHY or HEALTH_CHECK_UNHEALTHY event. When every backend
//! is unhealthy the balancer still uses them (fail-open).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use sozu_command::proto::command::{Event, EventKind, HealthCheckConfig, HealthCheckMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::balancer::Health;
use crate::context::{ClusterRuntime, Shared};

/// Whether a status code passes `config`: within `accepted_statuses` when
/// given, else equal to `expected_status`, else any 2xx.
pub fn status_passes(config: &HealthCheckConfig, status: u16) -> bool {
    if !config.accepted_statuses.is_empty() {
        return config
            .accepted_statuses
            .iter()
            .any(|range| u32::from(status) >= range.start && u32::from(status) <= range.end);
    }
    match config.expected_status {
        0 => (200..300).contains(&status),
        expected => u32::from(status) == expected,
    }
}

/// One probe of one backend: `true` when it passes. `http2`: the backend
/// speaks HTTP/2 cleartext only (its cluster's `http2`).
pub async fn probe(config: &HealthCheckConfig, address: SocketAddr, http2: bool) -> bool {
    let timeout = Duration::from_secs(u64::from(config.timeout.max(1)));
    let target = match config.port {
        Some(port) => SocketAddr::new(address.ip(), port as u16),
        None => address,
    };
    if http2 && config.mode != HealthCheckMode::Tcp as i32 {
        let attempt = crate::http2::probe_status(target, &config.uri);
        return matches!(
            tokio::time::timeout(timeout, attempt).await,
            Ok(Some(status)) if status_passes(config, status)
        );
    }
    let attempt = async {
        let mut stream = TcpStream::connect(target).await.ok()?;
        if config.mode == HealthCheckMode::Tcp as i32 {
            return Some(true);
        }
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\nUser-Agent: sozu-health-check\r\n\r\n",
            config.uri
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        // The status line fits in the first bytes; read until it is whole.
        let mut head = Vec::with_capacity(64);
        let mut buffer = [0u8; 256];
        while !head.contains(&b'\n') && head.len() < 1024 {
            let read = stream.read(&mut buffer).await.ok()?;
            if read == 0 {
                break;
            }
            head.extend_from_slice(&buffer[..read]);
        }
        let line = std::str::from_utf8(&head).ok()?.lines().next()?;
        let mut parts = line.split_whitespace();
        if !parts.next()?.starts_with("HTTP/") {
            return Some(false);
        }
        let status: u16 = parts.next()?.parse().ok()?;
        Some(status_passes(config, status))
    };
    matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(true)))
}

/// Consecutive results of one backend.
#[derive(Default)]
struct Streak {
    successes: u32,
    failures: u32,
    verdict: Health,
}

/// Starts, replaces or stops the health check of `cluster` to match its
/// configuration; without a health check every backend counts as healthy.
pub(crate) fn sync(shared: &Rc<Shared>, cluster: &ClusterRuntime) {
    if let Some(task) = cluster.health_check.borrow_mut().take() {
        task.abort();
    }
    let config = cluster.config.borrow().clone();
    match &config.health_check {
        Some(health_check) => {
            let task = spawn(
                shared.clone(),
                config.cluster_id.clone(),
                health_check.clone(),
            );
            *cluster.health_check.borrow_mut() = Some(task);
        }
        None => {
            let mut balancer = cluster.balancer.borrow_mut();
            let backends: Vec<_> = balancer.backends().cloned().collect();
            for backend in backends {
                balancer.set_health(&backend, Health::Unknown);
            }
        }
    }
}

/// Starts probing the backends of `cluster_id` every `config.interval`
/// seconds. The task ends when aborted (the check is removed or replaced)
/// or when the cluster is gone.
fn spawn(shared: Rc<Shared>, cluster_id: String, config: HealthCheckConfig) -> JoinHandle<()> {
    tokio::task::spawn_local(async move {
        let interval = Duration::from_secs(u64::from(config.interval.max(1)));
        let mut streaks: HashMap<(String, SocketAddr), Streak> = HashMap::new();
        loop {
            let Some(cluster) = shared.clusters.borrow().get(&cluster_id).cloned() else {
                return;
            };
            let backends: Vec<_> = cluster.balancer.borrow().backends().cloned().collect();
            let http2 = cluster.config.borrow().http2 == Some(true);
            let probes = backends
                .iter()
                .map(|backend| probe(&config, backend.address(), http2));
            let results = futures::future::join_all(probes).await;
            for (backend, passed) in backends.iter().zip(results) {
                let key = (backend.id().to_owned(), backend.address());
                let streak = streaks.entry(key).or_default();
                if passed {
                    streak.successes += 1;
                    streak.failures = 0;
                } else {
                    streak.failures += 1;
                    streak.successes = 0;
                }
                let verdict = if streak.successes >= config.healthy_threshold.max(1) {
                    Health::Healthy
                } else if streak.failures >= config.unhealthy_threshold.max(1) {
                    Health::Unhealthy
                } else {
                    continue;
                };
                if verdict == streak.verdict {
                    continue;
                }
                streak.verdict = verdict;
                cluster.balancer.borrow_mut().set_health(backend, verdict);
                let kind = match verdict {
                    Health::Healthy => EventKind::HealthCheckHealthy,
                    _ => EventKind::HealthCheckUnhealthy,
                };
                shared.send_event(Event {
                    kind: kind as i32,
                    cluster_id: Some(cluster_id.clone()),
                    backend_id: Some(backend.id().to_owned()),
                    address: Some(backend.address().into()),
                    metric_detail: None,
                });
            }
            // Forget backends that left the cluster.
            streaks.retain(|(id, address), _| {
                backends
                    .iter()
                    .any(|b| b.id() == id && b.address() == *address)
            });
            // A little jitter so that workers and clusters do not probe in
            // lockstep.
            let jitter = Duration::from_millis(u64::from(rand_jitter(interval)));
            tokio::time::sleep(interval + jitter).await;
        }
    })
}

fn rand_jitter(interval: Duration) -> u32 {
    let spread = (interval.as_millis() / 10).min(1000) as u32;
    if spread == 0 {
        return 0;
    }
    // Sub-second clock noise is random enough to spread probes.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    nanos % spread
}

#[cfg(test)]
mod tests {
    use super::*;
    use sozu_command::proto::command::HttpStatusRange;

    #[test]
    fn statuses_pass_as_configured() {
        let mut config = HealthCheckConfig::default();
        assert!(status_passes(&config, 204));
        assert!(!status_passes(&config, 301));
        config.expected_status = 301;
        assert!(status_passes(&config, 301));
        assert!(!status_passes(&config, 200));
        config.accepted_statuses = vec![HttpStatusRange {
            start: 200,
            end: 399,
        }];
        assert!(status_passes(&config, 302));
        assert!(!status_passes(&config, 404));
    }
}
