//! `serve`'s settings: embedded defaults, then a TOML file (`--config`), then
//! the environment (`SWITCHBOARD_*`), then flags — each overriding the one
//! before. `--print-config` shows the result with secrets redacted.
//!
//! Every setting has one name: the flag `--max-rooms`, the TOML key
//! `max_rooms`, the variable `SWITCHBOARD_MAX_ROOMS`. Flags and variables are
//! parsed by clap into [`Overrides`] (all optional) and laid over the TOML
//! table, so adding a setting means adding one field here and one in
//! [`Overrides`].

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// A duration: `25s`, `300ms`, `1m 30s` (humantime), or a bare number of
/// milliseconds (in TOML, a string or an integer of milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dur(pub(crate) Duration);

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let d = match s.trim().parse::<u64>() {
            Ok(ms) => Duration::from_millis(ms),
            Err(_) => humantime::parse_duration(s.trim()).map_err(|e| e.to_string())?,
        };
        if d.is_zero() {
            return Err("must be more than zero".into());
        }
        Ok(Self(d))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Ms(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Ms(0) => Err(serde::de::Error::custom("must be more than zero")),
            Raw::Ms(ms) => Ok(Self(Duration::from_millis(ms))),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Who may join or publish to rooms matching a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Who {
    /// Every connection, anonymous ones included.
    Anyone,
    /// Connections with a verified identity (JWT or connect proxy).
    Users,
    /// Nobody (except through token claims).
    None,
}

/// One `[[rooms]]` rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoomRule {
    /// `*` matches any run of characters.
    pub(crate) pattern: String,
    pub(crate) join: Who,
    pub(crate) publish: Who,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// The resolved settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Settings {
    pub(crate) listen: SocketAddr,
    pub(crate) api_key: Option<String>,
    pub(crate) jwt_secret: Option<String>,
    pub(crate) jwt_public_key: Option<PathBuf>,
    pub(crate) jwt_audience: Option<String>,
    pub(crate) jwt_issuer: Option<String>,
    pub(crate) allowed_origins: Option<Vec<String>>,
    pub(crate) ping_interval: Dur,
    pub(crate) ping_timeout: Dur,
    pub(crate) max_payload: usize,
    pub(crate) deflate: bool,
    pub(crate) deflate_threshold: usize,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) redis: Option<String>,
    pub(crate) redis_prefix: String,
    pub(crate) node_id: Option<String>,
    pub(crate) presence_ttl: Dur,
    pub(crate) history_size: usize,
    pub(crate) history_ttl: Dur,
    pub(crate) recovery_duration: Dur,
    pub(crate) max_rooms: usize,
    pub(crate) rate: f64,
    pub(crate) rate_burst: f64,
    pub(crate) max_connections_per_ip: usize,
    pub(crate) auth_timeout: Dur,
    pub(crate) send_queue: usize,
    pub(crate) max_file_size: u64,
    pub(crate) file_storage: u64,
    pub(crate) file_ttl: Dur,
    pub(crate) connect_url: Option<String>,
    pub(crate) rpc_url: Option<String>,
    pub(crate) webhook_url: Option<String>,
    pub(crate) webhook_secret: Option<String>,
    pub(crate) backend_timeout: Dur,
    pub(crate) tls_cert: Option<PathBuf>,
    pub(crate) tls_key: Option<PathBuf>,
    pub(crate) drain_timeout: Dur,
    pub(crate) workers: Option<usize>,
    pub(crate) log_format: LogFormat,
    pub(crate) log_level: String,
    pub(crate) rooms: Vec<RoomRule>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            api_key: None,
            jwt_secret: None,
            jwt_public_key: None,
            jwt_audience: None,
            jwt_issuer: None,
            allowed_origins: None,
            ping_interval: Dur(Duration::from_secs(25)),
            ping_timeout: Dur(Duration::from_secs(20)),
            max_payload: 64 << 10,
            deflate: true,
            deflate_threshold: switchboard_server::DEFLATE_THRESHOLD,
            data_dir: None,
            redis: None,
            redis_prefix: "switchboard:".into(),
            node_id: None,
            presence_ttl: Dur(Duration::from_secs(10)),
            history_size: 1000,
            history_ttl: Dur(Duration::from_secs(600)),
            recovery_duration: Dur(Duration::from_secs(120)),
            max_rooms: 100,
            rate: 100.0,
            rate_burst: 200.0,
            max_connections_per_ip: 1000,
            auth_timeout: Dur(Duration::from_secs(10)),
            send_queue: 1 << 20,
            max_file_size: 1 << 30,
            file_storage: 10 << 30,
            file_ttl: Dur(Duration::from_secs(24 * 3600)),
            connect_url: None,
            rpc_url: None,
            webhook_url: None,
            webhook_secret: None,
            backend_timeout: Dur(Duration::from_secs(5)),
            tls_cert: None,
            tls_key: None,
            drain_timeout: Dur(Duration::from_secs(10)),
            workers: None,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            rooms: Vec::new(),
        }
    }
}

