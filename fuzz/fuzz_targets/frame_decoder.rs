//! Arbitrary bytes into a `Connection`, split into arbitrary chunks.
//!
//! Input layout: `[flags, chunk_mode, seed_lo, seed_hi, wire bytes...]`
//!
//! * flags bit 0: role (0 = server, expects masked frames; 1 = client)
//! * flags bits 1-2: limits (0 = defaults; 1 = frame 1024 / message 4096 /
//!   16 fragments; 2 = 125 / 256 / 4; 3 = 0 / 0 / 1)
//! * flags bits 3-4: permessage-deflate (0 = off; 1 = default params;
//!   2 = no context takeover both ways; 3 = client_no_context_takeover only)
//! * flags bits 5-6: output draining style (see `drain_output`)
//! * flags bit 7: call `close()` ourselves before chunk `seed_hi % 8`
//! * chunk_mode/seed: how the wire bytes are cut into `feed` calls (see
//!   `chunk_sizes`)
//!
//! Invariants checked:
//! * no panic, no UB (ASan), no unbounded loop (libFuzzer -timeout);
//! * events are well-formed (`check_event`);
//! * after an `Err` (or a close frame), `next_event` returns `Ok(None)` for
//!   ever, more input is ignored and no more output is produced;
//! * `read_buffer().capacity()` stays within `max_frame_size + 64 KiB + chunk`,
//!   and within `2 * (bytes fed + 64 KiB) + 64` whatever the declared lengths;
//! * peak heap during the run is `1 MiB + 64 * input` plus, with deflate,
//!   twice the inflated size (capped by the message limit);
//! * the output decodes cleanly at a peer of the other role, and is exactly a
//!   pong per ping answered, then at most one close (the echo of the peer's
//!   code, the error's code and reason, or our own close);
//! * the same bytes fed in one piece give the same events and error class.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{
    CountingAlloc, Item, Rng, check_event, chunk_sizes, drain_output, error_class, mem_peak_since,
    mem_start,
};
use switchboard_wire::{
    CloseCode, CloseFrame, Config, Connection, DeflateParams, Event, Message, Role, SendError,
};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// `MAX_RESERVE_AHEAD` in connection.rs: reads reserve at most this far ahead.
const RESERVE_AHEAD: usize = 64 * 1024;

#[derive(Debug, Clone)]
struct Setup {
    role: Role,
    config: Config,
    deflate: Option<DeflateParams>,
    out_style: u8,
    close_at: Option<usize>,
    chunk_mode: u8,
    seed: u64,
}

fn setup(h: [u8; 4]) -> Setup {
    let role = if h[0] & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let config = match (h[0] >> 1) & 3 {
        0 => Config::default(),
        1 => Config::default()
            .max_frame_size(1024)
            .max_message_size(4096)
            .max_fragments(16),
        2 => Config::default()
            .max_frame_size(125)
            .max_message_size(256)
            .max_fragments(4),
        _ => Config::default()
            .max_frame_size(0)
            .max_message_size(0)
            .max_fragments(1),
    };
    let deflate = match (h[0] >> 3) & 3 {
        0 => None,
        1 => Some(DeflateParams::default()),
        2 => Some(DeflateParams {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 9,
            client_max_window_bits: 9,
        }),
        _ => Some(DeflateParams {
            client_no_context_takeover: true,
            ..DeflateParams::default()
        }),
    };
    Setup {
        role,
        config,
        deflate,
        out_style: (h[0] >> 5) & 3,
        close_at: (h[0] & 0x80 != 0).then_some(usize::from(h[3] % 8)),
        chunk_mode: h[1],
        seed: u64::from(u16::from_le_bytes([h[2], h[3]])),
    }
}

struct Outcome {
    trace: Vec<Item>,
}

fn check_capacity(conn: &mut Connection, s: &Setup, chunk: usize, fed: usize) {
    let cap = conn.read_buffer().capacity();
    let limit_bound = s.config.max_frame_size + RESERVE_AHEAD + chunk + 14;
    assert!(
        cap <= limit_bound,
        "read buffer capacity {cap} > max_frame_size + 64 KiB + chunk ({limit_bound})"
    );
    let input_bound = 2 * (fed + RESERVE_AHEAD) + 64;
    assert!(
        cap <= input_bound,
        "read buffer capacity {cap} > 2 * (fed {fed} + 64 KiB) + 64"
    );
}

