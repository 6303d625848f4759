//! dmlc RecordIO, the container of MXNet `.rec` files (dmlc-core
//! `recordio.h`/`recordio.cc`), its `.idx` index (`key\toffset\n`), and the
//! MXNet image-record header `IRHeader` (`IfQQ`, 24 bytes).
//!
//! A record is one or more chunks `magic u32 | lrec u32 | data | zero pad to
//! 4 bytes`, with `lrec = cflag << 29 | len`. The writer escapes the magic
//! number wherever it occurs at a 4-byte-aligned offset in the payload: it
//! drops those 4 bytes and starts a new chunk (cflag 1 first, 2 middle, 3
//! last); the reader puts them back.

use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};

use thiserror::Error;

/// The RecordIO magic number; on disk `0a 23 d7 ce`.
pub const MAGIC: u32 = 0xCED7_230A;
/// Records must be shorter than 2^29 bytes (dmlc `WriteRecord`'s check).
pub(crate) const MAX_RECORD_LEN: usize = (1 << 29) - 1;
/// Size of the packed `IRHeader`.
pub(crate) const IR_HEADER_LEN: usize = 24;

const LEN_MASK: u32 = (1 << 29) - 1;

/// What is wrong with a `.rec`, a record in it, or a `.idx`, and where.
#[derive(Debug, Error)]
pub enum RecordIoError {
    #[error("I/O error at byte {offset}: {source}")]
    Io { offset: u64, source: io::Error },
    #[error("no RecordIO magic number at byte {offset} (found {found:#010x})")]
    BadMagic { offset: u64, found: u32 },
    #[error("record at byte {offset} is cut off: the file ends inside it")]
    Truncated { offset: u64 },
    #[error("chunk at byte {offset} has continuation flag {cflag}, expected {expected}")]
    BadFlag {
        offset: u64,
        cflag: u32,
        expected: &'static str,
    },
    #[error("record at byte {offset} is longer than RecordIO's limit of 2^29 bytes")]
    TooLong { offset: u64 },
    #[error("index line {line}: {problem}")]
    BadIndex { line: u64, problem: String },
    #[error("record of {len} bytes is too short for the 24-byte image header")]
    ShortHeader { len: usize },
    #[error(
        "image header has flag {flag} (a {flag}-float label) but the record holds only {len} bytes"
    )]
    ShortLabel { flag: u32, len: usize },
}

/// Writes records to a stream that starts at byte 0 of the `.rec`.
pub struct RecordWriter<W: Write> {
    inner: W,
    position: u64,
}

impl<W: Write> RecordWriter<W> {
    pub fn new(inner: W) -> RecordWriter<W> {
        RecordWriter { inner, position: 0 }
    }

    /// Appends one record and returns its offset (what the `.idx` lists).
    /// Payloads of 2^29 bytes or more are refused, as dmlc refuses them.
    pub fn write(&mut self, payload: &[u8]) -> io::Result<u64> {
        if payload.len() > MAX_RECORD_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a RecordIO record must be under 2^29 bytes, this one has {}",
                    payload.len()
                ),
            ));
        }
        let offset = self.position;
        let mut start = 0;
        for at in (0..payload.len() / 4 * 4).step_by(4) {
            if payload[at..at + 4] == MAGIC.to_le_bytes() {
                self.chunk(if start == 0 { 1 } else { 2 }, &payload[start..at])?;
                start = at + 4;
            }
        }
        self.chunk(if start == 0 { 0 } else { 3 }, &payload[start..])?;
        let pad = (4 - payload.len() % 4) % 4;
        self.inner.write_all(&[0u8; 3][..pad])?;
        self.position += pad as u64;
        Ok(offset)
    }

    fn chunk(&mut self, cflag: u32, data: &[u8]) -> io::Result<()> {
        self.inner.write_all(&MAGIC.to_le_bytes())?;
        self.inner
            .write_all(&(cflag << 29 | data.len() as u32).to_le_bytes())?;
        self.inner.write_all(data)?;
        self.position += 8 + data.len() as u64;
        Ok(())
    }

    /// Bytes written so far: the offset the next record will get.
    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

/// Reads records: one at a given offset (`read_at`), or each in turn
/// (`next_record`), from a stream positioned at byte 0.
pub struct RecordReader<R: Read> {
    inner: R,
    position: u64,
}

impl<R: Read> RecordReader<R> {
    pub fn new(inner: R) -> RecordReader<R> {
        RecordReader { inner, position: 0 }
    }

