//! A fault-tolerant zip reader. It lists every member the central directory
//! names (duplicates included, which the `zip` crate folds away), falls back
//! to walking the local headers when the central directory is gone (a
//! truncated download), and reads members one at a time with their CRC
//! checked. Faults are per member; nothing here ever writes a file, so a
//! member name is only ever a label.

use std::collections::HashSet;
use std::io::{self, Read, Seek, SeekFrom, Write};

use flate2::read::DeflateDecoder;

const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const DESCRIPTOR_SIG: u32 = 0x0807_4b50;
const LOCAL_HEADER_LEN: u64 = 30;
const FLAG_ENCRYPTED: u16 = 1;
const FLAG_DESCRIPTOR: u16 = 1 << 3;
const FLAG_UTF8: u16 = 1 << 11;
/// Largest buffer reserved up front from a size a header claims.
const MAX_PREALLOC: u64 = 64 << 20;
/// Larger than the directory of every K-Face image in one archive.
const MAX_CENTRAL_DIRECTORY: u64 = 1 << 30;

/// One member, as the central directory lists it or as a local header
/// announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name for display and path parsing: decoded (UTF-8, else CP949),
    /// backslashes turned into `/`.
    pub name: String,
    pub flags: u16,
    pub method: u16,
    pub crc32: u32,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
    /// Offset of the member's local header.
    pub header_offset: u64,
    /// Why this member cannot be read, known from the listing alone.
    pub fault: Option<ListingFault>,
}

impl Entry {
    pub fn is_dir(&self) -> bool {
        self.name.ends_with('/')
    }
}

/// Faults visible in the listing, before any data is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ListingFault {
    #[error("member name is absolute or contains `..`")]
    UnsafeName,
    #[error("duplicate member name (the first copy is used)")]
    Duplicate,
    #[error("encrypted member")]
    Encrypted,
    #[error("unsupported compression method {0}")]
    Method(u16),
}

