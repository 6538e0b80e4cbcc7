//! The access log line of an Autodiscover request.
//!
//! It used to be a `tracing` event formatted by tracing-subscriber's fmt layer (field
//! visitors, `fmt::Write` through dynamic dispatch, a `SystemTime` formatter, ANSI painting
//! checks), which was the largest single cost of an answered POX request after the kernel's.
//! The line is now formatted here, straight into a per-thread buffer, and handed to the
//! batching log writer, producing byte for byte what the fmt layer wrote in each of the
//! three formats (text, json, logfmt; the tests below compare the two). The event still goes
//! through `tracing`'s filter: `RUST_LOG` can switch `access` off as before. When the
//! process did not install its own subscriber (tests, embedding) or the text format would be
//! coloured (stderr is a terminal), the line is the `tracing` event as before.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::SystemTime;

use crate::config::LogFormat;

/// What the access log records about one request (never secrets).
#[derive(Debug, Clone, Copy)]
pub struct AccessLine<'a> {
    /// The client (after trusted-proxy resolution).
    pub client: IpAddr,
    /// The TLS server name, `-` without one.
    pub sni: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    /// The bounded endpoint label (as in the metrics).
    pub endpoint: &'static str,
    /// The authenticated user, `-` without one.
    pub user: &'a str,
    pub outcome: &'static str,
    /// A directory answer came from a cache entry past its TTL (the directory could not
    /// be asked): written as `stale=true`, and only then.
    pub stale: bool,
    pub status: u16,
    pub latency_us: u64,
}

/// Writes the access line of one request (target `access`, level info, message `request`).
pub fn request(line: &AccessLine<'_>) {
    if !tracing::enabled!(target: "access", tracing::Level::INFO) {
        return;
    }
    match super::logging::direct_format() {
        Some(format) => BUF.with(|buf| {
            let Ok(mut buf) = buf.try_borrow_mut() else {
                return event(line);
            };
            buf.clear();
            format_line(&mut buf, format, SystemTime::now(), line);
            super::log_writer::write_line(buf.as_bytes());
            if buf.capacity() > 64 * 1024 {
                *buf = String::new();
            }
        }),
        None => event(line),
    }
}

thread_local! {
    static BUF: RefCell<String> = RefCell::new(String::with_capacity(512));
}

/// The line as a `tracing` event (the way it was always written; the reference format).
fn event(line: &AccessLine<'_>) {
    tracing::info!(
        target: "access",
        client = %line.client,
        sni = line.sni,
        method = %line.method,
        path = %line.path,
        endpoint = line.endpoint,
        user = line.user,
        outcome = line.outcome,
        // `None` is not recorded: the field appears only when set.
        stale = line.stale.then_some(true),
        status = line.status,
        latency_us = line.latency_us,
        "request"
    );
}

