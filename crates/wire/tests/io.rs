//! The tokio drivers over real loopback sockets: ws://, wss://, hyper's upgrade
//! on a port that keeps serving HTTP, and failures seen from a raw socket.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use switchboard_wire::handshake::HeadLimits;
use switchboard_wire::handshake::server::{ServerOptions, is_upgrade_request};
use switchboard_wire::io::server::{accept_raw, upgrade};
use switchboard_wire::io::{ConnectOptions, MaybeTlsStream, WebSocket, connect};
use switchboard_wire::{
    CloseCode, CloseFrame, Config, DeflateConfig, Error, Message, ProtocolError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn options() -> ServerOptions {
    ServerOptions::default().with_deflate(Some(DeflateConfig::default()))
}

async fn echo(mut ws: WebSocket<MaybeTlsStream>) {
    while let Some(Ok(m)) = ws.recv().await {
        if ws.queue(m).is_err() {
            break;
        }
    }
}

/// A raw-accept echo server, optionally behind TLS.
async fn spawn_server(tls: Option<tokio_rustls::TlsAcceptor>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let tls = tls.clone();
            tokio::spawn(async move {
                let stream = match tls {
                    None => MaybeTlsStream::Plain(tcp),
                    Some(a) => MaybeTlsStream::ServerTls(Box::new(a.accept(tcp).await.unwrap())),
                };
                let config = Config::default().deflate(Some(DeflateConfig::default()));
                if let Ok((ws, _)) =
                    accept_raw(stream, &options(), config, &HeadLimits::default()).await
                {
                    echo(ws).await;
                }
            });
        }
    });
    addr
}

async fn exchange(url: &str, connect_options: &ConnectOptions) -> anyhow::Result<()> {
    let (mut ws, negotiated) = connect(url, connect_options).await?;
    assert!(
        negotiated.deflate.is_some(),
        "permessage-deflate negotiated"
    );
    let big = "x".repeat(200_000);
    for m in [
        Message::text("hello"),
        Message::binary(vec![1u8, 2, 3]),
        Message::text(big),
    ] {
        ws.send(m.clone()).await?;
        assert_eq!(ws.recv().await.unwrap()?, m);
    }
    ws.close(Some(CloseFrame::new(CloseCode::NORMAL, "done")))
        .await?;
    assert!(ws.closed_cleanly());
    Ok(())
}

#[tokio::test]
async fn plain_websocket_with_deflate_and_clean_close() -> anyhow::Result<()> {
    let addr = spawn_server(None).await;
    let opts = ConnectOptions::new(Config::default().deflate(Some(DeflateConfig::default())));
    exchange(&format!("ws://{addr}/any/path?q=1"), &opts).await
}

#[tokio::test]
async fn tls_websocket_with_a_trusted_self_signed_certificate() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("sb-wire-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem())?;
    std::fs::write(&key_path, cert.signing_key.serialize_pem())?;
    let acceptor = switchboard_wire::io::tls::server_acceptor(&cert_path, &key_path)?;
    let addr = spawn_server(Some(acceptor)).await;
    let url = format!("wss://localhost:{}/", addr.port());
    // Untrusted: the TLS handshake fails.
    let plain = ConnectOptions::new(Config::default().deflate(Some(DeflateConfig::default())));
    assert!(connect(&url, &plain).await.is_err());
    exchange(&url, &plain.clone().trust(&cert_path)).await
}

