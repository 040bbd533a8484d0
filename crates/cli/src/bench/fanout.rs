//! `switchboard bench fanout`: N subscribers in one room (spread over one or
//! several nodes), a publisher at rate R; deliveries per second and
//! end-to-end latency from a timestamp in the payload (same machine clock).
//!
//! Two protocols: switchboard's native one (`{"op":"join"}` /
//! `{"op":"publish"}` on `/ws`), and the Socket.IO relay of DESIGN.md §3
//! (`join(room, opts, ack)`, `publish(room, event, data, ack)`, members
//! receive `event(data, meta)`), spoken by `switchboard serve` and by the
//! Node peer `benches/peers/node/sio-relay.js`. Each message carries its
//! sequence number, so every subscriber's duplicates and losses are counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use switchboard_client::socketio::{Args, SioClient};
use switchboard_wire::io::{ConnectOptions, MaybeTlsStream, WebSocket, connect};
use switchboard_wire::{Config, Message};
use tokio::sync::watch;

use super::conns::{Dialer, Protocol};
use super::report::{histogram, percentile_line, percentiles};

/// What the subscribers and the publisher speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FanoutProtocol {
    /// switchboard's native protocol (`ws://host:port/ws`).
    Native,
    /// The Socket.IO relay (`http://host:port`; Engine.IO v4 over the
    /// WebSocket transport at `/socket.io/`).
    Socketio,
}

