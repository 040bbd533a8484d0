//! A TCP stream with or without TLS.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// No SIGPIPE for a peer that went away, like std's own writes (elsewhere
/// mio sets `SO_NOSIGPIPE` on the socket instead).
#[cfg(any(target_os = "linux", target_os = "android"))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const SEND_FLAGS: libc::c_int = 0;

impl MaybeTlsStream {
    /// Sends to a plain TCP socket at once, from whatever thread, without
    /// the runtime: its readiness is neither consulted nor changed (a full
    /// socket is seen by the owner's next write, which then waits for
    /// writability as always). `None` over TLS, whose records only the TLS
    /// stream can write.
    pub(crate) fn send_now(&self, bufs: &[IoSlice<'_>]) -> Option<io::Result<usize>> {
        let Self::Plain(tcp) = self else {
            return None;
        };
        let socket = socket2::SockRef::from(tcp);
        Some(match bufs {
            [one] => socket.send_with_flags(one, SEND_FLAGS),
            _ => socket.send_vectored_with_flags(bufs, SEND_FLAGS),
        })
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
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            MaybeTlsStream::Plain($s) => $e,
            MaybeTlsStream::ClientTls($s) => $e,
            MaybeTlsStream::ServerTls($s) => $e,
        }
    };
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::ClientTls(s) => s.is_write_vectored(),
            Self::ServerTls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}
