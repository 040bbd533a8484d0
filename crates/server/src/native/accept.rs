//! Letting a native connection in: the origin check, the identity (token in
//! `?token=`, the connect proxy), the upgrade, and, when a token is required
//! but none came in the URL, the `auth` op before the deadline.
//!
//! Outcomes (docs/protocol.md): 403 for a refused origin or a connect proxy
//! refusal, 401 for a bad `?token=`, 503 when the connect proxy cannot be
//! asked; after the upgrade, close 4401 for a failed or missing `auth`, 1013
//! when the connect proxy cannot be asked.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};
use switchboard_hub::user_id::UserId;
use switchboard_wire::handshake::server::ServerOptions;
use switchboard_wire::io::server::upgrade;
use switchboard_wire::io::{MaybeTlsStream, WebSocket};
use switchboard_wire::{CloseCode, CloseFrame, Config, Message};

use super::conn::Conn;
use super::{Native, driver, plain, text, url_param};
use crate::auth::Identity;
use crate::context::Refused;
use crate::metrics::Limit;
use crate::wire;

/// Close code for a connection that did not authenticate.
const UNAUTHORIZED: u16 = 4401;
/// Close code when the backend could not be asked (standard "try again later").
const TRY_AGAIN_LATER: u16 = 1013;

/// The peer address of a request, put in its extensions by the server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub(crate) std::net::SocketAddr);

/// The one place a refusal before the upgrade gets its HTTP status.
fn refusal(refused: &Refused) -> Response<Full<Bytes>> {
    match refused {
        Refused::Unauthorized => plain(StatusCode::UNAUTHORIZED, "unauthorized\n"),
        Refused::Forbidden(_) => plain(StatusCode::FORBIDDEN, "forbidden\n"),
        Refused::Unavailable => plain(StatusCode::SERVICE_UNAVAILABLE, "unavailable\n"),
    }
}

impl Native {
    /// Answers a request for `/ws`: the upgrade, or a refusal.
    pub(crate) async fn handle<B>(self: &Arc<Self>, mut req: Request<B>) -> Response<Full<Bytes>> {
        let ctx = &self.ctx;
        if let Some(list) = &self.allowed_origins
            && let Some(origin) = req.headers().get(http::header::ORIGIN)
            && !origin
                .to_str()
                .is_ok_and(|o| o != "null" && list.iter().any(|a| a == o))
        {
            ctx.metrics.reject(Limit::Origin);
            return plain(StatusCode::FORBIDDEN, "origin not allowed\n");
        }
        let remote = req.extensions().get::<PeerAddr>().map(|p| p.0);
        let token = req.uri().query().and_then(|q| url_param(q, "token"));
        // A required token that is not in the URL comes in the `auth` op.
        let deferred = token.is_none() && ctx.auth.required();
        let identity = if deferred {
            None
        } else {
            match ctx
                .identify("native", token.as_deref(), Some(req.headers()), remote)
                .await
            {
                Ok(id) => Some(id),
                Err(refused) => return refusal(&refused),
            }
        };
        // The connect proxy sees the handshake's headers also when the
        // token comes later.
        let headers = (deferred && ctx.backend.as_ref().is_some_and(|b| b.has_connect()))
            .then(|| req.headers().clone());
        // Compression state is dropped after each message: an idle
        // connection holds none. The size limit applies after inflation.
        let config = Config::default()
            .deflate(self.deflate)
            .max_message_size(self.max_message)
            .max_frame_size(self.max_message);
        let options = ServerOptions::default().with_deflate(self.deflate);
        let (res, _accepted, pending) = match upgrade(&mut req, &options, config) {
            Ok(u) => u,
            Err(e) => {
                let mut res = Response::new(Full::new(Bytes::from(format!("{e}\n"))));
                *res.status_mut() = e.status();
                return res;
            }
        };
        self.start_sweeper();
        let native = self.clone();
        tokio::spawn(async move {
            let Ok(mut ws) = pending.websocket().await else {
                return;
            };
            let id = crate::relay::new_conn_id();
            let identity = match identity {
                Some(identity) => identity,
                None => match native
                    .authenticate(&mut ws, &id, headers.as_ref(), remote)
                    .await
                {
                    Some(identity) => identity,
                    None => return,
                },
            };
            // Sends the welcome and parks: this task ends, and the
            // connection's next event starts one that holds only what it
            // needs.
            native.open(id, identity, ws).await;
        });
        res.map(|()| Full::default())
    }

