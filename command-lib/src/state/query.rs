//! Answers computed from a [`ConfigState`]: listings, cluster views, hashes.
//!
//! These are the shapes the daemon puts in its responses, so listing commands
//! print the same whether the answer comes from the main process or a worker;
//! [`ConfigState::answer_cluster_query`] is the one answer to the cluster
//! queries that both give.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use prost::Message;

use super::ConfigState;
use crate::proto::command::{
    CertificateAndKey, Cluster, ClusterHashes, ClusterInformation, ClusterInformations,
    FrontendFilters, HealthChecksList, ListedFrontends, ListenersList, QueryCertificatesFilters,
    RequestHttpFrontend, request::RequestType, response_content::ContentType,
};

impl ConfigState {
    /// Every listener, keyed by its address written `ip:port`.
    pub fn list_listeners(&self) -> ListenersList {
        ListenersList {
            http_listeners: self
                .http_listeners
                .iter()
                .map(|(address, listener)| (address.to_string(), listener.clone()))
                .collect(),
            https_listeners: self
                .https_listeners
                .iter()
                .map(|(address, listener)| (address.to_string(), listener.clone()))
                .collect(),
            tcp_listeners: self
                .tcp_listeners
                .iter()
                .map(|(address, listener)| (address.to_string(), listener.clone()))
                .collect(),
            udp_listeners: BTreeMap::new(),
        }
    }

    /// Frontends matching the filters: `http`/`https`/`tcp` select kinds
    /// (none set means all), `domain` keeps hostnames containing it (and
    /// drops TCP frontends, which have none), `cluster_id` keeps the
    /// frontends of that cluster (deny frontends have none).
    pub fn list_frontends(&self, filters: &FrontendFilters) -> ListedFrontends {
        let all_kinds = !filters.http && !filters.https && !filters.tcp;
        let wanted = |front: &RequestHttpFrontend| {
            filters
                .domain
                .as_deref()
                .is_none_or(|domain| front.hostname.contains(domain))
                && filters
                    .cluster_id
                    .as_deref()
                    .is_none_or(|cluster_id| front.cluster_id.as_deref() == Some(cluster_id))
        };
        let mut listed = ListedFrontends::default();
        if filters.http || all_kinds {
            listed.http_frontends = self
                .http_frontends
                .values()
                .filter(|f| wanted(f))
                .cloned()
                .collect();
        }
        if filters.https || all_kinds {
            listed.https_frontends = self
                .https_frontends
                .values()
                .filter(|f| wanted(f))
                .cloned()
                .collect();
        }
        if (filters.tcp || all_kinds) && filters.domain.is_none() {
            listed.tcp_frontends = self
                .tcp_frontends
                .iter()
                .filter(|(cluster_id, _)| {
                    filters
                        .cluster_id
                        .as_deref()
                        .is_none_or(|wanted| wanted == cluster_id.as_str())
                })
                .flat_map(|(_, fronts)| fronts.iter().cloned())
                .collect();
        }
        listed
    }

    /// Certificates of every listener by fingerprint, filtered by a name they
    /// carry or by fingerprint (either case).
    pub fn certificates(
        &self,
        filters: &QueryCertificatesFilters,
    ) -> BTreeMap<String, CertificateAndKey> {
        let fingerprint = filters.fingerprint.as_deref().map(str::to_ascii_lowercase);
        self.certificates
            .values()
            .flat_map(|certificates| certificates.iter())
            .filter(|(key, certificate)| {
                filters
                    .domain
                    .as_ref()
                    .is_none_or(|domain| certificate.names.contains(domain))
                    && fingerprint
                        .as_deref()
                        .is_none_or(|wanted| wanted == key.as_str())
            })
            .map(|(key, certificate)| (key.clone(), certificate.clone()))
            .collect()
    }

    /// Everything configured for one cluster, or `None` if it does not exist.
    pub fn cluster_information(&self, cluster_id: &str) -> Option<ClusterInformation> {
        let configuration = self.clusters.get(cluster_id)?;
        let names_it =
            |front: &&RequestHttpFrontend| front.cluster_id.as_deref() == Some(cluster_id);
        Some(
            self.information(
                cluster_id,
                configuration,
                self.http_frontends
                    .values()
                    .filter(names_it)
                    .cloned()
                    .collect(),
                self.https_frontends
                    .values()
                    .filter(names_it)
                    .cloned()
                    .collect(),
            ),
        )
    }

    /// A cluster's view from its configuration and its HTTP and HTTPS
    /// frontends (in the state's order).
    fn information(
        &self,
        cluster_id: &str,
        configuration: &Cluster,
        http_frontends: Vec<RequestHttpFrontend>,
        https_frontends: Vec<RequestHttpFrontend>,
    ) -> ClusterInformation {
        ClusterInformation {
            configuration: Some(configuration.clone()),
            http_frontends,
            https_frontends,
            tcp_frontends: self
                .tcp_frontends
                .get(cluster_id)
                .cloned()
                .unwrap_or_default(),
            backends: self
                .backends
                .get(cluster_id)
                .map(|backends| backends.iter().cloned().collect())
                .unwrap_or_default(),
            udp_frontends: Vec::new(),
        }
    }

