//! `/metrics`: Prometheus (OpenMetrics text) counters of what the server does.
//!
//! Hot paths hold the counters they bump (an `Arc` to one atomic each), so
//! counting costs one relaxed atomic add; label lookups happen once, here.
//! Gauges of open connections are read from the adapters at scrape time.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;

/// Counters of one protocol.
#[derive(Debug, Clone, Default)]
pub(crate) struct Traffic {
    pub(crate) messages_in: Counter,
    pub(crate) messages_out: Counter,
    pub(crate) bytes_in: Counter,
    pub(crate) bytes_out: Counter,
    pub(crate) heartbeat_timeouts: Counter,
    pub(crate) recovered: Counter,
    pub(crate) not_recovered: Counter,
    pub(crate) queue_drops: Counter,
}

/// Why a request or connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    Rate,
    Rooms,
    Payload,
    ConnectionsPerIp,
    Origin,
    Auth,
    SlowConsumer,
    Forbidden,
}

impl Limit {
    const ALL: [Limit; 8] = [
        Limit::Rate,
        Limit::Rooms,
        Limit::Payload,
        Limit::ConnectionsPerIp,
        Limit::Origin,
        Limit::Auth,
        Limit::SlowConsumer,
        Limit::Forbidden,
    ];

    fn label(self) -> &'static str {
        match self {
            Limit::Rate => "rate",
            Limit::Rooms => "rooms",
            Limit::Payload => "payload",
            Limit::ConnectionsPerIp => "connections_per_ip",
            Limit::Origin => "origin",
            Limit::Auth => "auth",
            Limit::SlowConsumer => "slow_consumer",
            Limit::Forbidden => "forbidden",
        }
    }
}

/// Every metric.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) native: Traffic,
    pub(crate) socketio: Traffic,
    pub(crate) publishes: Counter,
    pub(crate) deliveries: Counter,
    rejections: [Counter; Limit::ALL.len()],
    connections: Family<Labels, Gauge>,
    /// Clustered nodes only (empty families otherwise).
    redis_up: Family<Labels, Gauge>,
    cluster_peers: Family<Labels, Gauge>,
    tasks: Gauge,
    detached: Gauge,
    /// File chunk frames received (uploads) and sent (downloads).
    pub(crate) file_chunks_in: Counter,
    pub(crate) file_chunks_out: Counter,
    /// Uploads whose digest matched.
    pub(crate) files_completed: Counter,
}

