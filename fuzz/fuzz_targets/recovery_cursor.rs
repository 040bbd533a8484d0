//! Recovery cursors: a room log (`switchboard_hub::RoomLog`) answering
//! "everything after (epoch, offset)" for arbitrary cursors, and the client
//! tracker (`switchboard_client::recovery::Recovery`) fed arbitrary live
//! messages and join answers.
//!
//! Input: a program of 4-byte instructions `[op, a, b, c]`.
//!
//! Invariants:
//! * the log: offsets are 1, 2, 3… without gaps; a recovery is either
//!   everything after the cursor that the log holds, contiguous and in order,
//!   or "not recovered" with the current position (other epoch, trimmed, or a
//!   cursor from the future); history is oldest first, after `since`, at most
//!   `limit`;
//! * the tracker, fed by a simulated server consistent with a real log (one
//!   current epoch, a reset starts a new one; offsets only grow; a join is
//!   recovered only when the log still holds what follows the position):
//!   within an epoch it delivers strictly increasing offsets, never one
//!   twice; a lost position is reported as a gap; its position is at least
//!   the last offset it delivered.
#![no_main]

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchboard_client::recovery::{JoinAnswer, Positioned, Recovery};
use switchboard_fuzz::CountingAlloc;
use switchboard_hub::{LogLimits, Position, Recovery as LogRecovery, RoomLog};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[derive(Debug, Clone)]
struct M {
    epoch: String,
    offset: u64,
}

impl Positioned for M {
    fn epoch(&self) -> &str {
        &self.epoch
    }
    fn offset(&self) -> u64 {
        self.offset
    }
}

fuzz_target!(|data: &[u8]| {
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let limits = LogLimits::default()
        .max_entries(usize::from(data.first().copied().unwrap_or(8) % 16) + 1)
        .max_bytes(64)
        .max_age(Duration::from_secs(30));
    let mut log = RoomLog::new(limits);
    let epoch = log.epoch().to_owned();
    let mut now = t0;
    let mut tracker: Recovery<M> = Recovery::default();
    let mut delivered: Vec<(String, u64)> = Vec::new();
    // The simulated server of the tracker: a current epoch (a reset starts
    // a new one, never seen before) whose offsets only grow; its live
    // messages and join answers are consistent with it, as a real log's.
    let mut server_epoch = 0usize;
    let mut server_last = 0u64;
    let name = |e: usize| format!("s{e}");

    for ins in data.chunks_exact(4) {
        let (a, b, c) = (u64::from(ins[1]), u64::from(ins[2]), ins[3]);
        match ins[0] % 7 {
            0 => {
                let before = log.position().offset;
                let e = log.append("m".into(), Bytes::from(vec![0; usize::from(c % 32)]), None, now);
                assert_eq!(e.offset, before + 1);
            }
            1 => now += Duration::from_secs(a % 20),
            2 => {
                let since = Position {
                    epoch: if c % 2 == 0 { epoch.clone() } else { "other".to_owned() },
                    offset: a,
                };
                let last = log.position().offset;
                match log.recover(&since, now) {
                    LogRecovery::Recovered(entries) => {
                        assert_eq!(since.epoch, epoch);
                        let want: Vec<u64> = (since.offset + 1..=last).collect();
                        let got: Vec<u64> = entries.iter().map(|e| e.offset).collect();
                        assert_eq!(got, want, "recovered after {}", since.offset);
                    }
                    LogRecovery::NotRecovered(p) => assert_eq!(p, log.position()),
                }
            }
            3 => {
                let since = (c % 2 == 0).then_some(a);
                let limit = usize::try_from(b % 20).unwrap_or(0);
                let h = log.history(since, limit, now);
                assert!(h.len() <= limit);
                assert!(h.windows(2).all(|w| w[0].offset < w[1].offset));
                if let Some(s) = since {
                    assert!(h.iter().all(|e| e.offset > s));
                }
            }
            4 => {
                // The server's log is reset: a new epoch.
                server_epoch += 1;
                server_last = 0;
            }
            5 => {
                // A live message (the server may skip offsets: messages
                // the client was not sent).
                server_last += 1 + a % 3;
                let m = M {
                    epoch: name(server_epoch),
                    offset: server_last,
                };
                if let Some(d) = tracker.message("r", m) {
                    delivered.push((d.epoch, d.offset));
                }
            }
            _ => {
                // A (re)join and its answer: recovered when the client's
                // position is of the current epoch and the log (holding the
                // last `b % 32` entries) still has what follows it.
                let since = tracker.joining("r", false);
                let held_from = server_last.saturating_sub(b % 32);
                let recovered = since
                    .as_ref()
                    .is_some_and(|s| s.epoch == name(server_epoch) && s.offset >= held_from);
                let missed = match (&since, recovered) {
                    (Some(s), true) => (s.offset + 1..=server_last)
                        .map(|offset| M {
                            epoch: name(server_epoch),
                            offset,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                let answer = JoinAnswer {
                    epoch: name(server_epoch),
                    offset: server_last,
                    recovered,
                    missed,
                };
                let rejoined = tracker.joined("r", answer);
                if since.is_some() && !recovered {
                    assert!(rejoined.gap, "a lost position is reported as a gap");
                }
                for d in rejoined.deliver {
                    delivered.push((d.epoch, d.offset));
                }
                let _ = c;
            }
        }
        // Within an epoch, deliveries only move forward (never one twice).
        let mut last: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
        for (e, o) in &delivered {
            if let Some(prev) = last.insert(e, *o) {
                assert!(*o > prev, "delivered {e}/{o} after {e}/{prev}");
            }
        }
        if let (Some(p), Some(d)) = (tracker.position("r"), delivered.last())
            && p.epoch == d.0
        {
            assert!(p.offset >= d.1);
        }
    }
});
