//! One Engine.IO session, sans-IO: the heartbeat, the polling outbox, and the
//! polling → WebSocket upgrade, driven by explicit `now` values.
//!
//! The driver feeds packets that arrived on either transport with
//! [`Session::on_packet`], calls [`Session::handle_timeout`] at
//! [`Session::poll_timeout`], and moves queued output to the active transport
//! ([`Session::take_ws_packets`] or a polling response built by
//! [`Session::take_poll_payload`]). The rules follow the Engine.IO v4
//! protocol: the server pings every `ping_interval` and closes the session if
//! no pong arrives within `ping_timeout`; one GET may wait at a time; during an
//! upgrade the probe is answered on the WebSocket and a pending GET released
//! with `noop`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::packet::{Handshake, Packet};
use crate::payload::SEPARATOR;

/// Session timing and size settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Time between server pings (default 25 s).
    pub ping_interval: Duration,
    /// Time the client has to answer a ping (default 20 s).
    pub ping_timeout: Duration,
    /// Largest accepted payload in bytes (default 1,000,000).
    pub max_payload: usize,
    /// Time a client has to finish an upgrade after its probe (default 10 s).
    pub upgrade_timeout: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            max_payload: 1_000_000,
            upgrade_timeout: Duration::from_secs(10),
        }
    }
}

/// The transport a packet travelled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTP long-polling.
    Polling,
    /// WebSocket.
    WebSocket,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// No pong within `ping_timeout`.
    PingTimeout,
    /// The client sent a `close` packet.
    ClientClose,
    /// The server closed it.
    ServerClose,
    /// The transport failed or the client broke the protocol.
    TransportError,
}

/// Data the session delivers to the layer above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A text message.
    Message(String),
    /// A binary message.
    Binary(bytes::Bytes),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upgrade {
    None,
    /// Probe answered; waiting for the `upgrade` packet until the deadline.
    Probing(Instant),
    Done,
}

/// One session's protocol state.
#[derive(Debug)]
pub struct Session {
    sid: String,
    config: SessionConfig,
    transport: Transport,
    upgrade: Upgrade,
    outbox: VecDeque<Packet>,
    /// Packets for the WebSocket that bypass the outbox (the probe answer).
    ws_direct: VecDeque<Packet>,
    next_ping: Instant,
    pong_deadline: Option<Instant>,
    closed: Option<CloseReason>,
}

impl Session {
    /// Opens a session on `transport`; the `open` packet is queued first.
    pub fn open(sid: String, transport: Transport, config: SessionConfig, now: Instant) -> Self {
        let handshake = Handshake {
            sid: sid.clone(),
            upgrades: match transport {
                Transport::Polling => vec!["websocket".into()],
                Transport::WebSocket => vec![],
            },
            ping_interval: config.ping_interval.as_millis() as u64,
            ping_timeout: config.ping_timeout.as_millis() as u64,
            max_payload: config.max_payload as u64,
        };
        let mut outbox = VecDeque::new();
        outbox.push_back(handshake.to_packet());
        Self {
            sid,
            config,
            transport,
            upgrade: Upgrade::None,
            outbox,
            ws_direct: VecDeque::new(),
            next_ping: now + config.ping_interval,
            pong_deadline: None,
            closed: None,
        }
    }

    /// The session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The transport output goes to.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Why the session ended, once it has.
    pub fn closed(&self) -> Option<CloseReason> {
        self.closed
    }

    /// Queues a packet for the client.
    pub fn send(&mut self, packet: Packet) {
        if self.closed.is_none() {
            self.outbox.push_back(packet);
        }
    }

    /// Closes the session from the server side (a `close` packet is queued).
    pub fn close(&mut self) {
        if self.closed.is_none() {
            self.outbox.push_back(Packet::Close);
            self.closed = Some(CloseReason::ServerClose);
        }
    }

