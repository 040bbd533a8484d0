//! `switchboard serve`: the standalone relay (Socket.IO + admin API).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use switchboard_hub::LogLimits;
use switchboard_server::{Auth, Server, ServerConfig};

use crate::listen;

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Admin API key (bearer). Default: a random key printed at start.
    #[arg(long, env = "SWITCHBOARD_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Require a JWT (HS256) signed with this secret in the handshake's
    /// `auth.token`; its `sub` is the user. Without it, every connection is
    /// an anonymous user.
    #[arg(long, env = "SWITCHBOARD_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Origins allowed to connect (comma-separated); default: all.
    #[arg(long, value_delimiter = ',')]
    allowed_origins: Option<Vec<String>>,
    /// Time between server pings (Engine.IO pings, native ping frames): a
    /// duration such as `25s` or `300ms` (a bare number is milliseconds).
    #[arg(long, default_value = "25s", value_parser = parse_duration)]
    ping_interval: Duration,
    /// Time a client has to answer (any bytes count on the native protocol).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    ping_timeout: Duration,
    /// Largest message in bytes (maxHttpBufferSize).
    #[arg(long, default_value_t = 1_000_000)]
    max_payload: usize,
    /// Messages kept per room.
    #[arg(long, default_value_t = 1000)]
    history_size: usize,
    /// Oldest message kept per room, seconds.
    #[arg(long, default_value_t = 600)]
    history_ttl: u64,
    /// How long a dropped Socket.IO connection can come back and recover, seconds.
    #[arg(long, default_value_t = 120)]
    recovery_duration: u64,
    /// Rooms one connection may be in (its personal room not counted).
    #[arg(long, default_value_t = 100)]
    max_rooms: usize,
    /// Requests per second one connection may make, sustained.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Requests one connection may make at once after a quiet period.
    #[arg(long, default_value_t = 200.0)]
    rate_burst: f64,
    /// On SIGTERM/SIGINT, how long to wait for clients to leave after they
    /// were told to reconnect elsewhere.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// Worker threads; default one per core.
    #[arg(long)]
    workers: Option<usize>,
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    let api_key = match args.api_key {
        Some(k) if !k.is_empty() => k,
        _ => {
            let key = random_key();
            eprintln!("switchboard serve: admin API key (generated): {key}");
            key
        }
    };
    let mut config = ServerConfig::new(api_key);
    if let Some(secret) = &args.jwt_secret {
        config.auth = Auth::hs256(secret.as_bytes());
    }
    config.ping_interval = args.ping_interval;
    config.ping_timeout = args.ping_timeout;
    config.max_payload = args.max_payload;
    config.allowed_origins = args.allowed_origins;
    config.history = LogLimits::default()
        .max_entries(args.history_size)
        .max_age(Duration::from_secs(args.history_ttl));
    config.recovery = Duration::from_secs(args.recovery_duration);
    config.max_rooms = args.max_rooms;
    config.rate = switchboard_server::limits::RateConfig {
        per_second: args.rate.max(0.0),
        burst: args.rate_burst.max(1.0),
    };
    if config.allowed_origins.is_none() {
        eprintln!("switchboard serve: no --allowed-origins: every origin is accepted");
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.workers {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        eprintln!(
            "switchboard serve on http://{} (Socket.IO at /socket.io/, admin API at /api/v1/)",
            listener.local_addr()?
        );
        let server = Server::new(config);
        let accepted = server.accepted();
        tokio::select! {
            r = server.clone().serve(listener) => r?,
            () = listen::trim_after_bursts(&accepted) => {}
            () = listen::shutdown_signal() => {
                // The listener is closed with the serve future: no new
                // connections while the others are drained.
                eprintln!("switchboard serve: draining (at most {:?})", args.drain_timeout);
                server.drain(args.drain_timeout).await;
                eprintln!("switchboard serve: stopped");
            }
        }
        Ok(())
    })
}

/// `25s`, `300ms`, `1m 30s` (humantime), or a bare number of milliseconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = match s.trim().parse::<u64>() {
        Ok(ms) => Duration::from_millis(ms),
        Err(_) => humantime::parse_duration(s).map_err(|e| e.to_string())?,
    };
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

fn random_key() -> String {
    let bytes: [u8; 24] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