/// Settings given as flags or `SWITCHBOARD_*` variables (clap reads both;
/// a flag wins over its variable). Defaults live in [`Settings::default`].
#[derive(Debug, Default, clap::Args, Serialize)]
pub(crate) struct Overrides {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "SWITCHBOARD_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<SocketAddr>,
    /// Admin API key (bearer) [default: a random key printed at start].
    #[arg(long, env = "SWITCHBOARD_API_KEY", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key: Option<String>,
    /// Require a JWT signed (HS256) with this secret: Socket.IO `auth.token`,
    /// native `?token=` or `auth` op; its `sub` is the user. Without a JWT
    /// option every connection is an anonymous user.
    #[arg(long, env = "SWITCHBOARD_JWT_SECRET", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    jwt_secret: Option<String>,
    /// Require a JWT signed (RS256) by the key in this PEM file (a public key).
    #[arg(long, env = "SWITCHBOARD_JWT_PUBLIC_KEY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    jwt_public_key: Option<PathBuf>,
    /// Require this `aud` claim in tokens [default: `aud` not checked].
    #[arg(long, env = "SWITCHBOARD_JWT_AUDIENCE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    jwt_audience: Option<String>,
    /// Require this `iss` claim in tokens [default: `iss` not checked].
    #[arg(long, env = "SWITCHBOARD_JWT_ISSUER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    jwt_issuer: Option<String>,
    /// Origins allowed to connect (comma-separated) [default: all].
    #[arg(long, env = "SWITCHBOARD_ALLOWED_ORIGINS", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_origins: Option<Vec<String>>,
    /// Time between server pings (Engine.IO pings, native ping frames) [default: 25s].
    #[arg(long, env = "SWITCHBOARD_PING_INTERVAL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    ping_interval: Option<Dur>,
    /// Time a client has to answer; any bytes count on the native protocol [default: 20s].
    #[arg(long, env = "SWITCHBOARD_PING_TIMEOUT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    ping_timeout: Option<Dur>,
    /// Largest message in bytes, after decompression (Socket.IO maxPayload) [default: 65536].
    #[arg(long, env = "SWITCHBOARD_MAX_PAYLOAD")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_payload: Option<usize>,
    /// Accept permessage-deflate on the native endpoint when a client
    /// offers it (`--deflate false` declines it) [default: true].
    #[arg(long, env = "SWITCHBOARD_DEFLATE", value_name = "BOOL", action = clap::ArgAction::Set)]
    #[serde(skip_serializing_if = "Option::is_none")]
    deflate: Option<bool>,
    /// With permessage-deflate, native messages shorter than this many
    /// bytes go out uncompressed (compressed alone, small JSON shrinks
    /// little) [default: 1024].
    #[arg(long, env = "SWITCHBOARD_DEFLATE_THRESHOLD")]
    #[serde(skip_serializing_if = "Option::is_none")]
    deflate_threshold: Option<usize>,
    /// Keep room histories in DIR (embedded database): same epochs and
    /// continuing offsets after a restart [default: in memory].
    #[arg(long, env = "SWITCHBOARD_DATA_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    /// Run as a node of a cluster over this Redis
    /// (`redis://[:password@]host:port[/db]`): rooms, history, presence and
    /// the admin API shared by every node [default: standalone].
    #[arg(long, env = "SWITCHBOARD_REDIS", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    redis: Option<String>,
    /// Prefix of every Redis key and channel (clusters sharing a Redis use
    /// different ones) [default: switchboard:].
    #[arg(long, env = "SWITCHBOARD_REDIS_PREFIX")]
    #[serde(skip_serializing_if = "Option::is_none")]
    redis_prefix: Option<String>,
    /// This node's id in the cluster, unique [default: host name, pid and a
    /// random suffix].
    #[arg(long, env = "SWITCHBOARD_NODE_ID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    node_id: Option<String>,
    /// How long a node's presence outlives it: a node that dies takes its
    /// users offline on the others within this time [default: 10s].
    #[arg(long, env = "SWITCHBOARD_PRESENCE_TTL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_ttl: Option<Dur>,
    /// Messages kept per room [default: 1000].
    #[arg(long, env = "SWITCHBOARD_HISTORY_SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    history_size: Option<usize>,
    /// Oldest message kept per room [default: 10m].
    #[arg(long, env = "SWITCHBOARD_HISTORY_TTL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    history_ttl: Option<Dur>,
    /// How long a dropped Socket.IO connection can come back and recover [default: 2m].
    #[arg(long, env = "SWITCHBOARD_RECOVERY_DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery_duration: Option<Dur>,
    /// Rooms one connection may be in, its personal room not counted [default: 100].
    #[arg(long, env = "SWITCHBOARD_MAX_ROOMS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_rooms: Option<usize>,
    /// Requests per second one connection may make, sustained [default: 100].
    #[arg(long, env = "SWITCHBOARD_RATE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    rate: Option<f64>,
    /// Requests one connection may make at once after a quiet period [default: 200].
    #[arg(long, env = "SWITCHBOARD_RATE_BURST")]
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_burst: Option<f64>,
    /// Open TCP connections from one IP address; more get 429; 0 for no
    /// limit [default: 1000].
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS_PER_IP")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_connections_per_ip: Option<usize>,
    /// Time a native connection without `?token=` has to send its `auth`
    /// op when a JWT is required [default: 10s].
    #[arg(long, env = "SWITCHBOARD_AUTH_TIMEOUT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_timeout: Option<Dur>,
    /// Bytes queued for one slow native client before volatile messages are
    /// dropped; at 4× it is disconnected (4008) [default: 1048576].
    #[arg(long, env = "SWITCHBOARD_SEND_QUEUE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    send_queue: Option<usize>,
    /// Largest file a client may send (native file transfer) [default: 1073741824].
    #[arg(long, env = "SWITCHBOARD_MAX_FILE_SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_file_size: Option<u64>,
    /// Bytes of files the server holds in all, complete or not; more offers
    /// get `unavailable` [default: 10737418240].
    #[arg(long, env = "SWITCHBOARD_FILE_STORAGE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    file_storage: Option<u64>,
    /// How long a file transfer is kept after its last chunk or download [default: 24h].
    #[arg(long, env = "SWITCHBOARD_FILE_TTL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    file_ttl: Option<Dur>,
    /// Backend URL asked for each connection's identity (connect proxy).
    #[arg(long, env = "SWITCHBOARD_CONNECT_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    connect_url: Option<String>,
    /// Backend URL that answers client events the relay does not know (RPC proxy).
    #[arg(long, env = "SWITCHBOARD_RPC_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    rpc_url: Option<String>,
    /// Backend URL told when users come online and go offline.
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_url: Option<String>,
    /// Key of the HMAC-SHA256 signature on every backend request.
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_SECRET", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_secret: Option<String>,
    /// Time the backend has to answer [default: 5s].
    #[arg(long, env = "SWITCHBOARD_BACKEND_TIMEOUT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    backend_timeout: Option<Dur>,
    /// PEM certificate chain: serve https:// and wss:// (needs --tls-key).
    #[arg(long, env = "SWITCHBOARD_TLS_CERT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "SWITCHBOARD_TLS_KEY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_key: Option<PathBuf>,
    /// On SIGTERM/SIGINT, how long to wait for clients to leave after they
    /// were told to reconnect elsewhere [default: 10s].
    #[arg(long, env = "SWITCHBOARD_DRAIN_TIMEOUT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    drain_timeout: Option<Dur>,
    /// Worker threads [default: one per core].
    #[arg(long, env = "SWITCHBOARD_WORKERS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    workers: Option<usize>,
    /// Log lines as text or JSON [default: text].
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    log_format: Option<LogFormat>,
    /// Log level or filter (`info`, `debug`, `switchboard_server=debug`);
    /// RUST_LOG wins when set [default: info].
    #[arg(long, env = "SWITCHBOARD_LOG_LEVEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    log_level: Option<String>,
}

