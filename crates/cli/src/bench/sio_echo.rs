//! `switchboard bench sio-echo`: Socket.IO emit-with-ack round trips. N
//! clients (WebSocket transport), each emitting `echo` with a payload and
//! waiting for the ack before the next; any Socket.IO server that acks
//! `echo` with its arguments (`switchboard echo --socketio`, the peers in
//! benches/peers).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use switchboard_client::socketio::{Args, Event, SioClient, SioConfig, State};

use super::report::{histogram, percentile_line, percentiles};

#[derive(Debug, clap::Args)]
pub(crate) struct SioEchoBenchArgs {
    /// Server URL (`http://host:port`).
    #[arg(long)]
    url: String,
    /// Concurrent clients, each with one emit in flight.
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// Payload size in bytes (a string argument).
    #[arg(long, default_value_t = 20)]
    size: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Warm-up seconds, not counted.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Load generator threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: SioEchoBenchArgs) -> anyhow::Result<()> {
    super::runtime(args.threads)?.block_on(bench(args))
}

/// A connected client (its event stream drained in the background); also
/// the `fanout` bench's Socket.IO publisher.
pub(super) async fn open(url: &str) -> anyhow::Result<SioClient> {
    let (client, mut events) = SioClient::connect(SioConfig::new([url.to_owned()]));
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(Event::State(State::Open { .. }))) => break,
            Ok(Some(Event::State(State::Closed { reason }))) => anyhow::bail!("closed: {reason}"),
            Ok(Some(Event::ConnectError { error })) => anyhow::bail!("refused: {error}"),
            Ok(Some(_)) => {}
            Ok(None) => anyhow::bail!("client stopped"),
            Err(_) => anyhow::bail!("not connected within 10 s"),
        }
    }
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    Ok(client)
}

async fn bench(args: SioEchoBenchArgs) -> anyhow::Result<()> {
    let mut clients = Vec::with_capacity(args.connections);
    for chunk in (0..args.connections).collect::<Vec<_>>().chunks(100) {
        let opened = futures_util::future::join_all(chunk.iter().map(|_| open(&args.url))).await;
        for (i, c) in opened.into_iter().enumerate() {
            clients
                .push(c.with_context(|| format!("client {} to {}", clients.len() + i, args.url))?);
        }
    }
    let payload = Value::String("a".repeat(args.size));
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let until = measure_from + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::with_capacity(clients.len());
    for client in clients {
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut h: Histogram<u64> = histogram();
            loop {
                let t0 = Instant::now();
                if t0 >= until {
                    break;
                }
                let ack = client
                    .emit_with_ack("echo", Args::json(vec![payload.clone()]))
                    .await
                    .context("emit")?;
                anyhow::ensure!(
                    ack.values.first() == Some(&payload),
                    "the ack is not the echo"
                );
                if t0 >= measure_from {
                    n += 1;
                    let _ = h.record(t0.elapsed().as_micros().max(1) as u64);
                }
            }
            client.close();
            Ok::<_, anyhow::Error>((n, h))
        }));
    }
    let mut total = 0u64;
    let mut latency = histogram();
    for t in tasks {
        let (n, h) = t.await.context("client task")??;
        total += n;
        let _ = latency.add(&h);
    }
    let rate = total as f64 / args.duration;
    if args.json {
        let mut out = json!({
            "scenario": "sio-echo",
            "url": args.url,
            "connections": args.connections,
            "size": args.size,
            "duration_s": args.duration,
            "messages": total,
            "msgs_per_sec": rate.round(),
        });
        if let (Some(o), Value::Object(p)) = (out.as_object_mut(), percentiles(&latency)) {
            o.extend(p);
        }
        println!("{out}");
    } else {
        println!(
            "sio-echo {} — {} clients × {} B for {} s: {} round trips, {:.0}/s\n  {}",
            args.url,
            args.connections,
            args.size,
            args.duration,
            total,
            rate,
            percentile_line(&latency)
        );
    }
    Ok(())
}
