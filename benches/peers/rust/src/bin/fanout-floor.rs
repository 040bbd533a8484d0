//! The kernel's floor under a room fan-out on this machine (benches/fanout_floor.sh):
//! accept N loopback connections, then every PERIOD_MS (100) write one SIZE-byte buffer to
//! each of them in a plain loop — no runtime, no queue, no task, no framing. The
//! time of one loop over the N sockets is the least any server pinned to one core
//! pays to reach N subscribers on this machine; it prints the median loop, the
//! time and CPU per write. Each buffer starts with the round's start time (µs
//! since 1970, little-endian u64), the "publish" time that `fanout-floor-reader`
//! measures its latencies from.
//!
//!   fanout-floor PORT N ROUNDS [SIZE] [PERIOD_MS]

use std::io::Write;
use std::net::TcpListener;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: Option<T>) -> T {
    match args.get(i).map(|s| s.parse::<T>()) {
        Some(Ok(v)) => v,
        _ => default.unwrap_or_else(|| {
            eprintln!("usage: fanout-floor PORT N ROUNDS [SIZE] [PERIOD_MS]");
            std::process::exit(2)
        }),
    }
}

/// utime + stime of this process, in seconds.
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = arg(&args, 1, None);
    let n: usize = arg(&args, 2, None);
    let rounds: usize = arg(&args, 3, None);
    let size: usize = arg(&args, 4, Some(256));
    let period = Duration::from_millis(arg(&args, 5, Some(100)));
    if n == 0 || rounds == 0 {
        eprintln!("fanout-floor: N and ROUNDS must be positive");
        std::process::exit(2);
    }
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    let mut sockets = Vec::with_capacity(n);
    while sockets.len() < n {
        let (s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        sockets.push(s);
    }
    if size < 8 {
        eprintln!("fanout-floor: SIZE must be at least 8 (the timestamp)");
        std::process::exit(2);
    }
    let mut buf = vec![b'x'; size];
    std::thread::sleep(Duration::from_secs(1));
    let mut loops_ms = Vec::with_capacity(rounds);
    let (cpu0, t0) = (cpu_s(), Instant::now());
    for _ in 0..rounds {
        let start = Instant::now();
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        buf[..8].copy_from_slice(&stamp.to_le_bytes());
        for s in sockets.iter_mut() {
            s.write_all(&buf)?;
        }
        let took = start.elapsed();
        loops_ms.push(took.as_secs_f64() * 1e3);
        std::thread::sleep(period.saturating_sub(took));
    }
    let (cpu, wall) = (cpu_s() - cpu0, t0.elapsed().as_secs_f64());
    loops_ms.sort_by(f64::total_cmp);
    let median = loops_ms[loops_ms.len() / 2];
    println!(
        "{{\"sockets\":{n},\"size\":{size},\"rounds\":{rounds},\"loop_median_ms\":{median:.2},\"loop_min_ms\":{:.2},\"loop_max_ms\":{:.2},\"us_per_write\":{:.3},\"cpu_us_per_write\":{:.3},\"cpu_pct\":{:.1}}}",
        loops_ms[0],
        loops_ms[loops_ms.len() - 1],
        median * 1e3 / n as f64,
        cpu * 1e6 / (n * rounds) as f64,
        cpu / wall * 100.0
    );
    Ok(())
}
