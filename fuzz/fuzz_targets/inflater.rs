//! permessage-deflate receive path (and a compress → inflate round trip).
//!
//! Input layout: `[flags, shape, chunk_mode, seed, codec, payload...]`
//!
//! * flags bit 0: server_no_context_takeover; bit 1: client_no_context_takeover;
//!   bit 2: text (else binary); bit 3: a ping between fragments; bit 4: an
//!   uncompressed message after each compressed one; bit 5: mask key 0 (else
//!   derived from `seed`); bit 6: the round-trip compressor's threshold is
//!   the default 64 (else 0, so everything is compressed); bit 7: the round
//!   trip sends text.
//! * shape: bits 0-2 client_max_window_bits - 8; bits 3-4 messages - 1;
//!   bits 5-7 the most fragments per message - 1.
//! * chunk_mode/seed: how the frames are cut into `feed` calls.
//! * codec: bits 0-3 compression level (mod 10); bits 4-6
//!   server_max_window_bits - 8.
//!
//! Part 1: the payload is cut into messages and each into fragments; each
//! message goes out as masked frames with RSV1 on the first, to a server
//! `Connection` with a 64 KiB message limit. Checked: no panic; every message
//! is ≤ 64 KiB, text is UTF-8; after an error nothing more comes; the heap
//! stays bounded; the same bytes fed whole give the same events; and each
//! message equals what a plain zlib inflater (same context rules) makes of
//! the same payload + `00 00 ff ff`, as long as that reference never hits a
//! final block.
//!
//! Part 2: the same pieces are sent by a client `Connection` (compressing),
//! and decoded by a server, then the other way round: every message must come
//! out exactly as sent, for every level, window size and context mode.
#![no_main]

use bytes::Bytes;
use flate2::{Decompress, FlushDecompress, Status};
use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{
    CountingAlloc, Item, Rng, check_event, chunk_sizes, error_class, mem_peak_since, mem_start,
    split_points,
};
use switchboard_wire::{
    Config, Connection, DeflateConfig, DeflateParams, Event, Message, OpCode, Role,
};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const LIMIT: usize = 64 * 1024;
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

fn frame(out: &mut Vec<u8>, fin: bool, rsv1: bool, opcode: OpCode, key: [u8; 4], payload: &[u8]) {
    out.push((u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode.bits());
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
}

/// What a plain zlib inflater makes of one message: `None` when the result
/// cannot be compared (the stream hit a final block, after which the codec's
/// behaviour is its own choice), else Ok(bytes) or Err(()) for corrupt or
/// over the limit.
fn reference(d: &mut Decompress, payload: &[u8]) -> Option<Result<Vec<u8>, ()>> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&TAIL);
    let mut out = Vec::with_capacity(LIMIT + 1);
    let mut at = 0;
    loop {
        let (i0, o0) = (d.total_in(), d.total_out());
        let status = match d.decompress_vec(&input[at..], &mut out, FlushDecompress::Sync) {
            Ok(s) => s,
            Err(_) => return Some(Err(())),
        };
        at += (d.total_in() - i0) as usize;
        if out.len() > LIMIT {
            return Some(Err(()));
        }
        if status == Status::StreamEnd {
            return None;
        }
        if at == input.len() && out.len() < out.capacity() {
            return Some(Ok(out));
        }
        if d.total_in() == i0 && d.total_out() == o0 {
            return Some(Err(()));
        }
    }
}

struct Shape {
    params: DeflateParams,
    text: bool,
    ping_between: bool,
    plain_after: bool,
    key: [u8; 4],
    messages: usize,
    max_fragments: usize,
    chunk_mode: u8,
    seed: u64,
    level: u32,
    threshold: usize,
    rt_text: bool,
}

