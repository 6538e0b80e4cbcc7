//! The log sink: lines are appended to an in-memory batch and one background thread writes
//! each batch to stderr with one `write(2)`. Request handlers never wait for the file or
//! journald (they used to write every access line synchronously under the stderr lock).
//!
//! Nothing is dropped: a producer that finds more than [`MAX_PENDING`] bytes waiting blocks
//! until the thread has written them (back-pressure instead of loss). [`flush`] waits until
//! everything handed over so far is written; `main` calls it before the process exits.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use tracing_subscriber::fmt::MakeWriter;

/// How long the thread collects lines after the first one of a batch arrived.
pub const BATCH_DELAY: std::time::Duration = std::time::Duration::from_millis(2);

/// Bytes waiting before producers block.
pub const MAX_PENDING: usize = 1 << 20;

#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    /// The thread holds a batch it has not finished writing.
    writing: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Signalled when `buf` becomes non-empty (the thread waits on it).
    ready: Condvar,
    /// Signalled after each batch is written (flush and blocked producers wait on it).
    written: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves plain bytes behind: still usable.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A [`MakeWriter`] appending whole lines to the shared batch.
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

static STDERR: OnceLock<Option<BatchWriter>> = OnceLock::new();

/// The process-wide writer to stderr (its thread starts on first use); `None` when the
/// thread cannot be started, in which case the caller writes to stderr directly.
pub fn stderr() -> Option<BatchWriter> {
    STDERR
        .get_or_init(|| BatchWriter::spawn(io::stderr).ok())
        .clone()
}

/// Hands one whole line to the stderr writer (directly to stderr when its thread could not
/// start), the way the `tracing` layer writes its lines.
pub fn write_line(line: &[u8]) {
    match stderr() {
        Some(w) => w.push(line),
        None => {
            let _ = io::stderr().write_all(line);
        }
    }
}

/// Waits until every line handed to the stderr writer so far is written.
pub fn flush() {
    if let Some(Some(w)) = STDERR.get() {
        w.flush_all();
    }
}

impl BatchWriter {
    /// Starts the writer thread over `sink` (called again for every batch).
    pub fn spawn<W, F>(sink: F) -> io::Result<BatchWriter>
    where
        W: Write,
        F: Fn() -> W + Send + 'static,
    {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            ready: Condvar::new(),
            written: Condvar::new(),
        });
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || run(&thread_shared, sink))?;
        Ok(BatchWriter { shared })
    }

    fn push(&self, line: &[u8]) {
        let mut p = self.shared.lock();
        while p.buf.len() >= MAX_PENDING {
            p = self
                .shared
                .written
                .wait(p)
                .unwrap_or_else(|e| e.into_inner());
        }
        let was_empty = p.buf.is_empty();
        p.buf.extend_from_slice(line);
        drop(p);
        // The thread only sleeps on an empty batch: one wake-up per batch, not per line.
        if was_empty {
            self.shared.ready.notify_one();
        }
    }

    /// Waits until the batch and the one being written are out.
    pub fn flush_all(&self) {
        let mut p = self.shared.lock();
        while !p.buf.is_empty() || p.writing {
            p = self
                .shared
                .written
                .wait(p)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

fn run<W: Write>(shared: &Shared, sink: impl Fn() -> W) {
    let mut batch = Vec::new();
    loop {
        {
            let mut p = shared.lock();
            p.writing = false;
            shared.written.notify_all();
            while p.buf.is_empty() {
                p = shared.ready.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            // Let a busy server add more lines first: at most one wake-up and one write per
            // BATCH_DELAY instead of one per line.
            p.writing = true;
            drop(p);
            std::thread::sleep(BATCH_DELAY);
            let mut p = shared.lock();
            std::mem::swap(&mut batch, &mut p.buf);
        }
        // Like a direct write to stderr, a failing sink loses the lines (nowhere to report).
        let mut out = sink();
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        if batch.capacity() > 4 * MAX_PENDING {
            batch = Vec::new();
        }
    }
}

/// One event's handle; tracing-subscriber formats a whole line and writes it in one call.
pub struct Line<'a>(&'a BatchWriter);

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut s = self.0.lock().unwrap();
            s.0.extend_from_slice(buf);
            s.1 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_arrives_whole_and_in_order_after_a_flush() {
        let sink = Sink::default();
        let s = sink.clone();
        let w = BatchWriter::spawn(move || s.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        w.make_writer()
                            .write_all(format!("thread={t} line={i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        w.flush_all();
        let (bytes, writes) = sink.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 8000);
        for t in 0..4 {
            let mine: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| l.starts_with(&format!("thread={t} ")))
                .collect();
            let expected: Vec<String> = (0..2000).map(|i| format!("thread={t} line={i}")).collect();
            assert_eq!(mine, expected);
        }
        assert!(writes <= 8000, "{writes} writes");
    }

    #[test]
    fn a_slow_sink_blocks_producers_instead_of_dropping_lines() {
        #[derive(Clone, Default)]
        struct Slow(Arc<Mutex<usize>>);
        impl Write for Slow {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                std::thread::sleep(std::time::Duration::from_millis(5));
                *self.0.lock().unwrap() += buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let slow = Slow::default();
        let s = slow.clone();
        let w = BatchWriter::spawn(move || s.clone()).unwrap();
        let line = vec![b'x'; 64 * 1024];
        for _ in 0..40 {
            w.make_writer().write_all(&line).unwrap();
            assert!(w.shared.lock().buf.len() <= MAX_PENDING + line.len());
        }
        w.flush_all();
        assert_eq!(*slow.0.lock().unwrap(), 40 * line.len());
    }
}
