//! Writes the seed inputs in `fuzz/seeds/<target>/` (run from anywhere):
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds
//! ```
//!
//! Each seed is the target's fixed header (see the target's module docs)
//! followed by valid wire bytes, so fuzzing starts from inputs that reach the
//! deep paths (messages, fragments, inflation, a full handshake).

use std::path::{Path, PathBuf};

use flate2::{Compress, Compression, FlushCompress};
use switchboard_wire::{Config, Connection, DeflateConfig, DeflateParams, Message, OpCode, Role};

fn frame(fin: bool, rsv1: bool, op: OpCode, key: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | (u8::from(rsv1) << 6) | op.bits()];
    let m = if key.is_some() { 0x80 } else { 0 };
    let len = payload.len();
    if len < 126 {
        out.push(m | len as u8);
    } else if len <= 0xffff {
        out.push(m | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    match key {
        None => out.extend_from_slice(payload),
        Some(k) => {
            out.extend_from_slice(&k);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
    }
    out
}

/// RFC 7692 compression of one message: raw DEFLATE, sync flush, tail removed
/// (or, with `final_block`, a finished stream as some peers send).
fn deflate(data: &[u8], final_block: bool) -> Vec<u8> {
    let mut c = Compress::new(Compression::new(6), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    let flush = if final_block {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        let before = c.total_in() as usize;
        c.compress_vec(&data[before..], &mut out, flush).unwrap();
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    if !final_block && out.ends_with(&[0, 0, 0xff, 0xff]) {
        out.truncate(out.len() - 4);
    }
    out
}

/// Frames a client `Connection` with permessage-deflate sends (masked).
fn client_compressed(messages: &[&str]) -> Vec<u8> {
    let mut dc = DeflateConfig::default();
    dc.threshold = 0;
    let mut c = Connection::new(
        Role::Client,
        Config::default().deflate(Some(dc)),
        Some(DeflateParams::default()),
    );
    let mut out = Vec::new();
    for m in messages {
        c.send(Message::text(*m)).unwrap();
    }
    while c.has_output() {
        let chunk = c.output_chunk().to_vec();
        c.consume_output(chunk.len());
        out.extend_from_slice(&chunk);
    }
    out
}

fn write(dir: &Path, name: &str, header: &[u8], body: &[u8]) {
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(body);
    std::fs::write(dir.join(name), bytes).unwrap();
}

const GOOD_REQUEST: &str = "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
    Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
    Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; \
    server_max_window_bits=10, permessage-deflate\r\n\r\n";

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let key = Some([0x37, 0xfa, 0x21, 0x3d]);
    let zero = Some([0, 0, 0, 0]);

    // ---- frame_decoder: [flags, chunk_mode, seed_lo, seed_hi] ----
    let dir = root.join("frame_decoder");
    std::fs::create_dir_all(&dir).unwrap();
    write(
        &dir,
        "server_text",
        &[0, 0, 0, 0],
        &frame(true, false, OpCode::Text, key, b"Hello"),
    );
    let mut mixed = Vec::new();
    mixed.extend(frame(false, false, OpCode::Text, key, b"Hel"));
    mixed.extend(frame(true, false, OpCode::Ping, key, b"ping"));
    mixed.extend(frame(
        false,
        false,
        OpCode::Continuation,
        zero,
        "lo ☃".as_bytes(),
    ));
    mixed.extend(frame(true, false, OpCode::Continuation, key, b"!"));
    mixed.extend(frame(true, false, OpCode::Binary, key, &[0xab; 300]));
    mixed.extend(frame(true, false, OpCode::Pong, key, b""));
    mixed.extend(frame(true, false, OpCode::Close, key, b"\x03\xe8bye"));
    write(
        &dir,
        "server_fragments_small_limits_1byte",
        &[0b0000_0010, 1, 0, 0],
        &mixed,
    );
    write(
        &dir,
        "server_fragments_random_chunks",
        &[0, 0x8c, 0x34, 0x12],
        &mixed,
    );
    let mut client = Vec::new();
    client.extend(frame(true, false, OpCode::Text, None, b"Hello"));
    client.extend(frame(true, false, OpCode::Ping, None, b"Hello"));
    let mut long = frame(true, false, OpCode::Binary, None, &[7; 300]);
    // The same frame with a (non-minimal) 64-bit length.
    long.splice(1..4, [127, 0, 0, 0, 0, 0, 0, 1, 44]);
    client.extend(long);
    client.extend(frame(true, false, OpCode::Close, None, b""));
    write(&dir, "client_mixed", &[1, 7, 0, 0], &client);
    let compressed = client_compressed(&["Hello hello hello hello", "", "Hello again"]);
    write(
        &dir,
        "server_deflate",
        &[0b0000_1000, 0x85, 9, 0],
        &compressed,
    );
    write(
        &dir,
        "server_deflate_our_close",
        &[0b1000_1000, 3, 0, 2],
        &compressed,
    );
    // Known issue (see KNOWN_ISSUE_FINAL_BLOCK_SPLIT): two finished DEFLATE
    // streams in one frame; read in one piece it is "hello", split after the
    // first stream (chunk size 13) it is "helloworld".
    let mut two = deflate(b"hello", true);
    two.extend(deflate(b"world", true));
    let two = frame(true, true, OpCode::Text, zero, &two);
    write(
        &dir,
        "known_final_block_split",
        &[0b0000_1000, 13, 0, 0],
        &two,
    );
    let mut big = frame(true, false, OpCode::Binary, key, b"x");
    big.splice(1..2, [0x80 | 127, 0, 0, 0, 0, 1, 0, 0, 0]); // declares 16 MiB + 1
    write(&dir, "server_declared_huge", &[0, 0, 0, 0], &big);

    // ---- handshake: [mode, flags] ----
    let dir = root.join("handshake");
    std::fs::create_dir_all(&dir).unwrap();
    write(
        &dir,
        "request_deflate_protocols",
        &[0, 0b110],
        GOOD_REQUEST.as_bytes(),
    );
    write(
        &dir,
        "request_small_limits",
        &[0, 0b1_1111],
        GOOD_REQUEST.as_bytes(),
    );
    let response: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Accept: @@\r\nSec-WebSocket-Protocol: chat\r\n\
        Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
        client_max_window_bits=10\r\n\r\n\x81\x00";
    write(&dir, "response_deflate", &[1, 0b110], response);
    write(&dir, "response_plain", &[1, 0], b"HTTP/1.1 101 OK\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: @@\r\n\r\n");
    write(
        &dir,
        "extensions",
        &[2, 0],
        b"permessage-deflate; client_max_window_bits; server_max_window_bits=\"10\", permessage-deflate\nx-webkit-deflate-frame; a=b",
    );
    write(
        &dir,
        "offer",
        &[3, 0],
        b"permessage-deflate; server_max_window_bits=7, permessage-deflate; server_max_window_bits=9; client_max_window_bits=8; client_no_context_takeover, permessage-deflate",
    );
    write(
        &dir,
        "offer_nct",
        &[3, 3],
        b"permessage-deflate; client_max_window_bits",
    );
    write(
        &dir,
        "response_ext",
        &[4, 0],
        b"permessage-deflate; server_no_context_takeover; client_max_window_bits=12",
    );

    // ---- inflater: [flags, shape, chunk_mode, seed, codec] ----
    let dir = root.join("inflater");
    std::fs::create_dir_all(&dir).unwrap();
    let text = "Hello, hello, hello! Grüße ☃ ".repeat(20);
    // One text message, one frame, whole.
    write(
        &dir,
        "text_one_frame",
        &[0b0010_0100, 7, 0, 0, 0x71],
        &deflate(text.as_bytes(), false),
    );
    // Four fragments with pings in between, 1-byte reads, no context takeover.
    write(
        &dir,
        "binary_fragments_ping",
        &[0b0000_1011, 7 | 3 << 5, 1, 5, 0x96],
        &deflate(&[3; 5000], false),
    );
    // A stream that ends with a final block.
    write(
        &dir,
        "final_block",
        &[0b0001_0000, 7, 0x87, 1, 0xf9],
        &deflate(b"finished stream", true),
    );
    // A bomb: 1 MiB of zeros, far over the 64 KiB limit.
    write(
        &dir,
        "bomb",
        &[0, 7, 0, 0, 0x01],
        &deflate(&vec![0; 1 << 20], false),
    );
    // Small-window round trip material, random reads.
    write(
        &dir,
        "window8_roundtrip",
        &[0b1000_0001, 2 << 3, 0x8a, 9, 0x09],
        text.as_bytes(),
    );
    println!("seeds written to {}", root.display());
}
