//! What both protocol adapters share: the hub, how connections are
//! identified, room permissions, the backend and the metrics. A feature
//! that concerns "a connection" (who it is, whether it may join a room,
//! telling the backend a user came online) is written here once.

use std::sync::Arc;

use bytes::Bytes;
use switchboard_hub::user_id::UserId;
use switchboard_hub::{ConnId, Hub};

use crate::auth::{Auth, Identity};
use crate::backend::{Backend, BackendError, ConnectAttempt};
use crate::limits::RateConfig;
use crate::metrics::{Limit, Metrics};
use crate::rooms::{Action, Grants, Permissions};

/// Why a connection was not let in. Each protocol maps these to its wire
/// outcome in one place (native: HTTP status or close code; Socket.IO:
/// CONNECT_ERROR message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    /// No token where one is required, or a bad one.
    #[error("unauthorized")]
    Unauthorized,
    /// The connect proxy said no.
    #[error("forbidden")]
    Forbidden(String),
    /// The connect proxy could not be asked.
    #[error("unavailable")]
    Unavailable,
}

/// A connection's client-side limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientLimits {
    pub(crate) max_rooms: usize,
    pub(crate) rate: RateConfig,
    /// Bytes queued for a slow client before volatile messages are dropped
    /// (4× ends the connection).
    pub(crate) send_queue: usize,
}

/// Shared by the adapters.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) hub: Arc<Hub>,
    pub(crate) auth: Auth,
    pub(crate) rooms: Permissions,
    pub(crate) backend: Option<Arc<Backend>>,
    pub(crate) metrics: Arc<Metrics>,
    /// Captures (a native connection's frames when it is recorded).
    pub(crate) recorder: Arc<crate::record::Recorder>,
    pub(crate) limits: ClientLimits,
    /// Files sent through the server.
    pub(crate) files: Arc<crate::files::Files>,
    /// Socket.IO connections whose token expires.
    pub(crate) socketio_tokens: crate::expiry::ExpiryQueue<switchboard_engine::server::Sid>,
}

impl Context {
    /// Who a connection is: its token checked (when a JWT is required),
    /// then the connect proxy asked (when configured).
    pub(crate) async fn identify(
        &self,
        protocol: &'static str,
        token: Option<&str>,
        headers: Option<&http::HeaderMap>,
        remote: Option<std::net::SocketAddr>,
    ) -> Result<Identity, Refused> {
        let from_token = self.identify_token(protocol, token)?;
        let Some(backend) = self.backend.as_ref().filter(|b| b.has_connect()) else {
            return Ok(from_token);
        };
        let attempt = ConnectAttempt {
            protocol,
            token,
            headers,
            remote,
        };
        match backend.connect(&attempt).await {
            Ok(b) => Ok(Identity {
                user: b.user,
                info: b.info.or(from_token.info),
                anonymous: false,
                expires: from_token.expires,
                grants: from_token.grants,
                rooms: b.rooms,
            }),
            Err(BackendError::Denied(reason)) => {
                self.metrics.reject(Limit::Auth);
                Err(Refused::Forbidden(reason))
            }
            Err(e) => {
                tracing::warn!(error = %e, protocol, "connect proxy failed");
                Err(Refused::Unavailable)
            }
        }
    }

    /// Whether identifying a connection asks the backend (then
    /// [`Context::identify`] must be awaited; else
    /// [`Context::identify_token`] is the whole answer).
    pub(crate) fn has_connect_proxy(&self) -> bool {
        self.backend.as_ref().is_some_and(|b| b.has_connect())
    }

    /// Who a connection is by its token alone (checked when a JWT is
    /// required).
    pub(crate) fn identify_token(
        &self,
        protocol: &'static str,
        token: Option<&str>,
    ) -> Result<Identity, Refused> {
        self.auth.identify(token).map_err(|e| {
            tracing::debug!(error = %e, protocol, "connection refused");
            self.metrics.reject(Limit::Auth);
            Refused::Unauthorized
        })
    }

    /// A connection of `user` opened: online (webhook on the first one).
    pub(crate) fn connected(&self, user: &UserId, info: Option<Bytes>) {
        if self.hub.connect(user.clone(), info)
            && let Some(b) = &self.backend
        {
            b.user_status(user, true);
        }
    }

    /// A connection of `user` closed and left `rooms` (webhook when it was
    /// the user's last one).
    pub(crate) fn disconnected<R: AsRef<str>>(
        &self,
        conn: &ConnId,
        user: &str,
        anonymous: bool,
        rooms: impl IntoIterator<Item = R>,
    ) {
        if self.hub.disconnect(conn, user, rooms)
            && let Some(b) = &self.backend
        {
            b.user_status(user, false);
        }
        if anonymous {
            self.hub.forget_user(user);
        }
    }

    /// Whether a connection of `user` may do `action` to `room`; the refusal
    /// (`forbidden`) otherwise. Personal rooms `user:<id>` belong to their
    /// user: nobody else joins them, and others publish there only where a
    /// rule explicitly allows it (the backend always may).
    pub(crate) fn may(
        &self,
        action: Action,
        room: &str,
        user: &str,
        anonymous: bool,
        grants: Option<&Grants>,
    ) -> Result<(), &'static str> {
        if let Some(owner) = room.strip_prefix("user:") {
            if owner == user
                || (action == Action::Publish
                    && self.rooms.has_rules()
                    && self.rooms.allows(action, room, anonymous, grants))
            {
                return Ok(());
            }
            self.metrics.reject(Limit::Forbidden);
            return Err("personal rooms of other users are reserved to the backend");
        }
        if self.rooms.allows(action, room, anonymous, grants) {
            Ok(())
        } else {
            self.metrics.reject(Limit::Forbidden);
            Err(match action {
                Action::Join => "not allowed to join this room",
                Action::Publish => "not allowed to publish to this room",
            })
        }
    }
}
