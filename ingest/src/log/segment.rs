//! Segment files and their framing.
//!
//! A segment is `NNNNNNNNNNNNNNNNNNNN.log` (its id, 20 digits, so names sort
//! as ids): the 8-byte [`MAGIC`], then records. A record is its payload's
//! length (u32, little endian), a CRC-32 of the length bytes and the
//! payload (u32), then the payload. A frame that is cut short, has a length
//! of 0 or over [`MAX_RECORD_BYTES`], or fails its checksum ends the valid
//! part of a segment.

use std::{
    fs::{self, File},
    io::{self, BufReader, Read},
    path::{Path, PathBuf},
};

/// The first bytes of every segment (format version 1).
pub const MAGIC: &[u8; 8] = b"CSLOG\0\0\x01";
/// Bytes before the first record of a segment.
pub const HEADER_LEN: u64 = MAGIC.len() as u64;
/// Bytes before each record's payload: length and checksum.
pub const FRAME_HEADER_LEN: usize = 8;
/// Largest payload of one record (a pulse is at most
/// `limits::MAX_BODY_BYTES` of JSON, far less once encoded).
pub const MAX_RECORD_BYTES: u32 = 1 << 20;

pub fn path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.log"))
}

/// Ids of the segments in `dir`, ascending.
pub fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids: Vec<u64> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let name = name.to_str()?;
            let id = name.strip_suffix(".log")?;
            (id.len() == 20).then(|| id.parse().ok()).flatten()
        })
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Appends the frame of `payload` to `out`.
pub fn frame(payload: &[u8], out: &mut Vec<u8>) {
    let len = (payload.len() as u32).to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len);
    crc.update(payload);
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(payload);
}

/// Bytes `payload` takes in a segment.
pub fn framed_len(payload: &[u8]) -> u64 {
    (FRAME_HEADER_LEN + payload.len()) as u64
}

/// A segment read from an offset, record by record, never past a limit.
pub struct Reader {
    file: BufReader<io::Take<File>>,
    offset: u64,
}

/// What [`Reader::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// A whole record; the offset just past it.
    Record(Vec<u8>, u64),
    /// The end of the file, right after a whole record.
    End,
    /// Bytes that are not a whole, valid record, starting at this offset.
    Invalid(u64),
}

impl Reader {
    /// Opens segment `path` at `offset` (at least [`HEADER_LEN`]; the magic
    /// is checked either way), to read no byte at or past `limit`. (Bytes
    /// past the durable end may still be taken back by a failed write, so
    /// the shipper never buffers them.)
    pub fn open(path: &Path, offset: u64, limit: u64) -> io::Result<Self> {
        let mut file = File::open(path)?;
        let mut magic = [0u8; MAGIC.len()];
        file.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not a codestats log segment", path.display()),
            ));
        }
        let offset = offset.max(HEADER_LEN);
        io::Seek::seek(&mut file, io::SeekFrom::Start(offset))?;
        Ok(Self {
            file: BufReader::with_capacity(256 * 1024, file.take(limit.saturating_sub(offset))),
            offset,
        })
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn read_next(&mut self) -> io::Result<Next> {
        let mut head = [0u8; FRAME_HEADER_LEN];
        match read_full(&mut self.file, &mut head)? {
            0 => return Ok(Next::End),
            n if n < head.len() => return Ok(Next::Invalid(self.offset)),
            _ => {}
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len == 0 || len > MAX_RECORD_BYTES {
            return Ok(Next::Invalid(self.offset));
        }
        let mut payload = vec![0u8; len as usize];
        if read_full(&mut self.file, &mut payload)? < payload.len() {
            return Ok(Next::Invalid(self.offset));
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&head[..4]);
        hasher.update(&payload);
        if hasher.finalize() != crc {
            return Ok(Next::Invalid(self.offset));
        }
        self.offset += FRAME_HEADER_LEN as u64 + u64::from(len);
        Ok(Next::Record(payload, self.offset))
    }
}

