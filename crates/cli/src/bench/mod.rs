//! `switchboard bench`: load generators with latency percentiles.

mod echo;
mod fanout;
mod report;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum BenchCommand {
    /// Raw WebSocket echo round trips: N connections, each sending a message
    /// and waiting for its echo before sending the next.
    Echo(echo::EchoBenchArgs),
    /// Room fan-out over the native protocol: N subscribers (spread over
    /// one or several nodes), a publisher at rate R; deliveries per second
    /// and end-to-end latency.
    Fanout(fanout::FanoutBenchArgs),
}

pub(crate) fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Echo(args) => echo::run(args),
        BenchCommand::Fanout(args) => fanout::run(args),
    }
}
