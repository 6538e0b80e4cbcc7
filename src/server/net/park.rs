//! Keep-alive connections between requests.
//!
//! hyper holds a connection's read and write buffers, its state machine and our service for
//! as long as it serves the connection, idle or not: ~16 KiB each, which is most of what
//! 10 000 idle Outlook connections would cost. So a connection is served in *bursts*: hyper
//! serves requests while the client is active; after [`Timing::park_after`] without a byte
//! in either direction and with no request in flight (hyper would answer one with
//! `Connection: close`) it is asked to stop at its next idle point (a graceful shutdown
//! that leaves the socket open), hands back the stream and whatever it had read ahead, and
//! the connection waits for the client's next bytes *parked*: only the socket, rustls's
//! connection (tokio-rustls's stream) and the connection's own facts (its NTLM identity)
//! stay allocated. The client sees one ordinary keep-alive connection.

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::drain::{draining, DrainWatch};
use crate::server::endpoints::respond::Body;

/// A connection's byte stream, as the parking loop needs it.
pub trait ParkableIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Ready when the socket has bytes (or an end or error) to read.
    fn poll_socket_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Whether input is already buffered above the socket (then nothing needs waiting for).
    fn has_buffered_input(&mut self) -> bool {
        false
    }
}

impl ParkableIo for TcpStream {
    fn poll_socket_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_read_ready(cx)
    }
}

impl ParkableIo for TlsStream<TcpStream> {
    fn poll_socket_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_ref().0.poll_read_ready(cx)
    }

    /// Complete records rustls holds but has not opened yet, or plaintext it opened that
    /// hyper did not read. An error counts as input: the next read reports it (and
    /// tokio-rustls sends the alert rustls queued).
    fn has_buffered_input(&mut self) -> bool {
        self.get_mut()
            .1
            .process_new_packets()
            .map_or(true, |state| state.plaintext_bytes_to_read() > 0)
    }
}

/// How long a connection stays with hyper, and parked.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Quiet time after which hyper hands the connection back.
    pub park_after: Duration,
    /// Quiet time after which a keep-alive connection is closed.
    pub idle_timeout: Duration,
}

impl Timing {
    /// Parks after at most one second of quiet: long enough that the legs of an NTLM
    /// handshake and a client's follow-up requests stay in one burst, short enough that
    /// idle connections spend nearly all their life parked.
    pub fn new(idle_timeout: Duration) -> Timing {
        Timing {
            park_after: Duration::from_secs(1).min(idle_timeout / 2),
            idle_timeout,
        }
    }
}

/// Serves `io` until the client closes, the connection idles out, an error ends it or the
/// server drains. `make_service` builds each burst's HTTP/1 settings and service (cheap:
/// a few `Arc`s), so that nothing of hyper's is held while the connection is parked.
pub fn serve<I, S, F>(
    io: I,
    peer: SocketAddr,
    mut make_service: F,
    timing: Timing,
    mut drain: Option<DrainWatch>,
) -> impl Future<Output = ()>
where
    I: ParkableIo,
    F: FnMut() -> (http1::Builder, S),
    S: Service<Request<Incoming>, Response = Response<Body>> + Unpin,
    S::Future: Unpin + Send,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut stream = Burst {
        io,
        read_ahead: Bytes::new(),
        activity: Arc::new(AtomicU64::new(0)),
    };
    // An async block, not an async fn: an async fn's state keeps its arguments twice
    // (as captured and as locals), and this state lives as long as the connection.
    async move {
        loop {
            // Boxed: while the connection is parked, nothing of hyper's stays allocated.
            let (builder, service) = make_service();
            let after;
            (stream, after) = match Box::pin(burst(stream, builder, service, timing, &mut drain))
                .await
            {
                Ok(ended) => ended,
                Err(e) => {
                    tracing::debug!(client = %peer, error = %e, "connection ended with an error");
                    return;
                }
            };
            if after == After::Close {
                close(&mut stream.io).await;
                return;
            }
            if stream.read_ahead.is_empty() && !stream.io.has_buffered_input() {
                // What rustls queued while hyper read (an answer to a TLS 1.3 KeyUpdate) goes
                // out now, not with the next answer.
                if !matches!(
                    tokio::time::timeout(Duration::from_secs(1), stream.io.flush()).await,
                    Ok(Ok(()))
                ) {
                    return;
                }
                let parked_for = timing.idle_timeout.saturating_sub(timing.park_after);
                let readable = tokio::select! {
                    biased;
                    () = draining(&mut drain) => false,
                    readable = poll_fn(|cx| stream.io.poll_socket_readable(cx)) => readable.is_ok(),
                    () = tokio::time::sleep(parked_for) => false,
                };
                if !readable {
                    close(&mut stream.io).await;
                    return;
                }
            }
        }
    }
}

