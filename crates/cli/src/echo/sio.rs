//! The Socket.IO echo on the reactor: Engine.IO v4 over a WebSocket opened
//! directly (`GET /socket.io/?EIO=4&transport=websocket`, what clients with
//! `transports: ["websocket"]` do), Socket.IO v5 on top, in a few bytes of
//! state per connection.
//!
//! Only that one shape of request is served here. Every other request to the
//! port (long-polling, the polling → WebSocket upgrade that carries a `sid`,
//! other paths, malformed requests) is handed whole to the Engine.IO server
//! of `switchboard_socketio` on a tokio runtime ([`super::reactor::Handoff`]), so
//! both transports and every error answer behave as on `switchboard serve`.
//!
//! The namespace `/` acks an `echo` event with its arguments (binary
//! attachments included) and emits one without an ack back as `echo`; other
//! events are ignored and other namespaces refused, as
//! `switchboard_socketio` does for a server with only `/` and one handler.
//!
//! Heartbeat: the reactor's sweep runs every `pingInterval`; each sweep pings
//! every open session (`2`) and closes one that did not answer the previous
//! ping (`3`), or that has not joined a namespace by its second sweep (the
//! connect timeout).

use bytes::Bytes;
use serde::de::{Deserializer as _, IgnoredAny, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use switchboard_engine::packet::{Handshake, Packet as EioPacket};
use switchboard_engine::server::new_sid;
use switchboard_socketio::packet::{self, Decoded, Limits, Packet, PacketKind, Reassembly};
use switchboard_wire::{Message, MessageRef, OpCode, Replies};

/// The Engine.IO path, as Socket.IO clients use by default.
const PATH: &str = "/socket.io/";

/// The event this server echoes.
const ECHO: &str = "echo";

/// What every Socket.IO connection of the server shares.
#[derive(Debug)]
pub(crate) struct SioSettings {
    /// The Engine.IO handshake; each session gets it with its own sid.
    handshake: Handshake,
    limits: Limits,
}

impl SioSettings {
    pub(crate) fn new(ping_interval_ms: u64, ping_timeout_ms: u64, max_payload: usize) -> Self {
        let handshake = Handshake {
            sid: String::new(),
            upgrades: Vec::new(),
            ping_interval: ping_interval_ms,
            ping_timeout: ping_timeout_ms,
            max_payload: max_payload as u64,
        };
        let mut limits = Limits::default();
        limits.max_attachment_bytes = max_payload;
        Self { handshake, limits }
    }

    /// Whether a request for `target` (path and query) is an Engine.IO v4
    /// WebSocket opened directly, which the reactor serves itself.
    pub(crate) fn is_direct_websocket(target: &str) -> bool {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if path != PATH && path != PATH.trim_end_matches('/') {
            return false;
        }
        let (mut eio4, mut websocket) = (false, false);
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "EIO" => eio4 = v == "4",
                "transport" => websocket = v == "websocket",
                // A session id means an upgrade of a polling session, which
                // lives on the tokio server.
                "sid" => return false,
                _ => {}
            }
        }
        eio4 && websocket
    }
}

/// A protocol violation: the session is dropped at once (Engine.IO's
/// transport error).
#[derive(Debug)]
pub(crate) struct Violation;

/// One session's state.
#[derive(Debug, Default)]
pub(crate) struct SioState {
    /// Joined the namespace `/`.
    connected: bool,
    /// A ping is out and no pong has come back.
    pinged: bool,
    /// Seen by a heartbeat sweep (the connect timeout is two sweeps).
    swept: bool,
    /// A binary packet waiting for its attachments.
    pending: Option<Box<Reassembly>>,
}

impl SioState {
    /// Queues the Engine.IO `open` packet; called once after the upgrade.
    pub(crate) fn open(out: &mut Replies<'_>, settings: &SioSettings) -> Self {
        let handshake = Handshake {
            sid: new_sid().to_string(),
            ..settings.handshake.clone()
        };
        let _ = out.send(Message::text(handshake.to_packet().encode_text()));
        Self::default()
    }

