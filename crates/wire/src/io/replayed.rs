//! A TCP stream taken over from another event loop, with the bytes that
//! loop already read from it replayed first: a server that sniffs requests
//! itself can pass the ones it does not serve to hyper. A WebSocket upgrade
//! on it is unwrapped to the plain [`TcpStream`]
//! ([`PendingUpgrade::websocket`](super::server::PendingUpgrade::websocket)).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A stream whose first reads return `read` (what was taken from the socket
/// before the handoff), then the socket's own bytes.
#[derive(Debug)]
pub struct Replayed {
    read: Vec<u8>,
    at: usize,
    tcp: TcpStream,
}

impl Replayed {
    /// Registers `tcp` (made non-blocking) with the current tokio runtime.
    pub fn new(tcp: std::net::TcpStream, read: Vec<u8>) -> io::Result<Self> {
        tcp.set_nonblocking(true)?;
        Ok(Self {
            read,
            at: 0,
            tcp: TcpStream::from_std(tcp)?,
        })
    }

    /// The socket, and the replayed bytes not read yet (they come before
    /// anything the socket holds).
    pub fn into_parts(mut self) -> (TcpStream, Vec<u8>) {
        let rest = self.read.split_off(self.at);
        (self.tcp, rest)
    }
}

impl AsyncRead for Replayed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.read.len() {
            let n = buf.remaining().min(this.read.len() - this.at);
            buf.put_slice(&this.read[this.at..this.at + n]);
            this.at += n;
            if this.at == this.read.len() {
                this.read = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replayed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn into_parts_keeps_the_bytes_not_replayed_yet() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let mut replayed = Replayed::new(server, b"abcdef".to_vec()).unwrap();
        let mut two = [0u8; 2];
        replayed.read_exact(&mut two).await.unwrap();
        let (_tcp, rest) = replayed.into_parts();
        assert_eq!(rest, b"cdef");
    }

    #[tokio::test]
    async fn replays_what_was_read_then_reads_the_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().unwrap();
        let mut replayed = Replayed::new(server, b"GET / ".to_vec()).unwrap();
        let mut first = [0u8; 4];
        replayed.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"GET ");
        client.write_all(b"HTTP/1.1\r\n").await.unwrap();
        client.shutdown().await.unwrap();
        let mut all = Vec::new();
        replayed.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"/ HTTP/1.1\r\n");
        replayed.write_all(b"ok").await.unwrap();
        drop(replayed);
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"ok");
    }
}