fn shape(h: [u8; 5]) -> Shape {
    let seed = u64::from(h[3]) | u64::from(h[1]) << 8 | u64::from(h[4]) << 16;
    let key = if h[0] & 0x20 != 0 {
        [0; 4]
    } else {
        let k = Rng::new(seed ^ 0x004b_4559).next_u64().to_le_bytes();
        [k[0], k[1], k[2], k[3]]
    };
    Shape {
        params: DeflateParams {
            server_no_context_takeover: h[0] & 1 != 0,
            client_no_context_takeover: h[0] & 2 != 0,
            client_max_window_bits: 8 + (h[1] & 7),
            server_max_window_bits: 8 + ((h[4] >> 4) & 7),
        },
        text: h[0] & 4 != 0,
        ping_between: h[0] & 8 != 0,
        plain_after: h[0] & 0x10 != 0,
        key,
        messages: 1 + usize::from((h[1] >> 3) & 3),
        max_fragments: 1 + usize::from(h[1] >> 5),
        chunk_mode: h[2],
        seed,
        level: u32::from(h[4] & 15) % 10,
        threshold: if h[0] & 0x40 != 0 { 64 } else { 0 },
        rt_text: h[0] & 0x80 != 0,
    }
}

/// Messages and their fragments: `pieces[m][f]` is a range of the payload.
fn cut(s: &Shape, len: usize) -> Vec<Vec<std::ops::Range<usize>>> {
    let mut rng = Rng::new(s.seed);
    split_points(&mut rng, len, s.messages)
        .into_iter()
        .map(|m| {
            let n = rng.range(1, s.max_fragments);
            split_points(&mut rng, m.len(), n)
                .into_iter()
                .map(|r| m.start + r.start..m.start + r.end)
                .collect()
        })
        .collect()
}

