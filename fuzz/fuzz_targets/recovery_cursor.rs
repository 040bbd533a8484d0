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
//! * the tracker: within an epoch it delivers strictly increasing offsets,
//!   never one twice, and its position is the last one it delivered.
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
    let epochs = [epoch.clone(), "other".to_owned()];
    // What the simulated server has given out per epoch: its answers are
    // consistent with it (a real log's offsets only grow).
    let mut server_last = [0u64; 2];

    for ins in data.chunks_exact(4) {
        let (a, b, c) = (u64::from(ins[1]), u64::from(ins[2]), ins[3]);
        match ins[0] % 6 {
            0 => {
                let before = log.position().offset;
                let e = log.append("m".into(), Bytes::from(vec![0; usize::from(c % 32)]), None, now);
                assert_eq!(e.offset, before + 1);
            }
            1 => now += Duration::from_secs(a % 20),
            2 => {
                let since = Position {
                    epoch: epochs[usize::from(c % 2)].clone(),
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
                // A live message to the tracker.
                let e = usize::from(c % 2);
                server_last[e] = server_last[e].max(a);
                let m = M {
                    epoch: epochs[e].clone(),
                    offset: a,
                };
                if tracker.position("r").is_none() {
                    tracker.joining("r", false);
                    server_last[0] = server_last[0].max(b);
                    let answer = JoinAnswer {
                        epoch: epoch.clone(),
                        offset: server_last[0],
                        recovered: c % 4 == 0,
                        missed: Vec::new(),
                    };
                    for d in tracker.joined("r", answer).deliver {
                        delivered.push((d.epoch, d.offset));
                    }
                }
                if let Some(d) = tracker.message("r", m) {
                    delivered.push((d.epoch, d.offset));
                }
            }
            _ => {
                // A rejoin: its answer may carry missed messages.
                tracker.joining("r", false);
                let missed: Vec<M> = (0..u64::from(c % 6))
                    .map(|i| M {
                        epoch: epoch.clone(),
                        offset: a + i,
                    })
                    .collect();
                server_last[0] = server_last[0].max(b).max(a + u64::from(c % 6));
                let answer = JoinAnswer {
                    epoch: epoch.clone(),
                    offset: server_last[0],
                    recovered: c % 2 == 0,
                    missed,
                };
                for d in tracker.joined("r", answer).deliver {
                    delivered.push((d.epoch, d.offset));
                }
            }
        }
        // Within an epoch, deliveries only move forward.
        for w in delivered.windows(2) {
            if w[0].0 == w[1].0 {
                assert!(w[1].1 > w[0].1, "delivered {:?} after {:?}", w[1], w[0]);
            }
        }
        if let (Some(p), Some(last)) = (tracker.position("r"), delivered.last())
            && p.epoch == last.0
        {
            assert!(p.offset >= last.1);
        }
    }
});
