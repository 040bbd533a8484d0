//! The application backend, over HTTP (DESIGN.md §3, "Backend integration"):
//!
//! * **connect proxy** (`connect_url`): each connection's token and headers
//!   are POSTed; the backend answers who the user is (and rooms to join) or
//!   refuses;
//! * **RPC proxy** (`rpc_url`): client events the relay does not know are
//!   POSTed; the backend's JSON answer becomes the ack;
//! * **webhook** (`webhook_url`): `online`/`offline` when a user's first
//!   connection opens or its last one closes, sent in order by one task.
//!
//! With a `secret`, every request carries
//! `X-Switchboard-Signature: sha256=<hex HMAC-SHA256(secret, body)>` so the
//! backend can tell the requests are ours. Request bodies are JSON; see
//! docs/protocol.md for their shapes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

/// Where the backend is.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct BackendConfig {
    /// Connect proxy URL.
    pub connect_url: Option<String>,
    /// RPC proxy URL.
    pub rpc_url: Option<String>,
    /// Online/offline webhook URL.
    pub webhook_url: Option<String>,
    /// HMAC key of the request signature.
    pub secret: Option<String>,
    /// Time the backend has to answer.
    pub timeout: Duration,
}

/// Why the backend did not give what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BackendError {
    /// It answered with a refusal (401/403, or `{"deny": true}`).
    #[error("refused by the backend: {0}")]
    Denied(String),
    /// It could not be reached, timed out, failed (5xx) or answered
    /// something unreadable.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// It answered the RPC with an error status.
    #[error("the backend answered {0}")]
    Failed(u16, Value),
}

/// Who the connect proxy says a connection is.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BackendIdentity {
    pub(crate) user: String,
    #[serde(default)]
    pub(crate) info: Option<Value>,
    /// Rooms the connection joins at once.
    #[serde(default)]
    pub(crate) rooms: Vec<String>,
}

/// What the connect proxy is told of a connection.
#[derive(Debug)]
pub(crate) struct ConnectAttempt<'a> {
    pub(crate) protocol: &'static str,
    pub(crate) token: Option<&'a str>,
    pub(crate) headers: Option<&'a http::HeaderMap>,
    pub(crate) remote: Option<std::net::SocketAddr>,
}

/// Webhooks waiting to be sent; beyond, new ones are dropped (and logged).
const WEBHOOK_QUEUE: usize = 10_000;

/// The backend client.
#[derive(Debug)]
pub(crate) struct Backend {
    client: reqwest::Client,
    config: BackendConfig,
    hooks: Option<tokio::sync::mpsc::Sender<Bytes>>,
}

