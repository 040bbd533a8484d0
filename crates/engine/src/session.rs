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

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use switchboard_wire::{Message, Utf8Bytes};

use crate::outbox::Outbox;
use crate::packet::{Handshake, Packet};
use crate::payload::SEPARATOR;
use crate::stamp::Stamp;

/// The `noop` packet as queued output.
const NOOP: &str = "6";

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
    /// Offer and accept the polling → WebSocket upgrade (default true).
    pub allow_upgrades: bool,
    /// Most bytes queued for a client that does not keep up (default
    /// 8 MiB, at most 4 GiB); beyond it the session ends ([`CloseReason::Overflow`]), so a
    /// slow consumer cannot grow the server's memory without bound.
    pub max_buffered: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            max_payload: 1_000_000,
            upgrade_timeout: Duration::from_secs(10),
            allow_upgrades: true,
            max_buffered: 8 << 20,
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
    /// The client broke the protocol (or an upper layer refused its data).
    TransportError,
    /// The connection was lost (the WebSocket ended, a poll was abandoned).
    TransportClose,
    /// The client did not keep up: more than `max_buffered` bytes queued.
    Overflow,
}

/// Data the session delivers to the layer above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A text message.
    Message(String),
    /// A binary message.
    Binary(bytes::Bytes),
}

/// Sees a session's packets as the WebSocket transport carries them (one
/// frame per packet, binary data as binary frames), whichever transport is
/// in use: a capture of the connection. Transport plumbing (the upgrade
/// probe, `upgrade`, `noop`) is not shown.
///
/// Called with the session's lock held: only queue, never block.
pub trait Tap: Send + Sync {
    /// A packet from the client (`incoming`) or to it.
    fn frame(&self, incoming: bool, frame: &Message);

    /// The session ended (called once by the engine server, without the
    /// lock held).
    fn ended(&self, reason: CloseReason) {
        let _ = reason;
    }
}

/// A session's tap, if any (one thin pointer: `None` costs one check per
/// packet, and 8 bytes in every session).
#[derive(Default)]
#[allow(
    clippy::redundant_allocation,
    reason = "8 bytes in every session instead of 16"
)]
struct TapSlot(Option<Box<Arc<dyn Tap>>>);

impl std::fmt::Debug for TapSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Tap" } else { "None" })
    }
}

/// One session's protocol state.
#[derive(Debug)]
pub struct Session {
    config: Arc<SessionConfig>,
    transport: Transport,
    /// Probe answered on a WebSocket: the `upgrade` packet is due by then.
    probing: Option<Stamp>,
    /// Encoded packets for the client: text frames hold the packet type and
    /// data (`4hello`); binary frames are binary message packets.
    outbox: Outbox,
    /// Payload bytes in `outbox` (4 GiB at most: beyond, the session ends).
    queued: u32,
    /// Packets for the WebSocket that bypass the outbox (the probe answer).
    probe_answer: bool,
    next_ping: Stamp,
    pong_deadline: Option<Stamp>,
    closed: Option<CloseReason>,
    tap: TapSlot,
}

/// When a new session is pinged first: between half an interval and one
/// interval after it opened, at a stable pseudo-random point taken from its
/// id. Sessions opened in a wave (a restart, a network coming back) are then
/// pinged spread over half an interval, and stay spread, instead of all in
/// one sweep every interval. A client only needs a ping within
/// `ping_interval + ping_timeout`; one that never answers is still dropped
/// `ping_timeout` after its first ping.
fn first_ping(sid: &str, interval: Duration) -> Duration {
    let ms = interval.as_millis() as u64;
    Duration::from_millis(ms - switchboard_wire::io::park::phase_ms(sid, ms - ms / 2 + 1))
}

impl Session {
    /// Opens a session on `transport`; the `open` packet is queued first.
    pub fn open(sid: &str, transport: Transport, config: Arc<SessionConfig>, now: Instant) -> Self {
        let ping_interval = config.ping_interval;
        let handshake = Handshake {
            sid: sid.to_owned(),
            upgrades: match transport {
                Transport::Polling if config.allow_upgrades => vec!["websocket".into()],
                _ => vec![],
            },
            ping_interval: config.ping_interval.as_millis() as u64,
            ping_timeout: config.ping_timeout.as_millis() as u64,
            max_payload: config.max_payload as u64,
        };
        let mut outbox = Outbox::default();
        outbox.push_back(encode(&handshake.to_packet()));
        Self {
            config,
            transport,
            probing: None,
            outbox,
            queued: 0,
            probe_answer: false,
            next_ping: Stamp::of(now + first_ping(sid, ping_interval)),
            pong_deadline: None,
            closed: None,
            tap: TapSlot::default(),
        }
    }

