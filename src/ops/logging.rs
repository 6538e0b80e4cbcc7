//! tracing-subscriber setup. `RUST_LOG` overrides the default level (info). The line format
//! (`[log] format`: text, json or logfmt) can change at start and on reload.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::{Layer, Layered, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::config::LogFormat;

type Inner = Layered<EnvFilter, Registry>;
type Boxed = Box<dyn Layer<Inner> + Send + Sync>;

static FORMAT: OnceLock<reload::Handle<Boxed, Inner>> = OnceLock::new();

/// The format of the installed layer when lines may be formatted without it (see
/// [`direct_format`]): 0 none, else 1 + the [`LogFormat`] index.
static DIRECT: AtomicU8 = AtomicU8::new(0);

/// The line format, when the process's own subscriber is installed and writes without
/// colour: then `ops::access` formats access lines itself, byte for byte as the layer would,
/// and hands them to the same writer. `None`: emit a `tracing` event.
pub(crate) fn direct_format() -> Option<LogFormat> {
    match DIRECT.load(Ordering::Relaxed) {
        1 => Some(LogFormat::Text),
        2 => Some(LogFormat::Json),
        3 => Some(LogFormat::Logfmt),
        _ => None,
    }
}

fn set_direct(format: LogFormat) {
    use std::io::IsTerminal;
    let code = if std::io::stderr().is_terminal() {
        0
    } else {
        match format {
            LogFormat::Text => 1,
            LogFormat::Json => 2,
            LogFormat::Logfmt => 3,
        }
    };
    DIRECT.store(code, Ordering::Relaxed);
}

fn layer(format: LogFormat) -> Boxed {
    use std::io::IsTerminal;
    // Colour only on a terminal: journald and log files must not get escape codes.
    let ansi = std::io::stderr().is_terminal();
    // Lines go through the batching writer thread (one write per batch, handlers never
    // block on stderr); straight to stderr only if that thread cannot start.
    match super::log_writer::stderr() {
        Some(writer) => layer_with(format, writer, ansi),
        None => layer_with(format, std::io::stderr, ansi),
    }
}

/// The layer of `format` without colour, writing to `writer` (the reference the direct
/// access-line formatter is tested against).
#[cfg(test)]
pub(crate) fn layer_for_tests<W>(format: LogFormat, writer: W) -> Boxed
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    layer_with(format, writer, false)
}

fn layer_with<W>(format: LogFormat, writer: W, ansi: bool) -> Boxed
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let base = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => base.boxed(),
        LogFormat::Json => base
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .boxed(),
        LogFormat::Logfmt => base.event_format(Logfmt).boxed(),
    }
}

/// Waits until every log line so far is written (call before the process exits).
pub fn flush() {
    super::log_writer::flush();
}

/// Installs the global subscriber (text format); logs go to stderr (journald picks them up).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (format, handle) = reload::Layer::new(layer(LogFormat::Text));
    if tracing_subscriber::registry()
        .with(filter)
        .with(format)
        .try_init()
        .is_ok()
    {
        let _ = FORMAT.set(handle);
        set_direct(LogFormat::Text);
    }
}

/// Switches the line format (no-op when [`init`] did not install the subscriber).
pub fn set_format(format: LogFormat) {
    if let Some(handle) = FORMAT.get() {
        match handle.reload(layer(format)) {
            Ok(()) => set_direct(format),
            Err(e) => tracing::warn!(error = %e, "cannot switch the log format"),
        }
    }
}

/// `key=value` lines (logfmt): `ts=... level=info target=access msg=request client=...`.
struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut ts = String::new();
        SystemTime.format_time(&mut Writer::new(&mut ts))?;
        let meta = event.metadata();
        let mut line = format!(
            "ts={} level={} target={}",
            quote(&ts),
            meta.level().as_str().to_ascii_lowercase(),
            quote(meta.target())
        );
        event.record(&mut LogfmtFields(&mut line));
        writeln!(writer, "{line}")
    }
}

struct LogfmtFields<'a>(&'a mut String);

impl Visit for LogfmtFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let key = if field.name() == "message" {
            "msg"
        } else {
            field.name()
        };
        let _ = write!(self.0, " {key}={}", quote(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

/// Quotes a logfmt value when it is empty or holds spaces, `=`, quotes or control characters.
fn quote(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    push_quoted(&mut out, v);
    out
}

/// Appends `v` as a logfmt value, quoted only when needed (see [`quote`]).
pub(crate) fn push_quoted(out: &mut String, v: &str) {
    if !v.is_empty()
        && v.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '=' && c != '"')
    {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfmt_values_are_quoted_only_when_needed() {
        assert_eq!(quote("alice@contoso.com"), "alice@contoso.com");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(quote("k=v"), "\"k=v\"");
        assert_eq!(quote("say \"hi\"\n"), "\"say \\\"hi\\\"\\n\"");
        assert_eq!(quote("\u{1b}[31m"), "\"\\u{1b}[31m\"");
    }
}