    /// Handles one WebSocket message (lent in place, or a view of an owned
    /// one), queuing the answers on `out`.
    pub(crate) fn on_message(
        &mut self,
        out: &mut Replies<'_>,
        message: MessageRef<'_>,
        settings: &SioSettings,
    ) -> Result<(), Violation> {
        let Some(text) = message.as_text() else {
            let attachment = Bytes::copy_from_slice(message.payload());
            return self.on_attachment(out, attachment);
        };
        if self.pending.is_some() {
            return Err(Violation);
        }
        // The hot path: a Socket.IO packet in an Engine.IO message.
        if let Some(sio) = text.strip_prefix('4') {
            if self.connected {
                match fast_echo(sio) {
                    Some(FastEcho::Ack { id, args }) => {
                        let mut digits = itoa::Buffer::new();
                        let parts = [
                            &b"43"[..],
                            digits.format(id).as_bytes(),
                            b"[",
                            args.as_bytes(),
                        ];
                        let _ = out.send_parts(OpCode::Text, &parts);
                        return Ok(());
                    }
                    Some(FastEcho::Emit) => {
                        // The same packet goes back as it came.
                        let _ = out.send_slice(OpCode::Text, text.as_bytes());
                        return Ok(());
                    }
                    None => {}
                }
            }
            return match packet::decode(sio, &settings.limits) {
                Ok(Decoded::Packet(p)) => self.dispatch(out, p),
                Ok(Decoded::Binary(r)) => {
                    self.pending = Some(Box::new(r));
                    Ok(())
                }
                Err(_) => Err(Violation),
            };
        }
        match EioPacket::decode_text(text) {
            Ok(EioPacket::Pong(data)) if data.is_empty() => {
                self.pinged = false;
                Ok(())
            }
            Ok(EioPacket::Close) => {
                out.close(None);
                Ok(())
            }
            // open, ping, a non-empty pong, upgrade or noop on a WebSocket
            // opened directly: as the Engine.IO session rules.
            _ => Err(Violation),
        }
    }

    fn on_attachment(&mut self, out: &mut Replies<'_>, bytes: Bytes) -> Result<(), Violation> {
        let Some(pending) = self.pending.as_mut() else {
            return Err(Violation);
        };
        match pending.push(bytes) {
            Ok(None) => Ok(()),
            Ok(Some(p)) => {
                self.pending = None;
                self.dispatch(out, p)
            }
            Err(_) => Err(Violation),
        }
    }

    fn dispatch(&mut self, out: &mut Replies<'_>, p: Packet) -> Result<(), Violation> {
        let root = p.nsp == "/";
        match p.kind {
            PacketKind::Connect if root => {
                if !self.connected {
                    self.connected = true;
                    let id = new_sid();
                    let _ = out.send(Message::text(format!(r#"40{{"sid":"{id}"}}"#)));
                }
            }
            PacketKind::Connect => {
                let refusal = Packet {
                    kind: PacketKind::ConnectError,
                    nsp: p.nsp,
                    id: None,
                    data: Some(serde_json::json!({ "message": "Invalid namespace" })),
                    attachments: Vec::new(),
                };
                send(out, &refusal);
            }
            PacketKind::Disconnect => {
                if root {
                    self.connected = false;
                }
            }
            PacketKind::Event => {
                if root && self.connected && p.event_name() == Some(ECHO) {
                    echo(out, p);
                }
            }
            // Acks answer the server's emits, and this server asks for none.
            PacketKind::Ack => {}
            // Only a server may refuse a namespace.
            PacketKind::ConnectError => return Err(Violation),
        }
        Ok(())
    }

    /// The heartbeat sweep: `Err` when the session is dead (the last ping
    /// unanswered, or no namespace joined in time); otherwise pings it.
    pub(crate) fn heartbeat(&mut self, out: &mut Replies<'_>) -> Result<(), Violation> {
        if self.pinged || (self.swept && !self.connected) {
            return Err(Violation);
        }
        self.swept = true;
        self.pinged = true;
        out.send_slice(OpCode::Text, b"2").map_err(|_| Violation)
    }
}

/// What [`fast_echo`] found.
#[derive(Debug, PartialEq, Eq)]
enum FastEcho<'a> {
    /// An `echo` with an ack id: the ack is `43<id>[` followed by `args`
    /// (the arguments after the event name as they came, and the closing
    /// bracket).
    Ack { id: u64, args: &'a str },
    /// An `echo` without one: the packet itself goes back.
    Emit,
}

/// The common case without building a JSON tree or allocating: an `echo`
/// event without attachments in the namespace `/`, `2[<id>]["echo",…]`. The
/// array is validated; the arguments go back as they came, a slice of the
/// input. `None` leaves the packet to the full decoder (other events and
/// namespaces, binary packets, an escaped event name, anything malformed).
fn fast_echo(sio: &str) -> Option<FastEcho<'_>> {
    let rest = sio.strip_prefix('2')?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (id, json) = rest.split_at(digits);
    // Also rules out a namespace (`/nsp,`) and a missing payload.
    if !json.starts_with('[') {
        return None;
    }
    let id: Option<u64> = if digits > 0 {
        Some(id.parse().ok()?)
    } else {
        None
    };
    let name = first_of_array(json)?.get();
    if name != r#""echo""# {
        return None;
    }
    let Some(id) = id else {
        return Some(FastEcho::Emit);
    };
    // The name is borrowed from `json`: the arguments start after it and
    // its comma, and run to the closing bracket.
    let after_name = name.as_ptr() as usize - json.as_ptr() as usize + name.len();
    let tail = json.get(after_name..)?.trim_start();
    let args = tail.strip_prefix(',').unwrap_or(tail);
    Some(FastEcho::Ack { id, args })
}

/// The first element of the JSON array `json`, borrowed from it, after the
/// whole array is validated (no element is kept). `None` if `json` is not an
/// array of at least one element.
fn first_of_array(json: &str) -> Option<&RawValue> {
    struct First;
    impl<'de> Visitor<'de> for First {
        type Value = Option<&'de RawValue>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let first = seq.next_element::<&RawValue>()?;
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(first)
        }
    }
    let mut de = serde_json::Deserializer::from_str(json);
    let first = de.deserialize_seq(First).ok()?;
    de.end().ok()?;
    first
}

