//! Server settings: path, timings, sizes, transports, CORS and origins.

use std::time::Duration;

use crate::session::SessionConfig;

/// Which origins may use the server (checked on every request that carries
/// an `Origin` header) and what CORS headers polling responses carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cors {
    /// No CORS headers: browsers only allow same-origin polling.
    #[default]
    Off,
    /// `Access-Control-Allow-Origin: *` (no credentials).
    Any,
    /// Reflect the request's origin when it is in the list.
    List {
        /// Allowed origins, e.g. `https://app.example.com`.
        origins: Vec<String>,
        /// Send `Access-Control-Allow-Credentials: true`.
        credentials: bool,
    },
}

/// Settings of an [`Engine`](super::Engine).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// Request path the server answers on (default `/engine.io/`).
    pub path: String,
    /// Heartbeat and payload limits (`maxHttpBufferSize` is `max_payload`).
    pub session: SessionConfig,
    /// Allow HTTP long-polling (default true).
    pub polling: bool,
    /// Allow WebSocket (default true).
    pub websocket: bool,
    /// CORS for polling.
    pub cors: Cors,
    /// When set, requests whose `Origin` is not listed (or is `null`) are
    /// refused with 403; requests without `Origin` (non-browser clients)
    /// pass.
    pub allowed_origins: Option<Vec<String>>,
    /// How long a server-closed polling session keeps its last packets for
    /// the client's next GET.
    pub close_grace: Duration,
    /// Accept permessage-deflate on the WebSocket transport (default off, as
    /// in the reference server: it costs memory per connection).
    pub ws_deflate: bool,
    /// How long a WebSocket session stays quiet before its task parks
    /// (default 2 s; up to one sweep tick more): a parked session holds no
    /// task, and its next event starts one again.
    pub park_idle_after: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            path: "/engine.io/".into(),
            session: SessionConfig::default(),
            polling: true,
            websocket: true,
            cors: Cors::Off,
            allowed_origins: None,
            close_grace: Duration::from_secs(5),
            ws_deflate: false,
            park_idle_after: Duration::from_secs(2),
        }
    }
}

impl EngineConfig {
    /// Sets the path (a trailing `/` is added).
    pub fn path(mut self, path: &str) -> Self {
        let mut p = path.to_owned();
        if !p.starts_with('/') {
            p.insert(0, '/');
        }
        if !p.ends_with('/') {
            p.push('/');
        }
        self.path = p;
        self
    }

    /// Sets the ping interval.
    pub fn ping_interval(mut self, d: Duration) -> Self {
        self.session.ping_interval = d;
        self
    }

    /// Sets the ping timeout.
    pub fn ping_timeout(mut self, d: Duration) -> Self {
        self.session.ping_timeout = d;
        self
    }

    /// Sets the largest accepted payload (`maxHttpBufferSize`).
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.session.max_payload = bytes;
        self
    }

    /// Sets CORS.
    pub fn cors(mut self, cors: Cors) -> Self {
        self.cors = cors;
        self
    }

    /// Restricts origins.
    pub fn allowed_origins(mut self, origins: Option<Vec<String>>) -> Self {
        self.allowed_origins = origins;
        self
    }

    /// Enables or disables transports.
    pub fn transports(mut self, polling: bool, websocket: bool) -> Self {
        self.polling = polling;
        self.websocket = websocket;
        self
    }

    /// Sets how long a WebSocket session stays quiet before its task parks.
    pub fn park_idle_after(mut self, after: Duration) -> Self {
        self.park_idle_after = after;
        self
    }

    /// Enables permessage-deflate on the WebSocket transport.
    pub fn ws_deflate(mut self, on: bool) -> Self {
        self.ws_deflate = on;
        self
    }

    /// Sweep period of the heartbeat timer: a twentieth of the shorter
    /// heartbeat period and a tenth of the upgrade timeout (a probe's
    /// deadline needs less precision than a dead peer's), within 2 ms–1 s.
    /// With the defaults (25 s, 20 s, 10 s) that is 1 s. Every tick visits
    /// every session, a cache miss each: with 18,000 idle Socket.IO
    /// connections a 500 ms tick was a fifth of the server's CPU time.
    pub(crate) fn tick(&self) -> Duration {
        let s = &self.session;
        let heartbeat = s.ping_interval.min(s.ping_timeout) / 20;
        let upgrade = s.upgrade_timeout / 10;
        heartbeat
            .min(upgrade)
            .clamp(Duration::from_millis(2), Duration::from_secs(1))
    }

    /// Sweeps a WebSocket session stays quiet before its task parks.
    pub(crate) fn park_ticks(&self) -> u32 {
        switchboard_wire::io::park::park_ticks(self.park_idle_after, self.tick())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(ping_interval: u64, ping_timeout: u64, upgrade_timeout: u64) -> Duration {
        let mut config = EngineConfig::default()
            .ping_interval(Duration::from_millis(ping_interval))
            .ping_timeout(Duration::from_millis(ping_timeout));
        config.session.upgrade_timeout = Duration::from_millis(upgrade_timeout);
        config.tick()
    }

    #[test]
    fn the_tick_follows_the_shortest_deadline() {
        assert_eq!(EngineConfig::default().tick(), Duration::from_secs(1));
        assert_eq!(tick(25_000, 20_000, 10_000), Duration::from_secs(1));
        // A twentieth of the heartbeat, a tenth of the upgrade timeout.
        assert_eq!(tick(300, 200, 10_000), Duration::from_millis(10));
        assert_eq!(tick(25_000, 20_000, 2_000), Duration::from_millis(200));
        assert_eq!(tick(100_000, 100_000, 100_000), Duration::from_secs(1));
        assert_eq!(tick(10, 10, 10), Duration::from_millis(2));
    }
}
