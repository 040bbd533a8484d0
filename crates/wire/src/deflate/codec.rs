//! The compressor and inflater of one connection (RFC 7692 §7.2).
//!
//! Both are created on first use and given up after each message when the
//! context is not kept, so a connection that negotiated the extension but is
//! idle (or never compresses) holds no zlib state.
//!
//! Without context takeover a compressed message depends only on its bytes
//! and the settings. Such compressors and inflaters are therefore not per
//! connection: each thread keeps one of each ready (reset between messages
//! instead of rebuilt, which allocates and clears a 32 KiB window), and
//! its last few outputs with the payloads they came from
//! ([`DeflateCodec::compress_shared`]),
//! so a broadcast sent to thousands of connections (one shared `Bytes`) is
//! compressed once per thread, not once per recipient.

use std::cell::RefCell;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::params::{DeflateConfig, DeflateParams};

/// The 4 bytes RFC 7692 strips from the end of each compressed message.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Why inflation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// Not a valid DEFLATE stream.
    Corrupt,
    /// The output would exceed the message limit.
    TooBig,
}

/// A context-free compressor kept by a thread between messages.
struct Spare {
    level: u32,
    bits: u8,
    compress: Box<Compress>,
}

/// Recent context-free compressions kept per thread: connections that are
/// behind send a few broadcasts in turn, so more than the last one is kept.
const RECENT: usize = 8;
/// Largest payload whose compression is kept: bounds what a thread holds
/// (inputs and outputs) to a few hundred KiB whatever the message limit.
const RECENT_MAX_BYTES: usize = 32 << 10;

/// A context-free compression of a thread: its input (held, so the
/// allocation cannot be reused while it is the key), settings and output.
struct LastOutput {
    input: Bytes,
    level: u32,
    bits: u8,
    output: Bytes,
}

thread_local! {
    static SPARE: RefCell<Option<Spare>> = const { RefCell::new(None) };
    /// An inflater for peers that keep no context, reset and ready: a
    /// connection takes it for one message and gives it back (building one
    /// allocates and clears its window, which a client reading thousands of
    /// such connections would otherwise do for every message).
    static SPARE_INFLATER: RefCell<Option<Box<Decompress>>> = const { RefCell::new(None) };
    static LAST: RefCell<std::collections::VecDeque<LastOutput>> =
        const { RefCell::new(std::collections::VecDeque::new()) };
}

/// Per-connection permessage-deflate state.
#[derive(Debug)]
pub(crate) struct DeflateCodec {
    compress: Option<Box<Compress>>,
    decompress: Option<Box<Decompress>>,
    level: u32,
    /// Messages shorter than this go out uncompressed.
    pub(crate) threshold: usize,
    /// Our compressor's window (8–15).
    window_bits: u8,
    /// Reset our compressor after each message.
    reset_compress: bool,
    /// Reset the inflater after each message (the peer does not keep context).
    reset_decompress: bool,
    /// The current message's DEFLATE data ended with a final block: nothing
    /// but the stripped tail may follow until the message ends.
    stream_ended: bool,
}

impl DeflateCodec {
    /// State for `params`, seen from the server (`is_server`) or the client.
    pub(crate) fn new(params: DeflateParams, config: &DeflateConfig, is_server: bool) -> Self {
        let (own_reset, peer_reset, own_bits) = if is_server {
            (
                params.server_no_context_takeover,
                params.client_no_context_takeover,
                params.server_max_window_bits,
            )
        } else {
            (
                params.client_no_context_takeover,
                params.server_no_context_takeover,
                params.client_max_window_bits,
            )
        };
        Self {
            compress: None,
            decompress: None,
            level: config.level.min(9),
            threshold: config.threshold,
            window_bits: own_bits,
            reset_compress: own_reset,
            reset_decompress: peer_reset,
            stream_ended: false,
        }
    }

    /// Compresses one whole message payload given as shared bytes. Without
    /// context takeover the output is the thread's last one when the payload
    /// is the same allocation (a broadcast reaching another connection).
    pub(crate) fn compress_shared(&mut self, payload: &Bytes) -> Bytes {
        if !self.reset_compress || payload.len() > RECENT_MAX_BYTES {
            return Bytes::from(self.compress(payload));
        }
        let (level, bits) = (self.level, self.window_bits);
        let hit = LAST.with(|last| {
            last.borrow()
                .iter()
                .find(|l| {
                    l.level == level
                        && l.bits == bits
                        && l.input.as_ptr() == payload.as_ptr()
                        && l.input.len() == payload.len()
                })
                .map(|l| l.output.clone())
        });
        if let Some(output) = hit {
            return output;
        }
        let output = Bytes::from(self.compress(payload));
        LAST.with(|last| {
            let mut last = last.borrow_mut();
            if last.len() == RECENT {
                last.pop_front();
            }
            last.push_back(LastOutput {
                input: payload.clone(),
                level,
                bits,
                output: output.clone(),
            });
        });
        output
    }

