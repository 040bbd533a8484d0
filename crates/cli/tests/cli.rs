//! The `switchboard` binary: `echo` serves HTTP and WebSocket on one port, and
//! `bench echo` measures it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{Server, free_port, wait_listening};

fn start_echo(extra: &[&str]) -> (Server, u16) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "echo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--workers",
            "1",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    wait_listening(port, "echo server");
    (server, port)
}

fn http(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn plain_http_gets_426_and_bad_upgrades_get_their_status() {
    let (_server, port) = start_echo(&[]);
    let r = http(
        port,
        "GET /x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 426"), "{r}");
    assert!(r.to_ascii_lowercase().contains("upgrade: websocket"));
    let r = http(
        port,
        "GET / HTTP/1.1\r\nhost: a\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: short\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert!(
        r.contains("Sec-WebSocket-Key"),
        "the reason is in the body: {r}"
    );
    let many: String = (0..200).map(|i| format!("x-h{i}: v\r\n")).collect();
    let r = http(port, &format!("GET / HTTP/1.1\r\nhost: a\r\n{many}\r\n"));
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");
}

/// Opens a WebSocket with a raw handshake, the request written in `pieces`
/// separate writes; returns the stream and a reader past the 101 response.
fn raw_upgrade(port: u16, pieces: usize) -> (TcpStream, BufReader<TcpStream>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_nodelay(true).unwrap();
    let request: &[u8] =
        b"GET /any HTTP/1.1\r\nhost: a\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
          sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    for chunk in request.chunks(request.len().div_ceil(pieces)) {
        s.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    (s, reader)
}

/// A masked client frame.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [1u8, 2, 3, 4];
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

fn assert_echoes(s: &mut TcpStream, reader: &mut BufReader<TcpStream>) {
    s.write_all(&client_frame(0x1, b"hi")).unwrap();
    let mut echo = [0u8; 4];
    reader.read_exact(&mut echo).unwrap();
    assert_eq!(echo, [0x81, 0x02, b'h', b'i']);
}

#[test]
fn echoes_over_websocket_after_a_raw_handshake() {
    let (_server, port) = start_echo(&[]);
    let (mut s, mut reader) = raw_upgrade(port, 1);
    assert_echoes(&mut s, &mut reader);
    // A request head that arrives in pieces is upgraded all the same.
    let (mut s, mut reader) = raw_upgrade(port, 4);
    assert_echoes(&mut s, &mut reader);
}

#[test]
fn heartbeat_pings_silent_connections_and_drops_dead_ones() {
    let (_server, port) = start_echo(&["--ping-interval", "1"]);
    let (mut alive, mut alive_reader) = raw_upgrade(port, 1);
    let (_dead, mut dead_reader) = raw_upgrade(port, 1);
    // The live peer answers every ping with a pong, for 5 intervals.
    let until = Instant::now() + Duration::from_secs(5);
    let mut pings = 0;
    while Instant::now() < until {
        let mut head = [0u8; 2];
        alive_reader.read_exact(&mut head).unwrap();
        assert_eq!(head, [0x89, 0x00], "an empty ping");
        pings += 1;
        alive.write_all(&client_frame(0xA, b"")).unwrap();
    }
    assert!(pings >= 2, "{pings} pings in 5 s at a 1 s interval");
    // The silent peer got its ping and was then dropped (EOF, or a reset).
    let mut rest = Vec::new();
    match dead_reader.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    assert_eq!(&rest[..2], [0x89, 0x00], "pinged before being dropped");
    assert_echoes(&mut alive, &mut alive_reader);
}

#[test]
fn bench_echo_reports_json_with_percentiles() {
    let (_server, port) = start_echo(&["--no-deflate"]);
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["bench", "echo", "--url", &format!("ws://127.0.0.1:{port}/")])
        .args([
            "--connections",
            "4",
            "--size",
            "32",
            "--duration",
            "0.5",
            "--warmup",
            "0.1",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["messages"].as_u64().unwrap() > 0, "{v}");
    assert!(v["msgs_per_sec"].as_f64().unwrap() > 0.0);
    let (p50, p99, max) = (
        v["p50_us"].as_u64().unwrap(),
        v["p99_us"].as_u64().unwrap(),
        v["max_us"].as_u64().unwrap(),
    );
    assert!(p50 <= p99 && p99 <= max, "{v}");
}

#[test]
fn bench_fails_clearly_when_nothing_listens() {
    let port = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "bench",
            "echo",
            "--url",
            &format!("ws://127.0.0.1:{port}/"),
            "--duration",
            "0.2",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("connection 0"));
}