/// Reads until `buf` is full or the file ends; the bytes read.
fn read_full(file: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The length of the valid part of segment `path`: its header and every
/// whole, valid record from the start. A file too short to hold the header
/// (a crash while it was created) has a valid length of 0.
pub fn valid_len(path: &Path) -> io::Result<u64> {
    if fs::metadata(path)?.len() < HEADER_LEN {
        return Ok(0);
    }
    let mut reader = Reader::open(path, HEADER_LEN, u64::MAX)?;
    loop {
        match reader.read_next()? {
            Next::Record(..) => {}
            Next::End => return Ok(reader.offset()),
            Next::Invalid(at) => return Ok(at),
        }
    }
}

/// Makes a new, empty segment durable: header written and synced, the
/// directory synced.
pub fn create(dir: &Path, id: u64) -> io::Result<File> {
    use std::io::Write;
    let path = path(dir, id);
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    file.write_all(MAGIC)?;
    file.sync_all()?;
    sync_dir(dir)?;
    drop(file);
    open_append(dir, id)
}

pub fn open_append(dir: &Path, id: u64) -> io::Result<File> {
    fs::OpenOptions::new().append(true).open(path(dir, id))
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_segment(dir: &Path, payloads: &[&[u8]]) -> (PathBuf, Vec<u64>) {
        let mut file = create(dir, 1).unwrap();
        let mut buf = Vec::new();
        let mut ends = Vec::new();
        for p in payloads {
            frame(p, &mut buf);
            ends.push(HEADER_LEN + buf.len() as u64);
        }
        file.write_all(&buf).unwrap();
        (path(dir, 1), ends)
    }

    #[test]
    fn records_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (path, ends) = write_segment(dir.path(), &[b"one", b"two", b"three"]);
        let mut reader = Reader::open(&path, HEADER_LEN, u64::MAX).unwrap();
        assert_eq!(
            reader.read_next().unwrap(),
            Next::Record(b"one".to_vec(), ends[0])
        );
        assert_eq!(
            reader.read_next().unwrap(),
            Next::Record(b"two".to_vec(), ends[1])
        );
        assert_eq!(
            reader.read_next().unwrap(),
            Next::Record(b"three".to_vec(), ends[2])
        );
        assert_eq!(reader.read_next().unwrap(), Next::End);
        assert_eq!(valid_len(&path).unwrap(), ends[2]);
        assert_eq!(list(dir.path()).unwrap(), vec![1]);
    }

    #[test]
    fn every_cut_of_the_tail_keeps_exactly_the_whole_records() {
        let dir = tempfile::tempdir().unwrap();
        let (path, ends) = write_segment(dir.path(), &[b"alpha", b"beta", b"gamma"]);
        let full = fs::read(&path).unwrap();
        for cut in HEADER_LEN as usize..=full.len() {
            fs::write(&path, &full[..cut]).unwrap();
            let expected = ends
                .iter()
                .copied()
                .filter(|end| *end <= cut as u64)
                .max()
                .unwrap_or(HEADER_LEN);
            assert_eq!(valid_len(&path).unwrap(), expected, "cut at {cut}");
        }
    }

    #[test]
    fn a_flipped_bit_or_zeroed_tail_ends_the_valid_part() {
        let dir = tempfile::tempdir().unwrap();
        let (path, ends) = write_segment(dir.path(), &[b"alpha", b"beta"]);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(valid_len(&path).unwrap(), ends[0]);
        // A tail of zeros, as a file system may leave after a crash.
        bytes[last] ^= 0x10;
        bytes.extend_from_slice(&[0u8; 64]);
        fs::write(&path, &bytes).unwrap();
        assert_eq!(valid_len(&path).unwrap(), ends[1]);
    }

    #[test]
    fn a_file_without_the_header_is_empty_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), 3);
        fs::write(&p, b"CSL").unwrap();
        assert_eq!(valid_len(&p).unwrap(), 0);
        fs::write(&p, b"NOTALOGSEGMENT").unwrap();
        assert!(valid_len(&p).is_err());
    }
}
