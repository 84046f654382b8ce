//! One cluster as the running server holds it.

use std::cell::RefCell;
use std::rc::Rc;

use sozu_command::proto::command::Cluster;
use tokio::task::JoinHandle;

use crate::balancer::Balancer;

/// A cluster's settings and backends.
pub(crate) struct ClusterRuntime {
    pub(crate) config: RefCell<Rc<Cluster>>,
    pub(crate) balancer: RefCell<Balancer>,
    /// The health check task, when the cluster has a health check; aborted
    /// when the cluster is dropped.
    pub(crate) health_check: RefCell<Option<JoinHandle<()>>>,
}

impl ClusterRuntime {
    /// A cluster with its configuration's balancer and no health check
    /// running yet.
    pub(crate) fn new(cluster: &Cluster) -> Result<ClusterRuntime, String> {
        let balancer = Balancer::for_cluster(cluster).map_err(|error| error.to_string())?;
        Ok(ClusterRuntime {
            config: RefCell::new(Rc::new(cluster.clone())),
            balancer: RefCell::new(balancer),
            health_check: RefCell::new(None),
        })
    }

    /// Takes a new configuration: the balancer first, which may refuse it
    /// (then nothing changes).
    pub(crate) fn configure(&self, cluster: &Cluster) -> Result<(), String> {
        self.balancer
            .borrow_mut()
            .configure(cluster)
            .map_err(|error| error.to_string())?;
        *self.config.borrow_mut() = Rc::new(cluster.clone());
        Ok(())
    }
}

impl Drop for ClusterRuntime {
    fn drop(&mut self) {
        if let Some(task) = self.health_check.get_mut().take() {
            task.abort();
        }
    }
}
