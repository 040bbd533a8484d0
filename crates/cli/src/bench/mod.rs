//! `switchboard bench`: load generators with latency percentiles.

mod echo;
mod report;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum BenchCommand {
    /// Raw WebSocket echo round trips: N connections, each sending a message
    /// and waiting for its echo before sending the next.
    Echo(echo::EchoBenchArgs),
}

pub(crate) fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Echo(args) => echo::run(args),
    }
}