impl FanoutProtocol {
    fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Socketio => "socketio",
        }
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct FanoutBenchArgs {
    /// Endpoint(s): `ws://host:port/ws` (native) or `http://host:port`
    /// (Socket.IO); subscribers are spread over them in turn, the publisher
    /// uses the first.
    #[arg(long = "url", required = true)]
    urls: Vec<String>,
    /// What the subscribers and the publisher speak.
    #[arg(long, value_enum, default_value_t = FanoutProtocol::Native)]
    protocol: FanoutProtocol,
    /// Subscribers in the room.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Messages published per second.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Measured seconds of publishing.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Padding bytes in each message.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// The room.
    #[arg(long, default_value = "bench")]
    room: String,
    /// Connections opened at once while setting up.
    #[arg(long, default_value_t = 200)]
    connect_batch: usize,
    /// The server's process id: its CPU time (utime + stime from
    /// /proc/PID/stat, all threads) from the first publish to the last
    /// delivery is reported, per delivery.
    #[arg(long)]
    pid: Option<u32>,
    /// Native subscribers do not offer permessage-deflate (browsers do):
    /// the one core that reads for all of them then does not inflate every
    /// delivery, which adds its own lag to the latencies measured.
    /// Socket.IO subscribers never compress (nor does the reference server).
    #[arg(long)]
    no_deflate: bool,
    /// Load generator threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// At most this many messages in one run (each subscriber keeps a bit per
/// message).
const MAX_MESSAGES: f64 = 10_000_000.0;

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The unsigned integer after `key` (e.g. `"t":`) in a delivered message.
/// Inside a JSON string a quote is escaped, so `"t":` only matches a key.
fn field(text: &str, key: &str) -> Option<u64> {
    let at = text.find(key)? + key.len();
    let digits: &str = &text[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// The publish timestamp (µs since 1970) in a delivered message.
fn stamp(text: &str) -> Option<u64> {
    field(text, "\"t\":")
}

/// The message's sequence number, from 0.
fn sequence(text: &str) -> Option<u64> {
    field(text, "\"n\":")
}

pub(crate) fn run(args: FanoutBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rate.is_finite() && args.rate > 0.0,
        "--rate must be a positive number of messages per second"
    );
    anyhow::ensure!(
        args.duration.is_finite() && args.duration > 0.0,
        "--duration must be a positive number of seconds"
    );
    anyhow::ensure!(
        args.rate * args.duration <= MAX_MESSAGES,
        "--rate × --duration must be at most {MAX_MESSAGES} messages"
    );
    anyhow::ensure!(args.threads >= 1, "--threads must be at least 1");
    if args.protocol == FanoutProtocol::Socketio {
        for url in &args.urls {
            anyhow::ensure!(
                !url.contains("/socket.io") && !url.contains('?'),
                "--url {url}: give the server's base URL (http://host:port); the path /socket.io/ is added"
            );
        }
    }
    super::runtime(args.threads)?.block_on(bench(args))
}

type Ws = WebSocket<MaybeTlsStream>;

/// A native subscriber: connected and joined.
async fn join_native(url: &str, room: &str, deflate: bool) -> anyhow::Result<Ws> {
    let config = Config::default();
    let config = if deflate {
        config
    } else {
        config.deflate(None)
    };
    let options = ConnectOptions::new(config);
    let (mut ws, _) = connect(url, &options)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    ws.send(Message::text(
        json!({"op": "join", "room": room, "id": 1}).to_string(),
    ))
    .await?;
    loop {
        match ws.recv().await {
            Some(Ok(Message::Text(t))) if t.as_str().contains("\"id\":1") => {
                anyhow::ensure!(
                    t.as_str().contains("\"ok\":true"),
                    "join refused: {}",
                    t.as_str()
                );
                return Ok(ws);
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e).context("join"),
            None => anyhow::bail!("closed before the join answer"),
        }
    }
}

/// A Socket.IO subscriber: Engine.IO open and CONNECT to `/` (the
/// [`Dialer`]), then `join(room, {}, ack)` and its ack `{ok: true, …}`.
async fn join_socketio(dialer: &Dialer, i: usize, room: &str) -> anyhow::Result<Ws> {
    let mut ws = dialer.open(i).await?;
    // EVENT with ack id 0: 420["join", room, {}].
    ws.send(Message::text(format!("420{}", json!(["join", room, {}]))))
        .await?;
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.recv().await {
                Some(Ok(Message::Text(t))) => {
                    let t = t.as_str();
                    if t == "2" {
                        ws.send(Message::text("3")).await?;
                    } else if let Some(ack) = t.strip_prefix("430") {
                        return Ok::<_, anyhow::Error>(ack.to_owned());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("join"),
                None => anyhow::bail!("closed before the join ack"),
            }
        }
    })
    .await
    .context("no join ack within 10 s")??;
    let ok = serde_json::from_str::<Value>(&answer)
        .ok()
        .and_then(|v| v.get(0)?.get("ok")?.as_bool())
        == Some(true);
    anyhow::ensure!(ok, "join refused: {answer}");
    Ok(ws)
}

/// What every subscriber adds to.
struct Shared {
    /// Deliveries (messages with a timestamp), duplicates included.
    delivered: AtomicU64,
    /// µs since 1970 of the latest delivery.
    last: AtomicU64,
    latency: Mutex<Histogram<u64>>,
}

/// What one subscriber received.
#[derive(Debug, Default)]
struct Seen {
    /// Bit n: message n arrived.
    bits: Vec<u64>,
    duplicates: u64,
    /// Deliveries with a timestamp but no usable sequence number.
    unexpected: u64,
}

impl Seen {
    fn note(&mut self, n: Option<u64>, cap: u64) {
        let Some(n) = n.filter(|&n| n < cap) else {
            self.unexpected += 1;
            return;
        };
        let (word, bit) = ((n / 64) as usize, 1u64 << (n % 64));
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        if self.bits[word] & bit == 0 {
            self.bits[word] |= bit;
        } else {
            self.duplicates += 1;
        }
    }

    /// Distinct messages among 0..published, and those past it.
    fn count(&self, published: u64) -> (u64, u64) {
        let (mut within, mut beyond) = (0u64, 0u64);
        for (i, w) in self.bits.iter().enumerate() {
            let first = i as u64 * 64;
            let mask = match published.saturating_sub(first) {
                0 => 0,
                k if k >= 64 => u64::MAX,
                k => (1u64 << k) - 1,
            };
            within += u64::from((w & mask).count_ones());
            beyond += u64::from((w & !mask).count_ones());
        }
        (within, beyond)
    }
}

/// Reads one subscriber's deliveries until `stop` (Socket.IO: answering the
/// server's pings).
async fn subscribe(
    mut ws: Ws,
    socketio: bool,
    cap: u64,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> Seen {
    let mut seen = Seen::default();
    // Made once: a fresh `changed()` per message would join and leave the
    // channel's waiter list each time, a cost the subscribers' one core pays
    // 100,000 times a second.
    let mut stopped = std::pin::pin!(stop.changed());
    loop {
        tokio::select! {
            m = ws.recv() => match m {
                Some(Ok(Message::Text(t))) => {
                    let t = t.as_str();
                    if socketio && t == "2" {
                        if ws.send(Message::text("3")).await.is_err() {
                            break;
                        }
                    } else if let Some(t0) = stamp(t) {
                        let now = now_us();
                        shared.delivered.fetch_add(1, Ordering::Relaxed);
                        shared.last.fetch_max(now, Ordering::Relaxed);
                        let _ = shared
                            .latency
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .record(now.saturating_sub(t0).max(1));
                        seen.note(sequence(t), cap);
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            },
            _ = &mut stopped => break,
        }
    }
    seen
}

/// utime + stime of a process, in µs.
fn cpu_us(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The fields after the command name (in parentheses): state is field 3,
    // utime and stime fields 14 and 15.
    let rest = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .context("no command name in /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .context("unreadable /proc/PID/stat")
    };
    let ticks = tick(11)? + tick(12)?;
    // SAFETY: sysconf only reads a system constant; it has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100);
    Ok(ticks * 1_000_000 / hz)
}

/// The publisher's connection.
enum Publisher {
    Native(Box<Ws>),
    Socketio(SioClient),
}

/// Publish acks (Socket.IO): acknowledged, refused or lost, and the first
/// failure.
#[derive(Debug, Default)]
struct Acks {
    ok: u64,
    failed: u64,
    first_error: Option<String>,
}

async fn bench(args: FanoutBenchArgs) -> anyhow::Result<()> {
    let socketio = args.protocol == FanoutProtocol::Socketio;
    let dialers = if socketio {
        args.urls
            .iter()
            .map(|u| Dialer::new(u, Protocol::Socketio, &args.room, 0))
            .collect::<anyhow::Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    // Sequence numbers are below this (the publisher stops there).
    let cap = (args.rate * args.duration).ceil() as u64 + 1;
    let shared = Arc::new(Shared {
        delivered: AtomicU64::new(0),
        last: AtomicU64::new(0),
        latency: Mutex::new(histogram()),
    });
    let (stop_tx, stop) = watch::channel(false);
    let setup = Instant::now();
    let mut readers = Vec::with_capacity(args.subscribers);
    let indexes: Vec<usize> = (0..args.subscribers).collect();
    for batch in indexes.chunks(args.connect_batch.max(1)) {
        let joins = batch.iter().map(|&i| {
            let (url, room, dialers) = (&args.urls[i % args.urls.len()], &args.room, &dialers);
            let no_deflate = args.no_deflate;
            async move {
                let ws = if socketio {
                    join_socketio(&dialers[i % dialers.len()], i, room).await
                } else {
                    join_native(url, room, !no_deflate).await
                };
                ws.with_context(|| format!("subscriber {i} ({url})"))
            }
        });
        for ws in futures_util::future::join_all(joins).await {
            // Read at once: heartbeats are answered while the others join.
            readers.push(tokio::spawn(subscribe(
                ws?,
                socketio,
                cap,
                shared.clone(),
                stop.clone(),
            )));
        }
    }
    let setup = setup.elapsed();
    let mut publisher = if socketio {
        Publisher::Socketio(
            super::sio_echo::open(&args.urls[0])
                .await
                .context("publisher")?,
        )
    } else {
        let (ws, _) = connect(&args.urls[0], &ConnectOptions::new(Config::default()))
            .await
            .context("publisher")?;
        Publisher::Native(Box::new(ws))
    };
    let pad = "x".repeat(args.size);
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let cpu0 = args.pid.map(cpu_us).transpose()?;
    let start = Instant::now();
    let start_us = now_us();
    let until = start + Duration::from_secs_f64(args.duration);
    let mut published = 0u64;
    let mut acks = tokio::task::JoinSet::new();
    let mut next = start;
    while next < until && published < cap {
        tokio::time::sleep_until(next.into()).await;
        let data = json!({"t": now_us(), "n": published, "pad": pad});
        match &mut publisher {
            Publisher::Native(ws) => {
                let msg =
                    json!({"op": "publish", "room": args.room, "event": "bench", "data": data});
                ws.send(Message::text(msg.to_string())).await?;
            }
            Publisher::Socketio(client) => {
                let ack = client.emit_with_ack(
                    "publish",
                    Args::json(vec![json!(args.room), json!("bench"), data]),
                );
                acks.spawn(ack);
            }
        }
        published += 1;
        next += interval;
    }
    // Wait for the last deliveries, until none came for 3 s.
    let expected = published * args.subscribers as u64;
    let mut seen = shared.delivered.load(Ordering::Relaxed);
    let mut quiet_since = Instant::now();
    while seen < expected && quiet_since.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = shared.delivered.load(Ordering::Relaxed);
        if now != seen {
            seen = now;
            quiet_since = Instant::now();
        }
    }
    let cpu = match (args.pid, cpu0) {
        (Some(pid), Some(c0)) => Some(cpu_us(pid)?.saturating_sub(c0)),
        _ => None,
    };
    // Sustained rate: deliveries over the time from the first publish to
    // the last delivery (an overloaded server takes longer than the
    // publishing time, and its rate is what it managed).
    let elapsed = (shared.last.load(Ordering::Relaxed).saturating_sub(start_us) as f64 / 1e6)
        .max(args.duration);
    let _ = stop_tx.send(true);
    let (mut unique, mut duplicates, mut unexpected, mut complete) = (0u64, 0u64, 0u64, 0usize);
    for r in readers {
        let s = r.await.context("subscriber task")?;
        let (within, beyond) = s.count(published);
        unique += within;
        duplicates += s.duplicates;
        unexpected += s.unexpected + beyond;
        if within == published && s.duplicates == 0 && s.unexpected + beyond == 0 {
            complete += 1;
        }
    }
    let mut acked = Acks::default();
    if let Publisher::Socketio(client) = &publisher {
        // Each ack waits 10 s at most (the client's ack timeout).
        let _ = tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(r) = acks.join_next().await {
                let failure = match r {
                    Ok(Ok(a)) => {
                        let v = a.values.first().cloned().unwrap_or(Value::Null);
                        if v.get("ok").and_then(Value::as_bool) == Some(true) {
                            None
                        } else {
                            Some(format!("publish refused: {v}"))
                        }
                    }
                    Ok(Err(e)) => Some(format!("publish: {e}")),
                    Err(e) => Some(format!("publish: {e}")),
                };
                match failure {
                    None => acked.ok += 1,
                    Some(e) => {
                        acked.failed += 1;
                        acked.first_error.get_or_insert(e);
                    }
                }
            }
        })
        .await;
        client.close();
    }
    let got = shared.delivered.load(Ordering::Relaxed);
    let lost = expected.saturating_sub(unique);
    let rate = got as f64 / elapsed;
    let cpu_per = cpu.map(|c| if got > 0 { c as f64 / got as f64 } else { 0.0 });
    let latency = shared.latency.lock().unwrap_or_else(|e| e.into_inner());
    if args.json {
        let mut out = json!({
            "scenario": "fanout",
            "protocol": args.protocol.name(),
            "deflate_offered": !socketio && !args.no_deflate,
            "urls": args.urls,
            "subscribers": args.subscribers,
            "rate": args.rate,
            "size": args.size,
            "duration_s": args.duration,
            "setup_s": setup.as_secs_f64(),
            "published": published,
            "expected": expected,
            "delivered": got,
            "duplicates": duplicates,
            "lost": lost,
            "unexpected": unexpected,
            "complete_subscribers": complete,
            "deliveries_per_sec": rate.round(),
            "elapsed_s": elapsed,
            "server_pid": args.pid,
            "server_cpu_us": cpu,
            "server_cpu_us_per_delivery": cpu_per,
        });
        if let Some(o) = out.as_object_mut() {
            if let Value::Object(p) = percentiles(&latency) {
                o.extend(p);
            }
            if socketio {
                o.insert("publish_acked".into(), json!(acked.ok));
                o.insert("publish_failed".into(), json!(acked.failed));
                o.insert("first_publish_error".into(), json!(acked.first_error));
            }
        }
        println!("{out}");
    } else {
        println!(
            "fanout ({}) — {} subscribers on {} node(s), {} msg/s for {} s: {}/{} delivered, {:.0} deliveries/s (setup {:.1} s)\n  {}\n  {} of {} subscribers got every message once; {} lost, {} duplicates, {} unexpected",
            args.protocol.name(),
            args.subscribers,
            args.urls.len(),
            args.rate,
            args.duration,
            got,
            expected,
            rate,
            setup.as_secs_f64(),
            percentile_line(&latency),
            complete,
            args.subscribers,
            lost,
            duplicates,
            unexpected,
        );
        if let (Some(c), Some(per)) = (cpu, cpu_per) {
            println!("  server CPU {c} µs, {per:.2} µs per delivery");
        }
        if socketio {
            println!(
                "  publish acks: {} ok, {} failed{}",
                acked.ok,
                acked.failed,
                acked
                    .first_error
                    .as_deref()
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Seen, sequence, stamp};

    #[test]
    fn the_stamp_is_read_from_a_delivered_message() {
        let m = r#"{"op":"message","room":"b","data":{"t":1700000000123456,"n":7,"pad":"xx"},"offset":3}"#;
        assert_eq!(stamp(m), Some(1_700_000_000_123_456));
        assert_eq!(sequence(m), Some(7));
        assert_eq!(stamp(r#"{"op":"welcome"}"#), None);
        let sio = r#"42["bench",{"t":1700000000123456,"n":12,"pad":"xx"},{"room":"b","offset":13,"epoch":"e","from":"anon-x","at":"2024-01-01T00:00:00.000Z"},"13"]"#;
        assert_eq!(stamp(sio), Some(1_700_000_000_123_456));
        assert_eq!(sequence(sio), Some(12));
        // A quote inside a string is escaped: no false key.
        assert_eq!(stamp(r#"42["e",{"s":"\"t\":5"}]"#), None);
    }

    #[test]
    fn losses_duplicates_and_strays_are_counted() {
        let mut s = Seen::default();
        for n in [0, 1, 1, 3, 70, 70, 130] {
            s.note(Some(n), 200);
        }
        s.note(None, 200);
        s.note(Some(500), 200);
        assert_eq!(s.duplicates, 2);
        assert_eq!(s.unexpected, 2);
        // Published 71: 0, 1, 3, 70 arrived; 130 is past what was sent.
        assert_eq!(s.count(71), (4, 1));
        assert_eq!(s.count(64), (3, 2));
        assert_eq!(s.count(0), (0, 5));
    }
}
