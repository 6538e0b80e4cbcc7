//! A connection after its handshake: records in, plaintext out and back, over buffers.
//!
//! rustls does the handshake; [`Traffic::from_rustls`] then takes the traffic secrets and,
//! for TLS 1.3, rustls's key schedule (a `KernelConnection`, which derives the next keys on
//! a key update). What a client may still send after the handshake is application data,
//! alerts and — in TLS 1.3 — KeyUpdate; anything else ends the connection with an alert,
//! as rustls would (renegotiation was never supported).

use rustls::kernel::KernelConnection;
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::{ProtocolVersion, SupportedCipherSuite};

use super::record::{ContentType, Keys, RecordError, RecordLayer, Version};

/// TLS 1.3 KeyUpdate: handshake type 24 with a one-byte body (RFC 8446 §4.6.3).
const KEY_UPDATE: u8 = 24;
const UPDATE_NOT_REQUESTED: u8 = 0;
const UPDATE_REQUESTED: u8 = 1;
const CLOSE_NOTIFY: u8 = 0;
const USER_CANCELED: u8 = 90;
const WARNING: u8 = 1;
const FATAL: u8 = 2;

pub struct Traffic {
    records: RecordLayer,
    /// TLS 1.3 only: rustls's key schedule, for key updates.
    key_schedule: Option<KernelConnection<ServerConnectionData>>,
    /// Records one key may seal (AES-GCM's confidentiality limit, as rustls enforces it).
    tx_limit: u64,
}

impl Traffic {
    /// Takes over a connection whose handshake is complete and whose output is flushed.
    pub fn from_rustls(conn: UnbufferedServerConnection) -> Result<Traffic, rustls::Error> {
        let (secrets, kernel) = conn.dangerous_into_kernel_connection()?;
        let version = if kernel.protocol_version() == ProtocolVersion::TLSv1_3 {
            Version::Tls13
        } else {
            Version::Tls12
        };
        let tx_limit = match kernel.negotiated_cipher_suite() {
            SupportedCipherSuite::Tls12(suite) => suite.common.confidentiality_limit,
            SupportedCipherSuite::Tls13(suite) => suite.common.confidentiality_limit,
        };
        let keys = |(seq, secrets)| Keys::new(secrets, seq).map_err(general);
        let records = RecordLayer::new(version, keys(secrets.rx)?, keys(secrets.tx)?);
        Ok(Traffic {
            records,
            key_schedule: (version == Version::Tls13).then_some(kernel),
            tx_limit,
        })
    }

    /// Opens every complete record at the front of `incoming` and removes it: application
    /// data is appended to `plaintext`, answers (to a key update) to `outgoing`. Returns
    /// whether the peer closed the connection (close_notify); later records are ignored.
    pub fn read(
        &mut self,
        incoming: &mut Vec<u8>,
        plaintext: &mut Vec<u8>,
        outgoing: &mut Vec<u8>,
    ) -> Result<bool, RecordError> {
        let mut at = 0;
        let outcome = loop {
            let opened = match self
                .records
                .open(incoming.get_mut(at..).unwrap_or_default())
            {
                Ok(Some(opened)) => opened,
                Ok(None) => break Ok(false),
                Err(e) => break Err(e),
            };
            let payload = incoming
                .get(at + opened.plaintext.start..at + opened.plaintext.end)
                .unwrap_or_default();
            at += opened.consumed;
            let step = match opened.content_type {
                ContentType::ApplicationData => {
                    plaintext.extend_from_slice(payload);
                    Ok(false)
                }
                ContentType::Alert => self.alert(payload),
                ContentType::Handshake => self.handshake(payload, outgoing).map(|()| false),
                ContentType::ChangeCipherSpec => Err(RecordError::UnexpectedMessage),
            };
            match step {
                Ok(false) => {}
                other => break other,
            }
        };
        incoming.drain(..at.min(incoming.len()));
        outcome
    }