#[tokio::test]
async fn hyper_upgrade_shares_the_port_with_http() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let opts = Arc::new(options());
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let opts = Arc::clone(&opts);
            tokio::spawn(async move {
                let svc = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    let opts = Arc::clone(&opts);
                    async move {
                        if !is_upgrade_request(req.headers()) {
                            return Ok::<_, Infallible>(http::Response::new(Full::new(
                                Bytes::from("plain http"),
                            )));
                        }
                        let config = Config::default().deflate(Some(DeflateConfig::default()));
                        let (resp, _, pending) = upgrade(&mut req, &opts, config).unwrap();
                        tokio::spawn(async move { echo(pending.websocket().await.unwrap()).await });
                        Ok(resp.map(|()| Full::new(Bytes::new())))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await?;
    let mut body = String::new();
    tcp.read_to_string(&mut body).await?;
    assert!(
        body.starts_with("HTTP/1.1 200") && body.ends_with("plain http"),
        "{body}"
    );
    let opts = ConnectOptions::new(Config::default().deflate(Some(DeflateConfig::default())));
    exchange(&format!("ws://{addr}/"), &opts).await
}

#[tokio::test]
async fn a_protocol_error_sends_its_close_code_then_closes_the_stream() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let (mut ws, _) = accept_raw(
            MaybeTlsStream::Plain(tcp),
            &options(),
            Config::default(),
            &HeadLimits::default(),
        )
        .await
        .unwrap();
        ws.recv().await
    });
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(
        b"GET / HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
          sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await?;
    // An unmasked text frame: clients must mask.
    tcp.write_all(&[0x81, 0x02, b'h', b'i']).await?;
    let mut all = Vec::new();
    tcp.read_to_end(&mut all).await?;
    let head_end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(all.starts_with(b"HTTP/1.1 101"));
    let frame = &all[head_end..];
    assert_eq!(frame[0], 0x88, "a close frame");
    assert_eq!(u16::from_be_bytes([frame[2], frame[3]]), 1002);
    match server.await? {
        Some(Err(Error::Protocol(ProtocolError::BadMasking))) => {}
        other => panic!("server saw {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn bad_handshakes_get_their_status() -> anyhow::Result<()> {
    let addr = spawn_server(None).await;
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(
        b"GET / HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
          sec-websocket-version: 8\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await?;
    let mut resp = String::new();
    tcp.read_to_string(&mut resp).await?;
    assert!(resp.starts_with("HTTP/1.1 426"), "{resp}");
    assert!(
        resp.to_ascii_lowercase()
            .contains("sec-websocket-version: 13")
    );
    Ok(())
}

/// `write_out_now` sends from outside any task; once the socket is full the
/// rest stays queued for the owner's `poll_write_out`, and the peer gets
/// every message once, in order.
#[tokio::test]
async fn written_now_from_outside_the_task_then_by_the_owner() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        // A small send buffer: the socket fills after a few messages.
        socket2::SockRef::from(&tcp).set_send_buffer_size(4096)?;
        let stream = MaybeTlsStream::Plain(tcp);
        let options = ServerOptions::default();
        let (ws, _) =
            accept_raw(stream, &options, Config::default(), &HeadLimits::default()).await?;
        anyhow::Ok(ws)
    });
    let url = format!("ws://{addr}/");
    let (mut client, _) = connect(&url, &ConnectOptions::new(Config::default())).await?;
    let mut ws = server.await??;
    let message = |i: u32| Message::text(format!("{i:08}{}", "x".repeat(1000)));
    // The client does not read yet: written now until the socket is full.
    let mut sent = 0u32;
    loop {
        ws.queue(message(sent))?;
        sent += 1;
        match ws.write_out_now() {
            Some(Ok(true)) => assert!(!ws.connection().has_output()),
            Some(Ok(false)) => break,
            other => panic!("message {sent}: {other:?}"),
        }
        assert!(sent < 100_000, "a socket nobody reads never filled");
    }
    assert!(ws.connection().has_output(), "the rest stays queued");
    // The owner writes the rest (waiting for writability) while the client
    // reads.
    let owner = tokio::spawn(async move {
        std::future::poll_fn(|cx| ws.poll_write_out(cx)).await?;
        anyhow::Ok(ws)
    });
    for i in 0..sent {
        assert_eq!(client.recv().await.unwrap()?, message(i));
    }
    let ws = owner.await??;
    assert!(!ws.connection().has_output());
    Ok(())
}