fn run(s: &Setup, data: &[u8], sizes: &[usize]) -> Outcome {
    let mut conn = Connection::new(s.role, s.config, s.deflate);
    let mut rng = Rng::new(s.seed ^ 0x5eed);
    let mut trace = Vec::new();
    let mut expect_peer = Vec::new();
    let mut out = Vec::new();
    let mut ended = false;
    let mut fed = 0;

    for (i, &n) in sizes.iter().enumerate() {
        if s.close_at == Some(i) && !conn.close_sent() {
            conn.close(Some(CloseFrame::new(CloseCode::NORMAL, "bye")));
            expect_peer.push(Item::Close(Some((1000, "bye".into()))));
        }
        let chunk = &data[fed..fed + n];
        fed += n;
        let was_ended = ended;
        let out_before = conn.output_len();
        conn.feed(chunk);
        check_capacity(&mut conn, s, n, fed);
        if ended {
            assert!(
                conn.read_buffer().is_empty(),
                "input buffered after the end"
            );
        }
        loop {
            let close_sent_before = conn.close_sent();
            match conn.next_event() {
                Ok(None) => break,
                Ok(Some(ev)) => {
                    assert!(!ended, "event after an error or a close: {ev:?}");
                    let item = check_event(&ev, &s.config);
                    if let Event::Message(m) = &ev {
                        if s.deflate.is_none() && m.len() > s.config.max_frame_size {
                            // Only fragmented messages may exceed one frame.
                            assert!(s.config.max_fragments > 1);
                        }
                    }
                    match &ev {
                        Event::Ping(p) if !close_sent_before => {
                            expect_peer.push(Item::Pong(p.to_vec()));
                        }
                        Event::Close(f) => {
                            assert!(conn.close_received());
                            assert!(conn.close_sent(), "close not answered");
                            if !close_sent_before {
                                expect_peer.push(Item::Close(
                                    f.as_ref().map(|f| (f.code.0, String::new())),
                                ));
                            }
                            ended = true;
                        }
                        _ => {}
                    }
                    trace.push(item);
                }
                Err(e) => {
                    assert!(!ended, "error after the end: {e:?}");
                    assert!(conn.is_failed());
                    assert!(conn.close_sent());
                    if !close_sent_before {
                        let f = CloseFrame::new(e.close_code(), &e.to_string());
                        expect_peer.push(Item::Close(Some((f.code.0, f.reason))));
                    }
                    trace.push(Item::Error(error_class(&e, s.deflate.is_some())));
                    ended = true;
                    break;
                }
            }
        }
        if ended {
            assert!(!conn.is_reading());
            assert!(conn.is_done_reading());
            for _ in 0..2 {
                assert_eq!(conn.next_event(), Ok(None), "next_event after the end");
            }
            assert!(conn.read_buffer().is_empty());
        } else {
            // Drained: a second call has nothing either.
            assert_eq!(conn.next_event(), Ok(None));
            // At most one partial frame is buffered.
            let max_partial = s.config.max_frame_size.max(125) + 14;
            let buffered = conn.read_buffer().len();
            assert!(
                buffered <= max_partial,
                "{buffered} bytes buffered after draining (limit {max_partial})"
            );
        }
        if was_ended {
            assert_eq!(conn.output_len(), out_before, "output after the end");
        }
        check_capacity(&mut conn, s, n, fed);
        drain_output(&mut conn, s.out_style, &mut rng, &mut out);
        if rng.next_u64() & 1 == 0 {
            conn.release_idle_buffers();
        }
    }

    if ended {
        // More input changes nothing: no events, no buffering, no output.
        let before = conn.output_len();
        conn.feed(data);
        conn.feed(&[0x89, 0x80, 0, 0, 0, 0, 0x89, 0x00]);
        assert_eq!(conn.next_event(), Ok(None));
        assert!(conn.read_buffer().is_empty());
        assert_eq!(conn.output_len(), before, "output after the end");
    }
    if conn.close_sent() {
        assert_eq!(conn.send(Message::text("x")), Err(SendError::Closed));
        assert_eq!(conn.send_ping(bytes::Bytes::new()), Err(SendError::Closed));
    }
    drain_output(&mut conn, 0, &mut rng, &mut out);
    conn.release_idle_buffers();
    assert_eq!(
        conn.read_buffer().capacity() > 0,
        !conn.read_buffer().is_empty()
    );

    // The output must decode cleanly at the peer: one pong per answered ping,
    // then at most one close frame.
    let peer_role = match s.role {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    };
    let mut peer = Connection::new(peer_role, Config::default(), None);
    peer.feed(&out);
    let mut got = Vec::new();
    loop {
        match peer.next_event() {
            Ok(Some(ev)) => got.push(check_event(&ev, &Config::default())),
            Ok(None) => break,
            Err(e) => panic!("our output is invalid at the peer: {e:?}\noutput: {out:02x?}"),
        }
    }
    if let Some(i) = expect_peer.iter().position(|x| matches!(x, Item::Close(_))) {
        expect_peer.truncate(i + 1);
    }
    assert_eq!(
        got, expect_peer,
        "output differs from what the events imply"
    );
    assert!(
        peer.read_buffer().is_empty(),
        "trailing partial frame in our output"
    );

    Outcome { trace }
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 4 {
        return;
    }
    let s = setup([input[0], input[1], input[2], input[3]]);
    let data = &input[4..];

    let sizes = chunk_sizes(s.chunk_mode, s.seed, data.len());
    let base = mem_start();
    let chunked = run(&s, data, &sizes);
    if switchboard_fuzz::debug() {
        eprintln!("{s:?}\nchunks {sizes:?}\ntrace {:?}", chunked.trace);
    }
    let peak = mem_peak_since(base);
    let inflate_room = if s.deflate.is_some() {
        // A DEFLATE stream expands at most ~1032:1; the inflate buffer grows in
        // steps of up to 256 KiB, never past the message limit.
        (data.len() * 1032 + 256 * 1024).min(s.config.max_message_size + 1)
    } else {
        0
    };
    // The harness's own traces take up to ~64 bytes per input byte.
    let bound = 1024 * 1024 + 64 * data.len() + 2 * inflate_room;
    assert!(
        peak <= bound,
        "peak heap {peak} > bound {bound} for {} input bytes",
        data.len()
    );

    let skip_known = switchboard_fuzz::KNOWN_ISSUE_FINAL_BLOCK_SPLIT && s.deflate.is_some();
    if s.close_at.is_none() && sizes.len() > 1 && !skip_known {
        let whole = run(&s, data, &[data.len()]);
        assert_eq!(
            chunked.trace, whole.trace,
            "chunking changed the events (chunk sizes {sizes:?})"
        );
    }
});
