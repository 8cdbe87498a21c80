//! A minimal device speaking the Blynk protocol over a raw socket, built on
//! the protocol crate, for cases a real client can't produce (bad frames).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::BytesMut;
use pinhouse_protocol::{Codec, Frame, command, encode_fields, encode_message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct RawDevice {
    pub stream: TcpStream,
    buf: BytesMut,
    next_id: u16,
}

impl RawDevice {
    pub async fn connect(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        Ok(Self {
            stream,
            buf: BytesMut::new(),
            next_id: 1,
        })
    }

    fn id(&mut self) -> u16 {
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        id
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    pub async fn send(&mut self, cmd: u8, fields: &[&[u8]]) -> Result<u16> {
        let id = self.id();
        let mut out = BytesMut::new();
        if fields.is_empty() {
            encode_message(cmd, id, b"", &mut out);
        } else {
            encode_fields(cmd, id, fields, &mut out);
        }
        self.send_raw(&out).await?;
        Ok(id)
    }

    /// Next frame from the server; Ok(None) when the server closed the socket.
    /// Fails after 10 s of silence.
    pub async fn recv(&mut self) -> Result<Option<Frame>> {
        tokio::time::timeout(Duration::from_secs(10), self.next_frame())
            .await
            .context("timed out waiting for the server")?
    }

    /// Next frame, waiting as long as it takes; Ok(None) on EOF or reset.
    async fn next_frame(&mut self) -> Result<Option<Frame>> {
        let codec = Codec::default();
        loop {
            if let Some(frame) = codec.decode(&mut self.buf)? {
                return Ok(Some(frame));
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Expect the next frame to be `RESPONSE status` to message `msg_id`.
    pub async fn expect_response(&mut self, msg_id: u16, status: u16) {
        assert_eq!(
            self.recv().await.unwrap(),
            Some(Frame::Response { msg_id, status })
        );
    }

    /// Log in with `token`, returning the response status.
    pub async fn login(&mut self, token: &str) -> Result<u16> {
        let id = self.send(command::HW_LOGIN, &[token.as_bytes()]).await?;
        match self.recv().await? {
            Some(Frame::Response { msg_id, status }) if msg_id == id => Ok(status),
            other => bail!("unexpected login reply {other:?}"),
        }
    }

    /// Wait until the server closes the connection (EOF or reset); frames
    /// still in flight are skipped. Fails if it is still open after `within`.
    pub async fn expect_closed(&mut self, within: Duration) -> Result<()> {
        tokio::time::timeout(within, async {
            while let Ok(Some(_)) = self.next_frame().await {}
        })
        .await
        .context("server did not close the connection")
    }
}
