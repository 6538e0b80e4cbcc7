//! Known-answer tests of the TLS 1.3 record layer ([`super::record`]) against RFC 8448,
//! "Example Handshake Traces for TLS 1.3", §3 "Simple 1-RTT Handshake"
//! (TLS_AES_128_GCM_SHA256): the server's NewSessionTicket record and the client's and
//! the server's application data records. Each payload, sealed with the trace's traffic key
//! and IV at its sequence number, must give the trace's complete record byte for byte, and
//! that record must open back to the payload and its content type.
//!
//! The hex is the trace's, with its line breaks; each constant names the step of §3 (the
//! `{client}`/`{server}` line) and the field it comes from.

use crate::auth::testing::hex;

use super::record::{Cipher, ContentType, Keys, Opened, RecordLayer, Version, HEADER_LEN};

/// `{server}  derive write traffic keys for application data`: key expanded (16 octets).
const SERVER_AP_KEY: &str = "9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac
    92 e3 56";
/// `{server}  derive write traffic keys for application data`: iv expanded (12 octets).
const SERVER_AP_IV: &str = "cf 78 2b 88 dd 83 54 9a ad f1 e9 84";

/// `{client}  derive write traffic keys for application data`: key expanded (16 octets).
const CLIENT_AP_KEY: &str = "17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6
    3f 50 51";
/// `{client}  derive write traffic keys for application data`: iv expanded (12 octets).
const CLIENT_AP_IV: &str = "5b 78 92 3d ee 08 57 90 33 e5 23 d9";

/// `{server}  construct a NewSessionTicket handshake message`: NewSessionTicket
/// (205 octets), the payload of the `{server}  send handshake record` that follows it.
const NEW_SESSION_TICKET: &str = "04 00 00 c9 00 00 00 1e fa d6 aa
    c5 02 00 00 00 b2 2c 03 5d 82 93 59 ee 5f f7 af 4e c9 00 00 00
    00 26 2a 64 94 dc 48 6d 2c 8a 34 cb 33 fa 90 bf 1b 00 70 ad 3c
    49 88 83 c9 36 7c 09 a2 be 78 5a bc 55 cd 22 60 97 a3 a9 82 11
    72 83 f8 2a 03 a1 43 ef d3 ff 5d d3 6d 64 e8 61 be 7f d6 1d 28
    27 db 27 9c ce 14 50 77 d4 54 a3 66 4d 4e 6d a4 d2 9e e0 37 25
    a6 a4 da fc d0 fc 67 d2 ae a7 05 29 51 3e 3d a2 67 7f a5 90 6c
    5b 3f 7d 8f 92 f2 28 bd a4 0d da 72 14 70 f9 fb f2 97 b5 ae a6
    17 64 6f ac 5c 03 27 2e 97 07 27 c6 21 a7 91 41 ef 5f 7d e6 50
    5e 5b fb c3 88 e9 33 43 69 40 93 93 4a e4 d3 57 00 08 00 2a 00
    04 00 00 04 00";
/// `{server}  send handshake record` (the NewSessionTicket): complete record (227 octets).
const NEW_SESSION_TICKET_RECORD: &str = "17 03 03 00 de 3a 6b 8f 90 41 4a 97
    d6 95 9c 34 87 68 0d e5 13 4a 2b 24 0e 6c ff ac 11 6e 95 d4 1d
    6a f8 f6 b5 80 dc f3 d1 1d 63 c7 58 db 28 9a 01 59 40 25 2f 55
    71 3e 06 1d c1 3e 07 88 91 a3 8e fb cf 57 53 ad 8e f1 70 ad 3c
    73 53 d1 6d 9d a7 73 b9 ca 7f 2b 9f a1 b6 c0 d4 a3 d0 3f 75 e0
    9c 30 ba 1e 62 97 2a c4 6f 75 f7 b9 81 be 63 43 9b 29 99 ce 13
    06 46 15 13 98 91 d5 e4 c5 b4 06 f1 6e 3f c1 81 a7 7c a4 75 84
    00 25 db 2f 0a 77 f8 1b 5a b0 5b 94 c0 13 46 75 5f 69 23 2c 86
    51 9d 86 cb ee ac 87 aa c3 47 d1 43 f9 60 5d 64 f6 50 db 4d 02
    3e 70 e9 52 ca 49 fe 51 37 12 1c 74 bc 26 97 68 7e 24 87 46 d6
    df 35 30 05 f3 bc e1 86 96 12 9c 81 53 55 6b 3b 6c 67 79 b3 7b
    f1 59 85 68 4f";

/// `{client}  send application_data record`: payload (50 octets). The server's
/// application data record carries the same 50 octets.
const APPLICATION_DATA: &str = "00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e
    0f 10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f 20 21 22 23
    24 25 26 27 28 29 2a 2b 2c 2d 2e 2f 30 31";
/// `{client}  send application_data record`: complete record (72 octets).
const CLIENT_APPLICATION_DATA_RECORD: &str = "17 03 03 00 43 a2 3f 70 54 b6 2c 94
    d0 af fa fe 82 28 ba 55 cb ef ac ea 42 f9 14 aa 66 bc ab 3f 2b
    98 19 a8 a5 b4 6b 39 5b d5 4a 9a 20 44 1e 2b 62 97 4e 1f 5a 62
    92 a2 97 70 14 bd 1e 3d ea e6 3a ee bb 21 69 49 15 e4";
