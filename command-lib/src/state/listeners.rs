//! Listener changes of [`ConfigState::dispatch`]: add, update, remove,
//! activate and deactivate HTTP, HTTPS and TCP listeners.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::proto::command::{
    ActivateListener, DeactivateListener, HttpListenerConfig, HttpsListenerConfig, ListenerType,
    RemoveListener, SocketAddress, TcpListenerConfig, UpdateHttpListenerConfig,
    UpdateHttpsListenerConfig, UpdateTcpListenerConfig,
};

use super::{ConfigState, StateError};

/// Copies every field an HTTP or HTTPS listener update carries (they share
/// these names) onto the listener.
macro_rules! apply_common_update {
    ($listener:ident, $update:ident) => {
        if $update.public_address.is_some() {
            $listener.public_address = $update.public_address;
        }
        if let Some(value) = $update.expect_proxy {
            $listener.expect_proxy = value;
        }
        if let Some(value) = &$update.sticky_name {
            $listener.sticky_name = value.clone();
        }
        if let Some(value) = $update.front_timeout {
            $listener.front_timeout = value;
        }
        if let Some(value) = $update.back_timeout {
            $listener.back_timeout = value;
        }
        if let Some(value) = $update.connect_timeout {
            $listener.connect_timeout = value;
        }
        if let Some(value) = $update.request_timeout {
            $listener.request_timeout = value;
        }
        if let Some(value) = &$update.sozu_id_header {
            $listener.sozu_id_header = Some(value.clone());
        }
        for (status, template) in &$update.answers {
            $listener.answers.insert(status.clone(), template.clone());
        }
        if $update.elide_x_real_ip.is_some() {
            $listener.elide_x_real_ip = $update.elide_x_real_ip;
        }
        if $update.send_x_real_ip.is_some() {
            $listener.send_x_real_ip = $update.send_x_real_ip;
        }
        if $update.forwarded_headers.is_some() {
            $listener.forwarded_headers = $update.forwarded_headers;
        }
        $crate::h2_settings::H2Fields::patch_h2_from(&mut $listener, $update);
    };
}

pub(super) const HTTP: &str = "HTTP";
pub(super) const HTTPS: &str = "HTTPS";
pub(super) const TCP: &str = "TCP";

pub(super) fn checked_address(
    field: &'static str,
    address: &SocketAddress,
) -> Result<SocketAddr, StateError> {
    address
        .validate()
        .map_err(|reason| StateError::InvalidAddress { field, reason })
}

pub(super) fn listener_kind_name(proxy: i32) -> Result<&'static str, StateError> {
    match ListenerType::try_from(proxy) {
        Ok(ListenerType::Http) => Ok(HTTP),
        Ok(ListenerType::Https) => Ok(HTTPS),
        Ok(ListenerType::Tcp) => Ok(TCP),
        Ok(ListenerType::Udp) => Err(StateError::InvalidValue {
            field: "proxy",
            reason: "UDP listeners are not supported".to_owned(),
        }),
        Err(_) => Err(StateError::InvalidValue {
            field: "proxy",
            reason: format!("{proxy} is not a listener type"),
        }),
    }
}

pub(super) fn check_enum<T: TryFrom<i32>>(
    field: &'static str,
    value: i32,
) -> Result<(), StateError> {
    T::try_from(value)
        .map(|_| ())
        .map_err(|_| StateError::InvalidValue {
            field,
            reason: format!("{value} is not a known value"),
        })
}

