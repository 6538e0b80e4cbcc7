//! TLS over a TCP stream with buffers that exist only while they hold something.
//!
//! tokio-rustls (rustls's buffered connection) keeps a zero-filled 4 KiB record buffer per
//! connection for its whole life, and rustls's session state another ~3 KB; both dominate
//! an idle keep-alive connection once hyper is parked (see [`super::park`]). So the
//! handshake runs on rustls's *unbuffered* server connection, with buffers we own, and
//! once it is done rustls hands the traffic secrets over (the hand-over it offers for
//! kernel TLS) and [`traffic::Traffic`] protects the records. [`ParkableIo::
//! release_idle_buffers`] frees the empty buffers and the expanded keys when the
//! connection parks, so an idle connection keeps its keys, sequence numbers and — for
//! TLS 1.3 key updates — rustls's key schedule, and the socket.
//!
//! During the handshake, records are processed as rustls's unbuffered API prescribes: every
//! state it yields is handled before the next call, the `discard` count is applied to the
//! front of the incoming buffer, and bytes rustls asks to transmit are queued in order.

pub mod record;
#[cfg(test)]
mod rfc8448;
mod sni;
mod traffic;

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, InsufficientSizeError};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::park::ParkableIo;
use traffic::Traffic;

pub use sni::{from_client_hello, Sni};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;
/// rustls joins a handshake message of up to 64 KiB from records in this buffer; past
/// this much unprocessed input the peer is misbehaving.
const MAX_INCOMING: usize = 64 * 1024 + 16 * 1024 + 512;
/// Plaintext accepted per write, so the outgoing buffer stays bounded.
const MAX_WRITE: usize = 64 * 1024;

/// A server-side TLS stream over `TcpStream`, past its handshake.
pub struct LeanTls {
    io: Buffers,
    /// Boxed once: the state is allocated exactly, and moving the stream is cheap.
    traffic: Box<Traffic>,
    sent_close_notify: bool,
}

/// The socket and the bytes on their way through it.
struct Buffers {
    tcp: TcpStream,
    /// Ciphertext from the socket not yet processed.
    incoming: Vec<u8>,
    /// Decrypted application data not yet read, from `plain_at` on.
    plaintext: Vec<u8>,
    plain_at: usize,
    /// Ciphertext not yet written, from `out_at` on.
    outgoing: Vec<u8>,
    out_at: usize,
    /// The peer sent close_notify, closed the socket, or broke the protocol.
    read_closed: bool,
}

impl LeanTls {
    /// Performs the server handshake on `tcp`. Also returns the name the client asked for
    /// (SNI), as rustls saw it.
    pub async fn accept(
        tcp: TcpStream,
        config: Arc<ServerConfig>,
    ) -> io::Result<(LeanTls, Option<String>)> {
        let mut conn = UnbufferedServerConnection::new(config).map_err(invalid)?;
        let mut io = Buffers {
            tcp,
            incoming: Vec::new(),
            plaintext: Vec::new(),
            plain_at: 0,
            outgoing: Vec::new(),
            out_at: 0,
            read_closed: false,
        };
        // A copy of what the client sent until its ClientHello is complete: rustls may
        // rearrange fragments in `incoming` while joining them.
        let mut hello = Vec::new();
        let mut sni = Sni::NeedMore;
        poll_fn(|cx| io.poll_handshake(&mut conn, cx, &mut hello, &mut sni)).await?;
        let name = match sni {
            Sni::Done(name) => name,
            Sni::NeedMore => None,
        };
        let traffic = Traffic::from_rustls(conn).map_err(invalid)?;
        let tls = LeanTls {
            io,
            traffic: Box::new(traffic),
            sent_close_notify: false,
        };
        Ok((tls, name))
    }

    /// Bytes of buffer space held (tests check that an idle stream holds none).
    #[cfg(test)]
    fn buffered_capacity(&self) -> usize {
        self.io.incoming.capacity() + self.io.plaintext.capacity() + self.io.outgoing.capacity()
    }
}