    /// Handles a packet received on `via`.
    pub fn on_packet(&mut self, via: Transport, packet: Packet, now: Instant) -> Option<Inbound> {
        if self.closed.is_some() {
            return None;
        }
        match packet {
            Packet::Pong(ref data) if data.is_empty() => {
                self.pong_deadline = None;
                None
            }
            Packet::Ping(data) if data == "probe" && via == Transport::WebSocket => {
                if self.transport == Transport::Polling && self.upgrade == Upgrade::None {
                    self.ws_direct.push_back(Packet::Pong("probe".into()));
                    self.upgrade = Upgrade::Probing(now + self.config.upgrade_timeout);
                    // Release a waiting GET so the client can pause polling.
                    self.outbox.push_back(Packet::Noop);
                } else {
                    self.fail();
                }
                None
            }
            Packet::Upgrade if via == Transport::WebSocket => {
                if matches!(self.upgrade, Upgrade::Probing(_)) {
                    self.upgrade = Upgrade::Done;
                    self.transport = Transport::WebSocket;
                    // Whatever was only there to release the poll is moot now.
                    self.outbox.retain(|p| *p != Packet::Noop);
                } else {
                    self.fail();
                }
                None
            }
            Packet::Message(m) => Some(Inbound::Message(m)),
            Packet::Binary(b) => Some(Inbound::Binary(b)),
            Packet::Close => {
                self.closed = Some(CloseReason::ClientClose);
                None
            }
            Packet::Noop if via == Transport::Polling => None,
            // open, a non-empty pong, a ping, noop on the WebSocket, upgrade on polling.
            _ => {
                self.fail();
                None
            }
        }
    }

    fn fail(&mut self) {
        if self.closed.is_none() {
            self.closed = Some(CloseReason::TransportError);
        }
    }

    /// The transport failed (socket error, or a protocol error above).
    pub fn on_transport_error(&mut self) {
        self.fail();
    }