#[test]
fn echo_serves_wss_with_the_given_certificate() {
    let dir = std::env::temp_dir().join(format!("sb-cli-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let (_server, port) = start_echo(&[
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use switchboard_wire::io::{ConnectOptions, connect};
        use switchboard_wire::{Config, DeflateConfig, Message};
        let options =
            ConnectOptions::new(Config::default().deflate(Some(DeflateConfig::default())))
                .trust(&cert_path);
        let (mut ws, negotiated) = connect(&format!("wss://localhost:{port}/tls"), &options)
            .await
            .unwrap();
        assert!(negotiated.deflate.is_some());
        for m in [
            Message::text("over tls"),
            Message::binary(vec![7u8; 100_000]),
        ] {
            ws.send(m.clone()).await.unwrap();
            assert_eq!(ws.recv().await.unwrap().unwrap(), m);
        }
        ws.close(None).await.unwrap();
        assert!(ws.closed_cleanly());
    });
}

/// `switchboard serve` on a free port with admin key `k`, once it listens.
fn start_serve() -> (Server, u16) {
    let port = free_port();
    let serve = Server(
        Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--api-key",
                "k",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(port, "serve");
    (serve, port)
}

/// `switchboard connect` in a script: lines in, JSON lines out; a line that
/// is not JSON is published to the first room; `--exit-after` ends it.
#[test]
fn connect_native_publishes_lines_and_prints_messages() {
    let (mut serve, port) = start_serve();
    let mut connect = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["connect", &format!("ws://127.0.0.1:{port}/ws")])
        .args(["--room", "lobby", "--exit-after", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = connect.stdin.take().unwrap();
    stdin
        .write_all(
            b"hello\n{\"op\":\"publish\",\"room\":\"lobby\",\"event\":\"ev\",\"data\":{\"n\":2}}\n",
        )
        .unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        connect
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        let status = connect.wait().unwrap();
        (s, status)
    });
    let until = Instant::now() + Duration::from_secs(15);
    while !out.is_finished() {
        assert!(
            Instant::now() < until,
            "connect did not exit after 2 messages"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stdin);
    let (stdout, status) = out.join().unwrap();
    assert!(status.success());
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let messages: Vec<&serde_json::Value> = lines.iter().filter(|v| v["op"] == "message").collect();
    assert_eq!(messages.len(), 2, "{stdout}");
    assert_eq!(messages[0]["data"], "hello");
    assert_eq!(messages[0]["event"], "message");
    assert_eq!(messages[1]["data"]["n"], 2);
    assert_eq!(messages[1]["offset"], 2);
    serve.0.kill().unwrap();
}

/// `switchboard connect --protocol raw` against any WebSocket server (our
/// echo): lines out as text frames, frames back as lines.
#[test]
fn connect_raw_talks_to_any_websocket_server() {
    let (_echo, port) = start_echo(&[]);
    let mut connect = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "connect",
            "--protocol",
            "raw",
            &format!("ws://127.0.0.1:{port}/"),
        ])
        .args(["--exit-after", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = connect.stdin.take().unwrap();
    stdin.write_all(b"first line\nsecond \xc3\xa9\n").unwrap();
    let out = std::thread::spawn(move || connect.wait_with_output().unwrap());
    let until = Instant::now() + Duration::from_secs(10);
    while !out.is_finished() {
        assert!(
            Instant::now() < until,
            "connect did not exit after 2 frames"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stdin);
    let output = out.join().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "first line\nsecond é\n"
    );
}

/// `switchboard connect --protocol socketio` against `switchboard serve`'s
/// relay: `--room` joins through the relay, a JSON array line is an event
/// with an ack, room events are printed.
#[test]
fn connect_socketio_joins_publishes_and_prints_events() {
    let (mut serve, port) = start_serve();
    let mut connect = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "connect",
            "--protocol",
            "socketio",
            &format!("http://127.0.0.1:{port}"),
        ])
        .args(["--room", "lobby", "--exit-after", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = connect.stdin.take().unwrap();
    // After the join had time to happen.
    std::thread::sleep(Duration::from_millis(1000));
    stdin
        .write_all(b"[\"publish\",\"lobby\",\"chat\",{\"x\":1}]\n")
        .unwrap();
    let out = std::thread::spawn(move || connect.wait_with_output().unwrap());
    let until = Instant::now() + Duration::from_secs(15);
    while !out.is_finished() {
        assert!(Instant::now() < until, "connect did not exit after 1 event");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stdin);
    let output = out.join().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let event = lines
        .iter()
        .find(|v| v["event"] == "chat")
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(event["args"][0], serde_json::json!({"x": 1}));
    assert_eq!(event["args"][1]["room"], "lobby");
    serve.0.kill().unwrap();
}
