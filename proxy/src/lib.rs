//! The data plane of a Sozu-compatible reverse proxy: routing requests to clusters and balancing them over backends.

pub mod balancer;
pub mod router;
