//! TLS over a TCP stream with buffers that exist only while they hold something.
//!
//! tokio-rustls (rustls's buffered connection) keeps a zero-filled 4 KiB record buffer per
//! connection for its whole life, which is the largest part of an idle keep-alive
//! connection once hyper is parked (see [`super::park`]). This drives rustls's *unbuffered*
//! server connection instead, where the caller owns the buffers: ciphertext read from the
//! socket, decrypted bytes not yet read, ciphertext not yet written. [`ParkableIo::
//! release_idle_buffers`] frees the empty ones when the connection parks, so an idle
//! connection keeps only rustls's session state (keys and a small state machine, boxed
//! once) and the socket.
//!
//! Records are processed as rustls's unbuffered API prescribes: every state it yields is
//! handled before the next call, the `discard` count is applied to the front of the
//! incoming buffer, and bytes rustls asks to transmit are queued in order in the outgoing
//! buffer (so a key update's reply can never overtake earlier data).

mod sni;

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, InsufficientSizeError};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::park::ParkableIo;

pub use sni::{from_client_hello, Sni};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;
/// rustls joins a handshake message of up to 64 KiB from records in this buffer; past
/// this much unprocessed input the peer is misbehaving.
const MAX_INCOMING: usize = 64 * 1024 + 16 * 1024 + 512;
/// Plaintext accepted per write, so the outgoing buffer stays bounded.
const MAX_WRITE: usize = 64 * 1024;

/// A server-side TLS stream over `TcpStream`.
pub struct LeanTls {
    tcp: TcpStream,
    /// Boxed once: the session state is allocated exactly, and moving the stream is cheap.
    conn: Box<UnbufferedServerConnection>,
    /// Ciphertext from the socket not yet processed.
    incoming: Vec<u8>,
    /// Decrypted application data not yet read, from `plain_at` on.
    plaintext: Vec<u8>,
    plain_at: usize,
    /// Ciphertext not yet written, from `out_at` on.
    outgoing: Vec<u8>,
    out_at: usize,
    /// The peer sent close_notify, or closed the socket.
    read_closed: bool,
    sent_close_notify: bool,
}

/// What one round of processing reached.
#[derive(Debug, PartialEq, Eq)]
enum Reached {
    /// More ciphertext is needed (handshake or a partial record).
    NeedInput,
    /// The handshake is done and every complete record has been processed.
    Traffic,
}

/// What to do once application data may be written.
enum Then<'a> {
    Nothing,
    Encrypt(&'a [u8]),
    CloseNotify,
}

impl LeanTls {
    /// Performs the server handshake on `tcp`. Also returns the name the client asked for
    /// (SNI), as rustls saw it.
    pub async fn accept(
        tcp: TcpStream,
        config: Arc<ServerConfig>,
    ) -> io::Result<(LeanTls, Option<String>)> {
        let conn = UnbufferedServerConnection::new(config).map_err(invalid)?;
        let mut tls = LeanTls {
            tcp,
            conn: Box::new(conn),
            incoming: Vec::new(),
            plaintext: Vec::new(),
            plain_at: 0,
            outgoing: Vec::new(),
            out_at: 0,
            read_closed: false,
            sent_close_notify: false,
        };
        // A copy of what the client sent until its ClientHello is complete: rustls may
        // rearrange fragments in `incoming` while joining them.
        let mut hello = Vec::new();
        let mut sni = Sni::NeedMore;
        poll_fn(|cx| tls.poll_handshake(cx, &mut hello, &mut sni)).await?;
        let name = match sni {
            Sni::Done(name) => name,
            Sni::NeedMore => None,
        };
        Ok((tls, name))
    }

