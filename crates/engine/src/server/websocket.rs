//! The WebSocket transport: a fresh session opened on a WebSocket, or the
//! upgrade of a polling session. One task per WebSocket reads frames and
//! writes whatever the session queues.

use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response};
use switchboard_wire::handshake::server::ServerOptions;
use switchboard_wire::io::server::{PendingUpgrade, upgrade as ws_upgrade};
use switchboard_wire::io::{MaybeTlsStream, WebSocket};
use switchboard_wire::{CloseCode, CloseFrame, Config, DeflateConfig, Message};

use super::error::RequestError;
use super::socket::EngineSocket;
use super::{Body, Handler, Shared};
use crate::packet::Packet;
use crate::session::{CloseReason, Inbound, Transport};

fn accept<H: Handler, B>(
    shared: &Shared<H>,
    req: &mut Request<B>,
) -> Result<(Response<Body>, PendingUpgrade), RequestError> {
    let config = &shared.config;
    let deflate = config.ws_deflate.then(DeflateConfig::default);
    let options = ServerOptions::default().with_deflate(deflate);
    let max = config.session.max_payload;
    let ws_config = Config::default()
        .deflate(deflate)
        .max_message_size(max)
        .max_frame_size(max);
    let (res, _accepted, pending) =
        ws_upgrade(req, &options, ws_config).map_err(|_| RequestError::BadRequest)?;
    Ok((res.map(|()| Body::default()), pending))
}

/// A session opened directly on a WebSocket.
pub(super) fn handshake<H: Handler, B>(
    shared: &Arc<Shared<H>>,
    mut req: Request<B>,
) -> Result<Response<Body>, RequestError> {
    let (res, pending) = accept(shared, &mut req)?;
    let (parts, _) = req.into_parts();
    let shared = shared.clone();
    tokio::spawn(async move {
        let Ok(ws) = pending.websocket().await else {
            return;
        };
        let socket = shared.open(&parts, Transport::WebSocket);
        drop(parts);
        run(&shared, &socket, ws).await;
    });
    Ok(res)
}

/// A polling session's upgrade: the probe runs on the new WebSocket.
pub(super) fn upgrade<H: Handler, B>(
    shared: &Arc<Shared<H>>,
    socket: Arc<EngineSocket<H::Data>>,
    mut req: Request<B>,
) -> Result<Response<Body>, RequestError> {
    let taken = {
        let st = socket.lock();
        if st.session.closed().is_some() {
            return Err(RequestError::UnknownSid);
        }
        st.ws_bound || st.session.transport() != Transport::Polling
    };
    let (res, pending) = accept(shared, &mut req)?;
    if taken {
        // Already upgrading or upgraded: like the reference server, accept
        // the WebSocket and close it at once.
        tokio::spawn(async move {
            if let Ok(mut ws) = pending.websocket().await {
                let _ = ws.close(None).await;
            }
        });
        return Ok(res);
    }
    socket.lock().ws_bound = true;
    let shared = shared.clone();
    tokio::spawn(async move {
        match pending.websocket().await {
            Ok(ws) => run(&shared, &socket, ws).await,
            Err(_) => socket.lock().ws_bound = false,
        }
    });
    Ok(res)
}

/// Reads and writes one WebSocket until the session or the socket ends.
async fn run<H: Handler>(
    shared: &Shared<H>,
    socket: &Arc<EngineSocket<H::Data>>,
    mut ws: WebSocket<MaybeTlsStream>,
) {
    let end = loop {
        let notified = socket.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let closed = {
            let mut st = socket.lock();
            let mut failed = false;
            st.session.drain_ws(|m| failed |= ws.queue(m).is_err());
            if failed {
                st.session.end(CloseReason::TransportClose);
            }
            st.session.closed()
        };
        if let Some(reason) = closed {
            break Some(reason);
        }
        tokio::select! {
            biased;
            () = &mut notified => {}
            r = ws.recv() => match r {
                Some(Ok(m)) => on_frame(shared, socket, m),
                // The socket ended: the session ends with it unless this was
                // an upgrade that never completed.
                Some(Err(_)) | None => break None,
            },
        }
    };
    match end {
        Some(CloseReason::PingTimeout | CloseReason::TransportError) => {
            // Declared dead or broke the protocol: drop at once.
        }
        Some(_) => {
            let _ = ws
                .close(Some(CloseFrame {
                    code: CloseCode::NORMAL,
                    reason: Default::default(),
                }))
                .await;
        }
        None => {
            let mut st = socket.lock();
            if st.session.transport() == Transport::WebSocket {
                st.session.end(CloseReason::TransportClose);
            } else {
                st.ws_bound = false;
                st.session.upgrade_aborted();
            }
        }
    }
    shared.reap(socket);
}

fn on_frame<H: Handler>(shared: &Shared<H>, socket: &Arc<EngineSocket<H::Data>>, m: Message) {
    let packet = match m {
        Message::Text(t) => Packet::decode_text(t.as_str()),
        Message::Binary(b) => Ok(Packet::Binary(b)),
    };
    let inbound: Option<Inbound> = {
        let mut st = socket.lock();
        match packet {
            Ok(p) => st
                .session
                .on_packet(Transport::WebSocket, p, Instant::now()),
            Err(_) => {
                st.session.on_transport_error();
                None
            }
        }
    };
    // The probe answer or a `noop` for a waiting GET may be queued.
    socket.notify.notify_waiters();
    shared.deliver(socket, inbound.into_iter().collect());
}
