//! Broadcast operators: `to`, `except`, `volatile`, `local`, `timeout`.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::args::Args;
use super::frames::{self, Frames};
use super::namespace::NsInner;
use super::socket::Socket;
use switchboard_engine::server::Sid;

/// How far ahead of the socket being written a broadcast asks the CPU for
/// the next ones' locks (each is cold: touched once per message).
const PREFETCH_AHEAD: usize = 4;

/// Selects sockets of a namespace and sends to them. Encodes the packet once
/// and shares the bytes with every recipient.
#[derive(Clone)]
pub struct Broadcast {
    ns: Arc<NsInner>,
    rooms: Vec<Arc<str>>,
    except: Vec<Arc<str>>,
    except_socket: Option<Sid>,
    volatile: bool,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for Broadcast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broadcast")
            .field("ns", &self.ns.name)
            .field("rooms", &self.rooms)
            .field("except", &self.except)
            .finish()
    }
}

/// Acks collected from many sockets, some of which did not answer in time.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{missing} of {total} sockets did not acknowledge in time")]
pub struct PartialAcks {
    /// The answers that did arrive.
    pub responses: Vec<Args>,
    /// How many sockets were asked.
    pub total: usize,
    /// How many did not answer.
    pub missing: usize,
}

impl Broadcast {
    pub(crate) fn new(ns: Arc<NsInner>) -> Self {
        Self {
            ns,
            rooms: Vec::new(),
            except: Vec::new(),
            except_socket: None,
            volatile: false,
            timeout: None,
        }
    }

    /// Adds a room (or a socket id) to the targets; with no room, every
    /// socket of the namespace is targeted.
    pub fn to(mut self, room: &str) -> Self {
        self.rooms.push(Arc::from(room));
        self
    }

    /// Excludes the members of a room (or a socket id).
    pub fn except(mut self, room: &str) -> Self {
        self.except.push(Arc::from(room));
        self
    }

    pub(crate) fn except_socket(mut self, id: Sid) -> Self {
        self.except_socket = Some(id);
        self
    }

    /// Drops the packet for sockets whose transport is not ready (a backlog
    /// is queued), and does not store it for recovery.
    pub fn volatile(mut self) -> Self {
        self.volatile = true;
        self
    }

    /// This node only (every broadcast is local on a single node; the flag
    /// matters once nodes share rooms).
    pub fn local(self) -> Self {
        self
    }

    /// Time allowed for acks in [`Broadcast::emit_with_ack`].
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// The selected sockets.
    pub fn sockets(&self) -> Vec<Socket> {
        let sockets = self.ns.sockets.read().unwrap_or_else(|e| e.into_inner());
        let rooms = self.ns.rooms.read().unwrap_or_else(|e| e.into_inner());
        let mut excluded: HashSet<&str> = HashSet::new();
        for r in &self.except {
            excluded.insert(r);
            excluded.extend(rooms.members(r).map(Socket::id));
        }
        if let Some(id) = &self.except_socket {
            excluded.insert(id.as_str());
        }
        if self.rooms.is_empty() {
            return sockets
                .iter()
                .filter(|s| !excluded.contains(s.0.id()))
                .map(|s| s.0.clone())
                .collect();
        }
        // One room lists each socket once (a socket never joins the room
        // named by its own id): only several rooms need the seen-set.
        let dedupe = self.rooms.len() > 1;
        let mut seen: HashSet<&str> = HashSet::new();
        let mut out = Vec::new();
        for r in &self.rooms {
            let members = rooms.members(r);
            // A socket id is a room holding that socket.
            let own = sockets.get(&**r).map(|s| &s.0);
            for s in members.chain(own) {
                if (excluded.is_empty() || !excluded.contains(s.id()))
                    && (!dedupe || seen.insert(s.id()))
                {
                    out.push(s.clone());
                }
            }
        }
        out
    }

    /// Emits `event` to the selected sockets. With connection state recovery
    /// on, the packet gets an offset (its last argument) and is kept for
    /// sockets that come back. Returns how many sockets it was sent to.
    pub fn emit(&self, event: &str, args: impl Into<Args>) -> usize {
        let mut args = args.into();
        let volatile = self.volatile;
        let delivered = std::cell::Cell::new(0);
        let deliver = |frames: &Frames| {
            // Chosen here, under the recovery log's lock when recovery is on:
            // a socket that connects (and gets its replay) meanwhile is either
            // a target or has this packet in its replay, never neither.
            let targets = self.sockets();
            for (i, s) in targets.iter().enumerate() {
                if let Some(ahead) = targets.get(i + PREFETCH_AHEAD) {
                    ahead.0.conn.prefetch();
                }
                if volatile && s.0.conn.backlog() > 0 {
                    continue;
                }
                s.send_frames(frames);
                delivered.set(delivered.get() + 1);
            }
        };
        match &self.ns.recovery {
            Some(rec) if !volatile => {
                let mut except = self.except.clone();
                except.extend(self.except_socket.map(|id| Arc::from(id.as_str())));
                rec.record(
                    self.rooms.clone(),
                    except,
                    |offset| {
                        args.values.push(serde_json::Value::String(offset));
                        Frames::encode(&frames::event(&self.ns.name, event, args, None))
                    },
                    deliver,
                );
            }
            _ => deliver(&Frames::encode(&frames::event(
                &self.ns.name,
                event,
                args,
                None,
            ))),
        }
        delivered.get()
    }

    /// Emits `event` to each selected socket with an ack id of its own and
    /// waits for every ack, at most the [`Broadcast::timeout`] (default 5 s).
    pub fn emit_with_ack(
        &self,
        event: &str,
        args: impl Into<Args>,
    ) -> impl Future<Output = Result<Vec<Args>, PartialAcks>> + Send + 'static {
        let args = args.into();
        let timeout = self.timeout.unwrap_or(Duration::from_secs(5));
        let pending: Vec<_> = self
            .sockets()
            .into_iter()
            .filter_map(|s| {
                let (id, rx) = s.send_with_ack(event, args.clone())?;
                Some((s, id, rx))
            })
            .collect();
        async move {
            let total = pending.len();
            let deadline = tokio::time::Instant::now() + timeout;
            let mut responses = Vec::with_capacity(total);
            for (socket, id, rx) in pending {
                match tokio::time::timeout_at(deadline, rx).await {
                    Ok(Ok(args)) => responses.push(args),
                    Ok(Err(_)) => {}
                    Err(_) => socket.forget_ack(id),
                }
            }
            if responses.len() == total {
                Ok(responses)
            } else {
                let missing = total - responses.len();
                Err(PartialAcks {
                    responses,
                    total,
                    missing,
                })
            }
        }
    }

    /// Makes the selected sockets join `room`.
    pub fn join(&self, room: &str) {
        for s in self.sockets() {
            s.join(room);
        }
    }

    /// Makes the selected sockets leave `room`.
    pub fn leave(&self, room: &str) {
        for s in self.sockets() {
            s.leave(room);
        }
    }

    /// Disconnects the selected sockets from the namespace.
    pub fn disconnect(&self) {
        for s in self.sockets() {
            s.disconnect();
        }
    }
}
