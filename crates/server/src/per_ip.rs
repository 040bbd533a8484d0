//! Open connections per client IP address, without a per-connection
//! allocation: every connection from an address holds a clone of that
//! address's `Arc`, so its strong count is the number of connections (plus
//! requests being answered right now). The clone travels with an upgraded
//! WebSocket (see `switchboard_wire::io::server::ConnectionGuard`), so a
//! WebSocket stays counted after hyper's connection task has ended.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// One address's share: held by each of its connections.
pub(crate) type IpSlot = Arc<()>;

/// Sweep addresses without connections every this many accepts.
const SWEEP_EVERY: u32 = 1024;

#[derive(Debug)]
pub(crate) struct PerIp {
    max: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    open: HashMap<IpAddr, IpSlot>,
    accepts: u32,
}

impl PerIp {
    /// At most `max` connections per address; 0: no limit.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max: if max == 0 { usize::MAX } else { max },
            state: Mutex::default(),
        }
    }

    /// A slot for one more connection from `ip`, `None` at the limit.
    pub(crate) fn take(&self, ip: IpAddr) -> Option<IpSlot> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.accepts = st.accepts.wrapping_add(1);
        if st.accepts.is_multiple_of(SWEEP_EVERY) {
            st.open.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        let slot = st.open.entry(ip).or_default();
        // One reference is the map's own.
        if Arc::strong_count(slot) > self.max {
            return None;
        }
        Some(slot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_address_and_frees_on_drop() {
        let p = PerIp::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = p.take(a).unwrap();
        let a2 = p.take(a).unwrap();
        assert!(p.take(a).is_none(), "third from the same address");
        assert!(p.take(b).is_some(), "another address has its own count");
        drop(a1);
        let _a3 = p.take(a).expect("a slot was freed");
        drop(a2);
        assert!(PerIp::new(0).take(a).is_some(), "0 is no limit");
    }
}
