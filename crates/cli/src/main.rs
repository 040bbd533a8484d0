//! The `switchboard` command.

mod bench;
mod connect;
mod echo;
mod files;
mod heap;
mod listen;
mod record;
mod replay;
mod serve;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Real-time messaging server and toolkit"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The real-time server: Socket.IO relay with rooms, presence, history
    /// and the admin API.
    Serve(Box<serve::ServeArgs>),
    /// A client: the native protocol with reconnection, or raw WebSocket
    /// (stdin lines in, JSON lines out).
    Connect(connect::ConnectArgs),
    /// A bare WebSocket echo server on every path (a test peer and benchmark target).
    Echo(echo::EchoArgs),
    /// Load generators.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Send a file to a room or a user (native protocol), resuming after
    /// reconnects.
    SendFile(files::SendFileArgs),
    /// Receive files sent to you or to rooms (native protocol).
    RecvFile(files::RecvFileArgs),
    /// Capture every frame of a connection, both ways, with timestamps
    /// (NDJSON).
    Record(record::RecordArgs),
    /// Play a capture to any client that connects, with its timing.
    Replay(replay::ReplayArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        // `serve` sets up its own logs from its settings.
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .with_writer(std::io::stderr)
            .init();
    }
    match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Echo(args) => echo::run(args),
        Command::Connect(args) => connect::run(args),
        Command::Bench(cmd) => bench::run(cmd),
        Command::SendFile(args) => files::send(args),
        Command::RecvFile(args) => files::recv(args),
        Command::Record(args) => record::run(args),
        Command::Replay(args) => replay::run(args),
    }
}