    /// Shows every packet from now on to `tap` (`None`: stop).
    pub fn set_tap(&mut self, tap: Option<Arc<dyn Tap>>) {
        self.tap = TapSlot(tap.map(Box::new));
    }

    /// The tap, if one is set.
    pub fn tap(&self) -> Option<&Arc<dyn Tap>> {
        self.tap.0.as_deref()
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
    pub fn send(&mut self, packet: &Packet) {
        self.send_encoded(encode(packet));
    }

    /// Queues an already encoded packet: a text frame holding the packet type
    /// and data (`4…`), or binary message data. Broadcasts encode once and
    /// share the bytes between sessions this way.
    pub fn send_encoded(&mut self, message: Message) {
        if self.closed.is_some() {
            return;
        }
        let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
        self.queued = self.queued.saturating_add(len);
        self.outbox.push_back(message);
        if self.queued as usize > self.config.max_buffered || self.queued == u32::MAX {
            self.end(CloseReason::Overflow);
        }
    }

    /// An encoded packet for the WebSocket, handed straight back when
    /// nothing is ahead of it: the session is open on the WebSocket transport
    /// and holds no packet (nor a probe answer) to write first. The caller
    /// writes it at once, so packets keep the order of these calls; the
    /// queue is not touched (an idle session keeps no queue). Otherwise it
    /// is queued as [`Session::send_encoded`] does, and `None` returned.
    pub fn send_encoded_now(&mut self, message: Message) -> Option<Message> {
        if self.closed.is_none()
            && self.transport == Transport::WebSocket
            && !self.probe_answer
            && self.outbox.is_empty()
        {
            self.tap_out(&message);
            return Some(message);
        }
        self.send_encoded(message);
        None
    }

    fn pop(&mut self) -> Option<Message> {
        let m = self.outbox.pop_front()?;
        // Control packets (open, ping, noop, close) are not counted: tiny.
        self.queued = self
            .queued
            .saturating_sub(u32::try_from(m.len()).unwrap_or(u32::MAX));
        self.tap_out(&m);
        Some(m)
    }

    /// Shows an outgoing packet to the tap, if any (noops are not shown).
    fn tap_out(&self, m: &Message) {
        if let Some(tap) = &self.tap.0
            && !matches!(m, Message::Text(t) if t.as_str() == NOOP)
        {
            tap.frame(false, m);
        }
    }

    /// Number of packets waiting for the transport.
    pub fn backlog(&self) -> usize {
        self.outbox.len()
    }

    /// Closes the session from the server side (a `close` packet is queued).
    pub fn close(&mut self) {
        if self.closed.is_none() {
            self.outbox.push_back(encode(&Packet::Close));
            self.closed = Some(CloseReason::ServerClose);
        }
    }

    /// Handles a packet received on `via`.
    pub fn on_packet(&mut self, via: Transport, packet: Packet, now: Instant) -> Option<Inbound> {
        if self.closed.is_some() {
            return None;
        }
        if let Some(tap) = &self.tap.0
            && !matches!(&packet, Packet::Upgrade | Packet::Noop)
            && !matches!(&packet, Packet::Ping(p) if p == "probe")
        {
            tap.frame(true, &encode(&packet));
        }
        match packet {
            Packet::Pong(ref data) if data.is_empty() => {
                self.pong_deadline = None;
                None
            }
            Packet::Ping(data) if data == "probe" && via == Transport::WebSocket => {
                if self.transport == Transport::Polling
                    && self.probing.is_none()
                    && self.config.allow_upgrades
                {
                    self.probe_answer = true;
                    self.probing = Some(Stamp::of(now + self.config.upgrade_timeout));
                    // Release a waiting GET so the client can pause polling.
                    self.outbox.push_back(Message::Text(NOOP.into()));
                } else {
                    self.fail();
                }
                None
            }
            Packet::Upgrade if via == Transport::WebSocket => {
                if self.probing.take().is_some() {
                    self.transport = Transport::WebSocket;
                    // Whatever was only there to release the poll is moot now.
                    self.outbox
                        .retain(|m| !matches!(m, Message::Text(t) if t.as_str() == NOOP));
                } else {
                    self.fail();
                }
                None
            }
            Packet::Message(m) => Some(Inbound::Message(m)),
            Packet::Binary(b) => Some(Inbound::Binary(b)),
            Packet::Close => {
                self.end(CloseReason::ClientClose);
                if via == Transport::Polling {
                    // A GET still waiting is released with `noop`.
                    self.outbox.push_back(Message::Text(NOOP.into()));
                }
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
        self.end(CloseReason::TransportError);
    }

    /// Ends the session for `reason` unless it already ended. Except for a
    /// server close, queued output is dropped: nobody will fetch it.
    pub fn end(&mut self, reason: CloseReason) {
        if self.closed.is_none() {
            self.closed = Some(reason);
            self.outbox.clear();
            self.queued = 0;
            self.probe_answer = false;
        }
    }

    /// The client broke the protocol (or the layer above refused its data).
    pub fn on_transport_error(&mut self) {
        self.fail();
    }

    /// The WebSocket that was probing an upgrade went away: stay on polling.
    pub fn upgrade_aborted(&mut self) {
        if self.probing.take().is_some() {
            self.probe_answer = false;
        }
    }

    /// Whether an upgrade has been probed and not yet completed or aborted.
    pub fn upgrading(&self) -> bool {
        self.probing.is_some()
    }

    /// The next instant [`Session::handle_timeout`] must run at.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        let mut t = self.pong_deadline.unwrap_or(self.next_ping);
        if let Some(deadline) = self.probing {
            t = t.min(deadline);
        }
        Some(t.instant())
    }

    /// Sends pings and enforces the pong and upgrade deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        let stamp = Stamp::of(now);
        if self.pong_deadline.is_some_and(|d| stamp >= d) {
            self.closed = Some(CloseReason::PingTimeout);
            // The peer is gone: nothing queued will be delivered.
            self.outbox.clear();
            self.queued = 0;
            return;
        }
        if self.probing.is_some_and(|deadline| stamp >= deadline) {
            // The probe timed out: stay on polling.
            self.probing = None;
        }
        if self.pong_deadline.is_none() && stamp >= self.next_ping {
            self.outbox.push_back(Message::Text("2".into()));
            // Deadlines follow the schedule, not the (possibly late) instant
            // this ran at, so a silent peer is dropped at interval + timeout;
            // after a long stall the peer still gets half the timeout.
            let timeout = self.config.ping_timeout;
            let scheduled = self.next_ping.instant();
            self.pong_deadline = Some(Stamp::of((scheduled + timeout).max(now + timeout / 2)));
            self.next_ping = Stamp::of((scheduled + self.config.ping_interval).max(now));
        }
    }

    /// Frames for the WebSocket: the probe answer, then, once upgraded (or
    /// opened on WebSocket), the outbox.
    pub fn drain_ws(&mut self, f: impl FnMut(Message)) {
        self.drain_ws_up_to(usize::MAX, f);
    }

    /// [`Session::drain_ws`], stopping once `budget` bytes are handed over
    /// (at least one frame goes when the budget is not zero): the rest waits
    /// in the outbox, where it counts against `max_buffered`.
    pub fn drain_ws_up_to(&mut self, mut budget: usize, mut f: impl FnMut(Message)) {
        if std::mem::take(&mut self.probe_answer) {
            f(Message::Text("3probe".into()));
        }
        if self.transport != Transport::WebSocket {
            return;
        }
        while budget > 0
            && let Some(m) = self.pop()
        {
            budget = budget.saturating_sub(m.len().max(1));
            f(m);
        }
    }

    /// [`Session::drain_ws`] into a vector.
    pub fn take_ws_packets(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        self.drain_ws(|m| out.push(m));
        out
    }

    /// Frees the queues' memory when they are empty (an idle session then
    /// holds no heap memory of its own).
    pub fn release_idle(&mut self) {
        self.outbox.release_if_empty();
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
        while let Some(m) = self.outbox.front() {
            let len = match m {
                Message::Text(t) => t.as_str().len(),
                Message::Binary(b) => 1 + b.len().div_ceil(3) * 4,
            };
            if !body.is_empty() && body.len() + 1 + len > self.config.max_payload {
                break;
            }
            if !body.is_empty() {
                body.push(SEPARATOR);
            }
            match m {
                Message::Text(t) => body.push_str(t.as_str()),
                Message::Binary(b) => {
                    body.push('b');
                    base64::engine::general_purpose::STANDARD.encode_string(b, &mut body);
                }
            }
            self.pop();
        }
        Some(body)
    }
}

/// A packet as an outbox frame: binary data as a binary frame, everything
/// else as text.
pub fn encode(packet: &Packet) -> Message {
    match packet {
        Packet::Binary(b) => Message::Binary(b.clone()),
        other => Message::Text(Utf8Bytes::from(other.encode_text())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Arc<SessionConfig> {
        Arc::new(SessionConfig {
            ping_interval: Duration::from_millis(300),
            ping_timeout: Duration::from_millis(200),
            max_payload: 100,
            upgrade_timeout: Duration::from_millis(1000),
            allow_upgrades: true,
            max_buffered: 1 << 20,
        })
    }

    /// Every idle connection holds one: its deadlines are 8-byte stamps and
    /// its outbox one pointer.
    #[test]
    fn a_session_stays_small() {
        assert!(size_of::<Session>() <= 56, "{}", size_of::<Session>());
    }

    #[test]
    fn polling_session_starts_with_the_open_packet() {
        let now = Instant::now();
        let mut s = Session::open("abc", Transport::Polling, cfg(), now);
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
        let opened = Instant::now();
        let mut s = Session::open("a", Transport::WebSocket, cfg(), opened);
        s.take_ws_packets();
        // The first ping: within the interval, not before half of it.
        let t0 = s.poll_timeout().expect("a ping is scheduled");
        let first = t0 - opened;
        assert!(
            first >= Duration::from_millis(150) && first <= Duration::from_millis(300),
            "{first:?}"
        );
        assert_eq!(first, first_ping("a", Duration::from_millis(300)));
        s.handle_timeout(t0 - Duration::from_millis(1));
        assert!(s.take_ws_packets().is_empty(), "not before it is due");
        s.handle_timeout(t0);
        assert_eq!(s.take_ws_packets(), vec![Message::text("2")]);
        // Answered: the next ping comes an interval later.
        s.on_packet(
            Transport::WebSocket,
            Packet::Pong(String::new()),
            t0 + Duration::from_millis(50),
        );
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_millis(300)));
        s.handle_timeout(t0 + Duration::from_millis(300));
        assert_eq!(s.take_ws_packets(), vec![Message::text("2")]);
        // Not answered: closed at interval + timeout.
        s.handle_timeout(t0 + Duration::from_millis(499));
        assert_eq!(s.closed(), None);
        s.handle_timeout(t0 + Duration::from_millis(500));
        assert_eq!(s.closed(), Some(CloseReason::PingTimeout));
    }

    #[test]
    fn first_pings_of_a_wave_are_spread_over_half_an_interval() {
        let interval = Duration::from_secs(25);
        let firsts: Vec<Duration> = (0..1000)
            .map(|i| first_ping(&format!("sid-{i}"), interval))
            .collect();
        assert!(firsts.iter().all(|&f| f >= interval / 2 && f <= interval));
        // Every second of the half interval gets some of them, none most.
        let mut per_second = [0u32; 14];
        for f in &firsts {
            per_second[(f.as_secs() - 12) as usize] += 1;
        }
        assert!(
            per_second[1..13].iter().all(|&n| n > 20 && n < 200),
            "{per_second:?}"
        );
    }

    #[test]
    fn upgrade_answers_the_probe_releases_the_poll_and_switches() {
        let now = Instant::now();
        let mut s = Session::open("a", Transport::Polling, cfg(), now);
        s.take_poll_payload();
        s.on_packet(Transport::WebSocket, Packet::Ping("probe".into()), now);
        assert_eq!(s.take_ws_packets(), vec![Message::text("3probe")]);
        assert_eq!(
            s.take_poll_payload().as_deref(),
            Some("6"),
            "noop releases the GET"
        );
        s.send(&Packet::Message("queued during upgrade".into()));
        s.on_packet(Transport::WebSocket, Packet::Upgrade, now);
        assert_eq!(s.transport(), Transport::WebSocket);
        assert_eq!(
            s.take_ws_packets(),
            vec![Message::text("4queued during upgrade")]
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
            let mut s = Session::open("a", Transport::Polling, cfg(), now);
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
        let mut s = Session::open("a", Transport::Polling, cfg(), now);
        s.take_poll_payload();
        assert_eq!(
            s.on_packet(Transport::Polling, Packet::Message("hi".into()), now),
            Some(Inbound::Message("hi".into()))
        );
        for i in 0..10 {
            s.send(&Packet::Message(format!("{i:020}")));
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

    #[test]
    fn a_client_that_does_not_keep_up_ends_the_session() {
        let now = Instant::now();
        let mut s = Session::open("a", Transport::WebSocket, cfg(), now);
        s.take_ws_packets();
        let chunk = "x".repeat(64 << 10);
        // cfg() allows 1 MiB: 15 packets of 64 KiB + 1 fit, 16 do not.
        for _ in 0..15 {
            s.send(&Packet::Message(chunk.clone()));
        }
        assert_eq!(s.closed(), None);
        // Draining with a budget hands over part and keeps the rest counted.
        let mut taken = 0;
        s.drain_ws_up_to(200 << 10, |m| taken += m.len());
        assert!((200 << 10..=300 << 10).contains(&taken), "{taken}");
        for _ in 0..3 {
            s.send(&Packet::Message(chunk.clone()));
        }
        assert_eq!(s.closed(), None, "what was handed over no longer counts");
        s.send(&Packet::Message(chunk.clone()));
        s.send(&Packet::Message(chunk));
        assert_eq!(s.closed(), Some(CloseReason::Overflow));
        assert_eq!(s.backlog(), 0, "nothing is kept for a session that ended");
    }

    #[derive(Default)]
    struct Seen(std::sync::Mutex<Vec<(bool, Message)>>);

    impl Tap for Seen {
        fn frame(&self, incoming: bool, frame: &Message) {
            self.0.lock().unwrap().push((incoming, frame.clone()));
        }
    }

    #[test]
    fn a_tap_sees_packets_as_websocket_frames_on_either_transport() {
        let now = Instant::now();
        let mut s = Session::open("a", Transport::Polling, cfg(), now);
        s.take_poll_payload();
        let seen = Arc::new(Seen::default());
        s.set_tap(Some(seen.clone()));
        s.on_packet(Transport::Polling, Packet::Message("up".into()), now);
        s.send(&Packet::Message("down".into()));
        s.send(&Packet::Binary(bytes::Bytes::from_static(b"\x01\x02")));
        s.take_poll_payload();
        // The upgrade's plumbing is not shown; what follows it is.
        s.on_packet(Transport::WebSocket, Packet::Ping("probe".into()), now);
        s.on_packet(Transport::WebSocket, Packet::Upgrade, now);
        s.take_ws_packets();
        s.handle_timeout(now + Duration::from_millis(300));
        s.take_ws_packets();
        s.on_packet(Transport::WebSocket, Packet::Pong(String::new()), now);
        s.set_tap(None);
        s.send(&Packet::Message("unseen".into()));
        s.take_ws_packets();
        assert_eq!(
            *seen.0.lock().unwrap(),
            vec![
                (true, Message::text("4up")),
                (false, Message::text("4down")),
                (false, Message::binary(&b"\x01\x02"[..])),
                (false, Message::text("2")),
                (true, Message::text("3")),
            ]
        );
    }

    #[test]
    fn a_frame_with_nothing_ahead_of_it_is_handed_back_and_the_rest_queued_in_order() {
        let now = Instant::now();
        let mut s = Session::open("a", Transport::WebSocket, cfg(), now);
        let seen = Arc::new(Seen::default());
        s.set_tap(Some(seen.clone()));
        // The open packet is still queued: the frame goes behind it.
        assert_eq!(s.send_encoded_now(Message::text("4one")), None);
        assert_eq!(s.backlog(), 2);
        let first = s.take_ws_packets();
        assert_eq!(first.len(), 2);
        assert!(matches!(&first[0], Message::Text(t) if t.as_str().starts_with("0{")));
        assert_eq!(first[1], Message::text("4one"));
        // Nothing queued: handed back, the queue untouched, the tap told.
        assert_eq!(
            s.send_encoded_now(Message::text("4two")),
            Some(Message::text("4two"))
        );
        assert_eq!(s.backlog(), 0);
        // A ping due is queued first; what follows it waits behind it.
        s.handle_timeout(now + Duration::from_millis(300));
        assert_eq!(s.send_encoded_now(Message::text("4three")), None);
        assert_eq!(
            s.take_ws_packets(),
            vec![Message::text("2"), Message::text("4three")]
        );
        let out: Vec<_> = seen
            .0
            .lock()
            .unwrap()
            .iter()
            .skip(1)
            .map(|(_, m)| m.clone())
            .collect();
        assert_eq!(
            out,
            vec![
                Message::text("4one"),
                Message::text("4two"),
                Message::text("2"),
                Message::text("4three")
            ]
        );
        // Not on the WebSocket yet, or ended: never handed back.
        let mut p = Session::open("b", Transport::Polling, cfg(), now);
        p.take_poll_payload();
        assert_eq!(p.send_encoded_now(Message::text("4x")), None);
        assert_eq!(p.backlog(), 1);
        s.end(CloseReason::TransportClose);
        assert_eq!(s.send_encoded_now(Message::text("4y")), None);
        assert_eq!(s.backlog(), 0);
    }
}
