//! The limit on client connections per cluster and client IP address.
//!
//! As in Sozu, a cluster's `max_connections_per_ip` (else the server's) is
//! the most client *connections* from one IP address that may be sending
//! requests to that cluster at once; 0 means no limit. A connection takes
//! a slot in a cluster the first time one of its requests is about to be
//! forwarded there (after redirects, refusals and authentication, before a
//! backend is chosen) and keeps it, however many requests follow, until it
//! closes. A request that would need one slot too many is answered 429.
//!
//! Connections are only counted while a limit applies to their cluster, so
//! that the request path does nothing when the feature is not used; a
//! limit set at runtime counts the connections that come after it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;

/// Connections counted per cluster and client IP, for one server.
#[derive(Debug, Default)]
pub(crate) struct ConnectionsPerIp {
    counts: RefCell<HashMap<String, HashMap<IpAddr, usize>>>,
}

/// The slots one client connection holds.
#[derive(Debug)]
pub(crate) struct ClientSlots {
    ip: IpAddr,
    clusters: RefCell<Vec<String>>,
}

impl ClientSlots {
    pub(crate) fn new(ip: IpAddr) -> ClientSlots {
        ClientSlots {
            ip,
            clusters: RefCell::new(Vec::new()),
        }
    }
}

impl ConnectionsPerIp {
    /// Whether the connection may send a request to `cluster_id` under
    /// `limit` (0: no limit), taking a slot for it if it has none yet.
    pub(crate) fn admit(&self, slots: &ClientSlots, cluster_id: &str, limit: u64) -> bool {
        if limit == 0 {
            return true;
        }
        let mut held = slots.clusters.borrow_mut();
        if held.iter().any(|held| held == cluster_id) {
            return true;
        }
        let mut counts = self.counts.borrow_mut();
        let count = counts
            .entry(cluster_id.to_owned())
            .or_default()
            .entry(slots.ip)
            .or_default();
        if *count as u64 >= limit {
            return false;
        }
        *count += 1;
        held.push(cluster_id.to_owned());
        true
    }

    /// Gives back every slot of a connection that closed.
    pub(crate) fn release(&self, slots: &ClientSlots) {
        let mut counts = self.counts.borrow_mut();
        for cluster_id in slots.clusters.borrow_mut().drain(..) {
            if let Some(by_ip) = counts.get_mut(&cluster_id) {
                if let Some(count) = by_ip.get_mut(&slots.ip) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        by_ip.remove(&slots.ip);
                    }
                }
                if by_ip.is_empty() {
                    counts.remove(&cluster_id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_takes_one_slot_per_cluster_until_it_closes() {
        let limits = ConnectionsPerIp::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let (first, second, third) = (
            ClientSlots::new(ip),
            ClientSlots::new(ip),
            ClientSlots::new(ip),
        );
        assert!(limits.admit(&first, "app", 2));
        // Further requests on the same connection need no new slot.
        assert!(limits.admit(&first, "app", 2));
        assert!(limits.admit(&second, "app", 2));
        assert!(!limits.admit(&third, "app", 2));
        // Other clusters and other addresses count apart; no limit, no count.
        assert!(limits.admit(&third, "other", 2));
        assert!(limits.admit(&ClientSlots::new("10.0.0.2".parse().unwrap()), "app", 2));
        assert!(limits.admit(&third, "free", 0));
        limits.release(&first);
        assert!(limits.admit(&third, "app", 2));
        limits.release(&second);
        limits.release(&third);
        assert_eq!(limits.counts.borrow().len(), 1, "{:?}", limits.counts);
    }
}