/// Redacted when printed (a Redis URL may hold a password).
const SECRETS: [&str; 4] = ["api_key", "jwt_secret", "webhook_secret", "redis"];

impl Settings {
    /// Defaults, then `file`, then `overrides`.
    pub(crate) fn resolve(
        file: Option<&std::path::Path>,
        overrides: &Overrides,
    ) -> anyhow::Result<Self> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str::<toml::Table>(&text)
                    .with_context(|| format!("parsing {}", path.display()))?
            }
            None => toml::Table::new(),
        };
        let over = toml::Table::try_from(overrides).context("encoding the flags")?;
        table.extend(over);
        let what = file.map_or_else(|| "the flags".to_owned(), |p| p.display().to_string());
        let settings: Self = table
            .try_into()
            .with_context(|| format!("invalid settings in {what}"))?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.tls_cert.is_some() == self.tls_key.is_some(),
            "tls_cert and tls_key go together"
        );
        anyhow::ensure!(
            !(self.jwt_secret.is_some() && self.jwt_public_key.is_some()),
            "give jwt_secret or jwt_public_key, not both"
        );
        anyhow::ensure!(
            self.max_payload >= 1024,
            "max_payload must be at least 1024"
        );
        anyhow::ensure!(self.history_size >= 1, "history_size must be at least 1");
        anyhow::ensure!(
            self.send_queue >= 64 << 10,
            "send_queue must be at least 65536"
        );
        anyhow::ensure!(
            self.rate >= 0.0 && self.rate_burst >= 1.0,
            "rate must be ≥ 0, rate_burst ≥ 1"
        );
        for url in [&self.connect_url, &self.rpc_url, &self.webhook_url]
            .into_iter()
            .flatten()
        {
            anyhow::ensure!(
                url.starts_with("http://") || url.starts_with("https://"),
                "backend URLs are http:// or https:// URLs, not {url:?}"
            );
        }
        Ok(())
    }

    /// The settings as TOML, secrets replaced by `<redacted>`.
    pub(crate) fn to_redacted_toml(&self) -> anyhow::Result<String> {
        let mut table = toml::Table::try_from(self)?;
        for key in SECRETS {
            if let Some(v) = table.get_mut(key) {
                *v = toml::Value::String("<redacted>".into());
            }
        }
        Ok(toml::to_string(&table)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        o: Overrides,
    }

    fn resolve(toml: &str, args: &[&str]) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml)?;
        let cli = Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied()))?;
        Settings::resolve(Some(&path), &cli.o)
    }

    #[test]
    fn flags_override_the_file_and_the_file_the_defaults() {
        let s = resolve(
            "max_rooms = 7\nping_interval = \"2s\"\nping_timeout = 1500\nallowed_origins = [\"https://a\"]\n",
            &["--max-rooms", "9"],
        )
        .unwrap();
        assert_eq!(s.max_rooms, 9);
        assert_eq!(s.ping_interval, Dur(Duration::from_secs(2)));
        assert_eq!(s.ping_timeout, Dur(Duration::from_millis(1500)));
        assert_eq!(
            s.allowed_origins.as_deref(),
            Some(&["https://a".to_owned()][..])
        );
        assert_eq!(s.history_size, 1000, "a default");
    }

    #[test]
    fn compression_is_on_with_a_threshold_and_can_be_declined() {
        let s = resolve("", &[]).unwrap();
        assert!(s.deflate);
        assert_eq!(s.deflate_threshold, 1024);
        let s = resolve("deflate_threshold = 0\n", &["--deflate", "false"]).unwrap();
        assert!(!s.deflate);
        assert_eq!(s.deflate_threshold, 0);
        assert!(resolve("", &["--deflate", "maybe"]).is_err());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let e = resolve("max_romos = 7\n", &[]).unwrap_err();
        assert!(format!("{e:#}").contains("max_romos"), "{e:#}");
        assert!(resolve("ping_interval = \"soon\"\n", &[]).is_err());
        assert!(resolve("tls_cert = \"a.pem\"\n", &[]).is_err());
        assert!(resolve("", &["--ping-interval", "0"]).is_err());
    }

    #[test]
    fn room_rules_come_from_the_file() {
        let s = resolve(
            "[[rooms]]\npattern = \"public:*\"\njoin = \"anyone\"\npublish = \"users\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            s.rooms,
            [RoomRule {
                pattern: "public:*".into(),
                join: Who::Anyone,
                publish: Who::Users
            }]
        );
    }

    #[test]
    fn printing_redacts_secrets_and_reads_back() {
        let s = resolve("api_key = \"k1\"\n", &["--jwt-secret", "s3cret"]).unwrap();
        let text = s.to_redacted_toml().unwrap();
        assert!(!text.contains("k1") && !text.contains("s3cret"), "{text}");
        assert!(text.contains("api_key = \"<redacted>\""), "{text}");
        let back: Settings = toml::from_str(&text).unwrap();
        assert_eq!(back.max_payload, s.max_payload);
    }
}
