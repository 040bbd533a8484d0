//! `switchboard bench idle`: opens N connections and holds them (heartbeats
//! answered), then reads the server's resident memory per connection from
//! `/proc/PID/status` (the server's pid is given).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;

use super::conns::{Dialer, Protocol, progress};

#[derive(Debug, clap::Args)]
pub(crate) struct IdleBenchArgs {
    /// Server URL: `ws://host:port/path` (`http://host:port` for Socket.IO).
    #[arg(long)]
    url: String,
    /// The server's process id (its memory is read from /proc).
    #[arg(long)]
    pid: u32,
    /// Connections to open.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// What the connections speak.
    #[arg(long, value_enum, default_value_t = Protocol::Ws)]
    protocol: Protocol,
    /// Room the native connections join.
    #[arg(long, default_value = "idle")]
    room: String,
    /// Spread connections over 127.0.0.1 ..= 127.0.0.N (past ~28,000
    /// connections from one address).
    #[arg(long, default_value_t = 0)]
    source_ips: u8,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 500)]
    concurrency: usize,
    /// Seconds to hold all connections open before reading the memory
    /// (heartbeats keep running meanwhile).
    #[arg(long, default_value_t = 5.0)]
    settle: f64,
    /// Load generator threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Resident memory of `pid` in bytes.
pub(crate) fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")?;
    Ok(kib * 1024)
}

pub(crate) fn run(args: IdleBenchArgs) -> anyhow::Result<()> {
    super::runtime(args.threads)?.block_on(bench(args))
}

async fn bench(args: IdleBenchArgs) -> anyhow::Result<()> {
    let dialer = Arc::new(Dialer::new(
        &args.url,
        args.protocol,
        &args.room,
        args.source_ips,
    )?);
    let before = rss(args.pid)?;
    let bar = progress(args.connections as u64, "connecting", args.json);
    let started = Instant::now();
    let permits = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let mut opening = tokio::task::JoinSet::new();
    for i in 0..args.connections {
        let (dialer, permits, bar) = (dialer.clone(), permits.clone(), bar.clone());
        opening.spawn(async move {
            let permit = permits.acquire_owned().await?;
            let ws = dialer
                .open(i)
                .await
                .with_context(|| format!("connection {i}"))?;
            drop(permit);
            bar.inc(1);
            // Held by its own task until the end.
            tokio::spawn(async move { dialer.hold(ws).await });
            Ok::<_, anyhow::Error>(())
        });
    }
    let mut failed = 0usize;
    let mut first_error = None;
    while let Some(r) = opening.join_next().await {
        if let Err(e) = r.map_err(anyhow::Error::from).and_then(|r| r) {
            failed += 1;
            first_error.get_or_insert(format!("{e:#}"));
        }
    }
    bar.finish_and_clear();
    let connect_s = started.elapsed().as_secs_f64();
    let open = args.connections - failed;
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let after = rss(args.pid)?;
    let per_conn = after.saturating_sub(before) as f64 / open.max(1) as f64;
    if args.json {
        println!(
            "{}",
            json!({
                "scenario": "idle",
                "url": args.url,
                "protocol": format!("{:?}", args.protocol).to_lowercase(),
                "connections": open,
                "failed": failed,
                "first_error": first_error,
                "connect_s": connect_s,
                "rss_before": before,
                "rss_after": after,
                "bytes_per_conn": per_conn.round(),
            })
        );
    } else {
        println!(
            "idle {} — {open} connections ({failed} failed) in {connect_s:.1} s; server RSS {:.1} → {:.1} MiB: {per_conn:.0} B per connection",
            args.url,
            before as f64 / 1048576.0,
            after as f64 / 1048576.0
        );
        if let Some(e) = first_error {
            println!("  first failure: {e}");
        }
    }
    Ok(())
}
