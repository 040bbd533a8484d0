//! Engine.IO v4 packets and polling payloads (`switchboard-engine`).
//!
//! Input: `[max_packets, text...]` (invalid UTF-8 is replaced, as an HTTP
//! body decoded lossily would be refused earlier; the decoder sees `&str`).
//!
//! Invariants: decoding never panics; a payload never yields more than
//! `max_packets` packets; every packet decoded re-encodes to text that
//! decodes to the same packet, and a decoded payload re-encodes to one that
//! decodes to the same packets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_engine::packet::Packet;
use switchboard_engine::payload::{decode_payload, encode_payload};
use switchboard_fuzz::CountingAlloc;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fuzz_target!(|data: &[u8]| {
    let Some((&max, rest)) = data.split_first() else {
        return;
    };
    let max = usize::from(max % 64) + 1;
    let text = String::from_utf8_lossy(rest);

    if let Ok(p) = Packet::decode_text(&text) {
        let again = Packet::decode_text(&p.encode_text()).expect("a re-encoded packet decodes");
        assert_eq!(again, p);
    }
    if let Ok(packets) = decode_payload(&text, max) {
        assert!(packets.len() <= max, "{} packets over the limit {max}", packets.len());
        let body = encode_payload(&packets);
        let again = decode_payload(&body, max).expect("a re-encoded payload decodes");
        assert_eq!(again, packets);
    }
});