/// Why one member could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MemberFault {
    #[error(transparent)]
    Listing(#[from] ListingFault),
    #[error("no local header at offset {0}")]
    BadLocalHeader(u64),
    #[error("member data truncated ({written} bytes recovered)")]
    Truncated {
        /// Bytes recovered and written out (raw bytes of a stored member,
        /// the inflated prefix of a deflated one).
        written: u64,
    },
    #[error("corrupt compressed data: {0}")]
    Corrupt(String),
    #[error("CRC mismatch (header {expected:08x}, data {actual:08x})")]
    Crc {
        expected: u32,
        actual: u32,
        written: u64,
    },
    #[error("size mismatch (header {expected} bytes, data {written} bytes)")]
    Size { expected: u64, written: u64 },
    #[error("inflates to more than {limit} bytes, the most read for one member")]
    OverLimit { limit: u64 },
    #[error("read error: {0}")]
    Io(#[from] io::Error),
}

impl MemberFault {
    /// How many bytes were written out despite the fault (a truncated,
    /// mis-sized or CRC-failing member), if any were.
    pub(crate) fn recovered(&self) -> Option<u64> {
        match *self {
            MemberFault::Truncated { written }
            | MemberFault::Crc { written, .. }
            | MemberFault::Size { written, .. }
                if written > 0 =>
            {
                Some(written)
            }
            _ => None,
        }
    }
}

/// All members of an archive, and how they were found.
#[derive(Debug, Clone)]
pub(crate) struct Listing {
    pub entries: Vec<Entry>,
    /// Set when the central directory was unusable and the members were
    /// recovered by walking local headers: the archive is damaged, and
    /// members after the damage are missing from the listing.
    pub salvaged: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ListError {
    #[error("not a zip archive (no central directory and no local header at the start)")]
    NotZip,
    #[error("read error: {0}")]
    Io(#[from] io::Error),
}

/// Lists an archive from its central directory, or, when that is missing or
/// unreadable, by walking its local headers from the start.
pub fn list<R: Read + Seek>(reader: &mut R) -> Result<Listing, ListError> {
    let len = reader.seek(SeekFrom::End(0))?;
    let central = match read_central_directory(reader, len) {
        Ok(entries) => return Ok(finish(entries, None)),
        Err(e) => e,
    };
    let entries = walk_local_headers(reader, len)?;
    if entries.is_empty() {
        return Err(ListError::NotZip);
    }
    Ok(finish(entries, Some(central)))
}

fn finish(mut entries: Vec<Entry>, salvaged: Option<String>) -> Listing {
    let mut seen = HashSet::new();
    for entry in &mut entries {
        let fault = if is_unsafe_name(&entry.name) {
            Some(ListingFault::UnsafeName)
        } else if !seen.insert(entry.name.clone()) {
            Some(ListingFault::Duplicate)
        } else if entry.flags & FLAG_ENCRYPTED != 0 {
            Some(ListingFault::Encrypted)
        } else if entry.method != 0 && entry.method != 8 {
            Some(ListingFault::Method(entry.method))
        } else {
            None
        };
        entry.fault = fault;
    }
    Listing { entries, salvaged }
}

/// Absolute (`/x`, `C:x`) or escaping (`..`) names. Nothing is ever written
/// from a member name, but such a member is not one of the dataset's.
pub(crate) fn is_unsafe_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    name.starts_with('/')
        || (bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic())
        || name.split('/').any(|part| part == "..")
}

/// Decodes a raw member name: the Info-ZIP Unicode Path field when present
/// and current, UTF-8 when flagged or valid, CP949 (the Korean Windows code
/// page) otherwise. Backslash separators become `/`.
pub(crate) fn decode_name(raw: &[u8], flags: u16, extra: &[u8]) -> String {
    let name = if let Some(unicode) = unicode_path(raw, extra) {
        unicode
    } else if flags & FLAG_UTF8 != 0 {
        String::from_utf8_lossy(raw).into_owned()
    } else {
        match std::str::from_utf8(raw) {
            Ok(s) => s.to_string(),
            Err(_) => encoding_rs::EUC_KR
                .decode_without_bom_handling(raw)
                .0
                .into_owned(),
        }
    };
    name.replace('\\', "/")
}

/// Extra field 0x7075: version 1, CRC-32 of the raw name, the UTF-8 name.
fn unicode_path(raw: &[u8], extra: &[u8]) -> Option<String> {
    let field = extra_fields(extra).find(|(id, _)| *id == 0x7075)?.1;
    if field.len() < 5 || field[0] != 1 || le32(&field[1..5]) != crc32fast::hash(raw) {
        return None;
    }
    String::from_utf8(field[5..].to_vec()).ok()
}

fn extra_fields(extra: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = extra;
    std::iter::from_fn(move || {
        if rest.len() < 4 {
            return None;
        }
        let id = le16(&rest[0..2]);
        let size = le16(&rest[2..4]) as usize;
        let body = rest.get(4..4 + size)?;
        rest = &rest[4 + size..];
        Some((id, body))
    })
}

/// Applies the zip64 extra field: each 32-bit field that reads 0xFFFFFFFF
/// is replaced by the next 64-bit value, in the order usize, csize, offset.
fn apply_zip64(extra: &[u8], usize_: &mut u64, csize: &mut u64, offset: Option<&mut u64>) {
    let Some((_, body)) = extra_fields(extra).find(|(id, _)| *id == 0x0001) else {
        return;
    };
    let mut values = body.chunks_exact(8).map(le64);
    for field in [Some(usize_), Some(csize), offset].into_iter().flatten() {
        if *field == 0xFFFF_FFFF {
            match values.next() {
                Some(v) => *field = v,
                None => return,
            }
        }
    }
}

fn le16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}
fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}
fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn read_at<R: Read + Seek>(reader: &mut R, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    reader.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; len];
    reader.read_exact(&mut buf)?;
    Ok(buf)
}

