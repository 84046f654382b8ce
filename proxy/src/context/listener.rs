//! The state an HTTP or HTTPS listener shares with its connections.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use sozu_command::proto::command::HttpsListenerConfig;

use crate::router::Router;
use crate::settings::ListenerSettings;
use crate::tls::{self, CertificateSet, LoadedCertificate};

/// An HTTP listener's settings and routes, shared with its connections.
pub(crate) struct HttpListener {
    pub(crate) settings: RefCell<Rc<ListenerSettings>>,
    pub(crate) router: RefCell<Router>,
    /// Certificates and TLS configuration, on HTTPS listeners.
    pub(crate) tls: Option<TlsListener>,
}

impl HttpListener {
    /// A listener with `settings`, no route yet, and the TLS side of an
    /// HTTPS listener when `tls` is given.
    pub(crate) fn new(settings: ListenerSettings, tls: Option<TlsListener>) -> HttpListener {
        HttpListener {
            settings: RefCell::new(Rc::new(settings)),
            router: RefCell::new(Router::new()),
            tls,
        }
    }
}

/// The TLS side of an HTTPS listener.
///
/// Every change below builds the configuration of the next handshakes
/// before it returns; when that fails, the certificates are put back as
/// they were and the error is returned.
pub(crate) struct TlsListener {
    pub(crate) certificates: RefCell<CertificateSet>,
    /// The configuration new handshakes use; replaced on every change.
    pub(crate) server_config: RefCell<Arc<rustls::ServerConfig>>,
    pub(crate) config: RefCell<HttpsListenerConfig>,
}

impl TlsListener {
    /// The TLS side of a new HTTPS listener, with only the listener's
    /// default certificate (if it has one).
    pub(crate) fn new(config: &HttpsListenerConfig) -> Result<TlsListener, String> {
        tls::check_listener(config)?;
        let mut certificates = CertificateSet::default();
        certificates.set_default(tls::listener_default(config)?);
        let server_config = tls::server_config(config, certificates.resolver())?;
        Ok(TlsListener {
            certificates: RefCell::new(certificates),
            server_config: RefCell::new(server_config),
            config: RefCell::new(config.clone()),
        })
    }

    /// Takes a new listener configuration; a refusal leaves the listener
    /// as it was.
    pub(crate) fn update(&self, config: &HttpsListenerConfig) -> Result<(), String> {
        // Built before anything is replaced.
        tls::check_listener(config)?;
        let server_config = tls::server_config(config, self.certificates.borrow().resolver())?;
        *self.config.borrow_mut() = config.clone();
        *self.server_config.borrow_mut() = server_config;
        Ok(())
    }

    /// Adds a certificate.
    pub(crate) fn add_certificate(&self, certificate: LoadedCertificate) -> Result<(), String> {
        let fingerprint = certificate.fingerprint.clone();
        let added = self.certificates.borrow_mut().add(certificate);
        if let Err(error) = self.rebuild() {
            if added {
                self.certificates.borrow_mut().take(&fingerprint);
            }
            return Err(error);
        }
        Ok(())
    }

    /// Replaces the certificate with `old_fingerprint` by `certificate`.
    pub(crate) fn replace_certificate(
        &self,
        old_fingerprint: &str,
        certificate: LoadedCertificate,
    ) -> Result<(), String> {
        let fingerprint = certificate.fingerprint.clone();
        let (old, added) = {
            let mut certificates = self.certificates.borrow_mut();
            let old = certificates.take(old_fingerprint);
            (old, certificates.add(certificate))
        };
        if let Err(error) = self.rebuild() {
            let mut certificates = self.certificates.borrow_mut();
            if added {
                certificates.take(&fingerprint);
            }
            if let Some(old) = old {
                certificates.add(old);
            }
            return Err(error);
        }
        Ok(())
    }

    /// Removes the certificate with `fingerprint`, if there is one.
    pub(crate) fn remove_certificate(&self, fingerprint: &str) -> Result<(), String> {
        let old = self.certificates.borrow_mut().take(fingerprint);
        if let Err(error) = self.rebuild() {
            if let Some(old) = old {
                self.certificates.borrow_mut().add(old);
            }
            return Err(error);
        }
        Ok(())
    }

    /// Builds the configuration for the next handshakes.
    fn rebuild(&self) -> Result<(), String> {
        let server_config =
            tls::server_config(&self.config.borrow(), self.certificates.borrow().resolver())?;
        *self.server_config.borrow_mut() = server_config;
        Ok(())
    }
}
