//! Limits on the API's TCP connections, against clients that hold connections open: a cap on
//! the connections one client address may have open at once, and the time a client has to
//! send a request's headers (set on hyper's HTTP/1 builder by `server.rs`).
//!
//! Owns the per-address count and the accept step that enforces it. Must not look inside
//! requests: what a request may do is the API's and the ACL's business.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The API listener's connection limits (`listener "tcp"` in the config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a client has to send a request's headers, and (for TLS) to finish the
    /// handshake. Vault's `http_read_header_timeout` and haproxy's `timeout http-request`
    /// default to 10 s.
    pub header_read_timeout: Duration,
    /// Connections one client address may hold open at once; more are closed on arrival.
    pub max_connections_per_address: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections_per_address: 256,
        }
    }
}

/// Open connections per client address.
#[derive(Debug, Default)]
struct OpenCounts {
    by_address: Mutex<HashMap<IpAddr, usize>>,
}

impl OpenCounts {
    /// Counts one more connection from `address`, unless it already holds `max`.
    fn claim(self: &Arc<Self>, address: IpAddr, max: usize) -> Option<Slot> {
        // A poisoned lock only means another accept panicked mid-update; the counts are
        // still numbers, so go on with them rather than refuse every client.
        let mut counts = self
            .by_address
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let open = counts.entry(address).or_insert(0);
        if *open >= max {
            return None;
        }
        *open += 1;
        Some(Slot {
            counts: self.clone(),
            address,
        })
    }

    #[cfg(test)]
    fn open(&self, address: IpAddr) -> usize {
        self.by_address
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&address)
            .copied()
            .unwrap_or(0)
    }
}

/// One counted connection; dropping it (when the connection closes) frees its place.
#[derive(Debug)]
struct Slot {
    counts: Arc<OpenCounts>,
    address: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .counts
            .by_address
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(open) = counts.get_mut(&self.address) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

/// The accept step that enforces the per-address cap, in front of `inner`.
#[derive(Debug, Clone)]
pub struct PerAddressLimit<A> {
    inner: A,
    max_per_address: usize,
    counts: Arc<OpenCounts>,
}

impl<A> PerAddressLimit<A> {
    pub fn new(inner: A, max_per_address: usize) -> Self {
        Self {
            inner,
            max_per_address,
            counts: Arc::default(),
        }
    }
}

impl<A, S> Accept<TcpStream, S> for PerAddressLimit<A>
where
    A: Accept<TcpStream, S, Stream = TcpStream>,
    A::Future: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = CountedStream;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(CountedStream, A::Service)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let address = match stream.peer_addr() {
            Ok(peer) => peer.ip(),
            Err(error) => return Box::pin(std::future::ready(Err(error))),
        };
        let Some(slot) = self.counts.claim(address, self.max_per_address) else {
            tracing::warn!(
                client = %address,
                max = self.max_per_address,
                "API connection refused: this address already holds the most connections allowed (listener max_connections_per_address)"
            );
            return Box::pin(std::future::ready(Err(io::Error::other(format!(
                "{address} already holds {} API connections",
                self.max_per_address
            )))));
        };
        let accepted = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = accepted.await?;
            Ok((
                CountedStream {
                    stream,
                    _slot: slot,
                },
                service,
            ))
        })
    }
}

/// A TCP stream that holds its address's place until it is dropped.
#[derive(Debug)]
pub struct CountedStream {
    stream: TcpStream,
    _slot: Slot,
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(context, buffer)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(context, buffer)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(context)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_cap_and_a_closed_connection_frees_its_place() {
        let counts = Arc::new(OpenCounts::default());
        let client: IpAddr = "192.0.2.1".parse().expect("ip");
        let other: IpAddr = "192.0.2.2".parse().expect("ip");
        let first = counts.claim(client, 2).expect("first");
        let second = counts.claim(client, 2).expect("second");
        assert!(counts.claim(client, 2).is_none(), "a third was let in");
        let _elsewhere = counts
            .claim(other, 2)
            .expect("another address has its own cap");
        drop(first);
        assert_eq!(counts.open(client), 1);
        let _again = counts.claim(client, 2).expect("a freed place is reused");
        drop(second);
        drop(_again);
        assert_eq!(counts.open(client), 0);
        assert!(
            !counts
                .by_address
                .lock()
                .expect("lock")
                .contains_key(&client),
            "an address with no connection is forgotten"
        );
    }
}
