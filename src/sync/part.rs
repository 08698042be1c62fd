//! Filling a `.part` file at the machine's limit: the receive tasks, one writer thread and
//! one hasher thread overlap on the cores.
//!
//! - Receivers (one per connection, async) copy their chunks into batches of [`BATCH`] and
//!   hand each to the writer over a channel. At most [`in_flight`] bytes of a download are
//!   between the sockets and the disk (a semaphore of bytes: a batch per connection and four
//!   more), and at most [`HINTS`] more wait for the hasher: with 4 connections a download
//!   holds at most 3.25 MiB (2 MiB of batches, 1 MiB of hints, the hasher's read-back
//!   buffer), at any file size.
//! - The writer (a blocking thread) writes each batch at its offset with one `pwritev`,
//!   merging adjacent batches up to [`WRITE_MAX`], and starts their writeback at once
//!   (`sync_file_range` on Linux), waiting for the oldest when more than
//!   [`WRITEBACK_WINDOW`] is under way: the disk works while the network does, and the final
//!   fsync of a large file is short.
//! - The hasher (a blocking thread) hashes the file in order. Bytes at its frontier come
//!   straight from the writer (no re-read); bytes written ahead of it (other segments, or
//!   what a resumed part already holds) it reads back from the file when it gets there, while
//!   the network goes on.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, IoSlice};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;

use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::zoom::ChunkSink;

const MIB: usize = 1024 * 1024;
/// A receiver copies its chunks into batches of this size and sends each one when full.
/// Small enough that a download's memory stays a few MiB, large enough that a batch is one
/// cheap `pwritev` (adjacent ones are merged up to [`WRITE_MAX`]).
pub const BATCH: usize = 256 * 1024;
/// The most one `pwritev` writes (adjacent batches of one stream merged).
pub const WRITE_MAX: usize = MIB;
/// Written bytes held for the hasher (beyond this it reads them back from the file). At
/// least [`WRITE_MAX`]: a merged write larger than this would always be read back.
pub const HINTS: usize = MIB;

/// Bytes of one download between the sockets and the disk: a batch per connection and four
/// for the writer (so one stream still fills a [`WRITE_MAX`] write).
pub fn in_flight(connections: usize) -> usize {
    (connections.clamp(1, 16) + 4) * BATCH
}
/// Writeback started but not waited for; beyond it the writer waits for the oldest range.
pub const WRITEBACK_WINDOW: u64 = 32 * MIB as u64;
/// `pwritev` takes at most this many buffers (Linux's `IOV_MAX`).
const IOV_MAX: usize = 1024;

/// The file's bytes `0..len` and their SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    pub len: u64,
    pub sha256: String,
}

enum ToWriter {
    Data {
        offset: u64,
        chunks: Vec<Bytes>,
        len: usize,
        permit: OwnedSemaphorePermit,
    },
    /// Everything this sender sent before is written and durable (`fdatasync`) when answered.
    Flush {
        reply: oneshot::Sender<io::Result<()>>,
    },
}

struct ToHasher {
    offset: u64,
    len: u64,
    /// The bytes themselves, when the hint budget allowed; else the hasher reads them back.
    chunks: Option<Vec<Bytes>>,
}

/// One `.part` being filled: [`Part::sink`] for each connection, [`Part::finish`] at the end.
pub struct Part {
    tx: mpsc::UnboundedSender<ToWriter>,
    budget: Arc<Semaphore>,
    writer: JoinHandle<io::Result<()>>,
    hasher: JoinHandle<io::Result<Hashed>>,
}

impl Part {
    /// Starts the writer and the hasher on `file`. `on_file` are ranges the file already holds
    /// (a resumed part): the hasher reads them back as its frontier reaches them.
    /// `connections`: how many sinks will fill it at once (the budget gives each a batch
    /// and the writer two more).
    pub fn start(
        file: Arc<File>,
        on_file: impl IntoIterator<Item = Range<u64>>,
        connections: usize,
    ) -> Part {
        let (tx, rx) = mpsc::unbounded_channel();
        let (htx, hrx) = std_mpsc::channel();
        let hints = Arc::new(AtomicUsize::new(0));
        let mut ranges = RangeSet::default();
        for r in on_file {
            ranges.insert(r.start, r.end);
        }
        let writer = {
            let (file, hints) = (file.clone(), hints.clone());
            tokio::task::spawn_blocking(move || write_loop(&file, rx, &htx, &hints))
        };
        let hasher = tokio::task::spawn_blocking(move || hash_loop(&file, &hrx, &hints, ranges));
        Part {
            tx,
            budget: Arc::new(Semaphore::new(in_flight(connections))),
            writer,
            hasher,
        }
    }