/// Open connections at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Open {
    pub(crate) native: usize,
    pub(crate) socketio_websocket: usize,
    pub(crate) socketio_polling: usize,
    /// Whether Redis is reachable, and the other live nodes (clustered).
    pub(crate) cluster: Option<(bool, usize)>,
    /// Tasks alive in the runtime serving the scrape.
    pub(crate) tasks: usize,
    /// Sockets of parked connections watched outside the runtime's reactor.
    pub(crate) detached: usize,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("switchboard");
        let connections = Family::<Labels, Gauge>::default();
        registry.register(
            "connections",
            "Open connections by protocol and transport",
            connections.clone(),
        );
        let per_protocol = |registry: &mut Registry, name: &str, help: &str| {
            let family = Family::<Labels, Counter>::default();
            registry.register(name, help, family.clone());
            let native = family.get_or_create(&vec![("protocol", "native")]).clone();
            let sio = family
                .get_or_create(&vec![("protocol", "socketio")])
                .clone();
            (native, sio)
        };
        let mut native = Traffic::default();
        let mut socketio = Traffic::default();
        (native.messages_in, socketio.messages_in) = per_protocol(
            &mut registry,
            "messages_received",
            "Messages received from clients",
        );
        (native.messages_out, socketio.messages_out) =
            per_protocol(&mut registry, "messages_sent", "Messages sent to clients");
        (native.bytes_in, socketio.bytes_in) = per_protocol(
            &mut registry,
            "bytes_received",
            "Payload bytes received from clients",
        );
        (native.bytes_out, socketio.bytes_out) =
            per_protocol(&mut registry, "bytes_sent", "Payload bytes sent to clients");
        (native.heartbeat_timeouts, socketio.heartbeat_timeouts) = per_protocol(
            &mut registry,
            "heartbeat_timeouts",
            "Connections dropped for silence past ping interval + timeout",
        );
        (native.queue_drops, socketio.queue_drops) = per_protocol(
            &mut registry,
            "queue_drops",
            "Messages dropped for slow consumers (volatile) or connections ended for them",
        );
        let recoveries = Family::<Labels, Counter>::default();
        registry.register(
            "recoveries",
            "Reconnections that asked for missed messages, by outcome",
            recoveries.clone(),
        );
        for (traffic, protocol) in [(&mut native, "native"), (&mut socketio, "socketio")] {
            traffic.recovered = recoveries
                .get_or_create(&vec![("protocol", protocol), ("result", "recovered")])
                .clone();
            traffic.not_recovered = recoveries
                .get_or_create(&vec![("protocol", protocol), ("result", "not_recovered")])
                .clone();
        }
        let publishes = Counter::default();
        registry.register(
            "publishes",
            "Messages published to rooms",
            publishes.clone(),
        );
        let deliveries = Counter::default();
        registry.register(
            "deliveries",
            "Room messages delivered to connections (fan-out)",
            deliveries.clone(),
        );
        let limits = Family::<Labels, Counter>::default();
        registry.register(
            "limit_rejections",
            "Requests and connections refused by a limit or a policy",
            limits.clone(),
        );
        let rejections =
            Limit::ALL.map(|l| limits.get_or_create(&vec![("limit", l.label())]).clone());
        let redis_up = Family::<Labels, Gauge>::default();
        registry.register(
            "cluster_redis_up",
            "1 while Redis is reachable, 0 while the node is degraded (clustered nodes only)",
            redis_up.clone(),
        );
        let cluster_peers = Family::<Labels, Gauge>::default();
        registry.register(
            "cluster_peers",
            "Other live nodes of the cluster, as last read (clustered nodes only)",
            cluster_peers.clone(),
        );
        let tasks = Gauge::default();
        registry.register(
            "runtime_tasks",
            "Tasks alive in the server's runtime (connections, timers, backend calls)",
            tasks.clone(),
        );
        let detached = Gauge::default();
        registry.register(
            "detached_sockets",
            "Sockets of parked connections watched by the server's own epoll instance instead of the runtime's reactor",
            detached.clone(),
        );
        let file_chunks = Family::<Labels, Counter>::default();
        registry.register(
            "file_chunks",
            "File transfer chunk frames by direction (in: uploads, out: downloads)",
            file_chunks.clone(),
        );
        let file_chunks_in = file_chunks
            .get_or_create(&vec![("direction", "in")])
            .clone();
        let file_chunks_out = file_chunks
            .get_or_create(&vec![("direction", "out")])
            .clone();
        let files_completed = Counter::default();
        registry.register(
            "files_completed",
            "File uploads completed with a matching SHA-256",
            files_completed.clone(),
        );
        Self {
            file_chunks_in,
            file_chunks_out,
            files_completed,
            registry,
            native,
            socketio,
            publishes,
            deliveries,
            rejections,
            connections,
            redis_up,
            cluster_peers,
            tasks,
            detached,
        }
    }

    /// Counts one refusal.
    pub(crate) fn reject(&self, limit: Limit) {
        self.rejections[limit as usize].inc();
    }

    /// The exposition text.
    pub(crate) fn render(&self, open: Open) -> String {
        for (labels, n) in [
            (
                vec![("protocol", "native"), ("transport", "websocket")],
                open.native,
            ),
            (
                vec![("protocol", "socketio"), ("transport", "websocket")],
                open.socketio_websocket,
            ),
            (
                vec![("protocol", "socketio"), ("transport", "polling")],
                open.socketio_polling,
            ),
        ] {
            self.connections
                .get_or_create(&labels)
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        if let Some((up, peers)) = open.cluster {
            self.redis_up.get_or_create(&Vec::new()).set(i64::from(up));
            self.cluster_peers
                .get_or_create(&Vec::new())
                .set(i64::try_from(peers).unwrap_or(i64::MAX));
        }
        self.tasks
            .set(i64::try_from(open.tasks).unwrap_or(i64::MAX));
        self.detached
            .set(i64::try_from(open.detached).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_its_labels() {
        let m = Metrics::new();
        m.native.messages_in.inc();
        m.socketio.bytes_out.inc_by(10);
        m.reject(Limit::Rate);
        m.publishes.inc();
        let text = m.render(Open {
            native: 2,
            socketio_websocket: 1,
            socketio_polling: 0,
            cluster: None,
            tasks: 7,
            detached: 3,
        });
        for line in [
            "switchboard_messages_received_total{protocol=\"native\"} 1",
            "switchboard_bytes_sent_total{protocol=\"socketio\"} 10",
            "switchboard_limit_rejections_total{limit=\"rate\"} 1",
            "switchboard_connections{protocol=\"native\",transport=\"websocket\"} 2",
            "switchboard_publishes_total 1",
            "switchboard_runtime_tasks 7",
            "switchboard_detached_sockets 3",
            "switchboard_recoveries_total{protocol=\"native\",result=\"recovered\"} 0",
        ] {
            assert!(text.contains(line), "{line} missing in:\n{text}");
        }
    }
}
