//! `switchboard record` against `switchboard echo` (raw: what is typed on
//! stdin goes out, the echo comes in), then `switchboard replay` of the
//! capture to `switchboard connect --protocol raw`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

mod support;

use support::{Server, free_port, wait_listening};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
}

#[test]
fn a_raw_session_is_recorded_both_ways_and_replayed() {
    let port = free_port();
    let echo = bin()
        .args(["echo", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--workers", "1", "--no-deflate"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _echo = Server(echo);
    wait_listening(port, "echo server");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("echo.ndjson");
    let mut rec = bin()
        .args([
            "record",
            "--protocol",
            "raw",
            &format!("ws://127.0.0.1:{port}/x"),
        ])
        .args(["-o", file.to_str().unwrap(), "--duration", "1"])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    {
        let mut stdin = rec.stdin.take().unwrap();
        writeln!(stdin, "first").unwrap();
        writeln!(stdin, "sëcond ✓").unwrap();
    }
    assert!(rec.wait().unwrap().success());

    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["capture"], "switchboard");
    assert_eq!(lines[0]["protocol"], "raw");
    let frames: Vec<(String, String)> = lines[1..]
        .iter()
        .filter(|l| l["type"] == "text")
        .map(|l| {
            (
                l["dir"].as_str().unwrap().to_owned(),
                l["data"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = |d: &str, s: &str| (d.to_owned(), s.to_owned());
    for f in [
        want("out", "first"),
        want("in", "first"),
        want("out", "sëcond ✓"),
        want("in", "sëcond ✓"),
    ] {
        assert!(frames.contains(&f), "{f:?} not in {frames:?}");
    }
    let last = lines.last().unwrap();
    assert_eq!(
        (&last["dir"], &last["type"], &last["code"]),
        (&"out".into(), &"close".into(), &1000.into())
    );

    let mut replay = bin()
        .args(["replay", file.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(replay.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let _replay = Server(replay);
    let addr = line
        .split("on ws://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    let out = bin()
        .args([
            "connect",
            "--protocol",
            "raw",
            &format!("ws://{addr}/anything"),
        ])
        .args(["--exit-after", "2"])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .output();
    let out = out.unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "first\nsëcond ✓\n");
}
