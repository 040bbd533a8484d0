//! The subscribers of the kernel's floor under a room fan-out
//! (benches/fanout_floor.sh): N loopback connections to `fanout-floor`, read
//! by one thread through one epoll with plain `read` calls — no runtime, no
//! framing, no inflating. Each message starts with the writer's timestamp of
//! its round (µs since 1970, little-endian u64), so the reader measures what
//! `switchboard bench fanout` measures: the time from the publish to the
//! delivery, here with the least any subscriber side can pay on one core.
//!
//!   fanout-floor-reader PORT N SIZE ROUNDS TIMEOUT_S
//!
//! Reads until all N × ROUNDS messages came or TIMEOUT_S passed since the
//! connections were made, then prints one JSON object with the fields of
//! `switchboard bench fanout --json` that apply (deliveries_per_sec, p50_us …
//! max_us over every message, expected, delivered, lost, setup_s).

use std::io::Read;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> T {
    match args.get(i).map(|s| s.parse::<T>()) {
        Some(Ok(v)) => v,
        _ => {
            eprintln!("usage: fanout-floor-reader PORT N SIZE ROUNDS TIMEOUT_S");
            std::process::exit(2)
        }
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// One subscriber: its socket and where it is inside the current message.
struct Sub {
    stream: TcpStream,
    /// Bytes of the current message read so far.
    at: usize,
    /// The timestamp's bytes, gathered while `at < 8`.
    stamp: [u8; 8],
}

fn connect(port: u16) -> std::io::Result<TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => return Ok(s),
            // the writer may not listen yet
            Err(e)
                if e.kind() == std::io::ErrorKind::ConnectionRefused
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => return Err(e),
        }
    }
}

/// The value at quantile `q` of sorted latencies, in µs.
fn quantile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = arg(&args, 1);
    let n: usize = arg(&args, 2);
    let size: usize = arg(&args, 3);
    let rounds: usize = arg(&args, 4);
    let timeout: f64 = arg(&args, 5);
    if n == 0 || size < 8 {
        eprintln!("fanout-floor-reader: N must be positive and SIZE at least 8");
        std::process::exit(2);
    }
    // SAFETY: epoll_create1 takes no pointers.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let setup = Instant::now();
    let mut subs = Vec::with_capacity(n);
    for i in 0..n {
        let stream = connect(port)?;
        stream.set_nonblocking(true)?;
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        // SAFETY: `ev` outlives the call; the fd is open.
        if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, stream.as_raw_fd(), &mut ev) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        subs.push(Sub {
            stream,
            at: 0,
            stamp: [0; 8],
        });
    }
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut buf = vec![0u8; 64 * 1024];
    let setup = setup.elapsed();
    let expected = n * rounds;
    // the latency of every message, in µs
    let mut latencies: Vec<u32> = Vec::with_capacity(expected);
    let (mut first_stamp, mut last_read) = (u64::MAX, 0);
    let end = Instant::now() + Duration::from_secs_f64(timeout);
    while latencies.len() < expected && Instant::now() < end {
        // SAFETY: `events` has room for its length; the timeout bounds the wait.
        let ready = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 200) };
        if ready < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in &events[..ready as usize] {
            let sub = &mut subs[ev.u64 as usize];
            let got = match sub.stream.read(&mut buf) {
                Ok(0) => continue,
                Ok(got) => got,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            };
            let now = now_us();
            for &byte in &buf[..got] {
                if sub.at < 8 {
                    sub.stamp[sub.at] = byte;
                    if sub.at == 7 {
                        let stamp = u64::from_le_bytes(sub.stamp);
                        first_stamp = first_stamp.min(stamp);
                        last_read = now;
                        latencies.push(now.saturating_sub(stamp).min(u64::from(u32::MAX)) as u32);
                    }
                }
                sub.at = (sub.at + 1) % size;
            }
        }
    }
    let delivered = latencies.len();
    let elapsed_s = last_read.saturating_sub(first_stamp) as f64 / 1e6;
    latencies.sort_unstable();
    println!(
        "{{\"scenario\":\"fanout-floor\",\"subscribers\":{n},\"size\":{size},\"setup_s\":{:.3},\"expected\":{expected},\"delivered\":{delivered},\"duplicates\":0,\"lost\":{},\"elapsed_s\":{elapsed_s:.3},\"deliveries_per_sec\":{:.0},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{}}}",
        setup.as_secs_f64(),
        expected.saturating_sub(delivered),
        if elapsed_s > 0.0 {
            delivered as f64 / elapsed_s
        } else {
            0.0
        },
        quantile(&latencies, 0.50),
        quantile(&latencies, 0.90),
        quantile(&latencies, 0.99),
        quantile(&latencies, 0.999),
        quantile(&latencies, 1.0)
    );
    Ok(())
}