impl Backend {
    /// A client for `config`, `None` when no URL is set. Call within a
    /// tokio runtime when a webhook URL is set (its sender task starts).
    pub(crate) fn new(config: BackendConfig) -> Option<Arc<Self>> {
        if config.connect_url.is_none() && config.rpc_url.is_none() && config.webhook_url.is_none()
        {
            return None;
        }
        // reqwest's rustls needs a process-wide crypto provider: ring, as
        // everywhere else here. A second install (tests) is refused, harmlessly.
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "backend client with default settings");
                reqwest::Client::new()
            });
        let mut backend = Self {
            client,
            config,
            hooks: None,
        };
        if let Some(url) = backend.config.webhook_url.clone() {
            let (tx, rx) = tokio::sync::mpsc::channel(WEBHOOK_QUEUE);
            backend.hooks = Some(tx);
            let sender = Self {
                client: backend.client.clone(),
                config: backend.config.clone(),
                hooks: None,
            };
            tokio::spawn(async move { sender.send_webhooks(url, rx).await });
        }
        Some(Arc::new(backend))
    }

    /// Whether connections are identified by the backend.
    pub(crate) fn has_connect(&self) -> bool {
        self.config.connect_url.is_some()
    }

    /// Whether unknown events go to the backend.
    pub(crate) fn has_rpc(&self) -> bool {
        self.config.rpc_url.is_some()
    }

    async fn post(&self, url: &str, body: Bytes) -> Result<(u16, Bytes), BackendError> {
        let mut req = self
            .client
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(secret) = &self.config.secret {
            req = req.header("x-switchboard-signature", sign(secret, &body));
        }
        let res = req
            .body(body)
            .send()
            .await
            .map_err(|e| BackendError::Unavailable(describe(e)))?;
        let status = res.status().as_u16();
        let body = res
            .bytes()
            .await
            .map_err(|e| BackendError::Unavailable(describe(e)))?;
        Ok((status, body))
    }

    /// Asks the connect proxy who a connection is.
    pub(crate) async fn connect(
        &self,
        attempt: &ConnectAttempt<'_>,
    ) -> Result<BackendIdentity, BackendError> {
        let Some(url) = &self.config.connect_url else {
            return Err(BackendError::Unavailable("no connect URL".into()));
        };
        let headers: serde_json::Map<String, Value> = attempt
            .headers
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), json!(v.to_str().ok()?))))
            .collect();
        let body = json!({
            "protocol": attempt.protocol,
            "token": attempt.token,
            "headers": headers,
            "remote": attempt.remote.map(|a| a.to_string()),
        });
        let (status, answer) = self.post(url, Bytes::from(body.to_string())).await?;
        let answer: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        let reason = || {
            answer
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("forbidden")
                .to_owned()
        };
        match status {
            401 | 403 => Err(BackendError::Denied(reason())),
            200..=299 if answer.get("deny").and_then(Value::as_bool) == Some(true) => {
                Err(BackendError::Denied(reason()))
            }
            200..=299 => {
                let id: BackendIdentity = serde_json::from_value(answer).map_err(|e| {
                    BackendError::Unavailable(format!("connect answer without user: {e}"))
                })?;
                if id.user.is_empty() || id.user.len() > 256 {
                    return Err(BackendError::Unavailable(
                        "connect answer with an empty or over-long user".into(),
                    ));
                }
                Ok(id)
            }
            s => Err(BackendError::Unavailable(format!("status {s}"))),
        }
    }

    /// Forwards a client event to the RPC proxy; its JSON answer.
    pub(crate) async fn rpc(
        &self,
        user: &str,
        socket: &str,
        event: &str,
        data: &Value,
    ) -> Result<Value, BackendError> {
        let Some(url) = &self.config.rpc_url else {
            return Err(BackendError::Unavailable("no RPC URL".into()));
        };
        let body = json!({"user": user, "socket": socket, "event": event, "data": data});
        let (status, answer) = self.post(url, Bytes::from(body.to_string())).await?;
        let json = serde_json::from_slice::<Value>(&answer);
        let answer = match (status, json) {
            (_, Ok(v)) => v,
            (_, Err(_)) if answer.is_empty() => Value::Null,
            // An error page: its text, for the client to show.
            (300.., Err(_)) => Value::String(
                String::from_utf8_lossy(&answer)
                    .chars()
                    .take(1024)
                    .collect(),
            ),
            (_, Err(_)) => {
                return Err(BackendError::Unavailable(
                    "an RPC answer that is not JSON".into(),
                ));
            }
        };
        match status {
            200..=299 => Ok(answer),
            s => Err(BackendError::Failed(s, answer)),
        }
    }

    /// Queues an `online`/`offline` webhook for `user`.
    pub(crate) fn user_status(&self, user: &str, online: bool) {
        let Some(hooks) = &self.hooks else {
            return;
        };
        let body = json!({
            "type": if online { "online" } else { "offline" },
            "user": user,
            "at": crate::wire::timestamp(std::time::SystemTime::now()),
        });
        if hooks.try_send(Bytes::from(body.to_string())).is_err() {
            tracing::warn!("webhook queue full: a user status change was not sent");
        }
    }

    async fn send_webhooks(self, url: String, mut rx: tokio::sync::mpsc::Receiver<Bytes>) {
        while let Some(body) = rx.recv().await {
            // One retry after a pause; then the change is logged and dropped
            // (GET /api/v1/users/{user} has the current state).
            for attempt in 0..2 {
                match self.post(&url, body.clone()).await {
                    Ok((200..=299, _)) => break,
                    Ok((status, _)) => tracing::warn!(status, attempt, "webhook refused"),
                    Err(e) => tracing::warn!(error = %e, attempt, "webhook failed"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// `sha256=<hex>` of HMAC-SHA256(secret, body).
pub(crate) fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// An HTTP error without its URL (which may carry credentials).
fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    format!("{kind}: {}", e.without_url())
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            super::sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
