//! Child processes for the binary's tests: killed when dropped, on free ports.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::process::Child;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A child process, killed and reaped when dropped.
pub(crate) struct Server(pub(crate) Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port nothing listens on right now, and never handed out before by
/// this test binary (its tests run in parallel: two of them given the same
/// port would see each other's server, or one's fail to bind).
pub(crate) fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if given.insert(port) {
            return port;
        }
    }
}

/// Waits (10 s at most) until `child` listens on `port`; `false` if it exited
/// first (e.g. the port was taken between `free_port` and its bind: another
/// process's outgoing connection may use it), so the caller can try another.
pub(crate) fn wait_child_listening(child: &mut Child, port: u16, what: &str) -> bool {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        assert!(Instant::now() < until, "{what} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (10 s at most) until something accepts connections on `port`.
pub(crate) fn wait_listening(port: u16, what: &str) {
    let until = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "{what} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}