    /// Where one answer's body goes: bytes from `offset`, never past `limit`.
    pub fn sink(&self, offset: u64, limit: u64) -> PartSink {
        PartSink {
            tx: self.tx.clone(),
            budget: self.budget.clone(),
            start: offset,
            offset,
            limit,
            buf: BytesMut::new(),
            cap: 0,
            permit: None,
        }
    }

    /// Waits until everything sent so far (by any sink that has sent it) is written, then
    /// fsyncs the file's data: what was sent before is on disk when this returns.
    pub async fn flush(&self) -> io::Result<()> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(ToWriter::Flush { reply })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Waits for the writer and the hasher to finish (every sink must be gone): the hash of
    /// the file's contiguous bytes from 0. A write error comes first: it is the cause of
    /// whatever else failed.
    pub async fn finish(self) -> io::Result<Hashed> {
        drop(self.tx);
        let written = self.writer.await.map_err(io::Error::other)?;
        let hashed = self.hasher.await.map_err(io::Error::other)?;
        written?;
        hashed
    }
}

fn stopped() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the part's writer stopped")
}

/// One connection's bytes into the part, in order from where its answer starts.
pub struct PartSink {
    tx: mpsc::UnboundedSender<ToWriter>,
    budget: Arc<Semaphore>,
    start: u64,
    offset: u64,
    limit: u64,
    /// The batch being filled, `cap` bytes at most, and the budget it holds.
    buf: BytesMut,
    cap: usize,
    permit: Option<OwnedSemaphorePermit>,
}

impl PartSink {
    /// Bytes taken so far.
    pub fn received(&self) -> u64 {
        self.offset - self.start
    }

    fn send(&mut self) -> io::Result<()> {
        let Some(permit) = self.permit.take() else {
            return Ok(());
        };
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = self.buf.split().freeze();
        let len = data.len();
        self.tx
            .send(ToWriter::Data {
                offset: self.offset - len as u64,
                chunks: vec![data],
                len,
                permit,
            })
            .map_err(|_| stopped())
    }

    /// Sends what is batched; returns the bytes taken.
    pub fn finish(mut self) -> io::Result<u64> {
        self.send()?;
        Ok(self.received())
    }
}

impl ChunkSink for PartSink {
    fn pause(&mut self) -> io::Result<()> {
        self.send()
    }

    /// Copies the chunk into the sink's own batch: the HTTP stack's read buffers are free
    /// again at once, and what a download holds is exactly what the budget counts.
    async fn put(&mut self, chunk: Bytes) -> io::Result<()> {
        let n = chunk.len() as u64;
        if self.offset.saturating_add(n) > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the server sent more than the {} bytes asked for",
                    self.limit - self.start
                ),
            ));
        }
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            if self.permit.is_none() {
                // A new batch: its share of the budget first. A sink waits here holding
                // nothing, and one that holds a batch needs only its socket to fill it.
                let left = usize::try_from(self.limit - self.offset).unwrap_or(usize::MAX);
                self.cap = BATCH.min(left).max(1);
                let permits = u32::try_from(self.cap).unwrap_or(u32::MAX);
                let permit = self
                    .budget
                    .clone()
                    .acquire_many_owned(permits)
                    .await
                    .map_err(|_| stopped())?;
                self.permit = Some(permit);
                self.buf.reserve(self.cap);
            }
            let k = (self.cap - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..k]);
            rest = &rest[k..];
            self.offset += k as u64;
            if self.buf.len() >= self.cap {
                self.send()?;
            }
        }
        Ok(())
    }
}

