//! Socket.IO packets as Engine.IO message frames, encoded once.

use serde_json::Value;
use switchboard_wire::{Message, Utf8Bytes};

use super::args::Args;
use crate::packet::{Packet, PacketKind};

/// An encoded packet: the text frame (`4` + packet) and its attachments.
/// Cloning shares the bytes.
#[derive(Debug, Clone)]
pub(crate) struct Frames {
    pub(crate) text: Utf8Bytes,
    pub(crate) binary: Vec<bytes::Bytes>,
}

impl Frames {
    pub(crate) fn encode(packet: &Packet) -> Self {
        let mut text = String::with_capacity(64);
        text.push('4');
        text.push_str(&packet.encode());
        Self {
            text: Utf8Bytes::from(text),
            binary: packet.attachments.clone(),
        }
    }

    pub(crate) fn messages(&self) -> impl Iterator<Item = Message> + '_ {
        std::iter::once(Message::Text(self.text.clone()))
            .chain(self.binary.iter().cloned().map(Message::Binary))
    }
}

/// An event packet `[event, ...args]`.
pub(crate) fn event(nsp: &str, event: &str, args: Args, id: Option<u64>) -> Packet {
    let mut data = Vec::with_capacity(args.values.len() + 1);
    data.push(Value::String(event.to_owned()));
    data.extend(args.values);
    Packet {
        kind: PacketKind::Event,
        nsp: nsp.to_owned(),
        id,
        data: Some(Value::Array(data)),
        attachments: args.binary,
    }
}

/// An ack packet `[...args]`.
pub(crate) fn ack(nsp: &str, id: u64, args: Args) -> Packet {
    Packet {
        kind: PacketKind::Ack,
        nsp: nsp.to_owned(),
        id: Some(id),
        data: Some(Value::Array(args.values)),
        attachments: args.binary,
    }
}

/// A control packet (connect reply, connect error, disconnect).
pub(crate) fn control(kind: PacketKind, nsp: &str, data: Option<Value>) -> Packet {
    Packet {
        kind,
        nsp: nsp.to_owned(),
        id: None,
        data,
        attachments: Vec::new(),
    }
}
