//! The admin HTTP API under `/api/v1` (bearer key).
//!
//! Errors are `{"error":{"code","message"}}` with the matching status, all
//! produced by [`ApiError::response`].

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_hub::Hub;
use switchboard_socketio::server::Namespace;

use crate::relay::user_room;
use crate::wire;

/// Largest admin request body.
const MAX_BODY: usize = 1 << 20;

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("missing or wrong API key")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    #[error("no such endpoint")]
    NotFound,
    #[error("{0}")]
    NotFoundWhat(String),
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    #[error("request body over {MAX_BODY} bytes")]
    TooLarge,
    #[error("the history store is unavailable; try again")]
    Unavailable,
    #[error("{0}")]
    UnavailableWhat(String),
    #[error("{0}")]
    TooMany(String),
}

impl From<switchboard_hub::StoreError> for ApiError {
    fn from(e: switchboard_hub::StoreError) -> Self {
        tracing::error!(error = %e, "history store failed");
        Self::Unavailable
    }
}

impl ApiError {
    pub(crate) fn response(&self) -> Response<Full<Bytes>> {
        let (status, code) = match self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::NotFound | Self::NotFoundWhat(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Self::Unavailable | Self::UnavailableWhat(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            Self::TooMany(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
        };
        let mut res = json_response(
            status,
            &json!({"error": {"code": code, "message": self.to_string()}}),
        );
        if let Self::MethodNotAllowed(allow) = self {
            res.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static(allow));
        }
        if matches!(self, Self::Unauthorized) {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        res
    }
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    res
}

/// The admin API's state.
pub(crate) struct Admin {
    pub(crate) api_key: String,
    pub(crate) hub: Arc<Hub>,
    pub(crate) ns: Namespace,
    pub(crate) native: Arc<crate::native::Native>,
    pub(crate) started: std::time::Instant,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// The other nodes, when clustered (set once, after the admin exists:
    /// the cluster answers their commands through it).
    pub(crate) cluster: std::sync::OnceLock<Arc<switchboard_hub::Cluster>>,
    /// Captures (`/api/v1/record`).
    pub(crate) recorder: Arc<crate::record::Recorder>,
}

/// Time other nodes have to answer a cluster-wide request.
const ASK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The query parameters the API reads.
#[derive(Default)]
struct Query {
    room: Option<String>,
    since: Option<u64>,
    limit: Option<usize>,
}

impl Query {
    fn parse(q: &str) -> Result<Self, ApiError> {
        let mut out = Self::default();
        for kv in q.split('&').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let v = percent_encoding::percent_decode_str(v)
                .decode_utf8()
                .map_err(|_| ApiError::BadRequest(format!("{k}: not UTF-8")))?;
            // Integers a JSON client can hold exactly: 0 ..= 2^53 - 1.
            let number = |v: &str| {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| *n < (1 << 53))
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!("{k} must be an integer from 0 to 2^53 - 1"))
                    })
            };
            match k {
                "room" => out.room = Some(v.into_owned()),
                "since" => out.since = Some(number(&v)?),
                "limit" => out.limit = Some(number(&v)? as usize),
                _ => {}
            }
        }
        Ok(out)
    }
}