impl Buffers {
    fn poll_handshake(
        &mut self,
        conn: &mut UnbufferedServerConnection,
        cx: &mut Context<'_>,
        hello: &mut Vec<u8>,
        sni: &mut Sni,
    ) -> Poll<io::Result<()>> {
        loop {
            let step = handshake_step(
                conn,
                &mut self.incoming,
                &mut self.plaintext,
                &mut self.outgoing,
            )
            .map_err(invalid)?;
            ready!(self.poll_write_out(cx))?;
            match step {
                HandshakeStep::Done => return Poll::Ready(Ok(())),
                HandshakeStep::PeerClosed => self.read_closed = true,
                HandshakeStep::NeedInput => {}
            }
            if self.read_closed {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            let before = self.incoming.len();
            ready!(self.poll_read_socket(cx))?;
            if *sni == Sni::NeedMore {
                hello.extend_from_slice(self.incoming.get(before..).unwrap_or_default());
                *sni = from_client_hello(hello);
            }
        }
    }

    /// Reads more ciphertext from the socket into `incoming`; `read_closed` at its end.
    fn poll_read_socket(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.incoming.len() >= MAX_INCOMING {
            return Poll::Ready(Err(invalid("TLS input exceeds any valid record")));
        }
        self.incoming.reserve(READ_CHUNK);
        loop {
            ready!(self.tcp.poll_read_ready(cx))?;
            match self.tcp.try_read_buf(&mut self.incoming) {
                Ok(0) => {
                    self.read_closed = true;
                    return Poll::Ready(Ok(()));
                }
                Ok(_) => return Poll::Ready(Ok(())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Writes queued ciphertext to the socket.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(pending) = self.outgoing.get(self.out_at..).filter(|p| !p.is_empty()) {
            let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_at += n;
        }
        self.outgoing.clear();
        self.out_at = 0;
        Poll::Ready(Ok(()))
    }

    /// Whether decrypted bytes are waiting to be read.
    fn has_plaintext(&self) -> bool {
        self.plain_at < self.plaintext.len()
    }
}

impl ParkableIo for LeanTls {
    fn poll_socket_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.tcp.poll_read_ready(cx)
    }

    fn has_buffered_input(&self) -> bool {
        self.io.has_plaintext()
    }

    /// Frees the buffers that hold nothing, and the expanded keys.
    fn release_idle_buffers(&mut self) {
        let io = &mut self.io;
        if io.incoming.is_empty() {
            io.incoming = Vec::new();
        }
        if !io.has_plaintext() {
            io.plaintext = Vec::new();
            io.plain_at = 0;
        }
        if io.out_at >= io.outgoing.len() {
            io.outgoing = Vec::new();
            io.out_at = 0;
        }
        self.traffic.release();
    }
}

/// What a round of handshake processing reached.
#[derive(Debug, PartialEq, Eq)]
enum HandshakeStep {
    NeedInput,
    /// The handshake is complete: traffic may flow.
    Done,
    PeerClosed,
}

/// Processes the handshake records buffered in `incoming` until more input is needed or
/// the handshake is complete. Records rustls wants sent are appended to `outgoing`;
/// application data that came with the client's last flight, to `plaintext`.
fn handshake_step(
    conn: &mut UnbufferedServerConnection,
    incoming: &mut Vec<u8>,
    plaintext: &mut Vec<u8>,
    outgoing: &mut Vec<u8>,
) -> Result<HandshakeStep, rustls::Error> {
    loop {
        let status = conn.process_tls_records(incoming);
        let discard = status.discard;
        let mut reached = None;
        match status.state? {
            ConnectionState::ReadTraffic(mut records) => {
                while let Some(record) = records.next_record() {
                    plaintext.extend_from_slice(record?.payload);
                }
            }
            ConnectionState::EncodeTlsData(mut encode) => {
                let encoded = append_with(outgoing, 512, |out| encode.encode(out));
                // AlreadyEncoded: nothing left to add.
                if let Err(EncodeError::InsufficientSize(_)) = encoded {
                    return Err(rustls::Error::General("TLS record too large".into()));
                }
            }
            // The queued bytes are sent, in order, before anything queued later.
            ConnectionState::TransmitTlsData(transmit) => transmit.done(),
            ConnectionState::BlockedHandshake => reached = Some(HandshakeStep::NeedInput),
            ConnectionState::PeerClosed | ConnectionState::Closed => {
                reached = Some(HandshakeStep::PeerClosed)
            }
            ConnectionState::WriteTraffic(_) => reached = Some(HandshakeStep::Done),
            // Early data is never enabled (ServerConfig::max_early_data_size is 0).
            _ => return Err(rustls::Error::General("unexpected TLS state".into())),
        }
        incoming.drain(..discard.min(incoming.len()));
        match reached {
            // TLS 1.3 servers may write before the client's Finished; traffic starts after.
            Some(HandshakeStep::Done) if conn.is_handshaking() => {
                return Ok(HandshakeStep::NeedInput)
            }
            Some(reached) => return Ok(reached),
            None => {}
        }
    }
}

/// Runs `op` over `room` bytes of free space at the end of `out` and keeps what it wrote;
/// when rustls answers that it needs more, tries once more with that much.
fn append_with(
    out: &mut Vec<u8>,
    room: usize,
    mut op: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>,
) -> Result<(), EncodeError> {
    let mut room = room;
    loop {
        let start = out.len();
        out.resize(start + room, 0);
        let result = op(out.get_mut(start..).unwrap_or_default());
        out.truncate(start + *result.as_ref().unwrap_or(&0));
        match result {
            Ok(_) => return Ok(()),
            Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size }))
                if required_size > room =>
            {
                room = required_size
            }
            Err(e) => return Err(e),
        }
    }
}