/// The central directory, with a one-line reason when it cannot be used.
fn read_central_directory<R: Read + Seek>(reader: &mut R, len: u64) -> Result<Vec<Entry>, String> {
    let io = |e: io::Error| format!("central directory unreadable: {e}");
    let tail_len = len.min(22 + 65_535);
    let tail = read_at(reader, len - tail_len, tail_len as usize).map_err(io)?;
    let eocd = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| {
            le32(&tail[i..]) == EOCD_SIG && i + 22 + le16(&tail[i + 20..]) as usize == tail.len()
        })
        .ok_or("no end of central directory record (archive truncated?)")?;
    let eocd_pos = len - tail_len + eocd as u64;
    let rec = &tail[eocd..eocd + 22];
    let mut count = le16(&rec[10..]) as u64;
    let mut cd_size = le32(&rec[12..]) as u64;
    let mut cd_offset = le32(&rec[16..]) as u64;
    let mut cd_end = eocd_pos;
    if eocd_pos >= 20 {
        let locator = read_at(reader, eocd_pos - 20, 20).map_err(io)?;
        if le32(&locator) == ZIP64_LOCATOR_SIG {
            let z64_pos = le64(&locator[8..]);
            let z64 = read_at(reader, z64_pos, 56).map_err(io)?;
            if le32(&z64) != ZIP64_EOCD_SIG {
                return Err("bad zip64 end of central directory record".into());
            }
            count = le64(&z64[32..]);
            cd_size = le64(&z64[40..]);
            cd_offset = le64(&z64[48..]);
            cd_end = z64_pos;
        }
    }
    // Data prepended to the archive (a self-extractor stub) shifts every
    // offset; the central directory's real start tells by how much.
    if cd_size > MAX_CENTRAL_DIRECTORY {
        return Err("implausible central directory size".into());
    }
    let cd_start = cd_end
        .checked_sub(cd_size)
        .ok_or("central directory size exceeds the archive")?;
    let shift = cd_start.wrapping_sub(cd_offset);
    // A shift in an archive that starts with a member is no stub: the end
    // record is that of a zip stored inside, which a cut at the end of a
    // stored member leaves last (a tier zip truncated there).
    if shift != 0 && le32(&read_at(reader, 0, 4).map_err(io)?) == LOCAL_SIG {
        return Err(
            "the last end record belongs to a zip stored inside (archive truncated?)".into(),
        );
    }
    let cd = read_at(reader, cd_start, cd_size as usize).map_err(io)?;
    let mut entries = Vec::with_capacity(count.min(1 << 20) as usize);
    let mut pos = 0usize;
    // The directory's size, not its 16-bit entry count, bounds the walk:
    // archives of over 65,535 members without zip64 wrap that count.
    while pos < cd.len() {
        let head = cd.get(pos..pos + 46).ok_or("central directory cut short")?;
        if le32(head) != CENTRAL_SIG {
            return Err("bad central directory entry".into());
        }
        let flags = le16(&head[8..]);
        let (nlen, xlen, clen) = (
            le16(&head[28..]) as usize,
            le16(&head[30..]) as usize,
            le16(&head[32..]) as usize,
        );
        let raw = cd
            .get(pos + 46..pos + 46 + nlen)
            .ok_or("central directory cut short")?;
        let extra = cd
            .get(pos + 46 + nlen..pos + 46 + nlen + xlen)
            .ok_or("central directory cut short")?;
        let mut usize_ = le32(&head[24..]) as u64;
        let mut csize = le32(&head[20..]) as u64;
        let mut offset = le32(&head[42..]) as u64;
        apply_zip64(extra, &mut usize_, &mut csize, Some(&mut offset));
        entries.push(Entry {
            name: decode_name(raw, flags, extra),
            flags,
            method: le16(&head[10..]),
            crc32: le32(&head[16..]),
            compressed_size: csize,
            uncompressed_size: usize_,
            header_offset: offset.wrapping_add(shift),
            fault: None,
        });
        pos += 46 + nlen + xlen + clen;
    }
    Ok(entries)
}

/// A local header: the entry it announces and where its data starts.
struct Local {
    entry: Entry,
    data_start: u64,
    /// Whether the local header has a zip64 field (8-byte descriptor sizes).
    zip64: bool,
}

