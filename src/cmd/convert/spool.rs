//! The spool: encoded crops parked in a temporary file in the output
//! directory while the sources are read, so memory holds only their offsets
//! whatever the size of the dataset. Removed when dropped.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Where a crop sits in the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpoolRef {
    pub offset: u64,
    pub len: u32,
}

pub(crate) struct Spool {
    path: PathBuf,
    writer: Option<BufWriter<File>>,
    reader: Option<File>,
    len: u64,
}

impl Spool {
    /// A new, empty spool file in `dir`.
    pub fn create(dir: &Path) -> io::Result<Spool> {
        let path = dir.join(format!(".facekit-spool-{}", std::process::id()));
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        Ok(Spool {
            path,
            writer: Some(BufWriter::with_capacity(1 << 20, file)),
            reader: None,
            len: 0,
        })
    }

    pub(crate) fn append(&mut self, bytes: &[u8]) -> io::Result<SpoolRef> {
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| io::Error::other("spool is closed for writing"))?;
        writer.write_all(bytes)?;
        let at = SpoolRef {
            offset: self.len,
            len: bytes.len() as u32,
        };
        self.len += bytes.len() as u64;
        Ok(at)
    }

    /// Reads a crop back; the first read ends the writing.
    pub fn read(&mut self, at: SpoolRef) -> io::Result<Vec<u8>> {
        if let Some(writer) = self.writer.take() {
            self.reader = Some(writer.into_inner().map_err(|e| e.into_error())?);
        }
        let file = self
            .reader
            .as_mut()
            .ok_or_else(|| io::Error::other("spool has no file"))?;
        file.seek(SeekFrom::Start(at.offset))?;
        let mut bytes = vec![0; at.len as usize];
        file.read_exact(&mut bytes)?;
        Ok(bytes)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        self.writer = None;
        self.reader = None;
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::create(dir.path()).unwrap();
        let a = spool.append(b"hello").unwrap();
        let b = spool.append(b"").unwrap();
        let c = spool.append(b"world!").unwrap();
        assert_eq!(spool.read(c).unwrap(), b"world!");
        assert_eq!(spool.read(a).unwrap(), b"hello");
        assert_eq!(spool.read(b).unwrap(), b"");
        assert!(spool.append(b"late").is_err());
        drop(spool);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