fn decode(s: &Shape, config: Config, wire: &[u8], sizes: &[usize]) -> (Vec<Item>, bool) {
    let mut conn = Connection::new(Role::Server, config, Some(s.params));
    let mut trace = Vec::new();
    let mut failed = false;
    let mut at = 0;
    for &n in sizes {
        conn.feed(&wire[at..at + n]);
        at += n;
        loop {
            match conn.next_event() {
                Ok(Some(ev)) => {
                    assert!(!failed, "event after an error: {ev:?}");
                    trace.push(check_event(&ev, &config));
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(!failed, "second error {e:?}");
                    assert!(conn.is_failed() && conn.close_sent());
                    trace.push(Item::Error(error_class(&e, true)));
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            assert_eq!(conn.next_event(), Ok(None));
            assert!(conn.read_buffer().is_empty());
        }
        let cap = conn.read_buffer().capacity();
        assert!(
            cap <= config.max_frame_size + 64 * 1024 + n + 14,
            "read buffer {cap}"
        );
    }
    (trace, failed)
}

fn part_one(s: &Shape, payload: &[u8]) {
    let pieces = cut(s, payload.len());
    let opcode = if s.text { OpCode::Text } else { OpCode::Binary };
    let mut wire = Vec::with_capacity(payload.len() + 64);
    for msg in &pieces {
        for (i, r) in msg.iter().enumerate() {
            let first = i == 0;
            let fin = i + 1 == msg.len();
            let op = if first { opcode } else { OpCode::Continuation };
            frame(&mut wire, fin, first, op, s.key, &payload[r.clone()]);
            if s.ping_between && !fin {
                frame(&mut wire, true, false, OpCode::Ping, s.key, b"p");
            }
        }
        if s.plain_after {
            frame(&mut wire, true, false, OpCode::Binary, s.key, b"plain");
        }
    }

    let config = Config::default().max_message_size(LIMIT);
    let sizes = chunk_sizes(s.chunk_mode, s.seed, wire.len());
    let base = mem_start();
    let (trace, _) = decode(s, config, &wire, &sizes);
    let peak = mem_peak_since(base);
    if switchboard_fuzz::debug() {
        eprintln!("pieces {pieces:?}\nchunks {sizes:?}\ntrace {trace:?}\npeak heap {peak}");
    }
    // Inflate buffer ≤ limit + 1, zlib state, the read buffer (≤ the input +
    // 64 KiB ahead), the harness's trace.
    let bound = 1024 * 1024 + 2 * LIMIT + 4 * wire.len();
    assert!(peak <= bound, "peak heap {peak} > {bound}");

    // Compare with plain zlib, message by message.
    let mut d = Decompress::new_with_window_bits(false, 15);
    let mut events = trace.iter().filter(|i| !matches!(i, Item::Ping(_)));
    let mut final_block = false;
    for msg in &pieces {
        let data: Vec<u8> = msg
            .iter()
            .flat_map(|r| payload[r.clone()].iter().copied())
            .collect();
        let Some(expected) = reference(&mut d, &data) else {
            final_block = true;
            break;
        };
        if s.params.client_no_context_takeover {
            d.reset(false);
        }
        let got = events.next();
        match expected {
            Ok(bytes) if !s.text || std::str::from_utf8(&bytes).is_ok() => {
                assert_eq!(
                    got,
                    Some(&Item::message(s.text, &bytes)),
                    "differs from zlib ({} bytes inflated)",
                    bytes.len()
                );
            }
            _ => {
                assert!(
                    matches!(got, Some(Item::Error(_))),
                    "zlib (or UTF-8) refuses what the codec gave: {got:?}"
                );
                break;
            }
        }
        if s.plain_after {
            assert_eq!(events.next(), Some(&Item::message(false, b"plain")));
        }
    }

    let skip_known = switchboard_fuzz::KNOWN_ISSUE_FINAL_BLOCK_SPLIT && final_block;
    if sizes.len() > 1 && !skip_known {
        let (whole, _) = decode(s, config, &wire, &[wire.len()]);
        assert_eq!(
            trace, whole,
            "chunking changed the events (sizes {sizes:?})"
        );
    }
}

fn roundtrip(s: &Shape, from: Role, messages: &[Message]) {
    let mut dc = DeflateConfig::default();
    dc.level = s.level;
    dc.threshold = s.threshold;
    let config = Config::default().deflate(Some(dc));
    let mut tx = Connection::new(from, config, Some(s.params));
    let to = match from {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    };
    let mut rx = Connection::new(to, config, Some(s.params));
    let mut wire = Vec::new();
    for m in messages {
        tx.send(m.clone()).expect("send");
        while tx.has_output() {
            let chunk = tx.output_chunk().to_vec();
            tx.consume_output(chunk.len());
            wire.extend_from_slice(&chunk);
        }
    }
    if s.threshold == 0 {
        assert!(
            wire[0] & 0x40 != 0,
            "not compressed though the threshold is 0"
        );
    }
    let sizes = chunk_sizes(s.chunk_mode, s.seed, wire.len());
    let mut got = Vec::new();
    let mut at = 0;
    for n in sizes {
        rx.feed(&wire[at..at + n]);
        at += n;
        loop {
            match rx.next_event() {
                Ok(Some(Event::Message(m))) => got.push(m),
                Ok(Some(other)) => panic!("unexpected event {other:?}"),
                Ok(None) => break,
                Err(e) => panic!(
                    "round trip failed ({from:?} → {to:?}, {:?}, level {}, threshold {}): {e:?}",
                    s.params, s.level, s.threshold
                ),
            }
        }
    }
    assert_eq!(
        got.len(),
        messages.len(),
        "{from:?} → {to:?}: messages lost"
    );
    for (a, b) in got.iter().zip(messages) {
        assert!(
            a == b,
            "{from:?} → {to:?}: message changed ({} vs {} bytes)",
            a.len(),
            b.len()
        );
    }
}

fn part_two(s: &Shape, payload: &[u8]) {
    let pieces = cut(s, payload.len());
    let messages: Vec<Message> = pieces
        .iter()
        .map(|msg| {
            let data: Vec<u8> = msg
                .iter()
                .flat_map(|r| payload[r.clone()].iter().copied())
                .collect();
            if s.rt_text {
                Message::text(String::from_utf8_lossy(&data).into_owned())
            } else {
                Message::Binary(Bytes::from(data))
            }
        })
        .collect();
    roundtrip(s, Role::Client, &messages);
    roundtrip(s, Role::Server, &messages);
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 5 {
        return;
    }
    let s = shape([input[0], input[1], input[2], input[3], input[4]]);
    let payload = &input[5..];
    part_one(&s, payload);
    part_two(&s, payload);
});
