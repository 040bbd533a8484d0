//! A TCP stream with or without TLS.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::detached::{Detached, Watcher};

/// No SIGPIPE for a peer that went away, like std's own writes (elsewhere
/// mio sets `SO_NOSIGPIPE` on the socket instead).
#[cfg(any(target_os = "linux", target_os = "android"))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const SEND_FLAGS: libc::c_int = 0;

/// One non-blocking send of `bufs` (a plain `send` for one slice, which is
/// cheaper than `sendmsg`), without SIGPIPE.
pub(super) fn send(socket: socket2::SockRef<'_>, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    match bufs {
        [one] => socket.send_with_flags(one, SEND_FLAGS),
        _ => socket.send_vectored_with_flags(bufs, SEND_FLAGS),
    }
}

impl MaybeTlsStream {
    /// Sends to a plain TCP socket at once, from whatever thread, without
    /// the runtime: its readiness is neither consulted nor changed (a full
    /// socket is seen by the owner's next write, which then waits for
    /// writability as always). `None` over TLS, whose records only the TLS
    /// stream can write.
    pub(crate) fn send_now(&self, bufs: &[IoSlice<'_>]) -> Option<io::Result<usize>> {
        match self {
            Self::Plain(tcp) => Some(send(socket2::SockRef::from(tcp), bufs)),
            Self::Detached(d) => Some(d.send(bufs)),
            Self::ClientTls(_) | Self::ServerTls(_) => None,
        }
    }

    /// Whether this is plain TCP (in the runtime's reactor or detached).
    pub fn is_plain(&self) -> bool {
        matches!(self, Self::Plain(_) | Self::Detached(_))
    }

    /// Takes a plain TCP socket out of the runtime's reactor into
    /// `watcher` (see [`super::detached`]): a parked connection's socket
    /// then holds no registration of its own. Streams over TLS, and those
    /// already detached, stay as they are. A socket that fails to leave
    /// the runtime is closed: its next read or write fails.
    pub fn detach(&mut self, watcher: &Watcher) {
        if !matches!(self, Self::Plain(_)) {
            return;
        }
        *self = match std::mem::replace(self, Self::Detached(Detached::default())) {
            Self::Plain(tcp) => Self::Detached(
                tcp.into_std()
                    .map(|s| Detached::new(s, watcher))
                    .unwrap_or_default(),
            ),
            other => other,
        };
    }

    /// Puts a detached socket back into the runtime's reactor (outside a
    /// runtime it stays detached, which works as well). A socket that fails
    /// to rejoin is closed: its next read or write fails.
    pub fn attach(&mut self) {
        if !matches!(self, Self::Detached(_)) || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        *self = match std::mem::replace(self, Self::Detached(Detached::default())) {
            Self::Detached(d) => match d.take().map(TcpStream::from_std) {
                Some(Ok(tcp)) => Self::Plain(tcp),
                Some(Err(_)) | None => Self::Detached(Detached::default()),
            },
            other => other,
        };
    }
}

/// `ws://` (plain) or `wss://` (TLS) transport.
#[derive(Debug)]
pub enum MaybeTlsStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP, client side.
    ClientTls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// TLS over TCP, server side.
    ServerTls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Plain TCP outside the runtime's reactor, while its connection is
    /// parked ([`MaybeTlsStream::detach`]).
    Detached(Detached),
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr, $d:ident => $detached:expr) => {
        match $self.get_mut() {
            MaybeTlsStream::Plain($s) => $e,
            MaybeTlsStream::ClientTls($s) => $e,
            MaybeTlsStream::ServerTls($s) => $e,
            MaybeTlsStream::Detached($d) => $detached,
        }
    };
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_read(cx, buf), d => d.poll_read(cx, buf))
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write(cx, buf), d => d.poll_write(cx, &[IoSlice::new(buf)]))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write_vectored(cx, bufs), d => d.poll_write(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::ClientTls(s) => s.is_write_vectored(),
            Self::ServerTls(s) => s.is_write_vectored(),
            Self::Detached(_) => true,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_flush(cx), _d => Poll::Ready(Ok(())))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_shutdown(cx), d => Poll::Ready(d.shutdown()))
    }
}
