//! Drives the Autobahn TestSuite fuzzing server's client protocol with the
//! switchboard client: `/getCaseCount`, every `/runCase?case=N&agent=...`
//! (echoing each message back), then `/updateReports?agent=...`.
//!
//! ```text
//! cargo run --release --example autobahn-client -- ws://127.0.0.1:9001 [agent]
//! ```

use switchboard_wire::io::{ConnectOptions, connect};
use switchboard_wire::{Config, DeflateConfig, Message};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let base = args.next().unwrap_or_else(|| "ws://127.0.0.1:9001".into());
    let base = base.trim_end_matches('/').to_owned();
    let agent = args.next().unwrap_or_else(|| "switchboard".into());
    // Compress every message (threshold 0) once permessage-deflate is agreed,
    // so the compression cases exercise our compressor, small messages too.
    let deflate = DeflateConfig::default().threshold(0);
    let options = ConnectOptions::new(Config::default().deflate(Some(deflate)));

    let (mut ws, _) = connect(&format!("{base}/getCaseCount"), &options).await?;
    let count: u32 = match ws.recv().await {
        Some(Ok(Message::Text(t))) => t.as_str().trim().parse()?,
        other => anyhow::bail!("unexpected getCaseCount answer: {other:?}"),
    };
    ws.close(None).await?;
    eprintln!("running {count} cases as agent {agent}");

    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        match connect(&url, &options).await {
            Ok((mut ws, _)) => {
                while let Some(Ok(msg)) = ws.recv().await {
                    if ws.queue(msg).is_err() {
                        break;
                    }
                }
            }
            Err(e) => eprintln!("case {case}: {e}"),
        }
    }

    // The fuzzing server writes its report and drops this connection, at times
    // with a reset: whether the report exists is checked by whoever runs us.
    match connect(&format!("{base}/updateReports?agent={agent}"), &options).await {
        Ok((mut ws, _)) => {
            if let Err(e) = ws.close(None).await {
                eprintln!("updateReports: {e}");
            }
            eprintln!("reports updated");
        }
        Err(e) => eprintln!("updateReports: {e}"),
    }
    Ok(())
}
