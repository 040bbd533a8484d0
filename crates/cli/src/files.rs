//! `switchboard send-file` and `switchboard recv-file`: file transfer over
//! the native protocol with a progress bar, resuming across reconnects
//! (switchboard_client::files). Each prints one JSON line per file when
//! done.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use serde_json::{Value, json};
use switchboard_client::files::{FileTarget, Progress, Transfer};
use switchboard_client::native::{Client, ClientConfig, Event};

/// Where to connect, shared by both commands.
#[derive(Debug, clap::Args)]
pub(crate) struct Connection {
    /// The server's native endpoint: `ws://host:port/ws`.
    url: String,
    /// A token (JWT) for the server.
    #[arg(long, env = "SWITCHBOARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Backup URLs, tried in order when the current one fails.
    #[arg(long = "backup")]
    backups: Vec<String>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

impl Connection {
    fn connect(&self) -> (Client, tokio::sync::mpsc::UnboundedReceiver<Event>) {
        let mut urls = vec![self.url.clone()];
        urls.extend(self.backups.iter().cloned());
        let mut config = ClientConfig::new(urls);
        if let Some(token) = &self.token {
            config = config.token(token.clone());
        }
        Client::connect(config)
    }
}

/// Send a file to a room or a user.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("to").required(true).args(["room", "user"])))]
pub(crate) struct SendFileArgs {
    #[command(flatten)]
    conn: Connection,
    /// The file.
    file: PathBuf,
    /// Send it to this room's members.
    #[arg(long)]
    room: Option<String>,
    /// Send it to this user.
    #[arg(long)]
    user: Option<String>,
    /// The name recipients see [default: the file's name].
    #[arg(long)]
    name: Option<String>,
    /// Chunk size to ask for [default: the server's, 32768].
    #[arg(long)]
    chunk_size: Option<u32>,
}

/// Receive files sent to your user or to rooms.
#[derive(Debug, clap::Args)]
pub(crate) struct RecvFileArgs {
    #[command(flatten)]
    conn: Connection,
    /// Rooms to join and receive files from (files sent to your user come
    /// in any case).
    #[arg(long = "room")]
    rooms: Vec<String>,
    /// Download this transfer and exit.
    #[arg(long)]
    transfer: Option<String>,
    /// Directory to write files in.
    #[arg(long, short, default_value = ".")]
    output: PathBuf,
    /// Exit after this many files.
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// Download the complete files already waiting (the `files` request)
    /// before waiting for new ones.
    #[arg(long)]
    existing: bool,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// A progress bar in bytes, fed by a transfer's progress callback.
fn bar(quiet: bool, what: String) -> (indicatif::ProgressBar, Transfer) {
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    };
    bar.set_message(what);
    let feed = bar.clone();
    let progress = Arc::new(move |p: &Progress| {
        feed.set_length(p.size);
        feed.set_position(p.bytes_done);
    });
    let transfer = Transfer {
        progress: Some(progress),
        ..Transfer::default()
    };
    (bar, transfer)
}

pub(crate) fn send(args: SendFileArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let (client, _events) = args.conn.connect();
        let to = match (&args.room, &args.user) {
            (Some(r), _) => FileTarget::Room(r.clone()),
            (None, Some(u)) => FileTarget::User(u.clone()),
            (None, None) => anyhow::bail!("give --room or --user"),
        };
        let (bar, mut options) = bar(args.conn.quiet, format!("{}", args.file.display()));
        options.name = args.name.clone();
        options.chunk_size = args.chunk_size;
        let sent = client
            .send_file(to, &args.file, options)
            .await
            .with_context(|| format!("sending {}", args.file.display()))?;
        bar.finish_and_clear();
        let mut summary = json!({
            "transfer": sent.transfer,
            "sha256": sent.sha256,
            "size": sent.size,
            "chunks": sent.chunks,
            "frames_sent": sent.frames_sent,
            "resent": sent.resent,
            "resent_acknowledged": sent.resent_acknowledged,
            "resumed_at": sent.resumed_at,
        });
        if let Some((received, duplicates)) = sent.server_counts {
            summary["server_received"] = json!(received);
            summary["server_duplicates"] = json!(duplicates);
        }
        println!("{summary}");
        client.close();
        Ok(())
    })
}

pub(crate) fn recv(args: RecvFileArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    runtime()?.block_on(async move {
        let (client, mut events) = args.conn.connect();
        if let Some(t) = &args.transfer {
            let got = download(&client, &args, t, None).await?;
            println!("{got}");
            client.close();
            return Ok(());
        }
        for room in &args.rooms {
            client
                .join(room, false)
                .await
                .with_context(|| format!("joining {room}"))?;
        }
        let mut done = std::collections::HashSet::new();
        let mut left = args.count;
        if args.existing {
            for f in client.files().await.context("listing files")? {
                if left == 0 {
                    break;
                }
                let t = f["transfer"].as_str().unwrap_or_default().to_owned();
                let got = download(&client, &args, &t, f["name"].as_str()).await?;
                println!("{got}");
                done.insert(t);
                left -= 1;
            }
        }
        while left > 0 {
            let Some(event) = events.recv().await else {
                anyhow::bail!("the client stopped");
            };
            match event {
                Event::Message(m) if m.event == "file" => {
                    let t = m.data["transfer"].as_str().unwrap_or_default().to_owned();
                    if !done.insert(t.clone()) {
                        continue;
                    }
                    let got = download(&client, &args, &t, m.data["name"].as_str()).await?;
                    println!("{got}");
                    left -= 1;
                }
                Event::State(switchboard_client::native::State::Closed { reason }) => {
                    anyhow::bail!("disconnected for good: {reason}");
                }
                _ => {}
            }
        }
        client.close();
        Ok(())
    })
}

async fn download(
    client: &Client,
    args: &RecvFileArgs,
    transfer: &str,
    name: Option<&str>,
) -> anyhow::Result<Value> {
    let dest = destination(&args.output, name.unwrap_or(transfer));
    let (bar, options) = bar(args.conn.quiet, safe_name(name.unwrap_or(transfer)));
    let got = client
        .receive_file(transfer, &dest, options)
        .await
        .with_context(|| format!("receiving {transfer}"))?;
    bar.finish_and_clear();
    Ok(json!({
        "transfer": got.transfer,
        "name": got.name,
        "path": dest,
        "size": got.size,
        "sha256": got.sha256,
        "resumed_at": got.resumed_at,
    }))
}

/// A sender's name made safe for a file name: no directories, no leading
/// dot, printable.
fn safe_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    let cleaned = cleaned.trim_start_matches('.').trim();
    if cleaned.is_empty() {
        "file".into()
    } else {
        cleaned.to_owned()
    }
}

/// `dir/name`, or `dir/name (N)` when that exists.
fn destination(dir: &Path, name: &str) -> PathBuf {
    let name = safe_name(name);
    let first = dir.join(&name);
    if !first.exists() {
        return first;
    }
    (1..)
        .map(|n| dir.join(format!("{name} ({n})")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_senders_cannot_leave_the_directory() {
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("a\\b\\c.txt"), "c.txt");
        assert_eq!(safe_name(".bashrc"), "bashrc");
        assert_eq!(safe_name("x\ny"), "x_y");
        assert_eq!(safe_name(".."), "file");
        assert_eq!(safe_name("report.pdf"), "report.pdf");
    }

    #[test]
    fn an_existing_file_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), b"x").unwrap();
        assert_eq!(
            destination(dir.path(), "a.txt"),
            dir.path().join("a.txt (1)")
        );
        assert_eq!(destination(dir.path(), "b.txt"), dir.path().join("b.txt"));
    }
}
