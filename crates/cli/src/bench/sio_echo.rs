//! `switchboard bench sio-echo`: Socket.IO emit-with-ack round trips. N
//! clients (WebSocket transport), each emitting `echo` with a payload and
//! waiting for the ack before the next (or keeping `--in-flight` such loops
//! going at once); any Socket.IO server that acks `echo` with its arguments
//! (`switchboard echo --socketio`, the peers in benches/peers).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::FutureExt as _;
use serde_json::{Value, json};
use switchboard_client::socketio::{Event, SioClient, SioConfig, State};
use switchboard_wire::io::{ConnectOptions, MaybeTlsStream, WebSocket, connect};
use switchboard_wire::{Config, Message};

use super::report::{Latencies, Recorder, percentile_line, percentiles};

#[derive(Debug, clap::Args)]
pub(crate) struct SioEchoBenchArgs {
    /// Server URL (`http://host:port`).
    #[arg(long)]
    url: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// Emits each client keeps in flight (each waits for its ack before the
    /// next); above 1, a server can read and answer several in one go.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    in_flight: u32,
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
    let url = super::conns::socketio_ws_url(&args.url);
    let mut conns = Vec::with_capacity(args.connections);
    for chunk in (0..args.connections).collect::<Vec<_>>().chunks(100) {
        let opened = futures_util::future::join_all(chunk.iter().map(|_| handshake(&url))).await;
        for (i, c) in opened.into_iter().enumerate() {
            conns.push(c.with_context(|| format!("client {} to {}", conns.len() + i, args.url))?);
        }
    }
    let payload = serde_json::to_string(&"a".repeat(args.size))?;
    let start = Instant::now();
    let window = Window {
        measure_from: start + Duration::from_secs_f64(args.warmup),
        until: start + Duration::from_secs_f64(args.warmup + args.duration),
    };
    let mut tasks = Vec::with_capacity(conns.len());
    let latencies = Latencies::new();
    for ws in conns {
        let payload = payload.clone();
        let latency = latencies.recorder();
        let in_flight = args.in_flight as usize;
        // One deadline for the whole loop rather than a timer per receive:
        // a server that stops answering fails the run 10 s after the window.
        let deadline = window.until + Duration::from_secs(10);
        tasks.push(tokio::spawn(async move {
            tokio::time::timeout_at(
                deadline.into(),
                round_trips(ws, &payload, in_flight, latency, window),
            )
            .await
            .context("acks still outstanding 10 s after the measured window")?
        }));
    }
    let mut total = 0u64;
    for t in tasks {
        total += t.await.context("client task")??;
    }
    let latency = latencies.lock();
    let rate = total as f64 / args.duration;
    if args.json {
        let mut out = json!({
            "scenario": "sio-echo",
            "url": args.url,
            "connections": args.connections,
            "in_flight": args.in_flight,
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
            "sio-echo {} — {} clients × {} in flight × {} B for {} s: {} round trips, {:.0}/s\n  {}",
            args.url,
            args.connections,
            args.in_flight,
            args.size,
            args.duration,
            total,
            rate,
            percentile_line(&latency)
        );
    }
    Ok(())
}

/// The measured interval.
#[derive(Debug, Clone, Copy)]
struct Window {
    measure_from: Instant,
    until: Instant,
}

/// Opens a WebSocket straight to Engine.IO and joins the namespace `/`,
/// answering pings on the way.
async fn handshake(url: &str) -> anyhow::Result<WebSocket<MaybeTlsStream>> {
    let options = ConnectOptions::new(Config::default());
    let (mut ws, _) = connect(url, &options).await.context("connect")?;
    let mut joined = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !joined {
        let m = tokio::time::timeout_at(deadline.into(), ws.recv())
            .await
            .context("no Socket.IO handshake within 10 s")?
            .context("closed during the handshake")?
            .context("handshake")?;
        let Message::Text(t) = m else {
            anyhow::bail!("binary frame during the handshake");
        };
        match t.as_str() {
            s if s.starts_with("0{") => ws.send(Message::text("40")).await?,
            s if s.starts_with("40") => joined = true,
            "2" => ws.send(Message::text("3")).await?,
            s if s.starts_with("44") => anyhow::bail!("namespace refused: {s}"),
            s => anyhow::bail!("unexpected packet during the handshake: {s:?}"),
        }
    }
    Ok(ws)
}

/// One connection's load: `in_flight` emits outstanding, each replaced as its
/// ack comes back, until the window ends. Acks read in one go are answered
/// with one write. Returns the round trips begun in the measured interval
/// (their latencies go to `latency`).
async fn round_trips(
    mut ws: WebSocket<MaybeTlsStream>,
    payload: &str,
    in_flight: usize,
    mut latency: Recorder,
    window: Window,
) -> anyhow::Result<u64> {
    let mut sent_at: Vec<Option<Instant>> = vec![None; in_flight];
    let mut outstanding = 0usize;
    let mut n = 0u64;
    let expected = format!("[{payload}]");
    let emit = |ws: &mut WebSocket<MaybeTlsStream>, id: u64| {
        ws.queue(Message::text(format!(r#"42{id}["echo",{payload}]"#)))
    };
    for (id, slot) in sent_at.iter_mut().enumerate() {
        emit(&mut ws, id as u64)?;
        *slot = Some(Instant::now());
        outstanding += 1;
    }
    ws.flush().await.context("send")?;
    while outstanding > 0 {
        let mut next = Some(ws.recv().await);
        while let Some(m) = next {
            let m = m
                .context("server closed the connection")?
                .context("receive")?;
            let Message::Text(t) = m else {
                anyhow::bail!("unexpected binary frame");
            };
            let t = t.as_str();
            if t == "2" {
                ws.queue(Message::text("3"))?;
            } else {
                let (id, rest) = parse_ack(t).with_context(|| format!("not an ack: {t:?}"))?;
                anyhow::ensure!(rest == expected, "the ack is not the echo: {t:?}");
                let slot = (id % in_flight as u64) as usize;
                let t0 = sent_at[slot].take().context("an ack for no emit")?;
                outstanding -= 1;
                let now = Instant::now();
                if t0 >= window.measure_from && t0 < window.until {
                    n += 1;
                    latency.record(now.duration_since(t0).as_micros() as u64);
                }
                if now < window.until {
                    // Slot `slot` carries the ids slot, slot + in_flight, …
                    emit(&mut ws, id + in_flight as u64)?;
                    sent_at[slot] = Some(now);
                    outstanding += 1;
                }
            }
            // Whatever else has already arrived, without waiting.
            next = ws.recv().now_or_never().flatten().map(Some);
        }
        ws.flush().await.context("send")?;
    }
    let _ = ws.close(None).await;
    Ok(n)
}

/// `43<id>[…]` → the id and the argument array.
fn parse_ack(t: &str) -> Option<(u64, &str)> {
    let rest = t.strip_prefix("43")?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    Some((rest[..digits].parse().ok()?, &rest[digits..]))
}