fn write_loop(
    file: &File,
    mut rx: mpsc::UnboundedReceiver<ToWriter>,
    hasher: &std_mpsc::Sender<ToHasher>,
    hints: &AtomicUsize,
) -> io::Result<()> {
    let mut wb = Writeback::default();
    let mut pending = None;
    loop {
        let msg = match pending.take() {
            Some(m) => m,
            None => match rx.blocking_recv() {
                Some(m) => m,
                None => return Ok(()),
            },
        };
        match msg {
            ToWriter::Flush { reply } => {
                let r = wb.wait_all(file).and_then(|()| file.sync_data());
                let failed = r
                    .as_ref()
                    .err()
                    .map(|e| io::Error::new(e.kind(), e.to_string()));
                let _ = reply.send(r);
                if let Some(e) = failed {
                    return Err(e);
                }
            }
            ToWriter::Data {
                offset,
                mut chunks,
                mut len,
                permit,
            } => {
                let mut permits = vec![permit];
                // Adjacent batches (one stream) become one larger write.
                while len < WRITE_MAX {
                    match rx.try_recv() {
                        Ok(ToWriter::Data {
                            offset: o,
                            chunks: c,
                            len: l,
                            permit: p,
                        }) if o == offset + len as u64 => {
                            chunks.extend(c);
                            len += l;
                            permits.push(p);
                        }
                        Ok(other) => {
                            pending = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                write_all_at(file, &chunks, offset)?;
                wb.wrote(file, offset, len as u64)?;
                let keep = hints.fetch_add(len, Ordering::AcqRel) + len <= HINTS;
                if !keep {
                    hints.fetch_sub(len, Ordering::AcqRel);
                }
                // A hasher that is gone has failed; its error comes out of `finish`.
                let _ = hasher.send(ToHasher {
                    offset,
                    len: len as u64,
                    chunks: keep.then_some(chunks),
                });
                drop(permits);
            }
        }
    }
}

/// `pwritev` until every byte of `chunks` is at `offset..`.
fn write_all_at(file: &File, chunks: &[Bytes], mut offset: u64) -> io::Result<()> {
    let mut first = 0usize; // the chunk being written
    let mut skip = 0usize; // bytes of it already written
    while first < chunks.len() {
        let slices: Vec<IoSlice<'_>> = chunks[first..]
            .iter()
            .take(IOV_MAX)
            .enumerate()
            .map(|(i, c)| IoSlice::new(if i == 0 { &c[skip..] } else { c }))
            .collect();
        let at = i64::try_from(offset).map_err(io::Error::other)?;
        let mut n = match nix::sys::uio::pwritev(file, &slices, at) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        offset += n as u64;
        while n > 0 && first < chunks.len() {
            let left = chunks[first].len() - skip;
            if n >= left {
                n -= left;
                first += 1;
                skip = 0;
            } else {
                skip += n;
                n = 0;
            }
        }
        while first < chunks.len() && chunks[first].len() == skip {
            first += 1;
            skip = 0;
        }
    }
    Ok(())
}

/// Write-behind: writeback of each range starts when it is written; the oldest is waited for
/// once more than [`WRITEBACK_WINDOW`] is under way.
#[derive(Default)]
struct Writeback {
    queue: VecDeque<(u64, u64)>,
    queued: u64,
    /// The file system does not do `sync_file_range`: the final fsync does it all.
    unsupported: bool,
}

impl Writeback {
    fn wrote(&mut self, file: &File, offset: u64, len: u64) -> io::Result<()> {
        if self.unsupported {
            return Ok(());
        }
        if !self.range(file, offset, len, false)? {
            return Ok(());
        }
        self.queue.push_back((offset, len));
        self.queued += len;
        while self.queued > WRITEBACK_WINDOW {
            let Some((o, l)) = self.queue.pop_front() else {
                break;
            };
            self.queued -= l;
            self.range(file, o, l, true)?;
        }
        Ok(())
    }

    fn wait_all(&mut self, file: &File) -> io::Result<()> {
        while let Some((o, l)) = self.queue.pop_front() {
            self.range(file, o, l, true)?;
        }
        self.queued = 0;
        Ok(())
    }

    /// Starts (or with `wait`, finishes) writeback of a range; false when unsupported.
    fn range(&mut self, file: &File, offset: u64, len: u64, wait: bool) -> io::Result<bool> {
        match sync_file_range(file, offset, len, wait) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EIO) => Err(e),
            Err(_) => {
                self.unsupported = true;
                Ok(false)
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn sync_file_range(file: &File, offset: u64, len: u64, wait: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let flags = if wait {
        libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER
    } else {
        libc::SYNC_FILE_RANGE_WRITE
    };
    let (Ok(off), Ok(n)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(io::ErrorKind::InvalidInput.into());
    };
    // SAFETY: a plain system call on a file descriptor this `File` keeps open; no memory is
    // passed.
    let r = unsafe { libc::sync_file_range(file.as_raw_fd(), off, n, flags) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn sync_file_range(_: &File, _: u64, _: u64, _: bool) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// The hasher's state: `sha` covers the file's bytes `0..hashed`.
struct Frontier {
    sha: Sha256,
    hashed: u64,
    on_file: RangeSet,
}

impl Frontier {
    /// Bytes at `offset`: hashed now when they are the next ones, else remembered as on file.
    fn take(&mut self, m: ToHasher, hints: &AtomicUsize) {
        if let Some(chunks) = m.chunks {
            hints.fetch_sub(m.len as usize, Ordering::AcqRel);
            if m.offset == self.hashed {
                self.hash(&chunks, m.len);
                return;
            }
        }
        self.on_file.insert(m.offset, m.offset + m.len);
        self.on_file.consume_to(self.hashed);
    }

    fn hash<B: AsRef<[u8]>>(&mut self, chunks: &[B], len: u64) {
        for c in chunks {
            self.sha.update(c);
        }
        self.hashed += len;
        self.on_file.consume_to(self.hashed);
    }
}

fn hash_loop(
    file: &File,
    rx: &std_mpsc::Receiver<ToHasher>,
    hints: &AtomicUsize,
    on_file: RangeSet,
) -> io::Result<Hashed> {
    let mut f = Frontier {
        sha: Sha256::new(),
        hashed: 0,
        on_file,
    };
    let mut scratch = Vec::new();
    let mut open = true;
    loop {
        loop {
            match rx.try_recv() {
                Ok(m) => f.take(m, hints),
                Err(std_mpsc::TryRecvError::Empty) => break,
                Err(std_mpsc::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if let Some(end) = f.on_file.run_at(f.hashed) {
            // Written ahead of the frontier: read it back a batch at a time, so bytes that
            // arrive at the frontier meanwhile are hashed from memory.
            let n = (end - f.hashed).min(BATCH as u64) as usize;
            scratch.resize(n, 0);
            file.read_exact_at(&mut scratch, f.hashed)?;
            f.hash(&[&scratch], n as u64);
            continue;
        }
        if !open {
            break;
        }
        match rx.recv() {
            Ok(m) => f.take(m, hints),
            Err(_) => open = false,
        }
    }
    Ok(Hashed {
        len: f.hashed,
        sha256: hex::encode(f.sha.finalize()),
    })
}

/// Disjoint byte ranges, merged when they touch.
#[derive(Debug, Default)]
struct RangeSet(BTreeMap<u64, u64>);

impl RangeSet {
    fn insert(&mut self, mut start: u64, mut end: u64) {
        if start >= end {
            return;
        }
        // Merge with every range that overlaps or touches.
        let touching: Vec<(u64, u64)> = self
            .0
            .range(..=end)
            .rev()
            .take_while(|(_, e)| **e >= start)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in touching {
            self.0.remove(&s);
            start = start.min(s);
            end = end.max(e);
        }
        self.0.insert(start, end);
    }

    /// The end of the range that holds `at`, if one does.
    fn run_at(&self, at: u64) -> Option<u64> {
        self.0
            .range(..=at)
            .next_back()
            .and_then(|(_, e)| (*e > at).then_some(*e))
    }

    /// Forgets everything below `at`.
    fn consume_to(&mut self, at: u64) {
        while let Some((&s, &e)) = self.0.first_key_value() {
            if s >= at {
                break;
            }
            self.0.remove(&s);
            if e > at {
                self.0.insert(at, e);
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_are_consumed() {
        let mut r = RangeSet::default();
        r.insert(10, 20);
        r.insert(30, 40);
        r.insert(20, 30);
        assert_eq!(r.0.len(), 1);
        assert_eq!(r.run_at(10), Some(40));
        assert_eq!(r.run_at(40), None);
        assert_eq!(r.run_at(5), None);
        r.consume_to(25);
        assert_eq!(r.run_at(25), Some(40));
        r.insert(50, 60);
        r.consume_to(55);
        assert_eq!(r.0.into_iter().collect::<Vec<_>>(), vec![(55, 60)]);
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// Segments written out of order, some already in the file, chunks of odd sizes: the
    /// file and its hash are exactly the data.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn out_of_order_segments_hash_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.part");
        let want = data(5 * MIB + 12_345);
        let file = Arc::new(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .unwrap(),
        );
        file.set_len(want.len() as u64).unwrap();
        // The second of four segments is "already there" (a resumed part).
        let seg = want.len().div_ceil(4);
        file.write_all_at(&want[seg..2 * seg], seg as u64).unwrap();
        let part = Part::start(file.clone(), std::iter::once(seg as u64..2 * seg as u64), 3);
        let mut tasks = Vec::new();
        for i in [3usize, 0, 2] {
            let (a, b) = (i * seg, ((i + 1) * seg).min(want.len()));
            let mut sink = part.sink(a as u64, b as u64);
            let bytes = want[a..b].to_vec();
            tasks.push(tokio::spawn(async move {
                for c in bytes.chunks(77_777) {
                    sink.put(Bytes::copy_from_slice(c)).await.unwrap();
                }
                sink.finish().unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        part.flush().await.unwrap();
        let hashed = part.finish().await.unwrap();
        assert_eq!(hashed.len, want.len() as u64);
        assert_eq!(hashed.sha256, hex::encode(Sha256::digest(&want)));
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }

    #[tokio::test]
    async fn a_sink_refuses_more_than_its_range() {
        let dir = tempfile::tempdir().unwrap();
        let file = Arc::new(File::create(dir.path().join("y.part")).unwrap());
        let part = Part::start(file, [], 1);
        let mut sink = part.sink(0, 4);
        sink.put(Bytes::from_static(b"abc")).await.unwrap();
        let e = sink.put(Bytes::from_static(b"de")).await.unwrap_err();
        assert!(e.to_string().contains("more than the 4 bytes"), "{e}");
        assert_eq!(sink.finish().unwrap(), 3);
        let hashed = part.finish().await.unwrap();
        assert_eq!(hashed.len, 3);
    }
}
