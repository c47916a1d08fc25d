//! Closing a connection without losing its last answer (a lingering close).
//!
//! When hookgate answers before it has read the whole request (a 413 for a declared body over
//! the cap, any refusal sent before the body arrived), the client is often still sending that
//! body. Closing the socket then with its unread bytes makes the kernel send a reset, and a
//! reset that arrives before the client reads the answer destroys it: the client sees a
//! broken connection instead of the 413 (TLS makes it likely: Python's `requests` got an
//! `SSLError` for every body from 300 KB up). [`Linger`] wraps the connection's stream: its
//! shutdown first shuts the write side (the answer and a FIN go out), then reads and
//! discards what the client still sends, until it closes, [`LINGER_TIME`] passes or
//! [`LINGER_BYTES`] were read, as nginx's `lingering_close` does. Reads and writes before the
//! shutdown pass through untouched.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Longest a closing connection keeps reading what its client still sends.
pub const LINGER_TIME: Duration = Duration::from_secs(2);
/// Most bytes a closing connection reads and discards.
pub const LINGER_BYTES: u64 = 16 * 1024 * 1024;

/// Where a shutdown is.
enum Closing {
    /// Not asked to shut down.
    Open,
    /// Draining after the write side was shut: until `deadline`, `left` bytes at most.
    Draining {
        deadline: Pin<Box<Sleep>>,
        left: u64,
    },
    /// Done.
    Closed,
}

/// A connection's stream whose shutdown lingers (see the module documentation).
pub struct Linger<S> {
    inner: S,
    closing: Closing,
}

impl<S> Linger<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Linger<S> {
        Linger {
            inner,
            closing: Closing::Open,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Linger<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Linger<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
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

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.closing {
                Closing::Open => {
                    let shut = std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx));
                    if shut.is_err() {
                        this.closing = Closing::Closed;
                        return Poll::Ready(shut);
                    }
                    this.closing = Closing::Draining {
                        deadline: Box::pin(tokio::time::sleep(LINGER_TIME)),
                        left: LINGER_BYTES,
                    };
                }
                Closing::Draining { deadline, left } => {
                    let mut scratch = [0u8; 8192];
                    let mut buf = ReadBuf::new(&mut scratch);
                    match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                        Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                            *left = left.saturating_sub(buf.filled().len() as u64);
                            if *left > 0 {
                                continue;
                            }
                            this.closing = Closing::Closed;
                        }
                        // The client closed (or the stream failed): nothing more to wait for.
                        Poll::Ready(_) => this.closing = Closing::Closed,
                        Poll::Pending => {
                            std::task::ready!(deadline.as_mut().poll(cx));
                            this.closing = Closing::Closed;
                        }
                    }
                }
                Closing::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The shutdown returns once the client has closed, after reading what it still sent; the
    /// client got the answer and the end of the stream first.
    #[tokio::test]
    async fn a_shutdown_drains_what_the_client_still_sends_until_it_closes() {
        let (client, server) = tokio::io::duplex(64);
        let mut server = Linger::new(server);
        let (mut client_read, mut client_write) = tokio::io::split(client);
        server.write_all(b"HTTP/1.1 413\r\n\r\n").await.unwrap();
        let sender = tokio::spawn(async move {
            // More than the pipe holds: without the drain this write would block for ever.
            client_write.write_all(&[7u8; 100_000]).await.unwrap();
            client_write.shutdown().await.unwrap();
        });
        let reader = tokio::spawn(async move {
            let mut answer = Vec::new();
            client_read.read_to_end(&mut answer).await.unwrap();
            answer
        });
        tokio::time::timeout(Duration::from_secs(5), server.shutdown())
            .await
            .expect("the shutdown waited past the client's close")
            .unwrap();
        sender.await.unwrap();
        assert_eq!(reader.await.unwrap(), b"HTTP/1.1 413\r\n\r\n");
    }

    /// A client that neither closes nor sends is given up on after the linger time.
    #[tokio::test]
    async fn a_silent_client_is_given_up_on_after_the_linger_time() {
        let (_client, server) = tokio::io::duplex(64);
        let mut server = Linger::new(server);
        let started = tokio::time::Instant::now();
        tokio::time::timeout(LINGER_TIME * 3, server.shutdown())
            .await
            .expect("the shutdown did not give up")
            .unwrap();
        assert!(started.elapsed() >= LINGER_TIME);
    }
}
