//! `switchboard bench` scenarios against real servers (short runs): each
//! reports JSON whose figures are consistent with what it did.

use std::process::{Command, Stdio};

use serde_json::Value;

mod support;

use support::{Server, free_port, wait_child_listening};

fn start(args: &[&str]) -> (Server, u16) {
    for _ in 0..5 {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["--listen", &listen]);
        let child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(&full)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = Server(child);
        if wait_child_listening(&mut server.0, port, &format!("{args:?}")) {
            return (server, port);
        }
    }
    panic!("{args:?} could not listen on any of 5 free ports");
}

fn bench(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bench {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ordered_percentiles(v: &Value) {
    let p = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    assert!(
        p("p50_us") <= p("p99_us") && p("p99_us") <= p("max_us"),
        "{v}"
    );
}

#[test]
fn sio_echo_round_trips_against_echo_socketio() {
    let (_s, port) = start(&["echo", "--socketio", "--workers", "1"]);
    let v = bench(&[
        "sio-echo",
        "--url",
        &format!("http://127.0.0.1:{port}"),
        "--connections",
        "3",
        "--duration",
        "0.5",
        "--warmup",
        "0.1",
    ]);
    assert!(v["messages"].as_u64().unwrap() > 0, "{v}");
    ordered_percentiles(&v);
}

/// Several emits in flight per client, across the server's heartbeats (the
/// load generator answers pings between acks).
#[test]
fn sio_echo_keeps_several_emits_in_flight_across_heartbeats() {
    let (_s, port) = start(&[
        "echo",
        "--socketio",
        "--workers",
        "1",
        "--ping-interval",
        "1",
    ]);
    let v = bench(&[
        "sio-echo",
        "--url",
        &format!("http://127.0.0.1:{port}"),
        "--connections",
        "4",
        "--in-flight",
        "8",
        "--size",
        "100",
        "--duration",
        "2.5",
        "--warmup",
        "0.1",
    ]);
    assert_eq!(v["in_flight"], 8, "{v}");
    assert!(v["messages"].as_u64().unwrap() > 32, "{v}");
    ordered_percentiles(&v);
}

/// Raw echo with several messages in flight per connection: every one is
/// echoed and counted.
#[test]
fn echo_keeps_several_messages_in_flight() {
    let (_s, port) = start(&["echo", "--workers", "1", "--no-deflate"]);
    let v = bench(&[
        "echo",
        "--url",
        &format!("ws://127.0.0.1:{port}/"),
        "--connections",
        "3",
        "--in-flight",
        "16",
        "--size",
        "300",
        "--duration",
        "0.5",
        "--warmup",
        "0.1",
    ]);
    assert_eq!(v["in_flight"], 16, "{v}");
    assert!(v["messages"].as_u64().unwrap() > 48, "{v}");
    ordered_percentiles(&v);
}

#[test]
fn fanout_delivers_every_message_to_every_subscriber() {
    let (_s, port) = start(&["serve", "--api-key", "k"]);
    let v = bench(&[
        "fanout",
        "--url",
        &format!("ws://127.0.0.1:{port}/ws"),
        "--subscribers",
        "20",
        "--rate",
        "20",
        "--duration",
        "0.5",
    ]);
    let published = v["published"].as_u64().unwrap();
    assert!(published >= 5, "{v}");
    assert_eq!(v["protocol"], "native", "{v}");
    exactly_once(&v, published, 20);
    ordered_percentiles(&v);
}

/// Every subscriber got every published message exactly once.
fn exactly_once(v: &Value, published: u64, subscribers: u64) {
    assert_eq!(
        v["delivered"].as_u64().unwrap(),
        published * subscribers,
        "{v}"
    );
    assert_eq!(v["lost"], 0, "{v}");
    assert_eq!(v["duplicates"], 0, "{v}");
    assert_eq!(v["unexpected"], 0, "{v}");
    assert_eq!(v["complete_subscribers"], subscribers, "{v}");
}

#[test]
fn fanout_over_socketio_delivers_every_message_to_every_subscriber_once() {
    let (s, port) = start(&["serve", "--api-key", "k"]);
    let pid = s.0.id().to_string();
    let v = bench(&[
        "fanout",
        "--protocol",
        "socketio",
        "--url",
        &format!("http://127.0.0.1:{port}"),
        "--subscribers",
        "20",
        "--rate",
        "20",
        "--duration",
        "1",
        "--pid",
        &pid,
    ]);
    assert_eq!(v["protocol"], "socketio", "{v}");
    let published = v["published"].as_u64().unwrap();
    assert!(published >= 10, "{v}");
    assert_eq!(v["publish_acked"], published, "every publish acked: {v}");
    assert_eq!(v["publish_failed"], 0, "{v}");
    exactly_once(&v, published, 20);
    ordered_percentiles(&v);
    assert!(v["server_cpu_us"].as_u64().is_some(), "{v}");
}

#[test]
fn fanout_refuses_bad_arguments_without_panicking() {
    for args in [
        &["--rate", "0"][..],
        &["--rate", "NaN"],
        &["--duration=-1"],
        &[
            "--protocol",
            "socketio",
            "--url",
            "http://127.0.0.1:1/socket.io/",
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["bench", "fanout", "--url", "ws://127.0.0.1:1/ws"])
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.starts_with("Error: "), "{args:?}: {err}");
    }
}

#[test]
fn idle_reports_server_memory_per_held_connection() {
    let (s, port) = start(&["echo", "--workers", "1"]);
    let pid = s.0.id().to_string();
    let v = bench(&[
        "idle",
        "--url",
        &format!("ws://127.0.0.1:{port}/"),
        "--pid",
        &pid,
        "--connections",
        "200",
        "--source-ips",
        "2",
        "--settle",
        "0.2",
    ]);
    assert_eq!(v["connections"], 200, "{v}");
    assert_eq!(v["failed"], 0, "{v}");
    assert!(v["rss_after"].as_u64().unwrap() >= v["rss_before"].as_u64().unwrap() / 2);
    assert!(v["bytes_per_conn"].as_f64().is_some(), "{v}");
}

#[test]
fn connect_storm_joins_every_client_natively_and_over_socketio() {
    let (_s, port) = start(&["serve", "--api-key", "k"]);
    for (protocol, url) in [
        ("native", format!("ws://127.0.0.1:{port}/ws")),
        ("socketio", format!("http://127.0.0.1:{port}")),
    ] {
        let v = bench(&[
            "connect-storm",
            "--url",
            &url,
            "--protocol",
            protocol,
            "--connections",
            "100",
        ]);
        assert_eq!(v["connections"], 100, "{protocol}: {v}");
        assert_eq!(v["failed"], 0, "{protocol}: {v}");
        ordered_percentiles(&v);
    }
}

#[test]
fn chart_draws_one_bar_per_series_and_group() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"group\":\"a\",\"series\":\"x\",\"value\":10}\n\
         {\"group\":\"a\",\"series\":\"y\",\"value\":5}\n\
         {\"group\":\"b\",\"series\":\"x\",\"value\":7}\n",
    )
    .unwrap();
    let svg = dir.path().join("out.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["bench", "chart"])
        .arg(&input)
        .arg("-o")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"), "{text}");
    // Three bars (plus the legend's two swatches) in the series' colors.
    assert_eq!(text.matches("fill=\"#2B6CB0\"").count(), 3, "{text}");
    assert_eq!(text.matches("fill=\"#D95F02\"").count(), 2, "{text}");

    std::fs::write(&input, "{\"nope\":1}\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["bench", "chart"])
        .arg(&input)
        .arg("-o")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(!out.status.success(), "bad input is an error");
}
