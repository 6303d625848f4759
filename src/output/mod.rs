//! Writing outputs safely. A command owns its output folder through
//! [`OutputDir`] (stage aside, swap in whole, record what it wrote, one run
//! at a time: see [`owned`]); a single file is written under a temporary
//! name and renamed when complete ([`AtomicFile`]), so an interrupted run
//! never leaves a file that looks finished. Also the progress bar, shown
//! only on a terminal.

mod lock;
pub(crate) mod owned;

pub(crate) use owned::{claim, stale_source, Marker};
pub use owned::{OutputDir, OutputError};

use std::fs::{self, File};
use std::io::{self, BufWriter, IsTerminal, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};

/// A file being written; it appears under its final name only on `commit`.
/// Dropped without `commit`, the temporary file is removed.
pub(crate) struct AtomicFile {
    final_path: PathBuf,
    temp_path: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl AtomicFile {
    pub fn create(path: impl AsRef<Path>) -> io::Result<AtomicFile> {
        let final_path = path.as_ref().to_path_buf();
        let name = final_path
            .file_name()
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "output path has no file name")
            })?
            .to_string_lossy()
            .into_owned();
        let temp_path =
            final_path.with_file_name(format!(".{name}.partial-{}", std::process::id()));
        let file = File::create(&temp_path)?;
        Ok(AtomicFile {
            final_path,
            temp_path,
            writer: Some(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    /// Flushes, syncs and renames the file to its final name.
    pub(crate) fn commit(mut self) -> io::Result<()> {
        let writer = self.writer.take().expect("writer present until commit");
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&self.temp_path, &self.final_path)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer
            .as_mut()
            .expect("writer present until commit")
            .write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer
            .as_mut()
            .expect("writer present until commit")
            .flush()
    }
}

/// Seekable, for formats that patch headers after the data (zip).
impl Seek for AtomicFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.writer
            .as_mut()
            .expect("writer present until commit")
            .seek(pos)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = fs::remove_file(&self.temp_path);
        }
    }
}

/// Writes a whole file atomically.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)?;
    file.commit()
}

/// A progress bar on standard error when it is a terminal and not `quiet`;
/// a hidden one otherwise.
pub(crate) fn progress(len: u64, message: &str, quiet: bool) -> ProgressBar {
    if quiet || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
            .expect("valid progress template")
            .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}

/// A rayon pool of `jobs` threads (all cores when `None`).
pub(crate) fn thread_pool(jobs: Option<usize>) -> anyhow::Result<rayon::ThreadPool> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = jobs {
        anyhow::ensure!(n > 0, "--jobs must be at least 1");
        builder = builder.num_threads(n);
    }
    Ok(builder.build()?)
}

/// A count with thousands separators: "1,234,567".
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Writes `text` to stdout: every command's one way to print. A closed pipe
/// (`facekit inspect x | true`) comes back as a BrokenPipe error, which
/// `cli::main` ends quietly with success; `println!` would panic instead.
pub fn print(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}
