#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Split the input into a path and a query the way a URI would be.
    let text = String::from_utf8_lossy(data);
    let (path, query) = match text.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (&*text, None),
    };
    let _ = autodiscoverd::protocol::v2::parse_request(path, query);
    let _ = autodiscoverd::protocol::v2::percent_decode(&text, true);
});