fn read_local_header<R: Read + Seek>(reader: &mut R, offset: u64) -> io::Result<Option<Local>> {
    reader.seek(SeekFrom::Start(offset))?;
    let mut head = [0u8; LOCAL_HEADER_LEN as usize];
    reader.read_exact(&mut head)?;
    if le32(&head) != LOCAL_SIG {
        return Ok(None);
    }
    let flags = le16(&head[6..]);
    let (nlen, xlen) = (le16(&head[26..]) as usize, le16(&head[28..]) as usize);
    let mut rest = vec![0u8; nlen + xlen];
    reader.read_exact(&mut rest)?;
    let (raw, extra) = rest.split_at(nlen);
    let mut usize_ = le32(&head[22..]) as u64;
    let mut csize = le32(&head[18..]) as u64;
    let zip64 = extra_fields(extra).any(|(id, _)| id == 0x0001);
    apply_zip64(extra, &mut usize_, &mut csize, None);
    let entry = Entry {
        name: decode_name(raw, flags, extra),
        flags,
        method: le16(&head[8..]),
        crc32: le32(&head[14..]),
        compressed_size: csize,
        uncompressed_size: usize_,
        header_offset: offset,
        fault: None,
    };
    Ok(Some(Local {
        entry,
        data_start: offset + LOCAL_HEADER_LEN + (nlen + xlen) as u64,
        zip64,
    }))
}

/// Walks local headers from the start; stops at the central directory, at
/// the end of the data, or where the chain breaks. A member cut off by the
/// end of the archive is kept: reading it reports the truncation.
fn walk_local_headers<R: Read + Seek>(reader: &mut R, len: u64) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut pos = 0u64;
    while pos + LOCAL_HEADER_LEN <= len {
        let local = match read_local_header(reader, pos) {
            Ok(Some(local)) => local,
            Ok(None) => break,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        };
        let mut entry = local.entry;
        let mut next = local.data_start.saturating_add(entry.compressed_size);
        if entry.flags & FLAG_DESCRIPTOR != 0 {
            match find_descriptor(reader, local.data_start, len, local.zip64)? {
                Some(d) => {
                    entry.crc32 = d.crc32;
                    entry.compressed_size = d.compressed_size;
                    entry.uncompressed_size = d.uncompressed_size;
                    next = local.data_start + d.compressed_size + d.len;
                }
                None => {
                    // The sizes are unknown and the end is gone: the member
                    // runs to the end of what is left.
                    entry.compressed_size = len - local.data_start.min(len);
                    entry.uncompressed_size = u64::MAX;
                    entries.push(entry);
                    break;
                }
            }
        }
        entries.push(entry);
        pos = next;
    }
    Ok(entries)
}

struct Descriptor {
    crc32: u32,
    compressed_size: u64,
    uncompressed_size: u64,
    /// Bytes the descriptor itself takes.
    len: u64,
}

/// Finds the data descriptor that ends a member whose sizes the local
/// header left out: the first `PK\x07\x08` whose compressed-size field
/// equals its distance from the data start. Sizes are 32 or 64 bits; the
/// reading followed by a header signature (or the end) wins, then the one
/// the local header's zip64 field suggests.
fn find_descriptor<R: Read + Seek>(
    reader: &mut R,
    data_start: u64,
    len: u64,
    zip64: bool,
) -> io::Result<Option<Descriptor>> {
    const CHUNK: usize = 1 << 20;
    let sig = DESCRIPTOR_SIG.to_le_bytes();
    let mut pos = data_start;
    let mut buf = vec![0u8; CHUNK];
    while pos < len {
        let n = ((len - pos) as usize).min(buf.len());
        reader.seek(SeekFrom::Start(pos))?;
        reader.read_exact(&mut buf[..n])?;
        for i in 0..n.saturating_sub(3) {
            if buf[i..i + 4] != sig {
                continue;
            }
            let at = pos + i as u64;
            let distance = at - data_start;
            let d = read_at(reader, at + 4, 24.min((len - at - 4) as usize))?;
            let narrow = (d.len() >= 12 && le32(&d[4..]) as u64 == distance).then(|| Descriptor {
                crc32: le32(&d),
                compressed_size: distance,
                uncompressed_size: le32(&d[8..]) as u64,
                len: 16,
            });
            let wide = (d.len() >= 20 && le64(&d[4..]) == distance).then(|| Descriptor {
                crc32: le32(&d),
                compressed_size: distance,
                uncompressed_size: le64(&d[12..]),
                len: 24,
            });
            let followed = |desc: &Descriptor| {
                let next = (desc.len - 4) as usize;
                d.len() <= next
                    || d.get(next..next + 4)
                        .is_some_and(|b| is_header_sig(le32(b)))
            };
            let found = match (narrow, wide) {
                (Some(a), Some(b)) => Some(match (followed(&a), followed(&b)) {
                    (true, false) => a,
                    (false, true) => b,
                    _ if zip64 => b,
                    _ => a,
                }),
                (a, b) => a.or(b),
            };
            if found.is_some() {
                return Ok(found);
            }
        }
        if pos + n as u64 >= len {
            break;
        }
        pos += (n - 3) as u64;
    }
    Ok(None)
}