    /// Waits for the `auth` op (answering `ping` and refusing other ops
    /// meanwhile) until the deadline; closes the connection when it fails.
    async fn authenticate(
        &self,
        ws: &mut WebSocket<MaybeTlsStream>,
        socket: &str,
        headers: Option<&http::HeaderMap>,
        remote: Option<std::net::SocketAddr>,
    ) -> Option<Identity> {
        let deadline = tokio::time::Instant::now() + self.auth_timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, ws.recv()).await;
            let m = match next {
                Err(_) => {
                    self.ctx.metrics.reject(Limit::Auth);
                    close(ws, UNAUTHORIZED, "authentication timeout").await;
                    return None;
                }
                Ok(Some(Ok(m))) => m,
                Ok(_) => return None,
            };
            let Message::Text(t) = m else {
                continue;
            };
            if t.as_str() == "ping" {
                let _ = ws.send(text("pong".to_owned())).await;
                continue;
            }
            let req: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
            let id = req
                .get("id")
                .filter(|i| i.is_number() || i.is_string())
                .cloned();
            let answer = |mut v: Value| {
                if let Some(id) = &id {
                    v["id"] = id.clone();
                }
                text(v.to_string())
            };
            if req.get("op").and_then(Value::as_str) != Some("auth") {
                let e = wire::error(
                    "unauthorized",
                    "authenticate first: {\"op\":\"auth\",\"token\":…}",
                );
                let _ = ws.send(answer(e)).await;
                continue;
            }
            let token = req.get("token").and_then(Value::as_str);
            match self.ctx.identify("native", token, headers, remote).await {
                Ok(identity) => {
                    let _ = ws
                        .send(answer(
                            json!({"ok": true, "user": identity.user, "socket": socket}),
                        ))
                        .await;
                    return Some(identity);
                }
                Err(refused) => {
                    let (code, message) = match &refused {
                        Refused::Unavailable => (TRY_AGAIN_LATER, "the backend is unavailable"),
                        Refused::Forbidden(reason) => (UNAUTHORIZED, reason.as_str()),
                        Refused::Unauthorized => (UNAUTHORIZED, "unauthorized"),
                    };
                    let _ = ws
                        .send(answer(wire::error(&refused.to_string(), message)))
                        .await;
                    close(ws, code, message).await;
                    return None;
                }
            }
        }
    }

    /// The connection is in: registered, welcomed, in its personal room and
    /// the rooms the backend chose; returns its driver (see `driver`).
    fn open(
        self: Arc<Self>,
        id: Arc<str>,
        identity: Identity,
        ws: WebSocket<MaybeTlsStream>,
    ) -> driver::Driver {
        let now = self.now_ms();
        let conn = Arc::new(Conn::new(id.clone(), &identity, now, self.ctx.limits));
        // Pinged first somewhere within one interval, at a phase of its own:
        // connections that came in a wave (a restart, a network coming back)
        // are pinged spread over the interval, not all in one sweep.
        conn.last_ping.store(
            now.saturating_sub(super::ping_phase(&id, self.heartbeat.interval)),
            std::sync::atomic::Ordering::Relaxed,
        );
        self.conns().insert(id.clone(), conn.clone());
        if let Some(expiry) = &conn.expiry {
            self.tokens.watch(&id, expiry);
        }
        self.ctx.connected(
            &UserId::from(&conn.user),
            identity.info.map(|i| Bytes::from(i.to_string())),
        );
        let welcome = json!({
            "op": "welcome",
            "socket": &*conn.id,
            "user": &*conn.user,
            "ping_interval": self.heartbeat.interval.as_millis() as u64,
        });
        conn.push(text(welcome.to_string()));
        self.join_room(&conn, &crate::relay::user_room(&conn.user));
        for room in identity.rooms.iter().filter(|r| wire::valid_room(r)) {
            // Rooms the backend chose: joined whatever the rules say.
            conn.lock().rooms.push((Arc::from(room.as_str()), false));
            self.join_room(&conn, room);
            let _ = self
                .hub
                .join(&conn.id, &UserId::from(&conn.user), room, false, None);
        }
        *conn.socket.lock().unwrap_or_else(|e| e.into_inner()) = Some(ws);
        driver::Driver::new(self, conn)
    }
}

async fn close(ws: &mut WebSocket<MaybeTlsStream>, code: u16, reason: &str) {
    let frame = CloseFrame::new(CloseCode::from(code), reason);
    let _ = tokio::time::timeout(Duration::from_secs(5), ws.close(Some(frame))).await;
}

/// permessage-deflate without context takeover either way (compression
/// state lives for one message, so an idle connection holds none),
/// compressing messages of at least `threshold` bytes.
pub(super) fn deflate(threshold: usize) -> switchboard_wire::DeflateConfig {
    let mut d = switchboard_wire::DeflateConfig::default()
        .server_no_context_takeover(true)
        .threshold(threshold);
    d.client_no_context_takeover = true;
    d
}