/// An Autodiscover connection's stream: TLS, or plain behind a TLS-terminating proxy.
pub enum Stream {
    /// Boxed: rustls's connection is over a kilobyte, which plain connections need not carry.
    Tls(Box<TlsStream<TcpStream>>),
    Plain(TcpStream),
}

impl ParkableIo for Stream {
    fn poll_socket_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tls(s) => s.poll_socket_readable(cx),
            Stream::Plain(s) => s.poll_socket_readable(cx),
        }
    }

    fn has_buffered_input(&mut self) -> bool {
        match self {
            Stream::Tls(s) => s.has_buffered_input(),
            Stream::Plain(s) => s.has_buffered_input(),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tls(s) => Pin::new(s).poll_write(cx, data),
            Stream::Plain(s) => Pin::new(s).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum After {
    Park,
    Close,
}

/// hyper serves `stream` until it has been quiet for `park_after` (then hyper stops at its
/// next idle point and the connection parks), or until it ends by itself (the client
/// closed or sent `Connection: close`, the answer closes the connection, an error), or the
/// server drains.
async fn burst<I, S>(
    stream: Burst<I>,
    builder: http1::Builder,
    service: S,
    timing: Timing,
    drain: &mut Option<DrainWatch>,
) -> Result<(Burst<I>, After), hyper::Error>
where
    I: ParkableIo,
    S: Service<Request<Incoming>, Response = Response<Body>> + Unpin,
    S::Future: Unpin + Send,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let activity = Arc::clone(&stream.activity);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let service = Counted {
        inner: service,
        in_flight: Arc::clone(&in_flight),
    };
    let mut conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut asked_to_stop = false;
    let mut after = After::Park;
    let mut seen = activity.load(Ordering::Relaxed);
    let quiet = tokio::time::sleep(timing.park_after);
    tokio::pin!(quiet);
    loop {
        tokio::select! {
            ended = poll_fn(|cx| conn.poll_without_shutdown(cx)) => {
                ended?;
                break;
            }
            () = &mut quiet, if !asked_to_stop => {
                let now = activity.load(Ordering::Relaxed);
                // Not while a handler runs (a slow directory, argon2 on a busy machine):
                // hyper would answer that request with `Connection: close`.
                if now == seen && in_flight.load(Ordering::Relaxed) == 0 {
                    Pin::new(&mut conn).graceful_shutdown();
                    asked_to_stop = true;
                } else {
                    seen = now;
                    quiet.as_mut().reset(tokio::time::Instant::now() + timing.park_after);
                }
            }
            () = draining(drain), if !asked_to_stop => {
                Pin::new(&mut conn).graceful_shutdown();
                asked_to_stop = true;
                after = After::Close;
            }
        }
    }
    if !asked_to_stop {
        after = After::Close;
    }
    let parts = conn.into_parts();
    let mut stream = parts.io.into_inner();
    stream.read_ahead = join(parts.read_buf, std::mem::take(&mut stream.read_ahead));
    Ok((stream, after))
}

/// The burst's service, counting the requests whose answer is not ready yet.
struct Counted<S> {
    inner: S,
    in_flight: Arc<AtomicUsize>,
}

impl<S> Service<Request<Incoming>> for Counted<S>
where
    S: Service<Request<Incoming>>,
    S::Future: Unpin,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = CountedFuture<S::Future>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        CountedFuture {
            inner: self.inner.call(req),
            _in_flight: InFlight(Arc::clone(&self.in_flight)),
        }
    }
}

