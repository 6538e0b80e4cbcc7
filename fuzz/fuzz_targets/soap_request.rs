#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = autodiscoverd::protocol::soap::parse_request(data);
});
