//! `switchboard bench fanout`: N subscribers in one room over the native
//! protocol (spread over one or several nodes), a publisher at rate R;
//! deliveries per second and end-to-end latency from a timestamp in the
//! payload (same machine clock).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde_json::json;
use switchboard_wire::io::{ConnectOptions, connect};
use switchboard_wire::{Config, Message};
use tokio::sync::Mutex;

use super::report::{histogram, percentile_line, percentiles};

#[derive(Debug, clap::Args)]
pub(crate) struct FanoutBenchArgs {
    /// Native endpoint(s) (`ws://host:port/ws`); subscribers are spread
    /// over them in turn, the publisher uses the first.
    #[arg(long = "url", required = true)]
    urls: Vec<String>,
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
    /// Load generator threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The publish timestamp in a delivered message: the digits after `"t":`.
fn stamp(text: &str) -> Option<u64> {
    let at = text.find("\"t\":")? + 4;
    let digits: &str = &text[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

pub(crate) fn run(args: FanoutBenchArgs) -> anyhow::Result<()> {
    super::runtime(args.threads)?.block_on(bench(args))
}

async fn join(
    url: &str,
    room: &str,
) -> anyhow::Result<switchboard_wire::io::WebSocket<switchboard_wire::io::MaybeTlsStream>> {
    let options = ConnectOptions::new(Config::default());
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

async fn bench(args: FanoutBenchArgs) -> anyhow::Result<()> {
    let setup = Instant::now();
    let mut sockets = Vec::with_capacity(args.subscribers);
    for batch in (0..args.subscribers)
        .collect::<Vec<_>>()
        .chunks(args.connect_batch.max(1))
    {
        let joins = batch.iter().map(|i| {
            let url = args.urls[i % args.urls.len()].clone();
            let room = args.room.clone();
            async move { join(&url, &room).await }
        });
        for ws in futures_util::future::join_all(joins).await {
            sockets.push(ws?);
        }
    }
    let setup = setup.elapsed();
    let delivered = Arc::new(AtomicU64::new(0));
    // µs since 1970 of the latest delivery.
    let last = Arc::new(AtomicU64::new(0));
    let latency = Arc::new(Mutex::new(histogram()));
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut readers = Vec::with_capacity(sockets.len());
    for mut ws in sockets {
        let (delivered, latency, stop, last) = (
            delivered.clone(),
            latency.clone(),
            stop.clone(),
            last.clone(),
        );
        readers.push(tokio::spawn(async move {
            let mut h: Histogram<u64> = histogram();
            loop {
                tokio::select! {
                    m = ws.recv() => match m {
                        Some(Ok(Message::Text(t))) => {
                            if let Some(t0) = stamp(t.as_str()) {
                                delivered.fetch_add(1, Ordering::Relaxed);
                                let now = now_us();
                                last.fetch_max(now, Ordering::Relaxed);
                                let _ = h.record(now.saturating_sub(t0).max(1));
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                    () = stop.notified() => break,
                }
            }
            let _ = latency.lock().await.add(&h);
        }));
    }
    let (mut publisher, _) = connect(&args.urls[0], &ConnectOptions::new(Config::default()))
        .await
        .context("publisher")?;
    let pad = "x".repeat(args.size);
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(0.001));
    let start = Instant::now();
    let start_us = now_us();
    let until = start + Duration::from_secs_f64(args.duration);
    let mut published = 0u64;
    let mut next = start;
    while next < until {
        tokio::time::sleep_until(next.into()).await;
        let msg = json!({"op": "publish", "room": args.room, "event": "bench",
            "data": {"t": now_us(), "pad": pad}});
        publisher.send(Message::text(msg.to_string())).await?;
        published += 1;
        next += interval;
    }
    // Wait for the last deliveries, until none came for 3 s.
    let expected = published * args.subscribers as u64;
    let mut seen = delivered.load(Ordering::Relaxed);
    let mut quiet_since = Instant::now();
    while seen < expected && quiet_since.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = delivered.load(Ordering::Relaxed);
        if now != seen {
            seen = now;
            quiet_since = Instant::now();
        }
    }
    // Sustained rate: deliveries over the time from the first publish to
    // the last delivery (an overloaded server takes longer than the
    // publishing time, and its rate is what it managed).
    let elapsed =
        (last.load(Ordering::Relaxed).saturating_sub(start_us) as f64 / 1e6).max(args.duration);
    stop.notify_waiters();
    for r in readers {
        let _ = r.await;
    }
    let got = delivered.load(Ordering::Relaxed);
    let rate = got as f64 / elapsed;
    let latency = latency.lock().await;
    if args.json {
        let mut out = json!({
            "scenario": "fanout",
            "urls": args.urls,
            "subscribers": args.subscribers,
            "rate": args.rate,
            "size": args.size,
            "duration_s": args.duration,
            "setup_s": setup.as_secs_f64(),
            "published": published,
            "expected": expected,
            "delivered": got,
            "deliveries_per_sec": rate.round(),
            "elapsed_s": elapsed,
        });
        if let (Some(o), serde_json::Value::Object(p)) =
            (out.as_object_mut(), percentiles(&latency))
        {
            o.extend(p);
        }
        println!("{out}");
    } else {
        println!(
            "fanout — {} subscribers on {} node(s), {} msg/s for {} s: {}/{} delivered, {:.0} deliveries/s (setup {:.1} s)\n  {}",
            args.subscribers,
            args.urls.len(),
            args.rate,
            args.duration,
            got,
            expected,
            rate,
            setup.as_secs_f64(),
            percentile_line(&latency)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::stamp;

    #[test]
    fn the_stamp_is_read_from_a_delivered_message() {
        let m =
            r#"{"op":"message","room":"b","data":{"t":1700000000123456,"pad":"xx"},"offset":3}"#;
        assert_eq!(stamp(m), Some(1_700_000_000_123_456));
        assert_eq!(stamp(r#"{"op":"welcome"}"#), None);
    }
}