/// One request in flight, until hyper drops its future.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

struct CountedFuture<F> {
    inner: F,
    _in_flight: InFlight,
}

impl<F: Future + Unpin> Future for CountedFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        Pin::new(&mut self.get_mut().inner).poll(cx)
    }
}

/// Ends the stream politely (TLS close_notify, FIN), without waiting on a client that does
/// not read.
async fn close<I: ParkableIo>(io: &mut I) {
    let _ = tokio::time::timeout(Duration::from_secs(1), io.shutdown()).await;
}

/// What hyper had read but not used, then what it had not read yet of the previous rest.
/// Copied out: hyper's `Bytes` keeps its whole 8 KiB read buffer alive, even when empty.
fn join(unused: Bytes, unread: Bytes) -> Bytes {
    if unused.is_empty() && unread.is_empty() {
        return Bytes::new();
    }
    let mut both = BytesMut::with_capacity(unused.len() + unread.len());
    both.extend_from_slice(&unused);
    both.extend_from_slice(&unread);
    both.freeze()
}

/// The stream during one burst: bytes handed back by the previous burst come first, and
/// every byte moved counts as activity.
struct Burst<I> {
    io: I,
    read_ahead: Bytes,
    activity: Arc<AtomicU64>,
}

impl<I: ParkableIo> AsyncRead for Burst<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.read_ahead.is_empty() {
            let n = this.read_ahead.len().min(buf.remaining());
            buf.put_slice(this.read_ahead.get(..n).unwrap_or_default());
            this.read_ahead.advance(n);
            this.activity.fetch_add(1, Ordering::Relaxed);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }
}

