//! `switchboard serve`: the standalone server (Socket.IO relay, native
//! protocol, admin API, metrics).

use std::sync::Arc;

use anyhow::Context as _;
use switchboard_hub::{ClusterConfig, DiskStore, LogLimits, LogStore, MemoryStore, RedisStore};
use switchboard_server::{Auth, Server, ServerConfig, rooms};

use crate::listen;

mod config;

use config::{LogFormat, Settings, Who};

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Read settings from this TOML file (keys are the flag names with
    /// underscores); the environment and flags override it.
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Print the resolved settings (secrets redacted) and exit.
    #[arg(long)]
    print_config: bool,
    #[command(flatten)]
    overrides: config::Overrides,
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(args.config.as_deref(), &args.overrides)?;
    if args.print_config {
        print!("{}", settings.to_redacted_toml()?);
        return Ok(());
    }
    init_logs(&settings);
    let (api_key, generated) = match settings.api_key.as_deref() {
        Some(k) if !k.is_empty() => (k.to_owned(), false),
        _ => (random_key(), true),
    };
    let mut config = ServerConfig::new(api_key.clone());
    config.auth = match (&settings.jwt_secret, &settings.jwt_public_key) {
        (Some(secret), _) => Auth::hs256(secret.as_bytes()),
        (None, Some(path)) => {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Auth::rs256_pem(&pem).with_context(|| format!("loading {}", path.display()))?
        }
        (None, None) => Auth::Anonymous,
    }
    .expecting(settings.jwt_audience.clone(), settings.jwt_issuer.clone());
    config.ping_interval = settings.ping_interval.0;
    config.ping_timeout = settings.ping_timeout.0;
    config.max_payload = settings.max_payload;
    config.deflate = settings.deflate.then_some(settings.deflate_threshold);
    config.allowed_origins.clone_from(&settings.allowed_origins);
    let limits = LogLimits::default()
        .max_entries(settings.history_size)
        .max_age(settings.history_ttl.0);
    config.history = limits;
    config.recovery = settings.recovery_duration.0;
    config.max_rooms = settings.max_rooms;
    config.rate = switchboard_server::limits::RateConfig {
        per_second: settings.rate,
        burst: settings.rate_burst,
    };
    config.max_connections_per_ip = settings.max_connections_per_ip;
    config.auth_timeout = settings.auth_timeout.0;
    config.send_queue = settings.send_queue;
    config.files.dir = settings.data_dir.as_ref().map(|d| d.join("files"));
    config.files.max_file_size = settings.max_file_size;
    config.files.max_storage = settings.file_storage;
    config.files.ttl = settings.file_ttl.0;
    config.rooms = rooms::Permissions::new(
        settings
            .rooms
            .iter()
            .map(|r| rooms::Rule::new(&r.pattern, who(r.join), who(r.publish)))
            .collect(),
    );
    let backend = &mut config.backend;
    backend.connect_url.clone_from(&settings.connect_url);
    backend.rpc_url.clone_from(&settings.rpc_url);
    backend.webhook_url.clone_from(&settings.webhook_url);
    backend.secret.clone_from(&settings.webhook_secret);
    backend.timeout = settings.backend_timeout.0;
    if let (Some(cert), Some(key)) = (&settings.tls_cert, &settings.tls_key) {
        config.tls = Some(switchboard_server::Tls(
            switchboard_wire::io::tls::server_acceptor(cert, key)?,
        ));
    }
    if settings.redis.is_some() && settings.data_dir.is_some() {
        anyhow::bail!(
            "--redis and --data-dir exclude each other: a cluster keeps history in Redis"
        );
    }
    // Captures (`POST /api/v1/record`) go to DIR/records, or without a
    // data directory to a temporary one removed at exit.
    config.records_dir = settings.data_dir.as_ref().map(|d| d.join("records"));
    let store: Arc<dyn LogStore> = match &settings.data_dir {
        Some(dir) => Arc::new(
            DiskStore::open(dir, limits)
                .with_context(|| format!("opening the data directory {}", dir.display()))?,
        ),
        None => Arc::new(MemoryStore::new(limits)),
    };
    let cluster = match &settings.redis {
        Some(url) => {
            let store = RedisStore::new(url, &settings.redis_prefix, limits).context("--redis")?;
            if let Err(e) = store.ping() {
                // Started degraded: the node serves and reconnects.
                eprintln!("switchboard serve: {e}; starting degraded, retrying");
            }
            let node = settings.node_id.clone().unwrap_or_else(default_node_id);
            eprintln!(
                "switchboard serve: cluster node {node} over redis (key prefix {:?})",
                settings.redis_prefix
            );
            let config = ClusterConfig::new(node).presence_ttl(settings.presence_ttl.0);
            Some((store, config))
        }
        None => None,
    };

    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = settings.workers {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.enable_all().build()?;
    let drain_timeout = settings.drain_timeout.0;
    let tls = settings.tls_cert.is_some();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listen::bind(settings.listen)?)?;
        let addr = listener.local_addr()?;
        let server = match cluster {
            Some((redis, cluster)) => Server::clustered(config, redis, cluster)?,
            None => Server::with_store(config, store),
        };
        announce(&settings, addr, tls, generated.then_some(api_key.as_str()));
        let accepted = server.accepted();
        tokio::select! {
            r = server.clone().serve(listener) => r?,
            () = crate::heap::give_back_freed_memory(&accepted) => {}
            () = listen::shutdown_signal() => {
                // The listener is closed with the serve future: no new
                // connections while the others are drained.
                eprintln!("switchboard serve: draining (at most {drain_timeout:?})");
                server.drain(drain_timeout).await;
                eprintln!("switchboard serve: stopped");
            }
        }
        Ok(())
    })
}

fn who(w: Who) -> rooms::Who {
    match w {
        Who::Anyone => rooms::Who::Anyone,
        Who::Users => rooms::Who::Users,
        Who::None => rooms::Who::Nobody,
    }
}

/// Where to point a browser and a client, on stderr.
fn announce(
    settings: &Settings,
    addr: std::net::SocketAddr,
    tls: bool,
    generated_key: Option<&str>,
) {
    let (http, ws) = if tls {
        ("https", "wss")
    } else {
        ("http", "ws")
    };
    eprintln!("switchboard serve on {http}://{addr}");
    eprintln!("  browser:    {http}://{addr}/");
    eprintln!("  WebSocket:  {ws}://{addr}/ws   (native JSON protocol)");
    eprintln!("  Socket.IO:  io(\"{http}://{addr}\")   (path /socket.io/)");
    eprintln!("  admin API:  {http}://{addr}/api/v1/  (Authorization: Bearer <key>)");
    eprintln!("  metrics:    {http}://{addr}/metrics");
    if let Some(key) = generated_key {
        eprintln!("switchboard serve: admin API key (generated): {key}");
    }
    match (&settings.data_dir, &settings.redis) {
        (_, Some(_)) => eprintln!("switchboard serve: history kept in redis"),
        (Some(dir), None) => eprintln!("switchboard serve: history kept in {}", dir.display()),
        (None, None) => eprintln!(
            "switchboard serve: history in memory (use --data-dir to keep it across restarts)"
        ),
    }
    if settings.allowed_origins.is_none() {
        eprintln!("switchboard serve: no --allowed-origins: every origin is accepted");
    }
}

fn init_logs(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&settings.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// `host-pid-xxxx`: unique across restarts of a node.
fn default_node_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into());
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

fn random_key() -> String {
    let bytes: [u8; 24] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