/// Acks an `echo` event with its arguments, or emits it back without one.
fn echo(out: &mut Replies<'_>, mut p: Packet) {
    if let Some(id) = p.id {
        if let Some(Value::Array(values)) = &mut p.data {
            values.remove(0);
        }
        p.kind = PacketKind::Ack;
        p.id = Some(id);
    }
    send(out, &p);
}

/// Queues a packet: its text in an Engine.IO message, then its attachments
/// as binary frames.
fn send(out: &mut Replies<'_>, p: &Packet) {
    let mut text = String::with_capacity(64);
    text.push('4');
    text.push_str(&p.encode());
    let _ = out.send(Message::text(text));
    for a in &p.attachments {
        let _ = out.send(Message::Binary(a.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_direct_engine_io_4_websocket_stays_on_the_reactor() {
        let direct = SioSettings::is_direct_websocket;
        assert!(direct("/socket.io/?EIO=4&transport=websocket"));
        assert!(direct("/socket.io/?transport=websocket&EIO=4&t=x"));
        assert!(direct("/socket.io?EIO=4&transport=websocket"));
        assert!(!direct("/socket.io/?EIO=4&transport=polling"));
        assert!(!direct("/socket.io/?EIO=4&transport=websocket&sid=abc"));
        assert!(!direct("/socket.io/?EIO=3&transport=websocket"));
        assert!(!direct("/other/?EIO=4&transport=websocket"));
        assert!(!direct("/socket.io/"));
    }

    #[test]
    fn the_fast_path_answers_echo_only() {
        let ack = |s: &str| match fast_echo(s) {
            Some(FastEcho::Ack { id, args }) => Some(format!("43{id}[{args}")),
            _ => None,
        };
        assert_eq!(
            ack(r#"27["echo",1,"two",{"a":[3]}]"#).as_deref(),
            Some(r#"437[1,"two",{"a":[3]}]"#)
        );
        assert_eq!(
            ack(r#"212[ "echo" , [1] ,"x" ] "#).as_deref(),
            Some(r#"4312[ [1] ,"x" ] "#)
        );
        assert_eq!(ack(r#"20["echo"]"#).as_deref(), Some("430[]"));
        assert_eq!(fast_echo(r#"2["echo","x"]"#), Some(FastEcho::Emit));
        // Left to the full decoder:
        for other in [
            r#"2["other",1]"#,
            r#"2/nsp,["echo",1]"#,
            r#"51-["echo",{"_placeholder":true,"num":0}]"#,
            r#"2["\u0065cho",1]"#,
            r#"2["echo",1"#,
            r#"299999999999999999999["echo"]"#,
            r#"2{"echo":1}"#,
            r#"2["echo",1]x"#,
            r#"2["echo",1,]"#,
            r#"2[]"#,
            "2",
            "0",
        ] {
            assert_eq!(fast_echo(other), None, "{other}");
        }
    }

    #[test]
    fn the_open_packet_carries_the_settings_and_a_fresh_sid() {
        let s = SioSettings::new(25_000, 20_000, 1_000_000);
        let mut ws = switchboard_wire::Connection::new(
            switchboard_wire::Role::Server,
            switchboard_wire::Config::default(),
            None,
        );
        let _ = SioState::open(&mut ws.replies(), &s);
        let mut out = Vec::new();
        while ws.has_output() {
            let chunk = ws.output_chunk().to_vec();
            ws.consume_output(chunk.len());
            out.extend_from_slice(&chunk);
        }
        // One unmasked text frame of < 126 bytes: 0x81, the length, the text.
        assert_eq!(out[0], 0x81);
        let text = std::str::from_utf8(&out[2..]).unwrap();
        let rest = text.strip_prefix(r#"0{"sid":""#).unwrap();
        let (sid, tail) = rest.split_at(20);
        assert!(
            sid.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(
            tail,
            r#"","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
        );
    }
}
