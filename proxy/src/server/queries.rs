//! The requests that leave the configuration state alone: queries (of
//! clusters, certificates, metrics, limits) and the runtime settings that
//! are not part of the state (metrics, logging, limits, closing sessions).

use sozu_command::proto::command::{
    CertificateSummary, CertificatesByAddress, ListOfCertificatesByAddress,
    MaxConnectionsPerIpLimit, Request, request::RequestType, response_content::ContentType,
};

use super::Server;

impl Server {
    /// Answers a request that changes no state; `Ok` carries the answer's
    /// content, if any.
    pub(super) fn answer_query(
        &mut self,
        request: &Request,
        request_type: &RequestType,
    ) -> Result<Option<ContentType>, String> {
        match request_type {
            RequestType::Status(_) => Ok(None),
            RequestType::QueryClustersHashes(_)
            | RequestType::QueryClusterById(_)
            | RequestType::QueryClustersByDomain(_) => {
                Ok(self.state.answer_cluster_query(request_type))
            }
            RequestType::QueryCertificatesFromWorkers(filters) => {
                if let Some(fingerprint) = &filters.fingerprint {
                    let certs = self.state.certificates(filters);
                    if certs.is_empty() {
                        return Err(format!("no certificate with fingerprint {fingerprint}"));
                    }
                    return Ok(Some(ContentType::CertificatesWithFingerprints(
                        sozu_command::proto::command::CertificatesWithFingerprints { certs },
                    )));
                }
                Ok(Some(ContentType::CertificatesByAddress(
                    self.certificates_by_address(filters.domain.as_deref()),
                )))
            }
            RequestType::QueryMetrics(options) => Ok(Some(self.shared.metrics.borrow().query(
                options,
                &self.shared.live_gauges(),
                &self.state,
            ))),
            RequestType::ConfigureMetrics(configuration) => {
                self.shared.metrics.borrow_mut().configure(*configuration);
                Ok(None)
            }
            RequestType::Logging(filter) => match &self.shared.options.log_filter {
                Some(log_filter) => (log_filter.0)(filter).map(|()| None),
                None => Err("this server does not own the log output of its process: \
                     its embedder sets the log filter"
                    .to_owned()),
            },
            RequestType::SetMaxConnectionsPerIp(limit) => {
                self.shared.max_connections_per_ip.set(*limit);
                Ok(None)
            }
            RequestType::QueryMaxConnectionsPerIp(_) => Ok(Some(
                ContentType::MaxConnectionsPerIpLimit(MaxConnectionsPerIpLimit {
                    limit: self.shared.max_connections_per_ip.get(),
                }),
            )),
            RequestType::SetMaxConnectionAttempts(attempts) => {
                if *attempts == 0 || *attempts > 255 {
                    return Err(format!(
                        "max connection attempts must be between 1 and 255, not {attempts}"
                    ));
                }
                self.shared.max_connection_attempts.set(*attempts);
                Ok(None)
            }
            RequestType::SetMetricDetail(_) => Ok(None),
            RequestType::CloseSessions(close) => {
                if !self.state.clusters.contains_key(&close.cluster_id) {
                    return Err(format!("cluster '{}' does not exist", close.cluster_id));
                }
                let closed = self.shared.sessions.close(
                    &close.cluster_id,
                    close.backend_id.as_deref(),
                    close.address.map(|address| address.to_socket_addr()),
                );
                Ok(Some(ContentType::ClosedSessions(
                    sozu_command::proto::command::ClosedSessions {
                        closed,
                        draining: 0,
                    },
                )))
            }
            _ => Err(format!(
                "{} is not handled by a proxy server",
                request.kind_name()
            )),
        }
    }

    /// Certificates of every HTTPS listener, optionally only those for a
    /// domain, as `query_certificates_from_workers` answers them.
    fn certificates_by_address(&self, domain: Option<&str>) -> ListOfCertificatesByAddress {
        let mut certificates = Vec::new();
        for (address, listener) in self.listeners.iter() {
            let Some(tls) = listener.http().and_then(|http| http.tls.as_ref()) else {
                continue;
            };
            let mut certificate_summaries = Vec::new();
            for certificate in tls.certificates.borrow().certificates() {
                for name in &certificate.names {
                    if domain.is_none_or(|domain| domain.eq_ignore_ascii_case(name)) {
                        certificate_summaries.push(CertificateSummary {
                            domain: name.clone(),
                            fingerprint: certificate.fingerprint.clone(),
                        });
                    }
                }
            }
            certificates.push(CertificatesByAddress {
                address: (*address).into(),
                certificate_summaries,
            });
        }
        ListOfCertificatesByAddress { certificates }
    }
}