    /// The next instant [`Session::handle_timeout`] must run at.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        let mut t = self.pong_deadline.unwrap_or(self.next_ping);
        if let Upgrade::Probing(deadline) = self.upgrade {
            t = t.min(deadline);
        }
        Some(t)
    }

    /// Sends pings and enforces the pong and upgrade deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        if self.pong_deadline.is_some_and(|d| now >= d) {
            self.closed = Some(CloseReason::PingTimeout);
            return;
        }
        if let Upgrade::Probing(deadline) = self.upgrade
            && now >= deadline
        {
            // The probe timed out: stay on polling.
            self.upgrade = Upgrade::None;
        }
        if self.pong_deadline.is_none() && now >= self.next_ping {
            self.outbox.push_back(Packet::Ping(String::new()));
            self.pong_deadline = Some(now + self.config.ping_timeout);
            self.next_ping = now + self.config.ping_interval;
        }
    }

    /// Packets for the WebSocket: the probe answer, then, once upgraded (or
    /// opened on WebSocket), the outbox.
    pub fn take_ws_packets(&mut self) -> Vec<Packet> {
        let mut out: Vec<Packet> = self.ws_direct.drain(..).collect();
        if self.transport == Transport::WebSocket {
            out.extend(self.outbox.drain(..));
        }
        out
    }

    /// Whether a polling GET would get an answer now.
    pub fn has_poll_output(&self) -> bool {
        self.transport == Transport::Polling && !self.outbox.is_empty()
    }

    /// Builds one polling response body from the outbox, at most
    /// `max_payload` bytes (always at least one packet), or `None` when the
    /// outbox is empty (the GET should wait) or the transport is WebSocket.
    pub fn take_poll_payload(&mut self) -> Option<String> {
        if !self.has_poll_output() {
            return None;
        }
        let mut body = String::new();
        while let Some(p) = self.outbox.front() {
            let encoded = p.encode_text();
            if !body.is_empty() && body.len() + 1 + encoded.len() > self.config.max_payload {
                break;
            }
            if !body.is_empty() {
                body.push(SEPARATOR);
            }
            body.push_str(&encoded);
            self.outbox.pop_front();
        }
        Some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SessionConfig {
        SessionConfig {
            ping_interval: Duration::from_millis(300),
            ping_timeout: Duration::from_millis(200),
            max_payload: 100,
            upgrade_timeout: Duration::from_millis(1000),
        }
    }

    #[test]
    fn polling_session_starts_with_the_open_packet() {
        let now = Instant::now();
        let mut s = Session::open("abc".into(), Transport::Polling, cfg(), now);
        let body = s.take_poll_payload().unwrap();
        assert_eq!(
            body,
            r#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":300,"pingTimeout":200,"maxPayload":100}"#
        );
        assert_eq!(
            s.take_poll_payload(),
            None,
            "nothing more: the next GET waits"
        );
    }

    #[test]
    fn heartbeat_pings_and_times_out_without_pong() {
        let t0 = Instant::now();
        let mut s = Session::open("a".into(), Transport::WebSocket, cfg(), t0);
        s.take_ws_packets();
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_millis(300)));
        s.handle_timeout(t0 + Duration::from_millis(300));
        assert_eq!(s.take_ws_packets(), vec![Packet::Ping(String::new())]);
        // Answered: the next ping comes an interval later.
        s.on_packet(
            Transport::WebSocket,
            Packet::Pong(String::new()),
            t0 + Duration::from_millis(350),
        );
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_millis(600)));
        s.handle_timeout(t0 + Duration::from_millis(600));
        assert_eq!(s.take_ws_packets(), vec![Packet::Ping(String::new())]);
        // Not answered: closed at interval + timeout.
        s.handle_timeout(t0 + Duration::from_millis(799));
        assert_eq!(s.closed(), None);
        s.handle_timeout(t0 + Duration::from_millis(800));
        assert_eq!(s.closed(), Some(CloseReason::PingTimeout));
    }

    #[test]
    fn upgrade_answers_the_probe_releases_the_poll_and_switches() {
        let now = Instant::now();
        let mut s = Session::open("a".into(), Transport::Polling, cfg(), now);
        s.take_poll_payload();
        s.on_packet(Transport::WebSocket, Packet::Ping("probe".into()), now);
        assert_eq!(s.take_ws_packets(), vec![Packet::Pong("probe".into())]);
        assert_eq!(
            s.take_poll_payload().as_deref(),
            Some("6"),
            "noop releases the GET"
        );
        s.send(Packet::Message("queued during upgrade".into()));
        s.on_packet(Transport::WebSocket, Packet::Upgrade, now);
        assert_eq!(s.transport(), Transport::WebSocket);
        assert_eq!(
            s.take_ws_packets(),
            vec![Packet::Message("queued during upgrade".into())]
        );
        assert_eq!(s.take_poll_payload(), None);
    }

    #[test]
    fn protocol_violations_end_the_session() {
        let now = Instant::now();
        for (via, p) in [
            (Transport::Polling, Packet::Upgrade),
            (Transport::WebSocket, Packet::Upgrade),
            (Transport::Polling, Packet::Open(String::new())),
            (Transport::WebSocket, Packet::Pong("x".into())),
        ] {
            let mut s = Session::open("a".into(), Transport::Polling, cfg(), now);
            s.on_packet(via, p.clone(), now);
            assert_eq!(
                s.closed(),
                Some(CloseReason::TransportError),
                "{via:?} {p:?}"
            );
        }
    }

    #[test]
    fn messages_pass_through_and_poll_bodies_respect_max_payload() {
        let now = Instant::now();
        let mut s = Session::open("a".into(), Transport::Polling, cfg(), now);
        s.take_poll_payload();
        assert_eq!(
            s.on_packet(Transport::Polling, Packet::Message("hi".into()), now),
            Some(Inbound::Message("hi".into()))
        );
        for i in 0..10 {
            s.send(Packet::Message(format!("{i:020}")));
        }
        let first = s.take_poll_payload().unwrap();
        assert!(first.len() <= 100, "{}", first.len());
        assert_eq!(first.split(SEPARATOR).count(), 4);
        let mut rest = 0;
        while let Some(b) = s.take_poll_payload() {
            rest += b.split(SEPARATOR).count();
        }
        assert_eq!(rest, 6);
        s.on_packet(Transport::Polling, Packet::Close, now);
        assert_eq!(s.closed(), Some(CloseReason::ClientClose));
    }
}
