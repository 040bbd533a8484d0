//! The engine's one timer: a periodic sweep over all sessions. It also asks
//! quiet WebSocket tasks to park ([`switchboard_wire::io::park`]).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use super::socket::EngineSocket;
use super::{Handler, Shared};
use crate::stamp::Stamp;

/// How many sessions ahead of the one being checked the sweep asks the CPU
/// for: each session is visited once a tick, always from cold memory.
const PREFETCH_AHEAD: usize = 4;

pub(super) async fn run<H: Handler>(shared: Weak<Shared<H>>) {
    let Some(tick) = shared.upgrade().map(|s| s.config.tick()) else {
        return;
    };
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut woken: Vec<Arc<EngineSocket<H::Data>>> = Vec::new();
    let mut pinged: Vec<Arc<EngineSocket<H::Data>>> = Vec::new();
    let mut due: Vec<Arc<EngineSocket<H::Data>>> = Vec::new();
    let mut ended: Vec<Arc<EngineSocket<H::Data>>> = Vec::new();
    loop {
        interval.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let now = Instant::now();
        let stamp = Stamp::of(now);
        let tick = shared.tick.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let park_after = shared.config.park_ticks();
        let sessions = shared.sessions();
        let mut ahead = sessions.iter().skip(PREFETCH_AHEAD);
        for socket in sessions.iter().map(|s| &s.0) {
            if let Some(next) = ahead.next() {
                next.0.prefetch_for_sweep();
            }
            // A WebSocket task quiet for long enough parks (woken below).
            if socket.task.request_park(tick, park_after) {
                woken.push(socket.clone());
            }
            let mut st = socket.lock();
            st.session.release_idle();
            if st.session.poll_timeout().is_some_and(|t| t <= now) {
                let before = st.session.backlog();
                st.session.handle_timeout(now);
                if st.session.backlog() != before
                    && woken.last().is_none_or(|w| !Arc::ptr_eq(w, socket))
                {
                    pinged.push(socket.clone());
                }
            }
            if st.session.closed().is_none() && st.timer.is_some_and(|d| d <= stamp) {
                st.timer = None;
                due.push(socket.clone());
            }
            if st.session.closed().is_some() {
                ended.push(socket.clone());
            }
        }
        drop(sessions);
        for socket in woken.drain(..) {
            socket.wake();
        }
        // A ping (the packet a timeout queues) goes straight to an idle
        // WebSocket, as a broadcast does: a parked session is then spawned
        // again only for its pong, not for the ping as well.
        for socket in pinged.drain(..) {
            if !socket.write_now() {
                socket.wake();
            }
        }
        // The layer above's callbacks run here; a panic in one must not stop
        // the heartbeat of every other session.
        for socket in due.drain(..) {
            guarded(|| shared.handler.on_deadline(&socket));
        }
        for socket in ended.drain(..) {
            guarded(|| shared.reap(&socket));
        }
        guarded(|| shared.handler.on_sweep());
    }
}

fn guarded(f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        tracing::error!("a session callback panicked; the heartbeat sweep goes on");
    }
}
