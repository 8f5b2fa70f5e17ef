//! The plumbing between ClickHouse's byte streams and a dump's files, run
//! on a blocking thread: bytes arrive and leave through bounded channels
//! ([`ChannelReader`], [`ChannelWriter`]), a [`Tee`] hands everything the
//! Native walker reads on to gzip or to the INSERT, and [`HashWriter`] /
//! [`HashReader`] take a file's SHA-256 and size as its bytes pass.

use sha2::{Digest, Sha256};
use std::{
    collections::VecDeque,
    io::{self, Read, Write},
};
use tokio::sync::mpsc;

/// Chunks of a stream waiting between the network and the file at most.
pub(crate) const CHANNEL_CHUNKS: usize = 16;
/// Bytes the walker reads at a time (and so the size of the chunks a
/// restore sends).
pub(crate) const READ_BUFFER: usize = 256 << 10;
/// The end of a stream kept to explain an error ClickHouse appended to it.
pub(crate) const TAIL_BYTES: usize = 4 << 10;

/// A `Read` over chunks received from a channel (an HTTP body read by an
/// async task); the end of the stream is the channel's closing. Keeps the
/// stream's last [`TAIL_BYTES`].
pub(crate) struct ChannelReader<T> {
    rx: mpsc::Receiver<T>,
    chunk: Option<T>,
    pos: usize,
    tail: VecDeque<u8>,
}

impl<T: AsRef<[u8]>> ChannelReader<T> {
    pub(crate) fn new(rx: mpsc::Receiver<T>) -> Self {
        Self {
            rx,
            chunk: None,
            pos: 0,
            tail: VecDeque::with_capacity(TAIL_BYTES),
        }
    }

    /// The last bytes of the stream received so far.
    pub(crate) fn tail(&self) -> Vec<u8> {
        self.tail.iter().copied().collect()
    }
}

impl<T: AsRef<[u8]>> Read for ChannelReader<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(chunk) = &self.chunk {
                let rest = &chunk.as_ref()[self.pos..];
                if !rest.is_empty() {
                    let n = rest.len().min(buf.len());
                    buf[..n].copy_from_slice(&rest[..n]);
                    self.pos += n;
                    return Ok(n);
                }
            }
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    let bytes = chunk.as_ref();
                    let keep = &bytes[bytes.len().saturating_sub(TAIL_BYTES)..];
                    let overflow = (self.tail.len() + keep.len()).saturating_sub(TAIL_BYTES);
                    self.tail.drain(..overflow);
                    self.tail.extend(keep);
                    self.chunk = Some(chunk);
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
    }
}

/// A `Write` that sends each write as a chunk to a channel (an INSERT's
/// body, sent by an async task). Fails once the receiver is gone.
pub(crate) struct ChannelWriter {
    tx: mpsc::Sender<Vec<u8>>,
}

impl ChannelWriter {
    pub(crate) fn new(tx: mpsc::Sender<Vec<u8>>) -> Self {
        Self { tx }
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx
            .blocking_send(buf.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the INSERT ended"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads from `inner` and writes every byte read to `sink` as well.
pub(crate) struct Tee<R, W> {
    inner: R,
    sink: W,
}

impl<R, W> Tee<R, W> {
    pub(crate) fn new(inner: R, sink: W) -> Self {
        Self { inner, sink }
    }

    pub(crate) fn into_parts(self) -> (R, W) {
        (self.inner, self.sink)
    }

    pub(crate) fn inner(&self) -> &R {
        &self.inner
    }
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sink.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// A file's SHA-256 (lowercase hex) and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Digested {
    pub sha256: String,
    pub bytes: u64,
}

/// Passes writes to `inner`, hashing and counting them.
pub(crate) struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    pub(crate) fn finish(self) -> (W, Digested) {
        (
            self.inner,
            Digested {
                sha256: hex::encode(self.hasher.finalize()),
                bytes: self.bytes,
            },
        )
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Passes reads from `inner`, hashing and counting them.
pub(crate) struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Reads what is left, then gives the digest of everything read.
    pub(crate) fn finish(mut self) -> io::Result<Digested> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(Digested {
            sha256: hex::encode(self.hasher.finalize()),
            bytes: self.bytes,
        })
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tee_and_hashes_see_every_byte() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut tee = Tee::new(HashReader::new(&data[..]), HashWriter::new(Vec::new()));
        let mut out = Vec::new();
        let mut buf = [0u8; 777];
        loop {
            let n = tee.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        let (reader, writer) = tee.into_parts();
        let (copy, written) = writer.finish();
        let read = reader.finish().unwrap();
        assert_eq!(out, data);
        assert_eq!(copy, data);
        assert_eq!(read, written);
        assert_eq!(read.bytes, data.len() as u64);
        assert_eq!(read.sha256, hex::encode(Sha256::digest(&data)));
    }

    #[test]
    fn channel_reader_reads_chunks_in_order_and_keeps_the_tail() {
        let (tx, rx) = mpsc::channel::<Vec<u8>>(4);
        let sender = std::thread::spawn(move || {
            for i in 0..10u8 {
                tx.blocking_send(vec![i; 1000]).unwrap();
            }
        });
        let mut reader = ChannelReader::new(rx);
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        sender.join().unwrap();
        assert_eq!(all.len(), 10_000);
        assert!(
            all.chunks(1000)
                .enumerate()
                .all(|(i, c)| c == vec![i as u8; 1000])
        );
        let tail = reader.tail();
        assert_eq!(tail.len(), TAIL_BYTES);
        assert_eq!(&tail[..], &all[all.len() - TAIL_BYTES..]);
    }
}