/// `{server}  send application_data record`: complete record (72 octets).
const SERVER_APPLICATION_DATA_RECORD: &str = "17 03 03 00 43 2e 93 7e 11 ef 4a c7
    40 e5 38 ad 36 00 5f c4 a4 69 32 fc 32 25 d0 5f 82 aa 1b 36 e3
    0e fa f9 7d 90 e6 df fc 60 2d cb 50 1a 59 a8 fc c4 9c 4b f2 e5
    f0 a2 1c 00 47 c2 ab f3 32 54 0d d0 32 e1 67 c2 95 5d";

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// AES-128-GCM keys from the trace's hex, at sequence number `seq`.
fn keys(key: &str, iv: &str, seq: u64) -> Keys {
    Keys::from_parts(Cipher::Aes128Gcm, &hex(key), &hex(iv), seq)
        .expect("a 16-byte key, 12-byte IV")
}

/// Keys for the direction a check does not use.
fn unused() -> Keys {
    Keys::from_parts(Cipher::Aes128Gcm, &[0x55; 16], &[0xaa; 12], 0).expect("valid lengths")
}

/// One record of the trace: sealing `payload` as `content_type` with `key`/`iv` at `seq`
/// gives `record`, and opening `record` with the same keys gives back both.
fn check_record(
    key: &str,
    iv: &str,
    seq: u64,
    content_type: ContentType,
    payload: &str,
    record: &str,
) {
    let (payload, record) = (hex(payload), hex(record));

    let mut sender = RecordLayer::new(Version::Tls13, unused(), keys(key, iv, seq));
    let mut sealed = Vec::new();
    sender
        .seal(content_type, &payload, &mut sealed)
        .expect("sealing succeeds");
    assert_eq!(
        to_hex(&sealed),
        to_hex(&record),
        "sealed {content_type:?} at seq {seq}"
    );
    assert_eq!(sender.tx.seq(), seq + 1);

    let mut receiver = RecordLayer::new(Version::Tls13, keys(key, iv, seq), unused());
    let mut buf = record.clone();
    let opened = receiver.open(&mut buf).expect("the record authenticates");
    assert_eq!(
        opened,
        Some(Opened {
            content_type,
            plaintext: HEADER_LEN..HEADER_LEN + payload.len(),
            consumed: record.len(),
        }),
        "opened record at seq {seq}"
    );
    let plaintext = buf
        .get(HEADER_LEN..HEADER_LEN + payload.len())
        .unwrap_or_default();
    assert_eq!(
        to_hex(plaintext),
        to_hex(&payload),
        "opened payload at seq {seq}"
    );
    assert_eq!(receiver.rx.seq(), seq + 1);
}

/// The first record under the server's application traffic key (sequence number 0).
#[test]
fn server_new_session_ticket_record() {
    check_record(
        SERVER_AP_KEY,
        SERVER_AP_IV,
        0,
        ContentType::Handshake,
        NEW_SESSION_TICKET,
        NEW_SESSION_TICKET_RECORD,
    );
}

/// The first record under the client's application traffic key (sequence number 0).
#[test]
fn client_application_data_record() {
    check_record(
        CLIENT_AP_KEY,
        CLIENT_AP_IV,
        0,
        ContentType::ApplicationData,
        APPLICATION_DATA,
        CLIENT_APPLICATION_DATA_RECORD,
    );
}

/// The server's second record under its application traffic key, after the
/// NewSessionTicket (sequence number 1).
#[test]
fn server_application_data_record() {
    check_record(
        SERVER_AP_KEY,
        SERVER_AP_IV,
        1,
        ContentType::ApplicationData,
        APPLICATION_DATA,
        SERVER_APPLICATION_DATA_RECORD,
    );
}

/// The server's two records in order from one layer: the sequence number advances from
/// the NewSessionTicket to the application data, in both directions.
#[test]
fn server_records_in_sequence() {
    let ticket = hex(NEW_SESSION_TICKET);
    let data = hex(APPLICATION_DATA);
    let mut wire = hex(NEW_SESSION_TICKET_RECORD);
    wire.extend(hex(SERVER_APPLICATION_DATA_RECORD));

    let mut sender = RecordLayer::new(
        Version::Tls13,
        unused(),
        keys(SERVER_AP_KEY, SERVER_AP_IV, 0),
    );
    let mut sealed = Vec::new();
    sender
        .seal(ContentType::Handshake, &ticket, &mut sealed)
        .expect("seal");
    sender
        .seal(ContentType::ApplicationData, &data, &mut sealed)
        .expect("seal");
    assert_eq!(to_hex(&sealed), to_hex(&wire));

    let mut receiver = RecordLayer::new(
        Version::Tls13,
        keys(SERVER_AP_KEY, SERVER_AP_IV, 0),
        unused(),
    );
    let first = receiver
        .open(&mut wire)
        .expect("open")
        .expect("a whole record");
    assert_eq!(first.content_type, ContentType::Handshake);
    assert_eq!(wire[first.plaintext.clone()], ticket[..]);
    wire.drain(..first.consumed);
    let second = receiver
        .open(&mut wire)
        .expect("open")
        .expect("a whole record");
    assert_eq!(second.content_type, ContentType::ApplicationData);
    assert_eq!(wire[second.plaintext.clone()], data[..]);
    assert_eq!(second.consumed, wire.len());
}
