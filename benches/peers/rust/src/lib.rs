//! Shared bits of the peer echo servers: argument parsing only.

use std::net::SocketAddr;

/// Parse `--listen ADDR`, `--listen=ADDR` or a positional `ADDR`.
/// Defaults to 127.0.0.1:9001.
pub fn listen_addr() -> SocketAddr {
    let mut args = std::env::args().skip(1);
    let mut addr: Option<String> = None;
    while let Some(a) = args.next() {
        if a == "--listen" || a == "-l" {
            addr = args.next();
        } else if let Some(v) = a.strip_prefix("--listen=") {
            addr = Some(v.to_string());
        } else if a == "-h" || a == "--help" {
            eprintln!(
                "usage: {} [--listen] HOST:PORT",
                std::env::args().next().unwrap_or_default()
            );
            std::process::exit(0);
        } else if !a.starts_with('-') {
            addr = Some(a);
        } else {
            eprintln!("unknown argument: {a}");
            std::process::exit(2);
        }
    }
    let addr = addr.unwrap_or_else(|| "127.0.0.1:9001".to_string());
    match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bad listen address {addr:?}: {e}");
            std::process::exit(2);
        }
    }
}
