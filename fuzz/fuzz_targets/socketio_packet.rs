//! Socket.IO v5 packets with binary attachments (`switchboard-socketio`).
//!
//! Input: `[max_attachments, n_chunks, text \0 attachment \0 attachment ...]`:
//! the text before the first NUL is the packet; each following NUL-separated
//! chunk is an attachment fed to the reassembly (up to `n_chunks % 16`).
//!
//! Invariants: no panic; a binary packet never announces more attachments
//! than the limit (the decoder refuses before allocating for them: an
//! announced 10^6 is an error, not a 10^6-slot vector); a completed packet
//! holds exactly the announced attachments within the byte limit; a complete
//! text packet re-encodes to text that decodes to the same packet.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{CountingAlloc, mem_peak_since, mem_start};
use switchboard_socketio::packet::{Decoded, Limits, decode};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fuzz_target!(|data: &[u8]| {
    let [max, chunks, rest @ ..] = data else {
        return;
    };
    let mut limits = Limits::default();
    limits.max_attachments = usize::from(*max % 12);
    limits.max_attachment_bytes = 4096;
    let mut parts = rest.split(|&b| b == 0);
    let text = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let base = mem_start();
    match decode(&text, &limits) {
        Ok(Decoded::Packet(p)) => {
            assert!(p.attachments.is_empty());
            if let Ok(Decoded::Packet(again)) = decode(&p.encode(), &limits) {
                assert_eq!(again, p, "re-encoded {:?}", p.encode());
            } else {
                panic!("a decoded packet re-encodes to one that decodes: {:?}", p.encode());
            }
        }
        Ok(Decoded::Binary(mut r)) => {
            let mut fed = 0usize;
            let mut bytes = 0usize;
            for chunk in parts.take(usize::from(*chunks % 16)) {
                fed += 1;
                bytes += chunk.len();
                match r.push(Bytes::copy_from_slice(chunk)) {
                    Ok(None) => assert!(fed < limits.max_attachments.max(1) + 1),
                    Ok(Some(p)) => {
                        assert!(p.attachments.len() <= limits.max_attachments);
                        assert_eq!(p.attachments.len(), fed);
                        assert!(bytes <= limits.max_attachment_bytes);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        Err(_) => {}
    }
    // Decoding holds O(input) memory: nothing sized by announced counts.
    let peak = mem_peak_since(base);
    assert!(
        peak <= 64 * rest.len() + 64 * 1024,
        "{peak} bytes held for {} input bytes",
        rest.len()
    );
});
