//! `switchboard bench connect-storm`: N clients connect at once; the time
//! until every one is connected and ready (native: joined its room;
//! Socket.IO: connected to the namespace), and each one's connect latency.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::conns::{Dialer, Protocol, progress};
use super::report::{histogram, percentile_line, percentiles};

#[derive(Debug, clap::Args)]
pub(crate) struct StormBenchArgs {
    /// Server URL: `ws://host:port/ws` (native), `http://host:port`
    /// (Socket.IO) or any WebSocket URL.
    #[arg(long)]
    url: String,
    /// Clients connecting at once.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// What the clients speak.
    #[arg(long, value_enum, default_value_t = Protocol::Native)]
    protocol: Protocol,
    /// Room the native clients join.
    #[arg(long, default_value = "storm")]
    room: String,
    /// Spread connections over 127.0.0.1 ..= 127.0.0.N.
    #[arg(long, default_value_t = 0)]
    source_ips: u8,
    /// Load generator threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: StormBenchArgs) -> anyhow::Result<()> {
    super::runtime(args.threads)?.block_on(bench(args))
}

async fn bench(args: StormBenchArgs) -> anyhow::Result<()> {
    let dialer = Arc::new(Dialer::new(
        &args.url,
        args.protocol,
        &args.room,
        args.source_ips,
    )?);
    let bar = progress(args.connections as u64, "connecting", args.json);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.connections {
        let (dialer, bar) = (dialer.clone(), bar.clone());
        tasks.spawn(async move {
            let t0 = Instant::now();
            let ws = dialer
                .open(i)
                .await
                .with_context(|| format!("client {i}"))?;
            let us = t0.elapsed().as_micros() as u64;
            bar.inc(1);
            Ok::<_, anyhow::Error>((us, ws))
        });
    }
    let mut latency = histogram();
    let mut held = Vec::with_capacity(args.connections);
    let (mut failed, mut first_error) = (0usize, None);
    while let Some(r) = tasks.join_next().await {
        match r.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok((us, ws)) => {
                let _ = latency.record(us.max(1));
                held.push(ws);
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(format!("{e:#}"));
            }
        }
    }
    let all_s = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    drop(held);
    if args.json {
        let mut out = json!({
            "scenario": "connect-storm",
            "url": args.url,
            "protocol": format!("{:?}", args.protocol).to_lowercase(),
            "connections": args.connections - failed,
            "failed": failed,
            "first_error": first_error,
            "all_ready_s": all_s,
        });
        if let (Some(o), Value::Object(p)) = (out.as_object_mut(), percentiles(&latency)) {
            o.extend(p);
        }
        println!("{out}");
    } else {
        println!(
            "connect-storm {} — {} of {} ready in {all_s:.2} s ({failed} failed)\n  connect+ready {}",
            args.url,
            args.connections - failed,
            args.connections,
            percentile_line(&latency)
        );
        if let Some(e) = first_error {
            println!("  first failure: {e}");
        }
    }
    Ok(())
}