    /// The next record and its offset; `None` at a clean end of file.
    pub(crate) fn next_record(&mut self) -> Result<Option<(u64, Vec<u8>)>, RecordIoError> {
        let offset = self.position;
        let mut payload = Vec::new();
        let mut first = true;
        loop {
            let chunk_at = self.position;
            let mut head = [0u8; 8];
            let got = read_full(&mut self.inner, &mut head)
                .map_err(|source| RecordIoError::Io { offset, source })?;
            if got == 0 && first {
                return Ok(None);
            }
            if got < head.len() {
                return Err(RecordIoError::Truncated { offset });
            }
            let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            if magic != MAGIC {
                return Err(RecordIoError::BadMagic {
                    offset: chunk_at,
                    found: magic,
                });
            }
            let lrec = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
            let (cflag, len) = (lrec >> 29, (lrec & LEN_MASK) as usize);
            let (allowed, expected) = if first {
                ([0, 1], "0 or 1")
            } else {
                ([2, 3], "2 or 3")
            };
            if !allowed.contains(&cflag) {
                return Err(RecordIoError::BadFlag {
                    offset: chunk_at,
                    cflag,
                    expected,
                });
            }
            if payload.len() + len > MAX_RECORD_LEN {
                return Err(RecordIoError::TooLong { offset });
            }
            // Read through `take` so a corrupt length costs no more memory than the file holds.
            let start = payload.len();
            let padded = len.div_ceil(4) * 4;
            (&mut self.inner)
                .take(padded as u64)
                .read_to_end(&mut payload)
                .map_err(|source| RecordIoError::Io {
                    offset: chunk_at,
                    source,
                })?;
            if payload.len() - start < padded {
                return Err(RecordIoError::Truncated { offset });
            }
            payload.truncate(start + len);
            self.position += 8 + padded as u64;
            if cflag == 0 || cflag == 3 {
                return Ok(Some((offset, payload)));
            }
            payload.extend_from_slice(&MAGIC.to_le_bytes());
            first = false;
        }
    }

    /// Byte offset of the next record.
    pub fn position(&self) -> u64 {
        self.position
    }
}

impl<R: Read + Seek> RecordReader<R> {
    /// The record that starts at `offset` (an `.idx` entry).
    pub fn read_at(&mut self, offset: u64) -> Result<Vec<u8>, RecordIoError> {
        self.inner
            .seek(SeekFrom::Start(offset))
            .map_err(|source| RecordIoError::Io { offset, source })?;
        self.position = offset;
        self.next_record()?
            .map(|(_, payload)| payload)
            .ok_or(RecordIoError::Truncated { offset })
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// One `.idx` line: a record key and the byte offset of its first chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub key: u64,
    pub offset: u64,
}

/// Writes `.idx` lines `key\toffset\n` in the order given.
pub fn write_index(mut out: impl Write, entries: &[IndexEntry]) -> io::Result<()> {
    for entry in entries {
        writeln!(out, "{}\t{}", entry.key, entry.offset)?;
    }
    Ok(())
}

/// Reads a `.idx` as `MXIndexedRecordIO` does (`line.strip().split('\t')`,
/// two integers), in file order. Blank lines are errors (they crash Python).
pub fn read_index(input: impl BufRead) -> Result<Vec<IndexEntry>, RecordIoError> {
    let mut entries = Vec::new();
    for (number, line) in input.lines().enumerate() {
        let line_no = number as u64 + 1;
        let line = line.map_err(|e| RecordIoError::BadIndex {
            line: line_no,
            problem: e.to_string(),
        })?;
        let bad = |problem: String| RecordIoError::BadIndex {
            line: line_no,
            problem,
        };
        let mut fields = line.trim().split('\t');
        let mut number = |what: &str| -> Result<u64, RecordIoError> {
            let field = fields
                .next()
                .ok_or_else(|| bad(format!("no {what} (expected `key<TAB>offset`)")))?;
            field
                .parse()
                .map_err(|_| bad(format!("{what} {field:?} is not a non-negative integer")))
        };
        let key = number("key")?;
        let offset = number("offset")?;
        entries.push(IndexEntry { key, offset });
    }
    Ok(entries)
}

/// MXNet's `IRHeader`: `flag` 0 means the scalar `label`; `flag` n > 0 means
/// an n-float label vector follows the header (and `label` is 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IrHeader {
    pub flag: u32,
    pub label: f32,
    pub id: u64,
    pub id2: u64,
}

/// A record's label: scalar (flag 0, what facekit writes) or a vector.
#[derive(Debug, Clone, PartialEq)]
pub enum Label {
    Scalar(f32),
    Vector(Vec<f32>),
}

/// An unpacked image record: header, label and the image bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRecord<'a> {
    pub header: IrHeader,
    pub label: Label,
    pub image: &'a [u8],
}

/// `mx.recordio.pack(IRHeader(0, label, id, 0), image)`: a scalar-label
/// record (flag 0, `id2` 0), the insightface flat layout's record.
pub fn pack(label: f32, id: u64, image: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(IR_HEADER_LEN + image.len());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&label.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(image);
    out
}

