//! `switchboard bench echo`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use futures_util::FutureExt as _;
use serde_json::json;
use switchboard_wire::io::{ConnectOptions, MaybeTlsStream, WebSocket, connect};
use switchboard_wire::{Config, DeflateConfig, Message};

use super::report::{Latencies, Recorder, percentile_line, percentiles};

#[derive(Debug, clap::Args)]
pub(crate) struct EchoBenchArgs {
    /// Server URL (ws:// or wss://).
    #[arg(long)]
    url: String,
    /// Concurrent connections.
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// Messages each connection keeps in flight (1: send one, wait for its
    /// echo); above 1, what arrives together is answered with one write.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    in_flight: u32,
    /// Message size in bytes.
    #[arg(long, default_value_t = 20)]
    size: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Warm-up seconds, not counted.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Send text messages instead of binary.
    #[arg(long)]
    text: bool,
    /// Offer permessage-deflate.
    #[arg(long)]
    deflate: bool,
    /// Load generator threads (1 = a single current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: EchoBenchArgs) -> anyhow::Result<()> {
    super::runtime(args.threads)?.block_on(bench(args))
}

async fn bench(args: EchoBenchArgs) -> anyhow::Result<()> {
    let deflate = args.deflate.then(DeflateConfig::default);
    let options = ConnectOptions::new(Config::default().deflate(deflate));
    let mut sockets = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        let (ws, _) = connect(&args.url, &options)
            .await
            .with_context(|| format!("connection {i} to {}", args.url))?;
        sockets.push(ws);
    }
    let payload: Vec<u8> = (0..args.size).map(|i| b'a' + (i % 26) as u8).collect();
    let message = if args.text {
        Message::text(String::from_utf8(payload).context("payload")?)
    } else {
        Message::Binary(Bytes::from(payload))
    };
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let until = measure_from + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::with_capacity(sockets.len());
    let in_flight = args.in_flight as usize;
    let latencies = Latencies::new();
    for ws in sockets {
        let message = message.clone();
        let latency = latencies.recorder();
        tasks.push(tokio::spawn(async move {
            echo_loop(ws, message, in_flight, latency, measure_from, until).await
        }));
    }
    let mut messages = 0;
    for t in tasks {
        messages += t.await.context("connection task")??;
    }
    let latency = latencies.lock();
    let rate = messages as f64 / args.duration;
    if args.json {
        let mut out = json!({
            "scenario": "echo",
            "url": args.url,
            "connections": args.connections,
            "in_flight": args.in_flight,
            "size": args.size,
            "duration_s": args.duration,
            "messages": messages,
            "msgs_per_sec": rate.round(),
        });
        if let (Some(o), serde_json::Value::Object(p)) =
            (out.as_object_mut(), percentiles(&latency))
        {
            o.extend(p);
        }
        println!("{out}");
    } else {
        println!(
            "echo {} — {} connections × {} B for {} s: {} round trips, {:.0} msg/s\n  {}",
            args.url,
            args.connections,
            args.size,
            args.duration,
            messages,
            rate,
            percentile_line(&latency)
        );
    }
    Ok(())
}

/// One connection's load: `in_flight` messages out, each replaced as its
/// echo comes back (echoes come in order), until `until`. Returns the round
/// trips begun in `measure_from..until` (their latencies go to `latency`).
async fn echo_loop(
    mut ws: WebSocket<MaybeTlsStream>,
    message: Message,
    in_flight: usize,
    mut latency: Recorder,
    measure_from: Instant,
    until: Instant,
) -> anyhow::Result<u64> {
    let mut messages = 0;
    let mut sent: VecDeque<Instant> = VecDeque::with_capacity(in_flight);
    for _ in 0..in_flight {
        ws.queue(message.clone())?;
        sent.push_back(Instant::now());
    }
    ws.flush().await.context("send")?;
    while let Some(&t0) = sent.front() {
        let mut next = Some(ws.recv().await);
        while let Some(got) = next {
            match got {
                Some(Ok(m)) if m.len() == message.len() => {}
                Some(Ok(m)) => {
                    anyhow::bail!("echo of {} bytes, sent {}", m.len(), message.len())
                }
                Some(Err(e)) => return Err(e).context("receive"),
                None => anyhow::bail!("server closed the connection"),
            }
            let t0 = sent.pop_front().unwrap_or(t0);
            let now = Instant::now();
            if t0 >= measure_from && t0 < until {
                messages += 1;
                latency.record(now.duration_since(t0).as_micros() as u64);
            }
            if now < until {
                ws.queue(message.clone())?;
                sent.push_back(now);
            }
            if sent.is_empty() {
                break;
            }
            // Whatever else has already arrived, without waiting.
            next = ws.recv().now_or_never();
        }
        ws.flush().await.context("send")?;
    }
    let _ = ws.close(None).await;
    Ok(messages)
}
