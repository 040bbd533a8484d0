//! `switchboard bench`: load generators with latency percentiles.

mod chart;
mod conns;
mod echo;
mod fanout;
mod idle;
mod report;
mod sio_echo;
mod storm;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum BenchCommand {
    /// Raw WebSocket echo round trips: N connections, each sending a message
    /// and waiting for its echo before sending the next (or keeping
    /// `--in-flight` messages out).
    Echo(echo::EchoBenchArgs),
    /// Room fan-out over the native protocol or the Socket.IO relay: N
    /// subscribers (spread over one or several nodes), a publisher at rate
    /// R; deliveries per second, end-to-end latency, losses and duplicates.
    Fanout(fanout::FanoutBenchArgs),
    /// Socket.IO emit-with-ack round trips: N clients, each emitting `echo`
    /// and waiting for its ack before the next (or keeping `--in-flight`
    /// emits out).
    SioEcho(sio_echo::SioEchoBenchArgs),
    /// Idle connections: opens N (heartbeats answered) and reports the
    /// server's resident memory per connection, given its pid.
    Idle(idle::IdleBenchArgs),
    /// N clients connecting at once: time until all are connected and ready
    /// (joined), and connect latency percentiles.
    ConnectStorm(storm::StormBenchArgs),
    /// A grouped bar chart (SVG) of a side-by-side comparison.
    Chart(chart::ChartArgs),
}

pub(crate) fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Echo(args) => echo::run(args),
        BenchCommand::Fanout(args) => fanout::run(args),
        BenchCommand::SioEcho(args) => sio_echo::run(args),
        BenchCommand::Idle(args) => idle::run(args),
        BenchCommand::ConnectStorm(args) => storm::run(args),
        BenchCommand::Chart(args) => chart::run(args),
    }
}

/// The load generator's runtime: one thread (current-thread runtime) or a
/// multi-thread runtime with `threads` workers.
fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}