/// `mx.recordio.unpack`: the header, the label (vector when flag > 0) and
/// the image bytes after them.
pub fn unpack(payload: &[u8]) -> Result<ImageRecord<'_>, RecordIoError> {
    let (head, rest) = payload
        .split_first_chunk::<IR_HEADER_LEN>()
        .ok_or(RecordIoError::ShortHeader { len: payload.len() })?;
    let u32_at = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let u64_at = |i: usize| u64::from(u32_at(i)) | u64::from(u32_at(i + 4)) << 32;
    let header = IrHeader {
        flag: u32_at(0),
        label: f32::from_bits(u32_at(4)),
        id: u64_at(8),
        id2: u64_at(16),
    };
    if header.flag == 0 {
        return Ok(ImageRecord {
            header,
            label: Label::Scalar(header.label),
            image: rest,
        });
    }
    let label_len = (header.flag as usize).saturating_mul(4);
    if label_len > rest.len() {
        return Err(RecordIoError::ShortLabel {
            flag: header.flag,
            len: payload.len(),
        });
    }
    let (floats, image) = rest.split_at(label_len);
    let label = floats
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(ImageRecord {
        header,
        label: Label::Vector(label),
        image,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    const M: [u8; 4] = MAGIC.to_le_bytes();

    fn write_all(payloads: &[Vec<u8>]) -> (Vec<u8>, Vec<u64>) {
        let mut writer = RecordWriter::new(Vec::new());
        let offsets = payloads.iter().map(|p| writer.write(p).unwrap()).collect();
        (writer.into_inner(), offsets)
    }

    fn read_all(bytes: &[u8]) -> Vec<(u64, Vec<u8>)> {
        let mut reader = RecordReader::new(bytes);
        std::iter::from_fn(|| reader.next_record().unwrap()).collect()
    }

    fn with_magic_at(len: usize, at: &[usize]) -> Vec<u8> {
        let mut p: Vec<u8> = (0..len).map(|i| (i * 7 + 1) as u8).collect();
        for &i in at {
            p[i..i + 4].copy_from_slice(&M);
        }
        p
    }

    #[test]
    fn plain_record_layout() {
        let (bytes, offsets) = write_all(&[b"hello".to_vec(), vec![], b"abcd".to_vec()]);
        assert_eq!(offsets, vec![0, 16, 24]);
        assert_eq!(
            &bytes[..16],
            &[0x0a, 0x23, 0xd7, 0xce, 5, 0, 0, 0, b'h', b'e', b'l', b'l', b'o', 0, 0, 0]
        );
        assert_eq!(&bytes[16..24], &[0x0a, 0x23, 0xd7, 0xce, 0, 0, 0, 0]);
        assert_eq!(bytes.len(), 36);
    }

    #[test]
    fn aligned_magic_is_escaped_as_dmlc_does() {
        // Magic at 0, in the middle and as the last aligned word of a 16-byte payload.
        let payload = with_magic_at(16, &[0, 8, 12]);
        let (bytes, _) = write_all(std::slice::from_ref(&payload));
        let lrec = |at: usize| u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap());
        // chunk 1: cflag 1, len 0; chunk 2: cflag 2, bytes 4..8; chunk 3: cflag 2, len 0; chunk 4: cflag 3, len 0.
        assert_eq!(lrec(0), 1 << 29);
        assert_eq!(lrec(8), 2 << 29 | 4);
        assert_eq!(&bytes[16..20], &payload[4..8]);
        assert_eq!(lrec(20), 2 << 29);
        assert_eq!(lrec(28), 3 << 29);
        assert_eq!(bytes.len(), 36);
        assert_eq!(read_all(&bytes), vec![(0, payload)]);
    }

    #[test]
    fn round_trips() {
        let payloads = vec![
            vec![],
            M.to_vec(),
            with_magic_at(64, &[0]),
            with_magic_at(64, &[28]),
            with_magic_at(64, &[60]),
            with_magic_at(67, &[0, 4, 32, 60]),
            with_magic_at(66, &[62]), // unaligned tail: not escaped
            with_magic_at(40, &[1]),  // unaligned: not escaped
            with_magic_at(40, &[18]),
            (0..1001).map(|i| (i % 251) as u8).collect(),
        ];
        let (bytes, offsets) = write_all(&payloads);
        assert_eq!(bytes.len() % 4, 0);
        let read = read_all(&bytes);
        assert_eq!(read.iter().map(|r| r.0).collect::<Vec<_>>(), offsets);
        assert_eq!(read.into_iter().map(|r| r.1).collect::<Vec<_>>(), payloads);
        let mut reader = RecordReader::new(Cursor::new(&bytes));
        for (offset, payload) in offsets.iter().zip(&payloads).rev() {
            assert_eq!(&reader.read_at(*offset).unwrap(), payload);
        }
        // Unaligned magic numbers stay in one chunk.
        let (single, _) = write_all(&[with_magic_at(40, &[1])]);
        assert_eq!(single.len(), 48);
    }

    #[test]
    fn damage_is_reported_with_its_offset() {
        let (bytes, offsets) = write_all(&[vec![9; 10], with_magic_at(20, &[8]), vec![5; 3]]);
        let truncated = &bytes[..bytes.len() - 2];
        let mut reader = RecordReader::new(truncated);
        reader.next_record().unwrap();
        reader.next_record().unwrap();
        assert!(
            matches!(reader.next_record(), Err(RecordIoError::Truncated { offset }) if offset == offsets[2])
        );

        let mut bad = bytes.clone();
        bad[offsets[1] as usize] ^= 1;
        let mut reader = RecordReader::new(Cursor::new(&bad));
        assert!(
            matches!(reader.read_at(offsets[1]), Err(RecordIoError::BadMagic { offset, .. }) if offset == offsets[1])
        );
        assert!(matches!(
            reader.read_at(3),
            Err(RecordIoError::BadMagic { offset: 3, .. })
        ));
        assert!(matches!(
            reader.read_at(1 << 20),
            Err(RecordIoError::Truncated { .. })
        ));

        // A continuation chunk where a record should start.
        let second_chunk = offsets[1] as usize + 8 + 8;
        let mut reader = RecordReader::new(Cursor::new(&bytes));
        assert!(matches!(
            reader.read_at(second_chunk as u64),
            Err(RecordIoError::BadFlag { cflag: 3, .. })
        ));
    }

    #[test]
    fn refuses_records_of_2_pow_29_bytes() {
        struct Sink;
        impl Write for Sink {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let big = vec![0u8; 1 << 29];
        let err = RecordWriter::new(Sink).write(&big).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(RecordWriter::new(Sink).write(&big[1..]).unwrap(), 0);
    }

    #[test]
    fn index_round_trip_and_errors() {
        let entries = vec![
            IndexEntry { key: 0, offset: 0 },
            IndexEntry {
                key: 7,
                offset: 1234,
            },
        ];
        let mut text = Vec::new();
        write_index(&mut text, &entries).unwrap();
        assert_eq!(text, b"0\t0\n7\t1234\n");
        assert_eq!(read_index(&text[..]).unwrap(), entries);
        assert_eq!(
            read_index(&b"3\t12\r\n"[..]).unwrap(),
            vec![IndexEntry { key: 3, offset: 12 }]
        );
        let err = read_index(&b"0\t0\n\n"[..]).unwrap_err();
        assert!(
            matches!(err, RecordIoError::BadIndex { line: 2, .. }),
            "{err}"
        );
        assert!(matches!(
            read_index(&b"0 0\n"[..]),
            Err(RecordIoError::BadIndex { line: 1, .. })
        ));
        assert!(matches!(
            read_index(&b"0\t-4\n"[..]),
            Err(RecordIoError::BadIndex { line: 1, .. })
        ));
    }

    #[test]
    fn ir_header_pack_unpack() {
        let payload = pack(41.0, 9, b"\xff\xd8jpeg");
        assert_eq!(payload.len(), 24 + 6);
        assert_eq!(&payload[..8], &[0, 0, 0, 0, 0, 0, 0x24, 0x42]);
        let record = unpack(&payload).unwrap();
        assert_eq!(
            record.header,
            IrHeader {
                flag: 0,
                label: 41.0,
                id: 9,
                id2: 0
            }
        );
        assert_eq!(record.label, Label::Scalar(41.0));
        assert_eq!(record.image, b"\xff\xd8jpeg");

        // insightface-style header record: flag 2, label vector [N+1, N+1+K], no image.
        let mut vector = Vec::new();
        vector.extend_from_slice(&2u32.to_le_bytes());
        vector.extend_from_slice(&0f32.to_le_bytes());
        vector.extend_from_slice(&0u64.to_le_bytes());
        vector.extend_from_slice(&1u64.to_le_bytes());
        vector.extend_from_slice(&101f32.to_le_bytes());
        vector.extend_from_slice(&111f32.to_le_bytes());
        let record = unpack(&vector).unwrap();
        assert_eq!(record.label, Label::Vector(vec![101.0, 111.0]));
        assert_eq!(record.header.id2, 1);
        assert!(record.image.is_empty());

        assert!(matches!(
            unpack(&payload[..23]),
            Err(RecordIoError::ShortHeader { len: 23 })
        ));
        assert!(matches!(
            unpack(&vector[..28]),
            Err(RecordIoError::ShortLabel { flag: 2, .. })
        ));
    }
}
