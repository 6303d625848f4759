//! A byte range of a file, read in place with positioned reads: any number
//! of threads read members of one archive at once, none holding it in
//! memory.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

/// `len` bytes of `file` from `start`.
#[derive(Debug)]
pub(crate) struct Window {
    file: File,
    start: u64,
    len: u64,
}

impl Window {
    pub fn new(file: File, start: u64, len: u64) -> Window {
        Window { file, start, len }
    }

    /// The whole file.
    pub fn whole(file: File) -> io::Result<Window> {
        let len = file.metadata()?.len();
        Ok(Window::new(file, 0, len))
    }

    /// A reader of its own, positioned at the window's start.
    pub fn reader(&self) -> WindowReader<'_> {
        WindowReader {
            window: self,
            pos: 0,
        }
    }
}

/// A cursor on a [`Window`]; seeks are relative to the window.
pub(crate) struct WindowReader<'a> {
    window: &'a Window,
    pos: u64,
}

impl Read for WindowReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.window.len.saturating_sub(self.pos);
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if n == 0 {
            return Ok(0);
        }
        let got = read_at(
            &self.window.file,
            &mut buf[..n],
            self.window.start + self.pos,
        )?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Seek for WindowReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.window.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.pos = pos;
        Ok(pos)
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_and_seeks_inside_the_range_only() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"0123456789").unwrap();
        let window = Window::new(file, 2, 5);
        let mut reader = window.reader();
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"23456");
        assert_eq!(reader.seek(SeekFrom::End(-2)).unwrap(), 3);
        let mut two = [0u8; 4];
        assert_eq!(reader.read(&mut two).unwrap(), 2);
        assert_eq!(&two[..2], b"56");
        assert_eq!(reader.seek(SeekFrom::Current(-5)).unwrap(), 0);
        assert!(reader.seek(SeekFrom::Current(-1)).is_err());
        // Two readers of one window do not share a position.
        let mut other = window.reader();
        let mut one = [0u8; 1];
        other.read_exact(&mut one).unwrap();
        assert_eq!(&one, b"2");
    }
}