    /// Ids of the clusters that an HTTP or HTTPS frontend with exactly this
    /// hostname (and, when given, exactly this path value) routes to.
    pub fn cluster_ids_by_domain(&self, hostname: &str, path: Option<&str>) -> Vec<String> {
        let mut ids: Vec<String> = self
            .http_frontends
            .values()
            .chain(self.https_frontends.values())
            .filter(|front| {
                front.hostname == hostname && path.is_none_or(|path| front.path.value == path)
            })
            .filter_map(|front| front.cluster_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// A hash of each cluster's whole configuration (settings, frontends,
    /// backends). Two daemons holding the same cluster give the same hash;
    /// any change to the cluster changes it. The values are this project's
    /// own and differ from Sozu's.
    pub fn cluster_hashes(&self) -> BTreeMap<String, u64> {
        // The frontends grouped by cluster in one pass: looking them up
        // cluster by cluster made this quadratic (5,000 clusters took a
        // second in each process).
        fn by_cluster<'a>(
            frontends: impl Iterator<Item = &'a RequestHttpFrontend>,
        ) -> BTreeMap<&'a str, Vec<RequestHttpFrontend>> {
            let mut grouped: BTreeMap<&str, Vec<RequestHttpFrontend>> = BTreeMap::new();
            for front in frontends {
                if let Some(cluster_id) = front.cluster_id.as_deref() {
                    grouped.entry(cluster_id).or_default().push(front.clone());
                }
            }
            grouped
        }
        let mut http = by_cluster(self.http_frontends.values());
        let mut https = by_cluster(self.https_frontends.values());
        self.clusters
            .iter()
            .map(|(cluster_id, configuration)| {
                let information = self.information(
                    cluster_id,
                    configuration,
                    http.remove(cluster_id.as_str()).unwrap_or_default(),
                    https.remove(cluster_id.as_str()).unwrap_or_default(),
                );
                let mut hasher = DefaultHasher::new();
                information.encode_to_vec().hash(&mut hasher);
                (cluster_id.clone(), hasher.finish())
            })
            .collect()
    }

    /// The health check of every cluster that has one, or of one cluster.
    pub fn health_checks(&self, cluster_id: Option<&str>) -> HealthChecksList {
        HealthChecksList {
            map: self
                .clusters
                .iter()
                .filter(|(id, _)| cluster_id.is_none_or(|wanted| wanted == id.as_str()))
                .filter_map(|(id, cluster)| Some((id.clone(), cluster.health_check.clone()?)))
                .collect(),
        }
    }

    /// Number of frontends of every kind.
    pub fn frontend_count(&self) -> usize {
        self.http_frontends.len()
            + self.https_frontends.len()
            + self.tcp_frontends.values().map(Vec::len).sum::<usize>()
    }

    /// Number of backends in every cluster.
    pub fn backend_count(&self) -> usize {
        self.backends
            .values()
            .map(super::ClusterBackends::len)
            .sum()
    }
}

impl ConfigState {
    /// The answer to a cluster query (`QueryClusterById`,
    /// `QueryClustersByDomain`, `QueryClustersHashes`) from this state, or
    /// `None` for any other request. The main process and every worker
    /// answer these from their own state with this one function, so their
    /// answers have the same shape and agree when their states do.
    pub fn answer_cluster_query(&self, request: &RequestType) -> Option<ContentType> {
        match request {
            RequestType::QueryClusterById(cluster_id) => {
                Some(ContentType::Clusters(ClusterInformations {
                    vec: self.cluster_information(cluster_id).into_iter().collect(),
                }))
            }
            RequestType::QueryClustersByDomain(query) => {
                Some(ContentType::Clusters(ClusterInformations {
                    vec: self
                        .cluster_ids_by_domain(&query.hostname, query.path.as_deref())
                        .iter()
                        .filter_map(|id| self.cluster_information(id))
                        .collect(),
                }))
            }
            RequestType::QueryClustersHashes(_) => {
                Some(ContentType::ClusterHashes(ClusterHashes {
                    map: self.cluster_hashes(),
                }))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::command::{QueryClusterByDomain, QueryClustersHashes};

    fn state() -> ConfigState {
        let config = crate::config::Config::from_toml(
            r#"
[[listeners]]
protocol = "http"
address = "127.0.0.1:18080"

[clusters.app]
protocol = "http"
frontends = [{ address = "127.0.0.1:18080", hostname = "app.example.com" }]
backends = [{ address = "127.0.0.1:9001" }]
"#,
            std::path::Path::new("/nowhere/sozu.toml"),
        )
        .unwrap();
        config.initial_state(|_| Ok(())).unwrap().state
    }

    #[test]
    fn cluster_queries_are_answered_from_the_state_and_nothing_else_is() {
        let state = state();
        let by_id = state.answer_cluster_query(&RequestType::QueryClusterById("app".into()));
        let Some(ContentType::Clusters(clusters)) = by_id else {
            panic!("{by_id:?}");
        };
        assert_eq!(
            clusters.vec,
            vec![state.cluster_information("app").unwrap()]
        );
        assert_eq!(clusters.vec[0].backends.len(), 1);

        let missing = state.answer_cluster_query(&RequestType::QueryClusterById("none".into()));
        assert_eq!(
            missing,
            Some(ContentType::Clusters(ClusterInformations {
                vec: Vec::new()
            }))
        );

        let by_domain =
            state.answer_cluster_query(&RequestType::QueryClustersByDomain(QueryClusterByDomain {
                hostname: "app.example.com".into(),
                path: None,
            }));
        assert_eq!(by_domain, Some(ContentType::Clusters(clusters)));

        let hashes =
            state.answer_cluster_query(&RequestType::QueryClustersHashes(QueryClustersHashes {}));
        assert_eq!(
            hashes,
            Some(ContentType::ClusterHashes(ClusterHashes {
                map: state.cluster_hashes()
            }))
        );

        assert_eq!(
            state.answer_cluster_query(&RequestType::ListWorkers(Default::default())),
            None
        );
    }
}
