//! Thread-per-core serving: one current-thread tokio runtime per worker, each
//! accepting on its own `SO_REUSEPORT` listener, so a connection lives its
//! whole life on one thread with no cross-thread wake-ups.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};

/// Connections the kernel queues before they are accepted (capped by
/// `net.core.somaxconn`).
const BACKLOG: i32 = 4096;

/// Binds a listener on `addr` (`SO_REUSEADDR`, a deep accept backlog): one
/// process per port.
pub(crate) fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    bind_with(addr, false)
}

/// Binds a listener with `SO_REUSEPORT` (and `SO_REUSEADDR`) on `addr`.
pub(crate) fn bind_reuseport(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    bind_with(addr, true)
}

fn bind_with(addr: SocketAddr, reuse_port: bool) -> anyhow::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .with_context(|| format!("binding {addr}"))?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// How many worker threads to run by default: one per available core.
pub(crate) fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `workers` threads, each with its own runtime and listener on `addr`,
/// calling `on_conn` for every accepted connection. Blocks until a worker
/// fails or the process receives Ctrl-C / SIGTERM.
pub(crate) fn serve<F, Fut>(addr: SocketAddr, workers: usize, on_conn: F) -> anyhow::Result<()>
where
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let on_conn = Arc::new(on_conn);
    let accepted = Arc::new(AtomicU64::new(0));
    // Bind every listener before starting, so a bad address fails at once and
    // the port is open when this function prints the address.
    let first = bind_reuseport(addr)?;
    let bound = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..workers.max(1) {
        listeners.push(bind_reuseport(bound)?);
    }
    tracing::info!(addr = %bound, workers = listeners.len(), "listening");
    let mut handles = Vec::new();
    for (i, std_listener) in listeners.into_iter().enumerate() {
        let on_conn = Arc::clone(&on_conn);
        let accepted = Arc::clone(&accepted);
        let handle = std::thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || -> anyhow::Result<()> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async move {
                    let listener = TcpListener::from_std(std_listener)?;
                    loop {
                        let (tcp, peer) = match listener.accept().await {
                            Ok(c) => c,
                            Err(e) => {
                                // EMFILE and friends: back off briefly instead of spinning.
                                tracing::warn!(error = %e, "accept failed");
                                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                                continue;
                            }
                        };
                        accepted.fetch_add(1, Ordering::Relaxed);
                        let _ = tcp.set_nodelay(true);
                        tokio::spawn(on_conn(tcp, peer));
                    }
                })
            })?;
        handles.push(handle);
    }
    wait_for_shutdown(&accepted)
}

/// Blocks until Ctrl-C or SIGTERM, giving freed heap memory back meanwhile
/// (see [`crate::heap`]).
pub(crate) fn wait_for_shutdown(accepted: &AtomicU64) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        tokio::select! {
            () = shutdown_signal() => {}
            () = crate::heap::give_back_freed_memory(accepted) => {}
        }
    });
    tracing::info!("shutting down");
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