impl Admin {
    /// Answers a request whose path starts with `/api/v1/`.
    pub(crate) async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if crate::record::api::matches(req.uri().path()) {
            if !self.authorized(req.headers()) {
                return ApiError::Unauthorized.response();
            }
            return self.record(req).await;
        }
        match self.route(req).await {
            Ok(v) => json_response(StatusCode::OK, &v),
            Err(e) => e.response(),
        }
    }

    fn authorized(&self, headers: &http::HeaderMap) -> bool {
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        constant_time_eq(given.trim().as_bytes(), self.api_key.as_bytes())
    }

    async fn route<B>(&self, req: Request<B>) -> Result<Value, ApiError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = req.uri().path().trim_start_matches("/api/v1").to_owned();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        if req.method() == Method::GET && segments == ["openapi.json"] {
            // The API's description is public: it holds no data.
            return Ok(crate::openapi::document());
        }
        if !self.authorized(req.headers()) {
            return Err(ApiError::Unauthorized);
        }
        let query = Query::parse(req.uri().query().unwrap_or(""))?;
        match (req.method().clone(), segments.as_slice()) {
            (Method::POST, ["publish"]) => self.publish(body(req).await?),
            (Method::POST, ["disconnect"]) => self.disconnect(body(req).await?).await,
            (Method::GET, ["presence", room]) => Ok(self.presence(&decode(room)?)),
            (Method::GET, ["users", user]) => self.user(&decode(user)?),
            (Method::GET, ["rooms"]) => self.rooms(),
            (Method::GET, ["sockets"]) => Ok(self.sockets(query.room, query.limit).await),
            (Method::GET, ["history", room]) => {
                self.history(&decode(room)?, query.since, query.limit)
            }
            (Method::GET, ["stats"]) => self.stats().await,
            (_, ["publish" | "disconnect"]) => Err(ApiError::MethodNotAllowed("POST")),
            (_, ["rooms" | "sockets" | "stats" | "openapi.json"])
            | (_, ["presence" | "users" | "history", _]) => Err(ApiError::MethodNotAllowed("GET")),
            _ => Err(ApiError::NotFound),
        }
    }

    fn publish(&self, v: Value) -> Result<Value, ApiError> {
        #[derive(Deserialize)]
        struct Publish {
            room: String,
            event: String,
            #[serde(default)]
            data: Value,
            #[serde(default)]
            volatile: bool,
        }
        let p: Publish = serde_json::from_value(v)
            .map_err(|e| ApiError::BadRequest(format!("expected {{room, event, data}}: {e}")))?;
        if !wire::valid_room(&p.room) || !wire::valid_event(&p.event) {
            return Err(ApiError::BadRequest(
                "room must be a non-empty string, event a name that is not reserved".into(),
            ));
        }
        let publication = self.hub.publish(
            &p.room,
            p.event,
            Bytes::from(p.data.to_string()),
            None,
            p.volatile,
        )?;
        self.metrics.publishes.inc();
        Ok(json!({"offset": publication.entry.offset}))
    }

    /// Asks the other nodes of the cluster (none without one).
    async fn ask(&self, kind: &'static str, body: Value) -> Vec<Value> {
        let Some(cluster) = self.cluster.get().cloned() else {
            return Vec::new();
        };
        tokio::task::spawn_blocking(move || cluster.ask(kind, body, ASK_TIMEOUT))
            .await
            .unwrap_or_default()
    }

    /// Answers another node's request: what this node alone holds.
    pub(crate) fn answer(&self, kind: &str, body: Value) -> Value {
        match kind {
            "disconnect" => self
                .disconnect_here(body)
                .map_or(Value::Null, |n| json!({"disconnected": n})),
            "sockets" => {
                let room = body["room"].as_str();
                let limit = body["limit"].as_u64().map(|l| l as usize);
                Value::Array(self.sockets_here(room, limit))
            }
            "stats" => {
                let (sio, native) = self.connections_here();
                json!({"socketio": sio, "native": native})
            }
            _ => Value::Null,
        }
    }

    async fn disconnect(&self, v: Value) -> Result<Value, ApiError> {
        let here = self.disconnect_here(v.clone())?;
        let elsewhere: u64 = self
            .ask("disconnect", v)
            .await
            .iter()
            .filter_map(|a| a["disconnected"].as_u64())
            .sum();
        Ok(json!({"disconnected": here as u64 + elsewhere}))
    }

    /// Disconnects on this node; returns how many connections.
    fn disconnect_here(&self, v: Value) -> Result<usize, ApiError> {
        #[derive(Deserialize)]
        struct Disconnect {
            #[serde(default, deserialize_with = "present_string")]
            user: Option<String>,
            #[serde(default, deserialize_with = "present_string")]
            socket: Option<String>,
            reason: Option<String>,
            #[serde(default)]
            reconnect: bool,
        }
        let d: Disconnect = serde_json::from_value(v).map_err(|e| {
            ApiError::BadRequest(format!(
                "expected {{user | socket, reason?, reconnect}}: {e}"
            ))
        })?;
        let ns = &self.ns;
        let sockets = match (&d.user, &d.socket) {
            (Some(user), None) => ns.to(&user_room(user)).sockets(),
            (None, Some(id)) => ns.socket(id).into_iter().collect(),
            _ => {
                return Err(ApiError::BadRequest(
                    "give exactly one of user and socket".into(),
                ));
            }
        };
        let mut kick = json!({"reconnect": d.reconnect});
        if let Some(reason) = &d.reason {
            kick["reason"] = json!(reason);
        }
        for s in &sockets {
            let _ = s.emit("kick", kick.clone());
            if d.reconnect {
                s.close_connection();
            } else {
                s.disconnect();
            }
        }
        let native = match (&d.user, &d.socket) {
            (Some(user), _) => self.native.connections_of(user),
            (None, Some(id)) => self
                .native
                .has(id)
                .then(|| Arc::from(id.as_str()))
                .into_iter()
                .collect(),
            _ => Vec::new(),
        };
        let kicked = native
            .iter()
            .filter(|id| self.native.kick(id, d.reason.as_deref(), d.reconnect))
            .count();
        Ok(sockets.len() + kicked)
    }

    fn user(&self, user: &str) -> Result<Value, ApiError> {
        let status = self
            .hub
            .user(user)
            .ok_or_else(|| ApiError::NotFoundWhat(format!("no user {user:?}")))?;
        Ok(json!({
            "user": user,
            "online": status.online,
            "connections": status.connections,
            "last_seen": wire::timestamp(status.last_seen),
        }))
    }

    fn rooms(&self) -> Result<Value, ApiError> {
        let mut rooms = self.hub.room_summaries()?;
        rooms.sort_by(|a, b| a.room.cmp(&b.room));
        Ok(Value::Array(
            rooms
                .iter()
                .map(|r| {
                    json!({"room": r.room, "epoch": r.epoch, "offset": r.offset,
                        "users": r.users, "connections": r.connections})
                })
                .collect(),
        ))
    }

    async fn sockets(&self, room: Option<String>, limit: Option<usize>) -> Value {
        let limit = limit.unwrap_or(1000).min(10_000);
        let mut out = self.sockets_here(room.as_deref(), Some(limit));
        if out.len() < limit {
            for answer in self
                .ask("sockets", json!({"room": room, "limit": limit}))
                .await
            {
                if let Value::Array(list) = answer {
                    out.extend(list);
                }
            }
        }
        out.truncate(limit);
        Value::Array(out)
    }

    /// This node's sockets (at most `limit`).
    fn sockets_here(&self, room: Option<&str>, limit: Option<usize>) -> Vec<Value> {
        let limit = limit.unwrap_or(1000).min(10_000);
        let sio = match room {
            Some(room) => self.ns.to(room).sockets(),
            None => self.ns.sockets(),
        };
        let mut out: Vec<Value> = sio
            .iter()
            .map(|s| {
                let user = s
                    .data::<crate::relay::Member>()
                    .map(|m| m.user_id().to_owned());
                json!({"socket": s.id(), "user": user, "protocol": "socketio",
                "transport": match s.transport() {
                    switchboard_engine::Transport::Polling => "polling",
                    switchboard_engine::Transport::WebSocket => "websocket",
                }})
            })
            .collect();
        out.extend(self.native.sockets(room).into_iter().map(|(id, user)| {
            json!({"socket": &*id, "user": &*user, "protocol": "native", "transport": "websocket"})
        }));
        out.truncate(limit);
        out
    }

    fn history(
        &self,
        room: &str,
        since: Option<u64>,
        limit: Option<usize>,
    ) -> Result<Value, ApiError> {
        let limit = wire::history_limit(limit.map(|l| l as u64));
        let (epoch, entries) = self.hub.history(room, since, limit)?;
        Ok(wire::history(epoch, &entries, since))
    }

    fn connections_here(&self) -> (u64, u64) {
        (
            self.ns.sockets().len() as u64,
            self.native.connection_count() as u64,
        )
    }

    async fn stats(&self) -> Result<Value, ApiError> {
        let (mut sio, mut native) = self.connections_here();
        let elsewhere = self.ask("stats", Value::Null).await;
        for a in &elsewhere {
            sio += a["socketio"].as_u64().unwrap_or(0);
            native += a["native"].as_u64().unwrap_or(0);
        }
        Ok(json!({
            "nodes": 1 + elsewhere.len(),
            "connections": {"socketio": sio, "native": native, "total": sio + native},
            "users_online": self.hub.users_online(),
            "rooms": self.hub.room_count()?,
            "uptime_s": self.started.elapsed().as_secs(),
        }))
    }

    fn presence(&self, room: &str) -> Value {
        Value::Array(self.hub.presence(room).iter().map(wire::present).collect())
    }
}

/// A field that, when present, must be a string (`null` is refused).
fn present_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

pub(crate) async fn body<B>(req: Request<B>) -> Result<Value, ApiError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let bytes = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return Err(ApiError::TooLarge),
        Err(e) => return Err(ApiError::BadRequest(format!("reading the body: {e}"))),
    };
    serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))
}

fn decode(segment: &str) -> Result<String, ApiError> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::NotFoundWhat("room name is not UTF-8".into()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