    /// Returns whether the alert closes the connection cleanly.
    fn alert(&self, alert: &[u8]) -> Result<bool, RecordError> {
        let &[level, description] = alert else {
            return Err(RecordError::DecodeError);
        };
        match (self.records.version(), level, description) {
            (_, _, CLOSE_NOTIFY) => Ok(true),
            (Version::Tls13, _, USER_CANCELED) => Ok(false),
            // TLS 1.2 warnings carry no obligation.
            (Version::Tls12, WARNING, _) => Ok(false),
            (_, _, description) => Err(RecordError::PeerAlert(description)),
        }
    }

    /// A handshake message after the handshake: only a whole TLS 1.3 KeyUpdate, alone at
    /// the end of its record (RFC 8446 §5.1), is accepted.
    fn handshake(&mut self, message: &[u8], outgoing: &mut Vec<u8>) -> Result<(), RecordError> {
        if self.records.version() == Version::Tls12 {
            return Err(RecordError::Renegotiation);
        }
        let request = match *message {
            [KEY_UPDATE, 0, 0, 1, request] => request,
            [KEY_UPDATE, 0, 0, 1, _, ..] => return Err(RecordError::UnexpectedMessage),
            [KEY_UPDATE, ..] => return Err(RecordError::DecodeError),
            _ => return Err(RecordError::UnexpectedMessage),
        };
        if request != UPDATE_NOT_REQUESTED && request != UPDATE_REQUESTED {
            return Err(RecordError::IllegalParameter);
        }
        let schedule = self
            .key_schedule
            .as_mut()
            .ok_or(RecordError::UnexpectedMessage)?;
        let (seq, secrets) = schedule
            .update_rx_secret()
            .map_err(|_| RecordError::KeysExhausted)?;
        self.records.rx = Keys::new(secrets, seq)?;
        if request == UPDATE_REQUESTED {
            self.update_tx(outgoing)?;
        }
        Ok(())
    }

    /// Sends a KeyUpdate under the current key, then switches to the next one (TLS 1.3;
    /// TLS 1.2 has no key update, and nothing is sent).
    fn update_tx(&mut self, outgoing: &mut Vec<u8>) -> Result<(), RecordError> {
        let schedule = self
            .key_schedule
            .as_mut()
            .ok_or(RecordError::KeysExhausted)?;
        let message = [KEY_UPDATE, 0, 0, 1, UPDATE_NOT_REQUESTED];
        self.records
            .seal(ContentType::Handshake, &message, outgoing)?;
        let (seq, secrets) = schedule
            .update_tx_secret()
            .map_err(|_| RecordError::KeysExhausted)?;
        self.records.tx = Keys::new(secrets, seq)?;
        Ok(())
    }

    /// Seals application data into `outgoing`.
    pub fn write(&mut self, data: &[u8], outgoing: &mut Vec<u8>) -> Result<(), RecordError> {
        for fragment in data.chunks(super::record::MAX_FRAGMENT) {
            if self.records.tx.seq() >= self.tx_limit {
                // TLS 1.3 renews the key; TLS 1.2 cannot, and the connection ends.
                self.update_tx(outgoing)?;
            }
            self.records
                .seal(ContentType::ApplicationData, fragment, outgoing)?;
        }
        Ok(())
    }

    pub fn close_notify(&mut self, outgoing: &mut Vec<u8>) -> Result<(), RecordError> {
        self.records
            .seal(ContentType::Alert, &[WARNING, CLOSE_NOTIFY], outgoing)
    }

    /// Queues the alert that tells the peer why the connection ends, when there is one.
    pub fn fatal_alert(&mut self, error: RecordError, outgoing: &mut Vec<u8>) {
        if let Some(description) = error.alert() {
            // Best effort: the connection is ending either way.
            let _ = self
                .records
                .seal(ContentType::Alert, &[FATAL, description], outgoing);
        }
    }

    /// Frees what is rebuilt on demand (the expanded AEAD keys).
    pub fn release(&mut self) {
        self.records.release_expanded();
    }

    /// Lowers the per-key record limit, so tests reach it.
    #[cfg(test)]
    pub fn set_tx_limit(&mut self, limit: u64) {
        self.tx_limit = limit;
    }

    #[cfg(test)]
    pub fn tx_seq(&self) -> u64 {
        self.records.tx.seq()
    }
}

fn general(e: RecordError) -> rustls::Error {
    rustls::Error::General(e.to_string())
}
