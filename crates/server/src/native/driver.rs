//! The task of one native connection: a hand-written future (an idle
//! connection holds the stream and two pointers).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use switchboard_wire::io::{MaybeTlsStream, WebSocket};
use switchboard_wire::{CloseCode, CloseFrame};

use super::Native;
use super::conn::{Conn, Ending};

/// Bytes handed to the socket's write buffer before the connection's queue
/// holds the rest.
const WRITE_BUDGET: usize = 512 << 10;

/// Close code of a client that did not read what it was sent.
const SLOW_CONSUMER: u16 = 4008;

/// Longest wait for the close handshake of a connection the server ends.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub(super) struct Driver {
    native: Arc<Native>,
    conn: Arc<Conn>,
    ws: Option<WebSocket<MaybeTlsStream>>,
    closing: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Driver {
    pub(super) fn new(native: Arc<Native>, conn: Arc<Conn>, ws: WebSocket<MaybeTlsStream>) -> Self {
        Self {
            native,
            conn,
            ws: Some(ws),
            closing: None,
        }
    }

    fn finish(&mut self, ending: Option<Ending>, cx: &mut Context<'_>) -> Poll<()> {
        self.native.gone(&self.conn);
        let close = match ending {
            Some(Ending::Kicked(code)) => Some((code, "")),
            Some(Ending::Overflow) => Some((SLOW_CONSUMER, "slow consumer")),
            _ => None,
        };
        let recorder = &self.native.ctx.recorder;
        if recorder.socket(&self.conn.id).is_some() {
            let peer = self.ws.as_ref().and_then(|ws| ws.peer_close());
            recorder.socket_ended(&self.conn.id, close, peer);
        }
        match (close, self.ws.take()) {
            (Some((code, reason)), Some(mut ws)) => {
                // Bounded: a peer that does not read cannot hold the task.
                self.closing = Some(Box::pin(async move {
                    let frame = CloseFrame::new(CloseCode::from(code), reason);
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(Some(frame))).await;
                }));
                Pin::new(self).poll(cx)
            }
            // Dead: dropped at once, no close handshake.
            _ => Poll::Ready(()),
        }
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Some(closing) = this.closing.as_mut() {
            ready!(closing.as_mut().poll(cx));
            this.closing = None;
            return Poll::Ready(());
        }
        loop {
            let Some(ws) = this.ws.as_mut() else {
                return Poll::Ready(());
            };
            this.conn.waker.register(cx.waker());
            let (ending, ping) = {
                let mut st = this.conn.lock();
                (st.ending, std::mem::take(&mut st.ping_due))
            };
            if ping {
                let _ = ws.connection_mut().send_ping(Bytes::new());
            }
            if let Some(e @ (Ending::Dead | Ending::Overflow)) = ending {
                if e == Ending::Overflow {
                    let metrics = &this.native.ctx.metrics;
                    metrics.native.queue_drops.inc();
                    metrics.reject(crate::metrics::Limit::SlowConsumer);
                }
                return this.finish(ending, cx);
            }
            // A kicked connection still gets what was queued (the `kick`).
            let budget = if ending.is_some() {
                usize::MAX
            } else {
                WRITE_BUDGET.saturating_sub(ws.connection().output_len())
            };
            let mut failed = false;
            let (mut sent, mut bytes) = (0u64, 0u64);
            // Captured (rarely): what goes to the client is "in".
            let captures = this.native.ctx.recorder.socket(&this.conn.id);
            this.conn.drain(budget, |m| {
                sent += 1;
                bytes += m.len() as u64;
                for c in captures.iter().flat_map(|c| c.iter()) {
                    c.message(crate::capture::Dir::In, &m);
                }
                failed |= ws.queue(m).is_err();
            });
            if sent > 0 {
                let traffic = &this.native.ctx.metrics.native;
                traffic.messages_out.inc_by(sent);
                traffic.bytes_out.inc_by(bytes);
            }
            if failed || ending.is_some() {
                return this.finish(ending, cx);
            }
            let unsent = ws.connection().output_len();
            let r = ws.poll_recv(cx);
            if ws.take_activity() {
                this.conn.touch(this.native.now_ms());
            }
            match r {
                Poll::Ready(Some(Ok(m))) => {
                    if let Some(captures) = this.native.ctx.recorder.socket(&this.conn.id) {
                        for c in captures.iter() {
                            c.message(crate::capture::Dir::Out, &m);
                        }
                    }
                    super::ops::on_message(&this.native, &this.conn, m);
                }
                Poll::Ready(Some(Err(e))) => {
                    if matches!(
                        e,
                        switchboard_wire::Error::Protocol(
                            switchboard_wire::ProtocolError::MessageTooBig { .. }
                                | switchboard_wire::ProtocolError::FrameTooBig { .. }
                        )
                    ) {
                        this.native
                            .ctx
                            .metrics
                            .reject(crate::metrics::Limit::Payload);
                    }
                    return this.finish(None, cx);
                }
                Poll::Ready(None) => return this.finish(None, cx),
                // The socket took some of the output and has room for more
                // while frames wait in the queue (its writability, which woke
                // this task, will not fire again): move more. Each round
                // needs written bytes, so this ends.
                Poll::Pending
                    if ws.connection().output_len() < unsent.min(WRITE_BUDGET)
                        && !this.conn.lock().outbox.is_empty() => {}
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