    /// Compresses one whole message payload.
    pub(crate) fn compress(&mut self, payload: &[u8]) -> Vec<u8> {
        // zlib cannot make a raw stream with an 8-bit window. With window 9 and a
        // full flush every 256 input bytes no back-reference reaches further than
        // 255 bytes, so a peer inflating with a 256-byte window reads it fine.
        let small_window = self.window_bits < 9;
        let bits = self.window_bits.max(9);
        let level = self.level;
        if self.reset_compress && self.compress.is_none() {
            // The thread's spare, when it has the same settings.
            self.compress = SPARE.with(|spare| {
                let mut spare = spare.borrow_mut();
                match spare.take() {
                    Some(s) if s.level == level && s.bits == bits => Some(s.compress),
                    other => {
                        *spare = other;
                        None
                    }
                }
            });
        }
        let c = self.compress.get_or_insert_with(|| {
            Box::new(Compress::new_with_window_bits(
                Compression::new(level),
                false,
                bits,
            ))
        });
        let mut out = Vec::with_capacity(payload.len() / 2 + 64);
        if small_window {
            for chunk in payload.chunks(256) {
                compress_all(c, chunk, &mut out, FlushCompress::Full);
            }
            if payload.is_empty() {
                compress_all(c, &[], &mut out, FlushCompress::Full);
            }
        } else {
            compress_all(c, payload, &mut out, FlushCompress::Sync);
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if out.is_empty() {
            out.push(0x00);
        }
        if self.reset_compress
            && let Some(mut c) = self.compress.take()
        {
            // Ready for the next message of any connection on this thread.
            c.reset();
            SPARE.with(|spare| {
                *spare.borrow_mut() = Some(Spare {
                    level,
                    bits,
                    compress: c,
                });
            });
        }
        out
    }

    /// Inflates part of a compressed message into `out`, keeping `out` within `limit`.
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), InflateError> {
        if self.stream_ended {
            // Data after a final block, in whichever read it arrives.
            return if input.is_empty() {
                Ok(())
            } else {
                Err(InflateError::Corrupt)
            };
        }
        if self.reset_decompress && self.decompress.is_none() {
            self.decompress = SPARE_INFLATER.with(|spare| spare.borrow_mut().take());
        }
        let d = self
            .decompress
            .get_or_insert_with(|| Box::new(Decompress::new_with_window_bits(false, 15)));
        let mut input = input;
        loop {
            if out.capacity() - out.len() < 512 {
                let room = (limit + 1).saturating_sub(out.len());
                if room == 0 {
                    return Err(InflateError::TooBig);
                }
                let want = input.len().saturating_mul(4).clamp(4096, 256 * 1024);
                out.reserve_exact(want.min(room));
            }
            let (in_before, out_before) = (d.total_in(), d.total_out());
            let status = d
                .decompress_vec(input, out, FlushDecompress::Sync)
                .map_err(|_| InflateError::Corrupt)?;
            let consumed = (d.total_in() - in_before) as usize;
            let produced = (d.total_out() - out_before) as usize;
            input = &input[consumed..];
            if out.len() > limit {
                return Err(InflateError::TooBig);
            }
            if status == Status::StreamEnd {
                // The peer ended its DEFLATE data with a final block (RFC 7692
                // §7.2.3.4). A new stream starts with the next message; more
                // data in this one is an error, however the reads split it.
                d.reset(false);
                self.stream_ended = true;
                return if input.is_empty() {
                    Ok(())
                } else {
                    Err(InflateError::Corrupt)
                };
            }
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(());
            }
            if consumed == 0 && produced == 0 && out.len() < out.capacity() {
                return Err(InflateError::Corrupt);
            }
        }
    }

    /// Ends a compressed message: feeds the stripped tail and resets if asked.
    pub(crate) fn finish_message(
        &mut self,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), InflateError> {
        let r = if self.stream_ended {
            Ok(())
        } else {
            self.inflate(&TAIL, out, limit)
        };
        self.stream_ended = false;
        if r.is_err() {
            self.decompress = None;
        } else if self.reset_decompress
            && let Some(mut d) = self.decompress.take()
        {
            // Ready for the next message of any connection on this thread.
            d.reset(false);
            SPARE_INFLATER.with(|spare| *spare.borrow_mut() = Some(d));
        }
        r
    }
}

