//! What the listeners share: transport names, sniffing of the first bytes of a
//! shared port, and a stream that replays the sniffed bytes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use pinhouse_protocol::command;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// How a device reached the server (a label of the metrics and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// Plain TCP on the hardware port.
    Tcp,
    /// Plain TCP on the HTTP port, recognised by its first bytes.
    HttpPort,
    /// TLS (on the TLS port, shared with HTTPS).
    Tls,
    /// Blynk frames in binary WebSocket messages (`/websocket…` on the HTTP ports).
    WebSocket,
    /// One bidirectional QUIC stream.
    Quic,
}

impl Transport {
    /// All transports, for metrics that list each one.
    pub const ALL: [Transport; 5] = [
        Transport::Tcp,
        Transport::HttpPort,
        Transport::Tls,
        Transport::WebSocket,
        Transport::Quic,
    ];

    /// Lower-case name used in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::HttpPort => "http_port",
            Transport::Tls => "tls",
            Transport::WebSocket => "websocket",
            Transport::Quic => "quic",
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the first bytes of a connection on a shared port say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// The first byte is a command a Blynk device sends (login is 2 or 29):
    /// a device session.
    Blynk,
    /// Anything else (an HTTP method is ASCII text): the HTTP server.
    Http,
}

/// Classify the first byte of a connection.
pub fn classify(first: u8) -> Sniffed {
    if command::sent_by_device(first) {
        Sniffed::Blynk
    } else {
        Sniffed::Http
    }
}

/// Read the first bytes of `stream` (waiting at most `timeout`) and classify
/// them; the returned stream replays them. `Ok(None)` when the peer closed or
/// stayed silent.
pub async fn sniff<S>(
    mut stream: S,
    timeout: Duration,
) -> io::Result<Option<(Sniffed, Prefixed<S>)>>
where
    S: AsyncRead + Unpin,
{
    let mut buf = BytesMut::with_capacity(512);
    match tokio::time::timeout(timeout, stream.read_buf(&mut buf)).await {
        Err(_) | Ok(Ok(0)) => Ok(None),
        Ok(Err(err)) => Err(err),
        Ok(Ok(_)) => {
            let kind = classify(buf[0]);
            Ok(Some((kind, Prefixed::new(buf.freeze(), stream))))
        }
    }
}

/// A stream whose first bytes were already read: reads return `prefix` first,
/// then the inner stream; writes go straight through.
#[derive(Debug)]
pub struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    /// Replay `prefix` before reading from `inner`.
    pub fn new(prefix: Bytes, inner: S) -> Self {
        Self { prefix, inner }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            if self.prefix.is_empty() {
                // An advanced `Bytes` still holds its whole buffer; a session on a shared port
                // lives for days.
                self.prefix = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn first_byte_decides() {
        assert_eq!(classify(command::HW_LOGIN), Sniffed::Blynk);
        assert_eq!(classify(command::LOGIN), Sniffed::Blynk);
        for method in [b'G', b'P', b'H', b'O', b'D', b'C'] {
            assert_eq!(classify(method), Sniffed::Http);
        }
        // A TLS ClientHello on a plain port is not a device either.
        assert_eq!(classify(0x16), Sniffed::Http);
    }

    #[tokio::test]
    async fn sniffed_bytes_are_replayed() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let (kind, mut stream) = sniff(server, Duration::from_secs(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kind, Sniffed::Http);
        client.write_all(b"\r\n").await.unwrap();
        drop(client);
        let mut all = Vec::new();
        stream.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"GET / HTTP/1.1\r\n\r\n");
    }
}