    fn poll_handshake(
        &mut self,
        cx: &mut Context<'_>,
        hello: &mut Vec<u8>,
        sni: &mut Sni,
    ) -> Poll<io::Result<()>> {
        loop {
            let reached = self.process(Then::Nothing).map_err(invalid)?;
            ready!(self.poll_write_out(cx))?;
            if reached == Reached::Traffic && !self.conn.is_handshaking() {
                return Poll::Ready(Ok(()));
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

    /// Processes buffered records until more input is needed or application data may be
    /// written; then does `then`. Decrypted data goes to `plaintext`, records rustls wants
    /// sent go to `outgoing`.
    fn process(&mut self, mut then: Then<'_>) -> Result<Reached, rustls::Error> {
        loop {
            let status = self.conn.process_tls_records(&mut self.incoming);
            let discard = status.discard;
            let mut reached = None;
            match status.state? {
                ConnectionState::ReadTraffic(mut records) => {
                    while let Some(record) = records.next_record() {
                        self.plaintext.extend_from_slice(record?.payload);
                    }
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    let encoded = append_with(&mut self.outgoing, 512, |out| encode.encode(out));
                    // AlreadyEncoded: nothing left to add.
                    if let Err(EncodeError::InsufficientSize(_)) = encoded {
                        return Err(rustls::Error::General("TLS record too large".into()));
                    }
                }
                // The queued bytes are sent, in order, before anything queued later.
                ConnectionState::TransmitTlsData(transmit) => transmit.done(),
                ConnectionState::BlockedHandshake => reached = Some(Reached::NeedInput),
                ConnectionState::PeerClosed => self.read_closed = true,
                ConnectionState::Closed => {
                    self.read_closed = true;
                    reached = Some(Reached::Traffic);
                }
                ConnectionState::WriteTraffic(mut write) => {
                    match std::mem::replace(&mut then, Then::Nothing) {
                        Then::Nothing => {}
                        Then::Encrypt(data) => {
                            // Room for the data and each record's header, type and tag.
                            let room = data.len() + (data.len() / 16_384 + 1) * 64;
                            append_with(&mut self.outgoing, room, |out| write.encrypt(data, out))
                                .map_err(encrypt_failed)?
                        }
                        Then::CloseNotify => {
                            append_with(&mut self.outgoing, 64, |out| write.queue_close_notify(out))
                                .map_err(encrypt_failed)?
                        }
                    }
                    reached = Some(Reached::Traffic);
                }
                // Early data is never enabled (ServerConfig::max_early_data_size is 0).
                _ => return Err(rustls::Error::General("unexpected TLS state".into())),
            }
            self.incoming.drain(..discard.min(self.incoming.len()));
            if let Some(reached) = reached {
                if !matches!(then, Then::Nothing) {
                    // Only before the handshake completes, which callers never write in.
                    return Err(rustls::Error::General(
                        "TLS connection cannot send yet".into(),
                    ));
                }
                return Ok(reached);
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

    /// Bytes of buffer space held (tests check that an idle stream holds none).
    #[cfg(test)]
    fn buffered_capacity(&self) -> usize {
        self.incoming.capacity() + self.plaintext.capacity() + self.outgoing.capacity()
    }
}

impl ParkableIo for LeanTls {
    fn poll_socket_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp.poll_read_ready(cx)
    }

    fn has_buffered_input(&self) -> bool {
        self.has_plaintext()
    }

    /// Frees the buffers that hold nothing.
    fn release_idle_buffers(&mut self) {
        if self.incoming.is_empty() {
            self.incoming = Vec::new();
        }
        if !self.has_plaintext() {
            self.plaintext = Vec::new();
            self.plain_at = 0;
        }
        if self.out_at >= self.outgoing.len() {
            self.outgoing = Vec::new();
            self.out_at = 0;
        }
    }
}

/// Runs `op` over `room` bytes of free space at the end of `out` and keeps what it wrote;
/// when rustls answers that it needs more, tries once more with that much.
fn append_with<E: RequiredSize>(
    out: &mut Vec<u8>,
    room: usize,
    mut op: impl FnMut(&mut [u8]) -> Result<usize, E>,
) -> Result<(), E> {
    let mut room = room;
    loop {
        let start = out.len();
        out.resize(start + room, 0);
        let result = op(out.get_mut(start..).unwrap_or_default());
        out.truncate(start + *result.as_ref().unwrap_or(&0));
        match result {
            Ok(_) => return Ok(()),
            Err(e) => match e.required_size() {
                Some(required) if required > room => room = required,
                _ => return Err(e),
            },
        }
    }
}

/// The size rustls's "buffer too small" errors ask for.
trait RequiredSize {
    fn required_size(&self) -> Option<usize>;
}

impl RequiredSize for EncodeError {
    fn required_size(&self) -> Option<usize> {
        match self {
            EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => {
                Some(*required_size)
            }
            _ => None,
        }
    }
}

impl RequiredSize for EncryptError {
    fn required_size(&self) -> Option<usize> {
        match self {
            EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => {
                Some(*required_size)
            }
            _ => None,
        }
    }
}

fn encrypt_failed(e: EncryptError) -> rustls::Error {
    rustls::Error::General(e.to_string())
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
        loop {
            if let Some(ready) = this
                .plaintext
                .get(this.plain_at..)
                .filter(|p| !p.is_empty())
            {
                let n = ready.len().min(buf.remaining());
                buf.put_slice(ready.get(..n).unwrap_or_default());
                this.plain_at += n;
                if this.plain_at == this.plaintext.len() {
                    this.plaintext.clear();
                    this.plain_at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.read_closed {
                return Poll::Ready(Ok(()));
            }
            this.process(Then::Nothing).map_err(invalid)?;
            // A key update or alert rustls queued while reading: send it if the socket
            // takes it now; otherwise it goes out with the next write or flush.
            if let Poll::Ready(Err(e)) = this.poll_write_out(cx) {
                return Poll::Ready(Err(e));
            }
            if this.has_plaintext() || this.read_closed {
                continue;
            }
            ready!(this.poll_read_socket(cx))?;
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
        if this.outgoing.len() - this.out_at >= MAX_WRITE {
            ready!(this.poll_write_out(cx))?;
        }
        let data = data.get(..data.len().min(MAX_WRITE)).unwrap_or(data);
        this.process(Then::Encrypt(data)).map_err(invalid)?;
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_write_out(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.sent_close_notify {
            this.sent_close_notify = true;
            this.process(Then::CloseNotify).map_err(invalid)?;
        }
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