impl<I: ParkableIo> AsyncWrite for Burst<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use hyper::service::service_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::server::net::drain::Drain;

    #[test]
    fn handed_back_bytes_keep_their_order_in_a_fresh_buffer() {
        let joined = join(
            Bytes::from_static(b"GET / HT"),
            Bytes::from_static(b"TP/1.1"),
        );
        assert_eq!(&joined[..], b"GET / HTTP/1.1");
        assert_eq!(&join(Bytes::new(), Bytes::from_static(b"x"))[..], b"x");
        assert_eq!(&join(Bytes::from_static(b"y"), Bytes::new())[..], b"y");
        assert!(join(Bytes::new(), Bytes::new()).is_empty());
    }

    #[test]
    fn parking_starts_well_inside_the_idle_timeout() {
        assert_eq!(
            Timing::new(Duration::from_secs(10)).park_after,
            Duration::from_secs(1)
        );
        assert_eq!(
            Timing::new(Duration::from_secs(1)).park_after,
            Duration::from_millis(500)
        );
    }

    const QUICK: Timing = Timing {
        park_after: Duration::from_millis(100),
        idle_timeout: Duration::from_secs(3),
    };

    /// A server for one plain connection that answers each request with its path and
    /// the number of the burst serving it. Returns the address, the burst counter and
    /// the connection's task (which ends when `serve` returns).
    async fn one_connection(
        timing: Timing,
        drain: Option<DrainWatch>,
    ) -> (
        std::net::SocketAddr,
        Arc<AtomicUsize>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let bursts = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&bursts);
        let task = tokio::spawn(async move {
            let (tcp, peer) = listener.accept().await.unwrap();
            let make_service = || {
                let burst = counter.fetch_add(1, Ordering::SeqCst) + 1;
                let service = service_fn(move |req: Request<Incoming>| {
                    let text = format!("{} burst {burst}", req.uri().path());
                    let slow = req.uri().path() == "/slow";
                    Box::pin(async move {
                        if slow {
                            tokio::time::sleep(Duration::from_millis(400)).await;
                        }
                        Ok::<_, Infallible>(Response::new(Body::from(text)))
                    })
                });
                (http1::Builder::new(), service)
            };
            serve(tcp, peer, make_service, timing, drain).await
        });
        (addr, bursts, task)
    }

    fn get(path: &str) -> String {
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")
    }

    /// Reads one answer (head and Content-Length body) and returns its body.
    async fn answer(s: &mut TcpStream) -> String {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            assert_eq!(s.read(&mut byte).await.unwrap(), 1, "closed mid-answer");
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await.unwrap();
        String::from_utf8(body).unwrap()
    }

    #[tokio::test]
    async fn a_quiet_connection_is_handed_back_and_served_again_on_the_same_socket() {
        let (addr, bursts, _task) = one_connection(QUICK, None).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(get("/a").as_bytes()).await.unwrap();
        assert_eq!(answer(&mut s).await, "/a burst 1");
        s.write_all(get("/b").as_bytes()).await.unwrap();
        assert_eq!(answer(&mut s).await, "/b burst 1");
        tokio::time::sleep(Duration::from_millis(400)).await;
        s.write_all(get("/c").as_bytes()).await.unwrap();
        assert_eq!(answer(&mut s).await, "/c burst 2");
        assert_eq!(bursts.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_request_split_across_a_park_loses_no_byte() {
        let (addr, _bursts, _task) = one_connection(QUICK, None).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(get("/first").as_bytes()).await.unwrap();
        assert_eq!(answer(&mut s).await, "/first burst 1");
        let request = get("/second");
        let (head, tail) = request.split_at(9);
        s.write_all(head.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        s.write_all(tail.as_bytes()).await.unwrap();
        assert!(answer(&mut s).await.starts_with("/second burst "));
        // Two requests in one write, after another park.
        tokio::time::sleep(Duration::from_millis(400)).await;
        s.write_all(format!("{}{}", get("/x"), get("/y")).as_bytes())
            .await
            .unwrap();
        assert!(answer(&mut s).await.starts_with("/x burst "));
        assert!(answer(&mut s).await.starts_with("/y burst "));
    }

    #[tokio::test]
    async fn a_handler_slower_than_the_park_delay_keeps_the_connection_alive() {
        let (addr, bursts, _task) = one_connection(QUICK, None).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(get("/slow").as_bytes()).await.unwrap();
        assert_eq!(answer(&mut s).await, "/slow burst 1");
        s.write_all(get("/next").as_bytes()).await.unwrap();
        assert_eq!(answer(&mut s).await, "/next burst 1");
        assert_eq!(bursts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn connection_close_from_the_client_ends_the_connection() {
        let (addr, _bursts, task) = one_connection(QUICK, None).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut all = String::new();
        s.read_to_string(&mut all).await.unwrap();
        assert!(all.ends_with("/bye burst 1"), "{all}");
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_parked_connection_is_closed_at_the_idle_timeout() {
        let timing = Timing {
            park_after: Duration::from_millis(100),
            idle_timeout: Duration::from_millis(500),
        };
        let (addr, _bursts, task) = one_connection(timing, None).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(get("/a").as_bytes()).await.unwrap();
        answer(&mut s).await;
        let started = std::time::Instant::now();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(400), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        task.await.unwrap();
    }

    #[tokio::test]
    async fn draining_closes_a_parked_connection_at_once() {
        let drain = Drain::default();
        let (addr, _bursts, task) = one_connection(QUICK, Some(drain.watch())).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(get("/a").as_bytes()).await.unwrap();
        answer(&mut s).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        assert!(drain.drain(Duration::from_secs(5)).await);
        assert!(started.elapsed() < Duration::from_secs(1));
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        task.await.unwrap();
    }
}