fn invalid(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl AsyncRead for LeanTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let io = &mut this.io;
        loop {
            if let Some(ready) = io.plaintext.get(io.plain_at..).filter(|p| !p.is_empty()) {
                let n = ready.len().min(buf.remaining());
                buf.put_slice(ready.get(..n).unwrap_or_default());
                io.plain_at += n;
                if io.plain_at == io.plaintext.len() {
                    io.plaintext.clear();
                    io.plain_at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if io.read_closed {
                return Poll::Ready(Ok(()));
            }
            // Answers to what the client sends (key updates) wait for the client to read
            // them: a client that only sends cannot grow the outgoing buffer without bound.
            if io.outgoing.len() - io.out_at >= MAX_WRITE {
                ready!(io.poll_write_out(cx))?;
            }
            let read = this
                .traffic
                .read(&mut io.incoming, &mut io.plaintext, &mut io.outgoing);
            match read {
                Ok(closed) => io.read_closed |= closed,
                Err(e) => {
                    // Tell the peer why, if the socket takes it now; nothing more is read.
                    this.traffic.fatal_alert(e, &mut io.outgoing);
                    let _ = io.poll_write_out(cx);
                    io.read_closed = true;
                    io.incoming = Vec::new();
                    return Poll::Ready(Err(invalid(e)));
                }
            }
            // A key update queued while reading: send it if the socket takes it now;
            // otherwise it goes out with the next write or flush.
            if let Poll::Ready(Err(e)) = io.poll_write_out(cx) {
                return Poll::Ready(Err(e));
            }
            if io.has_plaintext() || io.read_closed {
                continue;
            }
            ready!(io.poll_read_socket(cx))?;
        }
    }
}

impl AsyncWrite for LeanTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.io.outgoing.len() - this.io.out_at >= MAX_WRITE {
            ready!(this.io.poll_write_out(cx))?;
        }
        let data = data.get(..data.len().min(MAX_WRITE)).unwrap_or(data);
        this.traffic
            .write(data, &mut this.io.outgoing)
            .map_err(invalid)?;
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io.poll_write_out(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.sent_close_notify {
            this.sent_close_notify = true;
            this.traffic
                .close_notify(&mut this.io.outgoing)
                .map_err(invalid)?;
        }
        ready!(this.io.poll_write_out(cx))?;
        Pin::new(&mut this.io.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod in_memory;
#[cfg(test)]
mod tests;
