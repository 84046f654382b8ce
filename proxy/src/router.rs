//! Stand-in router (exact host, longest prefix); replaced by the full router.

use std::rc::Rc;

use sozu_command::proto::command::RequestHttpFrontend;

/// What a request matched.
#[derive(Debug)]
pub struct Route {
    /// The frontend.
    pub frontend: RequestHttpFrontend,
}

/// Routing table error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RouterError(String);

/// Routing table of a listener.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Rc<Route>>,
}

impl Router {
    /// Empty table.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a frontend.
    pub fn add_frontend(&mut self, frontend: &RequestHttpFrontend) -> Result<(), RouterError> {
        self.routes.push(Rc::new(Route {
            frontend: frontend.clone(),
        }));
        Ok(())
    }
    /// Removes a frontend.
    pub fn remove_frontend(&mut self, frontend: &RequestHttpFrontend) -> Result<(), RouterError> {
        self.routes.retain(|r| r.frontend != *frontend);
        Ok(())
    }
    /// Finds the route.
    pub fn lookup(&self, host: &str, path: &str, _method: &str) -> Option<&Rc<Route>> {
        self.routes
            .iter()
            .filter(|r| {
                r.frontend.hostname.eq_ignore_ascii_case(host)
                    && path.starts_with(&r.frontend.path.value)
            })
            .max_by_key(|r| r.frontend.path.value.len())
    }
}
