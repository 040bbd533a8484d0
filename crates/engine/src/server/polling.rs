//! HTTP long-polling: the handshake GET, waiting GETs and POSTed payloads.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::error::RequestError;
use super::socket::EngineSocket;
use super::{Body, Handler, Shared, text};
use crate::payload::decode_payload;
use crate::session::{CloseReason, Transport};

const TEXT: &str = "text/plain; charset=UTF-8";

/// Most packets one POST may carry (a body of separators must not expand
/// into an unbounded list).
const MAX_PACKETS_PER_POST: usize = 4096;

/// A handshake over polling: the first GET gets the `open` packet.
pub(super) fn handshake<H: Handler, B>(shared: &Arc<Shared<H>>, req: Request<B>) -> Response<Body> {
    let (parts, _) = req.into_parts();
    let socket = shared.open(shared.handler.data(&parts), Transport::Polling);
    let body = socket
        .lock()
        .session
        .take_poll_payload()
        .unwrap_or_default();
    text(body, TEXT)
}

/// A GET or POST for an existing polling session.
pub(super) async fn request<H: Handler, B>(
    shared: &Arc<Shared<H>>,
    socket: Arc<EngineSocket<H::Data>>,
    req: Request<B>,
) -> Result<Response<Body>, RequestError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    shared.catch_up(&socket);
    match *req.method() {
        Method::GET => poll(shared, socket).await,
        Method::POST => post(shared, socket, req).await,
        _ => Err(RequestError::BadRequest),
    }
}

/// Ends the session for a protocol violation and reaps it.
fn violation<H: Handler>(shared: &Shared<H>, socket: &Arc<EngineSocket<H::Data>>) {
    socket.abort(CloseReason::TransportError);
    shared.reap(socket);
}

async fn poll<H: Handler>(
    shared: &Arc<Shared<H>>,
    socket: Arc<EngineSocket<H::Data>>,
) -> Result<Response<Body>, RequestError> {
    {
        let mut st = socket.lock();
        if st.session.closed().is_some() && !st.session.has_poll_output() {
            drop(st);
            shared.reap(&socket);
            return Err(RequestError::UnknownSid);
        }
        if st.session.transport() != Transport::Polling {
            return Err(RequestError::BadRequest);
        }
        if st.get_waiting {
            // A second GET while one waits: the protocol says close. The
            // waiting GET is answered with the `close` packet.
            st.session.close();
            drop(st);
            shared.reap(&socket);
            return Err(RequestError::BadRequest);
        }
    }
    // Every session opened by polling has its wake-up (checked by the
    // transport test above for the others).
    let Some(notify) = socket.notify.as_deref() else {
        return Err(RequestError::BadRequest);
    };
    let mut guard = WaitGuard {
        shared: shared.as_ref(),
        socket: &socket,
        armed: false,
    };
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut st = socket.lock();
            if let Some(body) = st.session.take_poll_payload() {
                st.get_waiting = false;
                guard.armed = false;
                let ended = st.session.closed().is_some();
                drop(st);
                if ended {
                    shared.reap(&socket);
                }
                return Ok(text(body, TEXT));
            }
            if st.session.transport() != Transport::Polling || st.session.closed().is_some() {
                // Upgraded, or ended with nothing to say: release the GET.
                st.get_waiting = false;
                guard.armed = false;
                let body = if st.session.closed().is_some() {
                    "1"
                } else {
                    "6"
                };
                drop(st);
                shared.reap(&socket);
                return Ok(text(body, TEXT));
            }
            st.get_waiting = true;
            guard.armed = true;
        }
        notified.await;
    }
}

/// Ends the session when a waiting GET is abandoned (the client went away).
struct WaitGuard<'a, H: Handler> {
    shared: &'a Shared<H>,
    socket: &'a Arc<EngineSocket<H::Data>>,
    armed: bool,
}

impl<H: Handler> Drop for WaitGuard<'_, H> {
    fn drop(&mut self) {
        if self.armed {
            self.socket.lock().get_waiting = false;
            self.socket.abort(CloseReason::TransportClose);
            self.shared.reap(self.socket);
        }
    }
}

async fn post<H: Handler, B>(
    shared: &Arc<Shared<H>>,
    socket: Arc<EngineSocket<H::Data>>,
    req: Request<B>,
) -> Result<Response<Body>, RequestError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    {
        let mut st = socket.lock();
        if st.session.closed().is_some() {
            return Err(RequestError::UnknownSid);
        }
        if st.session.transport() != Transport::Polling && !st.session.upgrading() {
            return Err(RequestError::BadRequest);
        }
        if st.post_active {
            drop(st);
            violation(shared, &socket);
            return Err(RequestError::BadRequest);
        }
        st.post_active = true;
    }
    let max = shared.config.session.max_payload;
    let too_large = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|n| n > max as u64);
    let body = if too_large {
        Err(RequestError::PayloadTooLarge)
    } else {
        match Limited::new(req.into_body(), max).collect().await {
            Ok(c) => Ok(c.to_bytes()),
            Err(e) if e.is::<LengthLimitError>() => Err(RequestError::PayloadTooLarge),
            Err(_) => Err(RequestError::BadRequest),
        }
    };
    socket.lock().post_active = false;
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            // Over maxHttpBufferSize, or the body failed: the session ends.
            violation(shared, &socket);
            return Err(e);
        }
    };
    let Ok(body) = std::str::from_utf8(&body) else {
        violation(shared, &socket);
        return Err(RequestError::BadRequest);
    };
    let Ok(packets) = decode_payload(body, MAX_PACKETS_PER_POST) else {
        violation(shared, &socket);
        return Err(RequestError::BadRequest);
    };
    let mut inbound = Vec::new();
    {
        let now = std::time::Instant::now();
        let mut st = socket.lock();
        for p in packets {
            if let Some(m) = st.session.on_packet(Transport::Polling, p, now) {
                inbound.push(m);
            }
        }
    }
    socket.wake();
    shared.deliver(&socket, inbound);
    Ok(text("ok", "text/html"))
}