/// Appends the whole line (with its newline) in `format`, stamped `at`.
pub fn format_line(out: &mut String, format: LogFormat, at: SystemTime, l: &AccessLine<'_>) {
    match format {
        // 2026-01-01T00:00:00.000000Z  INFO access: request client=192.0.2.1 sni="-" ...
        LogFormat::Text => {
            timestamp(out, at);
            out.push_str("  INFO access: request client=");
            let _ = write!(out, "{}", l.client);
            out.push_str(" sni=");
            debug_str(out, l.sni);
            out.push_str(" method=");
            out.push_str(l.method);
            out.push_str(" path=");
            out.push_str(l.path);
            out.push_str(" endpoint=");
            debug_str(out, l.endpoint);
            out.push_str(" user=");
            debug_str(out, l.user);
            out.push_str(" outcome=");
            debug_str(out, l.outcome);
            if l.stale {
                out.push_str(" stale=true");
            }
            let _ = write!(out, " status={} latency_us={}", l.status, l.latency_us);
        }
        // {"timestamp":"...","level":"INFO","message":"request","client":"...",...,"target":"access"}
        LogFormat::Json => {
            out.push_str("{\"timestamp\":\"");
            timestamp(out, at);
            out.push_str("\",\"level\":\"INFO\",\"message\":\"request\",\"client\":\"");
            let _ = write!(out, "{}", l.client);
            out.push_str("\",\"sni\":");
            json_str(out, l.sni);
            out.push_str(",\"method\":");
            json_str(out, l.method);
            out.push_str(",\"path\":");
            json_str(out, l.path);
            out.push_str(",\"endpoint\":");
            json_str(out, l.endpoint);
            out.push_str(",\"user\":");
            json_str(out, l.user);
            out.push_str(",\"outcome\":");
            json_str(out, l.outcome);
            if l.stale {
                out.push_str(",\"stale\":true");
            }
            let _ = write!(
                out,
                ",\"status\":{},\"latency_us\":{},\"target\":\"access\"}}",
                l.status, l.latency_us
            );
        }
        // ts=... level=info target=access msg=request client=... sni=- ...
        LogFormat::Logfmt => {
            out.push_str("ts=");
            // A timestamp never needs quoting.
            timestamp(out, at);
            out.push_str(" level=info target=access msg=request client=");
            let _ = write!(out, "{}", l.client);
            for (key, value) in [
                (" sni=", l.sni),
                (" method=", l.method),
                (" path=", l.path),
                (" endpoint=", l.endpoint),
                (" user=", l.user),
                (" outcome=", l.outcome),
            ] {
                out.push_str(key);
                super::logging::push_quoted(out, value);
            }
            if l.stale {
                out.push_str(" stale=true");
            }
            let _ = write!(out, " status={} latency_us={}", l.status, l.latency_us);
        }
    }
    out.push('\n');
}

/// RFC 3339 in UTC with microseconds, as tracing-subscriber's `SystemTime` timer writes it
/// (`2026-11-25T14:48:41.214225Z`).
fn timestamp(out: &mut String, at: SystemTime) {
    let t = time::OffsetDateTime::from(at);
    let year = t.year();
    // Outside four digits (not a real clock) as tracing-subscriber writes those years.
    if year > 9999 {
        let _ = write!(out, "+{year}");
    } else if year < 0 {
        let _ = write!(out, "{year:05}");
    } else {
        digits(out, year.unsigned_abs(), 4);
    }
    out.push('-');
    digits(out, u32::from(u8::from(t.month())), 2);
    out.push('-');
    digits(out, u32::from(t.day()), 2);
    out.push('T');
    digits(out, u32::from(t.hour()), 2);
    out.push(':');
    digits(out, u32::from(t.minute()), 2);
    out.push(':');
    digits(out, u32::from(t.second()), 2);
    out.push('.');
    digits(out, t.microsecond(), 6);
    out.push('Z');
}

/// `n` zero-padded to `width` digits (`n` fits).
fn digits(out: &mut String, n: u32, width: u32) {
    let mut div = 10u32.pow(width.saturating_sub(1));
    while div > 0 {
        out.push(char::from(b'0' + ((n / div) % 10) as u8));
        div /= 10;
    }
}

/// `{:?}` of a string: quoted, with Rust's escapes; plain ASCII copied at once.
fn debug_str(out: &mut String, v: &str) {
    if v.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push('"');
        out.push_str(v);
        out.push('"');
    } else {
        let _ = write!(out, "{v:?}");
    }
}

