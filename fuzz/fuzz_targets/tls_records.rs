#![no_main]
//! The post-handshake TLS record layer: arbitrary bytes never panic it, and whatever one end
//! seals the other opens back, on every version and cipher.
use autodiscoverd::server::lean_tls::record::{Cipher, ContentType, Keys, RecordLayer, Version};
use libfuzzer_sys::fuzz_target;

fn keys(cipher: Cipher, fill: u8) -> Keys {
    let len = match cipher {
        Cipher::Aes128Gcm => 16,
        Cipher::Aes256Gcm | Cipher::Chacha20Poly1305 => 32,
    };
    Keys::from_parts(cipher, &vec![fill; len], &[fill; 12], 0).unwrap()
}

fuzz_target!(|data: &[u8]| {
    for version in [Version::Tls12, Version::Tls13] {
        for cipher in [Cipher::Aes128Gcm, Cipher::Aes256Gcm, Cipher::Chacha20Poly1305] {
            let mut receiver = RecordLayer::new(version, keys(cipher, 1), keys(cipher, 2));
            let mut wire = data.to_vec();
            let _ = receiver.open(&mut wire);

            let mut sender = RecordLayer::new(version, keys(cipher, 2), keys(cipher, 1));
            let mut receiver = RecordLayer::new(version, keys(cipher, 1), keys(cipher, 2));
            let mut sealed = Vec::new();
            sender.seal(ContentType::ApplicationData, data, &mut sealed).unwrap();
            let mut opened = Vec::new();
            while !sealed.is_empty() {
                let record = receiver.open(&mut sealed).unwrap().unwrap();
                opened.extend_from_slice(&sealed[record.plaintext]);
                sealed.drain(..record.consumed);
            }
            assert_eq!(opened, data);
        }
    }
});