fn is_header_sig(sig: u32) -> bool {
    matches!(sig, LOCAL_SIG | CENTRAL_SIG | EOCD_SIG | ZIP64_EOCD_SIG)
}

/// Reads and checks one member into memory (at most `limit` bytes, see
/// [`copy_entry`]).
pub(crate) fn read_entry<R: Read + Seek>(
    reader: &mut R,
    entry: &Entry,
    limit: u64,
) -> Result<Vec<u8>, MemberFault> {
    let mut out = Vec::with_capacity(entry.uncompressed_size.min(limit).min(MAX_PREALLOC) as usize);
    copy_entry(reader, entry, limit, &mut out)?;
    Ok(out)
}

/// Streams one member into `out`, checking it: its local header, its data
/// (stored or deflated), its size and CRC. At most `limit` bytes are
/// inflated, even when the size is unknown (a member salvaged from a cut
/// archive), so memory never follows what a header claims. Returns the
/// number of bytes written; a fault says how many were written all the
/// same.
pub(crate) fn copy_entry<R: Read + Seek, W: Write>(
    reader: &mut R,
    entry: &Entry,
    limit: u64,
    out: &mut W,
) -> Result<u64, MemberFault> {
    if let Some(fault) = entry.fault {
        return Err(fault.into());
    }
    let end = reader.seek(SeekFrom::End(0))?;
    let start = data_start(reader, entry)?;
    let truncated = start.saturating_add(entry.compressed_size) > end;
    reader.seek(SeekFrom::Start(start))?;
    let mut raw = Read::take(&mut *reader, entry.compressed_size);
    let expected = entry.uncompressed_size;
    // One byte past the announced size (or the limit) shows a lying header
    // or an oversized member without inflating a bomb.
    let most = expected.min(limit).saturating_add(1);
    let mut sink = Checked {
        out,
        crc: crc32fast::Hasher::new(),
        written: 0,
    };
    let copied = match entry.method {
        0 => io::copy(&mut raw.take(most), &mut sink),
        _ => io::copy(&mut DeflateDecoder::new(&mut raw).take(most), &mut sink),
    };
    let written = sink.written;
    if written > limit {
        return Err(MemberFault::OverLimit { limit });
    }
    if truncated {
        return Err(MemberFault::Truncated { written });
    }
    match copied {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData
            ) =>
        {
            return Err(MemberFault::Corrupt(e.to_string()))
        }
        Err(e) => return Err(e.into()),
    }
    if expected != u64::MAX && written != expected {
        return Err(MemberFault::Size { expected, written });
    }
    let actual = sink.crc.finalize();
    if actual != entry.crc32 {
        return Err(MemberFault::Crc {
            expected: entry.crc32,
            actual,
            written,
        });
    }
    Ok(written)
}

/// Where a member's data starts, from its local header.
pub(crate) fn data_start<R: Read + Seek>(
    reader: &mut R,
    entry: &Entry,
) -> Result<u64, MemberFault> {
    match read_local_header(reader, entry.header_offset) {
        Ok(Some(local)) => Ok(local.data_start),
        Ok(None) => Err(MemberFault::BadLocalHeader(entry.header_offset)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Err(MemberFault::Truncated { written: 0 })
        }
        Err(e) => Err(e.into()),
    }
}

/// A writer that counts and checksums what passes through it.
struct Checked<'a, W> {
    out: &'a mut W,
    crc: crc32fast::Hasher,
    written: u64,
}

impl<W: Write> Write for Checked<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.crc.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