/// A JSON string as serde_json writes it.
fn json_str(out: &mut String, v: &str) {
    if v.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(v);
        out.push('"');
    } else {
        match serde_json::to_string(v) {
            Ok(s) => out.push_str(&s),
            Err(_) => out.push_str("\"\""),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, UNIX_EPOCH};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What the tracing-subscriber fmt layer of `ops::logging` writes for the event.
    fn via_tracing(format: LogFormat, line: &AccessLine<'_>) -> String {
        let capture = Capture::default();
        let c = capture.clone();
        let layer = crate::ops::logging::layer_for_tests(format, move || c.clone());
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("info"))
            .with(layer);
        tracing::subscriber::with_default(subscriber, || event(line));
        let bytes = capture.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    /// Replaces every `YYYY-MM-DDTHH:MM:SS.ffffffZ` with `<ts>`.
    fn without_timestamps(s: &str) -> String {
        let pattern = b"dddd-dd-ddTdd:dd:dd.ddddddZ";
        let b = s.as_bytes();
        let mut out = String::new();
        let mut i = 0;
        while i < b.len() {
            let is_ts = b.get(i..i + pattern.len()).is_some_and(|w| {
                w.iter().zip(pattern).all(|(c, p)| {
                    if *p == b'd' {
                        c.is_ascii_digit()
                    } else {
                        c == p
                    }
                })
            });
            if is_ts {
                out.push_str("<ts>");
                i += pattern.len();
            } else {
                let ch = s[i..].chars().next().unwrap();
                out.push(ch);
                i += ch.len_utf8();
            }
        }
        out
    }

    fn sample<'a>(user: &'a str, path: &'a str, sni: &'a str) -> AccessLine<'a> {
        AccessLine {
            client: "192.0.2.7".parse().unwrap(),
            sni,
            method: "POST",
            path,
            endpoint: "autodiscover.xml",
            user,
            outcome: "settings",
            stale: false,
            status: 200,
            latency_us: 1234,
        }
    }

    #[test]
    fn direct_lines_are_byte_for_byte_what_the_fmt_layer_wrote() {
        let lines = [
            sample("alice@contoso.com", "/autodiscover/autodiscover.xml", "-"),
            sample(
                "-",
                "/Autodiscover/Autodiscover.xml",
                "autodiscover.contoso.com",
            ),
            // Escapes: quotes, backslash, control characters, non-ASCII, spaces, `=`.
            sample("a\"b\\c", "/autodiscover/a%20b", "x y=z"),
            sample("tab\there\nnew\u{1b}[31m", "/p", "ünïcödé"),
            sample("", "/", ""),
            AccessLine {
                client: "2001:db8::1".parse().unwrap(),
                method: "OPTIONS",
                status: 404,
                latency_us: 0,
                outcome: "not_found",
                endpoint: "other",
                ..sample("-", "/x", "-")
            },
            AccessLine {
                stale: true,
                ..sample("alice@contoso.com", "/autodiscover/autodiscover.xml", "-")
            },
        ];
        for format in [LogFormat::Text, LogFormat::Json, LogFormat::Logfmt] {
            for line in &lines {
                let expected = via_tracing(format, line);
                let mut direct = String::new();
                format_line(&mut direct, format, SystemTime::now(), line);
                assert_eq!(
                    without_timestamps(&direct),
                    without_timestamps(&expected),
                    "{format:?}"
                );
                assert!(expected.contains("<ts>") || without_timestamps(&expected) != expected);
            }
        }
    }

    #[test]
    fn json_lines_parse_with_every_field() {
        let mut out = String::new();
        let line = sample("a\"b", "/autodiscover/autodiscover.xml", "-");
        format_line(&mut out, LogFormat::Json, SystemTime::now(), &line);
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(v["target"], "access");
        assert_eq!(v["user"], "a\"b");
        assert_eq!(v["status"], 200);
        assert_eq!(v["latency_us"], 1234);
        assert_eq!(v["client"], "192.0.2.7");
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let ts = |secs: u64, micros: u64| {
            let mut s = String::new();
            timestamp(
                &mut s,
                UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros),
            );
            s
        };
        assert_eq!(ts(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(ts(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(ts(1_795_618_121, 214_225), "2026-11-25T14:48:41.214225Z");
        assert_eq!(ts(4_102_444_799, 999_999), "2099-12-31T23:59:59.999999Z");
    }
}
