//! `switchboard bench echo`.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use hdrhistogram::Histogram;
use serde_json::json;
use switchboard_wire::io::{ConnectOptions, connect};
use switchboard_wire::{Config, DeflateConfig, Message};

use super::report::{histogram, percentile_line, percentiles};

#[derive(Debug, clap::Args)]
pub(crate) struct EchoBenchArgs {
    /// Server URL (ws:// or wss://).
    #[arg(long)]
    url: String,
    /// Concurrent connections, each with one message in flight.
    #[arg(long, default_value_t = 100)]
    connections: usize,
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

struct ConnResult {
    messages: u64,
    latency: Histogram<u64>,
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
    for mut ws in sockets {
        let message = message.clone();
        tasks.push(tokio::spawn(async move {
            let mut r = ConnResult {
                messages: 0,
                latency: histogram(),
            };
            loop {
                let t0 = Instant::now();
                if t0 >= until {
                    break;
                }
                ws.send(message.clone()).await.context("send")?;
                match ws.recv().await {
                    Some(Ok(m)) if m.len() == message.len() => {}
                    Some(Ok(m)) => {
                        anyhow::bail!("echo of {} bytes, sent {}", m.len(), message.len())
                    }
                    Some(Err(e)) => return Err(e).context("receive"),
                    None => anyhow::bail!("server closed the connection"),
                }
                if t0 >= measure_from {
                    r.messages += 1;
                    let us = t0.elapsed().as_micros().max(1) as u64;
                    let _ = r.latency.record(us);
                }
            }
            let _ = ws.close(None).await;
            Ok::<_, anyhow::Error>(r)
        }));
    }
    let mut total = ConnResult {
        messages: 0,
        latency: histogram(),
    };
    for t in tasks {
        let r = t.await.context("connection task")??;
        total.messages += r.messages;
        let _ = total.latency.add(&r.latency);
    }
    let rate = total.messages as f64 / args.duration;
    if args.json {
        let mut out = json!({
            "scenario": "echo",
            "url": args.url,
            "connections": args.connections,
            "size": args.size,
            "duration_s": args.duration,
            "messages": total.messages,
            "msgs_per_sec": rate.round(),
        });
        if let (Some(o), serde_json::Value::Object(p)) =
            (out.as_object_mut(), percentiles(&total.latency))
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
            total.messages,
            rate,
            percentile_line(&total.latency)
        );
    }
    Ok(())
}