fn compress_all(c: &mut Compress, mut input: &[u8], out: &mut Vec<u8>, flush: FlushCompress) {
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(256));
        }
        let before = c.total_in();
        // Compressing into a Vec with spare room cannot fail for valid state.
        if c.compress_vec(input, out, flush).is_err() {
            return;
        }
        input = &input[(c.total_in() - before) as usize..];
        if input.is_empty() && out.len() < out.capacity() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(params: DeflateParams) -> (DeflateCodec, DeflateCodec) {
        let cfg = DeflateConfig {
            threshold: 0,
            ..DeflateConfig::default()
        };
        (
            DeflateCodec::new(params, &cfg, true),
            DeflateCodec::new(params, &cfg, false),
        )
    }

    fn roundtrip(server: &mut DeflateCodec, client: &mut DeflateCodec, msg: &[u8]) {
        let wire = server.compress(msg);
        let mut out = Vec::new();
        client.inflate(&wire, &mut out, 1 << 20).unwrap();
        client.finish_message(&mut out, 1 << 20).unwrap();
        assert_eq!(out, msg);
    }

    #[test]
    fn roundtrips_with_and_without_context_takeover() {
        let msgs: [&[u8]; 4] = [
            b"hello hello hello",
            b"",
            &[7u8; 5000],
            b"hello hello hello",
        ];
        for reset in [false, true] {
            for bits in [8, 9, 12, 15] {
                let params = DeflateParams {
                    server_no_context_takeover: reset,
                    client_no_context_takeover: reset,
                    server_max_window_bits: bits,
                    client_max_window_bits: bits,
                };
                let (mut s, mut c) = pair(params);
                for m in msgs {
                    roundtrip(&mut s, &mut c, m);
                }
            }
        }
    }

    #[test]
    fn context_free_output_is_shared_by_connections_and_stays_exact() {
        let params = DeflateParams {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..DeflateParams::default()
        };
        let (mut a, mut client) = pair(params);
        let (mut b, _) = pair(params);
        let broadcast = Bytes::from(b"{\"op\":\"message\",\"data\":\"abcabcabcabc\"}".repeat(20));
        let first = a.compress_shared(&broadcast);
        let second = b.compress_shared(&broadcast);
        assert_eq!(first, second);
        assert_eq!(first.as_ptr(), second.as_ptr(), "compressed once, shared");
        // The same bytes in another allocation: compressed again, same output
        // (a reused compressor is as good as a new one).
        let copy = Bytes::copy_from_slice(&broadcast);
        let third = b.compress_shared(&copy);
        assert_eq!(third, first);
        assert_ne!(third.as_ptr(), first.as_ptr());
        // Other bytes never get a stale answer.
        let other = Bytes::from_static(b"something else entirely, not the broadcast");
        let mut out = Vec::new();
        client
            .inflate(&a.compress_shared(&other), &mut out, 1 << 20)
            .unwrap();
        client.finish_message(&mut out, 1 << 20).unwrap();
        assert_eq!(out, &other[..]);
        let mut out = Vec::new();
        client.inflate(&second, &mut out, 1 << 20).unwrap();
        client.finish_message(&mut out, 1 << 20).unwrap();
        assert_eq!(out, &broadcast[..]);
    }

    #[test]
    fn context_free_inflaters_are_reused_clean_across_connections() {
        let free = DeflateParams {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..DeflateParams::default()
        };
        let (mut server, mut a) = pair(free);
        let (_, mut b) = pair(free);
        let one = server.compress(&b"first message, first message".repeat(4));
        let two = server.compress(&b"second one, second one".repeat(4));
        // A's message arrives in two reads; B reads a whole one in between
        // (A holds its inflater meanwhile, B takes the thread's spare).
        let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
        a.inflate(&one[..one.len() / 2], &mut out_a, 1 << 20)
            .unwrap();
        b.inflate(&two, &mut out_b, 1 << 20).unwrap();
        b.finish_message(&mut out_b, 1 << 20).unwrap();
        a.inflate(&one[one.len() / 2..], &mut out_a, 1 << 20)
            .unwrap();
        a.finish_message(&mut out_a, 1 << 20).unwrap();
        assert_eq!(out_a, b"first message, first message".repeat(4));
        assert_eq!(out_b, b"second one, second one".repeat(4));

        // A peer that keeps context although it said it would not: its second
        // message refers back into the first. A reused inflater starts with
        // an empty window like a new one, so nothing another connection
        // inflated before can be read through a back-reference.
        let (mut keeper, _) = pair(DeflateParams::default());
        let text = b"private payload of one connection ".repeat(3);
        let first = keeper.compress(&text);
        let refers_back = keeper.compress(&text);
        let mut out = Vec::new();
        a.inflate(&first, &mut out, 1 << 20).unwrap();
        a.finish_message(&mut out, 1 << 20).unwrap();
        assert_eq!(out, text);
        let mut out = Vec::new();
        let r = b
            .inflate(&refers_back, &mut out, 1 << 20)
            .and_then(|()| b.finish_message(&mut out, 1 << 20));
        assert_eq!(r, Err(InflateError::Corrupt));
        assert!(!out.windows(7).any(|w| w == b"private"), "{out:?}");
        // A failed message drops its inflater; the next one is sound.
        let mut out = Vec::new();
        a.inflate(&two, &mut out, 1 << 20).unwrap();
        a.finish_message(&mut out, 1 << 20).unwrap();
        assert_eq!(out, b"second one, second one".repeat(4));
    }

    #[test]
    fn context_keeping_codecs_never_share() {
        let (mut a, _) = pair(DeflateParams::default());
        let m = Bytes::from(vec![b'x'; 300]);
        let first = a.compress_shared(&m);
        let second = a.compress_shared(&m);
        assert_ne!(first, second, "the second message refers back to the first");
    }

    #[test]
    fn window_8_output_is_cut_by_full_flushes() {
        // flate2 cannot inflate with an 8-bit window, so check the structure
        // instead: the output roundtrips, and a full flush (which ends every
        // back-reference) follows every 256 input bytes.
        let params = DeflateParams {
            server_max_window_bits: 8,
            ..DeflateParams::default()
        };
        let (mut s, _) = pair(params);
        let msg: Vec<u8> = (0..20_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 700) as u8)
            .collect();
        for _ in 0..3 {
            let mut wire = s.compress(&msg);
            wire.extend_from_slice(&TAIL);
            let mut d = Decompress::new_with_window_bits(false, 9);
            let mut out = Vec::with_capacity(msg.len() + 16);
            d.decompress_vec(&wire, &mut out, FlushDecompress::Sync)
                .unwrap();
            assert_eq!(out, msg);
        }
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let (mut s, mut c) = pair(DeflateParams::default());
        let wire = s.compress(&vec![0u8; 10 << 20]);
        assert!(wire.len() < (10 << 20) / 50, "{}", wire.len());
        let mut out = Vec::new();
        assert_eq!(
            c.inflate(&wire, &mut out, 1 << 20),
            Err(InflateError::TooBig)
        );
        assert!(out.capacity() <= (1 << 20) + 4096);
    }

    #[test]
    fn data_after_a_final_block_is_refused_however_it_is_split() {
        // Two complete raw DEFLATE streams ("hello", "world") in one message.
        let payload: &[u8] = &[
            0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x2b, 0xcf, 0x2f, 0xca, 0x49, 0x01, 0x00,
        ];
        for split in 0..=payload.len() {
            let (_, mut c) = pair(DeflateParams::default());
            let mut out = Vec::new();
            let r = c
                .inflate(&payload[..split], &mut out, 1 << 20)
                .and_then(|()| c.inflate(&payload[split..], &mut out, 1 << 20))
                .and_then(|()| c.finish_message(&mut out, 1 << 20));
            assert_eq!(r, Err(InflateError::Corrupt), "split at {split}");
        }
        // One final block alone is a valid message, and the next one decodes.
        let (_, mut c) = pair(DeflateParams::default());
        let mut out = Vec::new();
        c.inflate(&payload[..7], &mut out, 1 << 20).unwrap();
        c.finish_message(&mut out, 1 << 20).unwrap();
        assert_eq!(out, b"hello");
        let mut out = Vec::new();
        c.inflate(&payload[7..], &mut out, 1 << 20).unwrap();
        c.finish_message(&mut out, 1 << 20).unwrap();
        assert_eq!(out, b"world");
    }

    #[test]
    fn garbage_is_corrupt() {
        let (_, mut c) = pair(DeflateParams::default());
        let mut out = Vec::new();
        assert_eq!(
            c.inflate(&[0xff; 32], &mut out, 1 << 20),
            Err(InflateError::Corrupt)
        );
    }
}