impl ConfigState {
    pub(super) fn listener_kind_at(&self, address: &SocketAddr) -> Option<&'static str> {
        if self.http_listeners.contains_key(address) {
            Some(HTTP)
        } else if self.https_listeners.contains_key(address) {
            Some(HTTPS)
        } else if self.tcp_listeners.contains_key(address) {
            Some(TCP)
        } else {
            None
        }
    }

    pub(super) fn check_new_listener(
        &self,
        address: &SocketAddress,
        public_address: Option<&SocketAddress>,
    ) -> Result<SocketAddr, StateError> {
        let address = checked_address("address", address)?;
        if let Some(public_address) = public_address {
            checked_address("public_address", public_address)?;
        }
        if let Some(existing) = self.listener_kind_at(&address) {
            return Err(StateError::ListenerExists { address, existing });
        }
        Ok(address)
    }

    pub(super) fn add_http_listener(
        &mut self,
        listener: &HttpListenerConfig,
    ) -> Result<(), StateError> {
        let address =
            self.check_new_listener(&listener.address, listener.public_address.as_ref())?;
        check_enum::<crate::proto::command::ForwardedHeaders>(
            "forwarded_headers",
            listener.forwarded_headers.unwrap_or_default(),
        )?;
        self.http_listeners.insert(address, listener.clone());
        Ok(())
    }

    pub(super) fn add_https_listener(
        &mut self,
        listener: &HttpsListenerConfig,
    ) -> Result<(), StateError> {
        let address =
            self.check_new_listener(&listener.address, listener.public_address.as_ref())?;
        for version in &listener.versions {
            check_enum::<crate::proto::command::TlsVersion>("versions", *version)?;
        }
        check_enum::<crate::proto::command::ForwardedHeaders>(
            "forwarded_headers",
            listener.forwarded_headers.unwrap_or_default(),
        )?;
        self.https_listeners.insert(address, listener.clone());
        Ok(())
    }

    pub(super) fn add_tcp_listener(
        &mut self,
        listener: &TcpListenerConfig,
    ) -> Result<(), StateError> {
        let address =
            self.check_new_listener(&listener.address, listener.public_address.as_ref())?;
        self.tcp_listeners.insert(address, listener.clone());
        Ok(())
    }

    pub(super) fn update_http_listener(
        &mut self,
        update: &UpdateHttpListenerConfig,
    ) -> Result<(), StateError> {
        let address = checked_address("address", &update.address)?;
        if let Some(public_address) = &update.public_address {
            checked_address("public_address", public_address)?;
        }
        let listener =
            self.http_listeners
                .get_mut(&address)
                .ok_or(StateError::ListenerNotFound {
                    address,
                    kind: HTTP,
                })?;
        let mut updated = listener.clone();
        apply_common_update!(updated, update);
        if let Some(answers) = &update.http_answers {
            merge_answers(
                updated.http_answers.get_or_insert_with(Default::default),
                answers,
            );
        }
        *listener = updated;
        Ok(())
    }

    pub(super) fn update_https_listener(
        &mut self,
        update: &UpdateHttpsListenerConfig,
    ) -> Result<(), StateError> {
        let address = checked_address("address", &update.address)?;
        if let Some(public_address) = &update.public_address {
            checked_address("public_address", public_address)?;
        }
        let listener =
            self.https_listeners
                .get_mut(&address)
                .ok_or(StateError::ListenerNotFound {
                    address,
                    kind: HTTPS,
                })?;
        let mut updated = listener.clone();
        apply_common_update!(updated, update);
        if let Some(answers) = &update.http_answers {
            merge_answers(
                updated.http_answers.get_or_insert_with(Default::default),
                answers,
            );
        }
        if let Some(alpn) = &update.alpn_protocols {
            updated.alpn_protocols = alpn.values.clone();
        }
        if update.strict_sni_binding.is_some() {
            updated.strict_sni_binding = update.strict_sni_binding;
        }
        if update.disable_http11.is_some() {
            updated.disable_http11 = update.disable_http11;
        }
        if update.hsts.is_some() {
            updated.hsts = update.hsts;
        }
        if let Some(policy) = &update.client_auth_policy {
            updated.client_auth = policy.client_auth;
            updated.client_ca_certificates = policy.client_ca_certificates.clone();
            updated.client_ca_crls = policy.client_ca_crls.clone();
        }
        *listener = updated;
        Ok(())
    }

    pub(super) fn update_tcp_listener(
        &mut self,
        update: &UpdateTcpListenerConfig,
    ) -> Result<(), StateError> {
        let address = checked_address("address", &update.address)?;
        if let Some(public_address) = &update.public_address {
            checked_address("public_address", public_address)?;
        }
        let listener = self
            .tcp_listeners
            .get_mut(&address)
            .ok_or(StateError::ListenerNotFound { address, kind: TCP })?;
        if update.public_address.is_some() {
            listener.public_address = update.public_address;
        }
        if let Some(value) = update.expect_proxy {
            listener.expect_proxy = value;
        }
        if let Some(value) = update.front_timeout {
            listener.front_timeout = value;
        }
        if let Some(value) = update.back_timeout {
            listener.back_timeout = value;
        }
        if let Some(value) = update.connect_timeout {
            listener.connect_timeout = value;
        }
        Ok(())
    }

    pub(super) fn remove_listener(&mut self, remove: &RemoveListener) -> Result<(), StateError> {
        let address = checked_address("address", &remove.address)?;
        let kind = listener_kind_name(remove.proxy)?;
        let exists = match kind {
            HTTP => self.http_listeners.contains_key(&address),
            HTTPS => self.https_listeners.contains_key(&address),
            _ => self.tcp_listeners.contains_key(&address),
        };
        if !exists {
            return Err(StateError::ListenerNotFound { address, kind });
        }
        let frontends = match kind {
            HTTP => self
                .http_frontends
                .keys()
                .filter(|key| key.address == address)
                .count(),
            HTTPS => self
                .https_frontends
                .keys()
                .filter(|key| key.address == address)
                .count(),
            _ => self
                .tcp_frontends
                .values()
                .flatten()
                .filter(|front| front.address.to_socket_addr() == address)
                .count(),
        };
        let certificates = self.certificates.get(&address).map_or(0, BTreeMap::len);
        if frontends > 0 || certificates > 0 {
            return Err(StateError::ListenerInUse {
                address,
                kind,
                frontends,
                certificates,
            });
        }
        match kind {
            HTTP => self.http_listeners.remove(&address).map(drop),
            HTTPS => self.https_listeners.remove(&address).map(drop),
            _ => self.tcp_listeners.remove(&address).map(drop),
        };
        Ok(())
    }

    pub(super) fn set_listener_active(
        &mut self,
        address: &SocketAddress,
        proxy: i32,
        active: bool,
    ) -> Result<(), StateError> {
        let address = checked_address("address", address)?;
        let kind = listener_kind_name(proxy)?;
        let flag = match kind {
            HTTP => self.http_listeners.get_mut(&address).map(|l| &mut l.active),
            HTTPS => self
                .https_listeners
                .get_mut(&address)
                .map(|l| &mut l.active),
            _ => self.tcp_listeners.get_mut(&address).map(|l| &mut l.active),
        };
        let flag = flag.ok_or(StateError::ListenerNotFound { address, kind })?;
        *flag = active;
        Ok(())
    }

    pub(super) fn activate_listener(
        &mut self,
        activate: &ActivateListener,
    ) -> Result<(), StateError> {
        self.set_listener_active(&activate.address, activate.proxy, true)
    }

    pub(super) fn deactivate_listener(
        &mut self,
        deactivate: &DeactivateListener,
    ) -> Result<(), StateError> {
        self.set_listener_active(&deactivate.address, deactivate.proxy, false)
    }
}

/// Replaces the custom answers given in `update`, keeping the others.
fn merge_answers(
    answers: &mut crate::proto::command::CustomHttpAnswers,
    update: &crate::proto::command::CustomHttpAnswers,
) {
    macro_rules! merge {
        ($($field:ident),+) => {
            $(
                if let Some(value) = &update.$field {
                    answers.$field = Some(value.clone());
                }
            )+
        };
    }
    merge!(
        answer_301, answer_400, answer_401, answer_404, answer_408, answer_413, answer_421,
        answer_502, answer_503, answer_504, answer_507, answer_429
    );
}
