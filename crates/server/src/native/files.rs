//! File transfer on the native protocol (docs/protocol.md, "File
//! transfer"): chunk frames in, acknowledgements out; downloads sent a
//! window ahead of the recipient's acknowledgements. The store is
//! [`crate::files::Files`]; this is the connection's side.

use bytes::Bytes;
use serde_json::{Value, json};
use switchboard_wire::Message;

use super::conn::Conn;
use super::request::Refusal;
use super::{Native, text};
use crate::files::{FileError, Notice, Offer, Target, TransferId, WINDOW, chunk};
use crate::rooms::Action;

/// A download in progress on a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Leg {
    transfer: TransferId,
    chunks: u32,
    /// The next chunk to send.
    sent: u32,
    /// Chunks the recipient acknowledged (all below this).
    acked: u32,
}

impl From<FileError> for Refusal {
    fn from(e: FileError) -> Self {
        Refusal(e.code, e.message)
    }
}

fn push(conn: &Conn, v: &Value) {
    conn.push(text(v.to_string()));
}

/// A binary frame: a chunk of an upload.
pub(super) fn on_chunk(native: &Native, conn: &Conn, frame: &Bytes) {
    let Some(c) = chunk::decode(frame) else {
        // Not a chunk: refused like any request that cannot be read.
        let m = crate::wire::error(
            "bad_request",
            "a binary frame is a file chunk (0x01, a transfer id, an index, the bytes)",
        );
        return push(conn, &m);
    };
    native.ctx.metrics.file_chunks_in.inc();
    match native.ctx.files.write(&c) {
        Ok(w) => {
            push(conn, &w.ack);
            if let Some(notice) = w.notice {
                announce(native, conn, notice);
            }
        }
        Err(e) => push(conn, &e.push(&c.transfer.to_string())),
    }
}

/// Publishes a complete transfer's `file` message, then tells the sender.
pub(super) fn announce(native: &Native, conn: &Conn, notice: Notice) {
    let published = native.hub.publish(
        &notice.room,
        "file".to_owned(),
        Bytes::from(notice.data.to_string()),
        Some(notice.from.clone()),
        false,
    );
    match published {
        Ok(_) => {
            native.ctx.files.notified(notice.transfer);
            native.ctx.metrics.files_completed.inc();
            native.ctx.metrics.publishes.inc();
            push(conn, &notice.complete);
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not publish a file's completion");
            let e = FileError {
                code: "unavailable",
                message: "the file is complete but its notice could not be published; \
                          offer it again to retry"
                    .into(),
                next: None,
            };
            push(conn, &e.push(&notice.transfer.to_string()));
        }
    }
}

/// An offer: the reply, and the notice to announce after it (an empty
/// file, or a complete one whose notice was not yet published).
pub(super) fn offer(
    native: &Native,
    conn: &Conn,
    offer: Offer,
) -> (Result<Value, Refusal>, Option<Notice>) {
    if offer.transfer.is_none() {
        let allowed = match &offer.to {
            Target::Room(r) => super::ops::may(native, conn, r, Action::Publish),
            Target::User(_) if conn.anonymous => Err(Refusal(
                "forbidden",
                "anonymous connections send files to rooms only".into(),
            )),
            Target::User(_) => Ok(()),
        };
        if let Err(refusal) = allowed {
            return (Err(refusal), None);
        }
    }
    match native.ctx.files.offer(&conn.user, offer) {
        Ok(o) => (Ok(o.reply), o.notice),
        Err(e) => (Err(e.into()), None),
    }
}

pub(super) fn get(
    native: &Native,
    conn: &Conn,
    transfer: TransferId,
    from: u32,
) -> Result<Value, Refusal> {
    let d = native
        .ctx
        .files
        .download(transfer, from, &conn.user, |room| {
            super::ops::may(native, conn, room, Action::Join).is_ok()
        })?;
    {
        let mut st = conn.lock();
        st.downloads.retain(|l| l.transfer != transfer);
        st.downloads.push(Leg {
            transfer,
            chunks: d.chunks,
            sent: from,
            acked: from,
        });
    }
    Ok(d.reply)
}

/// Sends what the window allows of `transfer`'s download.
pub(super) fn pump(native: &Native, conn: &Conn, transfer: TransferId) {
    loop {
        let index = {
            let mut st = conn.lock();
            let Some(pos) = st.downloads.iter().position(|l| l.transfer == transfer) else {
                return;
            };
            let leg = &mut st.downloads[pos];
            if leg.acked >= leg.chunks {
                st.downloads.swap_remove(pos);
                return;
            }
            if leg.sent >= leg.chunks || leg.sent - leg.acked >= WINDOW {
                return;
            }
            leg.sent += 1;
            leg.sent - 1
        };
        match native.ctx.files.read(transfer, index) {
            Ok(frame) => {
                native.ctx.metrics.file_chunks_out.inc();
                conn.push(Message::Binary(frame));
            }
            Err(e) => {
                conn.lock().downloads.retain(|l| l.transfer != transfer);
                return push(conn, &e.push(&transfer.to_string()));
            }
        }
    }
}

/// `{"op":"file_ack"}` of a download: its window moves on.
pub(super) fn ack(native: &Native, conn: &Conn, transfer: TransferId, chunk: u32) {
    {
        let mut st = conn.lock();
        // An acknowledgement of a download no longer running (replaced by a
        // new `file_get`, or finished) is stale: nothing to do.
        let Some(leg) = st.downloads.iter_mut().find(|l| l.transfer == transfer) else {
            return;
        };
        leg.acked = leg.acked.max(chunk.saturating_add(1).min(leg.sent));
    }
    pump(native, conn, transfer);
}

pub(super) fn list(native: &Native, conn: &Conn) -> Value {
    let rooms: Vec<std::sync::Arc<str>> =
        conn.lock().rooms.iter().map(|(r, _)| r.clone()).collect();
    let rooms: Vec<&str> = rooms.iter().map(|r| &**r).collect();
    json!({"files": native.ctx.files.list(&conn.user, &rooms)})
}

pub(super) fn cancel(native: &Native, conn: &Conn, transfer: TransferId) -> Result<Value, Refusal> {
    native.ctx.files.cancel(transfer, &conn.user)?;
    conn.lock().downloads.retain(|l| l.transfer != transfer);
    Ok(json!({}))
}
