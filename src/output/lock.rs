//! One run at a time per output folder: an advisory lock (`flock`) on
//! `DIR/.facekit-lock`, which holds the holder's command and pid for the
//! refusal message. The kernel drops the lock when its holder dies, so a
//! killed run never blocks the next one.

use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

pub(crate) const LOCK_FILE: &str = ".facekit-lock";

/// Held until dropped; the lock file is removed on release.
#[derive(Debug)]
pub(crate) struct DirLock {
    path: PathBuf,
    file: File,
}

/// Why a folder could not be locked.
#[derive(Debug)]
pub(crate) enum LockFailure {
    /// Another run holds it: what its lock file says (`facekit convert (pid 12)`).
    Held(String),
    Io(io::Error),
}

impl DirLock {
    pub(crate) fn acquire(dir: &Path, command: &str) -> Result<DirLock, LockFailure> {
        let path = dir.join(LOCK_FILE);
        loop {
            let mut file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(LockFailure::Io)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    let holder = holder.trim();
                    return Err(LockFailure::Held(if holder.is_empty() {
                        "another facekit run".into()
                    } else {
                        holder.to_string()
                    }));
                }
                Err(fs::TryLockError::Error(e)) => return Err(LockFailure::Io(e)),
            }
            // A releasing run unlinks the file it locked: a lock won on that
            // unlinked file guards nothing, so try again on the new one.
            if !same_file(&file, &path) {
                continue;
            }
            file.set_len(0).map_err(LockFailure::Io)?;
            file.rewind().map_err(LockFailure::Io)?;
            write!(file, "facekit {command} (pid {})", std::process::id())
                .map_err(LockFailure::Io)?;
            return Ok(DirLock { path, file });
        }
    }
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &File, path: &Path) -> bool {
    path.is_file()
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Unlink while still holding the lock, then let the close unlock it.
        let _ = fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_name() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path(), "convert").unwrap();
        match DirLock::acquire(dir.path(), "pairs") {
            Err(LockFailure::Held(holder)) => assert_eq!(
                holder,
                format!("facekit convert (pid {})", std::process::id())
            ),
            other => panic!("expected a refusal, got {other:?}"),
        }
        drop(first);
        assert!(!dir.path().join(LOCK_FILE).exists());
        let again = DirLock::acquire(dir.path(), "pairs").unwrap();
        drop(again);
    }
}
