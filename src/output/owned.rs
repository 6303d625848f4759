//! Owned output folders: a command builds its whole output aside and swaps
//! it in when complete, records what it wrote, and replaces only that.
//!
//! ```no_run
//! # fn main() -> Result<(), facekit::output::OutputError> {
//! use facekit::output::OutputDir;
//! let out = OutputDir::begin("eval".as_ref(), "evaluate", true)?; // lock, clean up, stage
//! std::fs::write(out.stage().join("summary.json"), b"{}").unwrap(); // write under the stage
//! out.commit()?; // swap in, record the files in `eval/.facekit-evaluate.json`
//! # Ok(()) }
//! ```
//!
//! * `begin(dir, command, force)` creates `dir`, takes its lock (a second
//!   run is refused with one line naming the holder's pid), finishes or
//!   removes what dead runs left (staging folders, spools, `.partial-PID`
//!   files), and refuses when `dir` holds an earlier output of `command`
//!   unless `force` (commands whose output is cheap to remake pass `true`).
//! * Everything is written under `stage()`, a hidden folder inside `dir`
//!   (same file system, so the swap is renames). Dropped without `commit`,
//!   the stage is removed and `dir` is as it was.
//! * `commit()` refuses, with one line, to replace a file that this command
//!   did not write (a user's `train/notes.py` stays). It then writes a
//!   journal, the commit point: the old files of `command` go to a trash
//!   folder, the staged files take their place, the marker
//!   `.facekit-COMMAND.json` (command, facekit version, files) is written,
//!   and the journal removed. A run killed after the journal is finished by
//!   the next `begin`, one killed before it leaves the previous result: the
//!   folder holds one whole result or the other, never a mix.
//! * `fingerprint_of(file)`: the marker records a fingerprint of that staged
//!   file (convert: its manifest); `derived_from(dataset)` records the
//!   fingerprint of the dataset an output is made from, and [`stale_source`]
//!   says when that dataset has since been converted again.
//!
//! Other commands may share a folder (`pairs` writes beside `convert`'s
//! shards): each owns the files its marker lists.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::lock::{DirLock, LockFailure, LOCK_FILE};
use super::write_atomic;

const JOURNAL: &str = ".facekit-journal.json";
const STAGE_PREFIX: &str = ".facekit-stage-";
const TRASH_PREFIX: &str = ".facekit-trash-";
/// Temporary files of older runs: convert's spool and `AtomicFile`s.
const SPOOL_PREFIX: &str = ".facekit-spool-";
/// Markers listed in an error message before "…".
const LISTED: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{dir}: in use by {holder}; wait for it to finish or choose another output folder")]
    Locked { dir: PathBuf, holder: String },
    #[error("{dir}: already holds the output of an earlier facekit {command} ({files}); pass --force to replace it")]
    Taken {
        dir: PathBuf,
        command: String,
        files: String,
    },
    #[error("{path}: exists and was not written by facekit {command}; move it away or choose another output folder")]
    Foreign { path: PathBuf, command: String },
    #[error("{path}: not a record of a facekit run ({message}); remove it if the folder is yours")]
    BadMarker { path: PathBuf, message: String },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> OutputError + '_ {
    move |source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where a derived output came from: the dataset folder and its fingerprint
/// when the output was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub dir: PathBuf,
    pub command: String,
    pub fingerprint: String,
}

/// `.facekit-COMMAND.json`: what one run of `command` wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub command: String,
    pub facekit_version: String,
    /// Paths relative to the folder, `/`-separated, sorted.
    pub files: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derived_from: Option<Source>,
}

pub(crate) fn marker_path(dir: &Path, command: &str) -> PathBuf {
    dir.join(format!(".facekit-{command}.json"))
}

impl Marker {
    /// The marker of `command` in `dir`, if one is there.
    pub fn read(dir: &Path, command: &str) -> Result<Option<Marker>, OutputError> {
        read_json(&marker_path(dir, command))
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, OutputError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_at(path)(e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| OutputError::BadMarker {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), OutputError> {
    let text = serde_json::to_string_pretty(value).expect("markers serialise") + "\n";
    write_atomic(path, text.as_bytes()).map_err(io_at(path))
}

/// A commit in progress: written before the first rename, removed after the
/// last; whoever finds it (the next `begin`) finishes the swap.
#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    stage: String,
    trash: String,
    /// The files of the previous run of the same command.
    old: Vec<String>,
    marker: Marker,
}

/// One output folder, locked, with its stage; see the module documentation.
#[derive(Debug)]
pub struct OutputDir {
    dir: PathBuf,
    command: String,
    stage: PathBuf,
    old: Vec<String>,
    fingerprint_file: Option<String>,
    derived_from: Option<Source>,
    journaled: bool,
    /// Whether `begin` made the folder: a run that fails removes it again.
    created: bool,
    _lock: DirLock,
}

impl OutputDir {
    pub fn begin(dir: &Path, command: &str, force: bool) -> Result<OutputDir, OutputError> {
        let created = fs::symlink_metadata(dir).is_err();
        fs::create_dir_all(dir).map_err(io_at(dir))?;
        let lock = DirLock::acquire(dir, command).map_err(|failure| match failure {
            LockFailure::Held(holder) => OutputError::Locked {
                dir: dir.to_path_buf(),
                holder,
            },
            LockFailure::Io(source) => OutputError::Io {
                path: dir.join(LOCK_FILE),
                source,
            },
        })?;
        recover(dir)?;
        let old = Marker::read(dir, command)?.map_or_else(Vec::new, |m| m.files);
        if !old.is_empty() && !force {
            let mut files: Vec<&str> = old.iter().map(String::as_str).take(LISTED).collect();
            if old.len() > LISTED {
                files.push("…");
            }
            return Err(OutputError::Taken {
                dir: dir.to_path_buf(),
                command: command.to_string(),
                files: files.join(", "),
            });
        }
        let stage = dir.join(format!("{STAGE_PREFIX}{}", std::process::id()));
        fs::create_dir(&stage).map_err(io_at(&stage))?;
        Ok(OutputDir {
            dir: dir.to_path_buf(),
            command: command.to_string(),
            stage,
            old,
            fingerprint_file: None,
            derived_from: None,
            journaled: false,
            created,
            _lock: lock,
        })
    }

    /// The folder to write the output into.
    pub fn stage(&self) -> &Path {
        &self.stage
    }

    /// The final folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Refuses now, before the work, when a file this run will write is
    /// someone else's (`commit` checks every file again).
    pub fn check_free(&self, names: &[&str]) -> Result<(), OutputError> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        self.check_foreign(&names)
    }

    /// Records a fingerprint of this staged file (relative to the stage) in
    /// the marker, for outputs derived from this one to compare against.
    pub fn fingerprint_of(&mut self, file: &str) {
        self.fingerprint_file = Some(file.to_string());
    }

    /// Records that this output is made from the output of `command` in
    /// `source` (e.g. pairs from convert), with its current fingerprint; a
    /// source without one (written by an older facekit) records nothing.
    pub fn derived_from(&mut self, source: &Path, command: &str) -> Result<(), OutputError> {
        if let Some(fingerprint) = Marker::read(source, command)?.and_then(|m| m.fingerprint) {
            let dir = fs::canonicalize(source).map_err(io_at(source))?;
            self.derived_from = Some(Source {
                dir,
                command: command.to_string(),
                fingerprint,
            });
        }
        Ok(())
    }

    /// Records `source` as it is, not as the dataset is now: an output
    /// joined from parts keeps the source its parts were made from.
    pub(crate) fn keep_source(&mut self, source: Option<Source>) {
        self.derived_from = source;
    }

    /// Swaps the staged output in; returns the files written, relative to
    /// the folder.
    pub fn commit(mut self) -> Result<Vec<String>, OutputError> {
        let journal = self.write_journal()?;
        for step in steps(&self.dir, &journal) {
            step.apply(&self.dir, &journal)?;
        }
        Ok(journal.marker.files)
    }

    /// The commit point: the journal of the swap, once every check passed.
    fn write_journal(&mut self) -> Result<Journal, OutputError> {
        let files = staged_files(&self.stage)?;
        self.check_foreign(&files)?;
        let fingerprint = match &self.fingerprint_file {
            Some(name) => Some(fingerprint(&self.stage.join(name))?),
            None => None,
        };
        let journal = Journal {
            stage: file_name(&self.stage),
            trash: format!("{TRASH_PREFIX}{}", std::process::id()),
            old: std::mem::take(&mut self.old),
            marker: Marker {
                command: self.command.clone(),
                facekit_version: crate::VERSION.to_string(),
                files,
                fingerprint,
                derived_from: self.derived_from.take(),
            },
        };
        write_json(&self.dir.join(JOURNAL), &journal)?;
        // From here on the swap is the next run's to finish if this one fails.
        self.journaled = true;
        Ok(journal)
    }

    fn check_foreign(&self, files: &[String]) -> Result<(), OutputError> {
        let ours: BTreeSet<&str> = self.old.iter().map(String::as_str).collect();
        for file in files {
            let parts: Vec<&str> = file.split('/').collect();
            for depth in 1..=parts.len() {
                let rel = parts[..depth].join("/");
                let path = self.dir.join(&rel);
                let Ok(meta) = fs::symlink_metadata(&path) else {
                    break;
                };
                let is_last = depth == parts.len();
                if (is_last || !meta.is_dir()) && !ours.contains(rel.as_str()) {
                    return Err(OutputError::Foreign {
                        path,
                        command: self.command.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        // After a commit the stage is gone already; after a failure before
        // the journal it goes, and the folder is as it was.
        if !self.journaled {
            let _ = fs::remove_dir_all(&self.stage);
            if self.created {
                // Only the lock is left in a folder this run made.
                let _ = fs::remove_file(self.dir.join(LOCK_FILE));
                let _ = fs::remove_dir(&self.dir);
            }
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Every file under `stage`, relative and `/`-separated, sorted.
fn staged_files(stage: &Path) -> Result<Vec<String>, OutputError> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(stage)
        .min_depth(1)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(stage).to_path_buf();
            io_at(&path)(e.into())
        })?;
        if entry.file_type().is_dir() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(stage)
            .expect("walkdir stays under its root");
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        files.push(parts.join("/"));
    }
    files.sort();
    Ok(files)
}

/// A fingerprint of a file's content: CRC-32 and length. It tells one
/// conversion from another, not a forgery from the original.
fn fingerprint(path: &Path) -> Result<String, OutputError> {
    let mut file = fs::File::open(path).map_err(io_at(path))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io_at(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok(format!("crc32:{:08x}:{len}", hasher.finalize()))
}

/// One step of a swap. Each is idempotent given the journal, so a swap
/// interrupted anywhere is finished by running the remaining steps again.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// An old file goes to the trash.
    Retire(String),
    /// A staged file takes its place.
    Install(String),
    /// Folders left empty by the old files go (deepest first).
    Prune(String),
    WriteMarker,
    /// The journal, then the stage and the trash.
    Finish,
}

/// The steps still to do for `journal`, read from what is on disk.
fn steps(dir: &Path, journal: &Journal) -> Vec<Step> {
    let stage = dir.join(&journal.stage);
    let new: BTreeSet<&str> = journal.marker.files.iter().map(String::as_str).collect();
    let mut steps = Vec::new();
    // An old file still in place is one not yet retired; a path that is
    // also new is old only while its new file still waits in the stage.
    for old in &journal.old {
        let present = fs::symlink_metadata(dir.join(old)).is_ok();
        if present && (!new.contains(old.as_str()) || stage.join(old).exists()) {
            steps.push(Step::Retire(old.clone()));
        }
    }
    for file in &journal.marker.files {
        if fs::symlink_metadata(stage.join(file)).is_ok() {
            steps.push(Step::Install(file.clone()));
        }
    }
    let mut folders: BTreeSet<String> = BTreeSet::new();
    for old in &journal.old {
        let mut rel = old.as_str();
        while let Some((parent, _)) = rel.rsplit_once('/') {
            folders.insert(parent.to_string());
            rel = parent;
        }
    }
    let mut folders: Vec<String> = folders.into_iter().collect();
    folders.sort_by_key(|f| std::cmp::Reverse(f.matches('/').count()));
    steps.extend(folders.into_iter().map(Step::Prune));
    steps.push(Step::WriteMarker);
    steps.push(Step::Finish);
    steps
}

/// Renames `from` to `to`, creating `to`'s parent folders.
fn move_file(from: &Path, to: &Path) -> Result<(), OutputError> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(io_at(parent))?;
    }
    fs::rename(from, to).map_err(io_at(to))
}

impl Step {
    fn apply(&self, dir: &Path, journal: &Journal) -> Result<(), OutputError> {
        match self {
            Step::Retire(rel) => move_file(&dir.join(rel), &dir.join(&journal.trash).join(rel)),
            Step::Install(rel) => move_file(&dir.join(&journal.stage).join(rel), &dir.join(rel)),
            Step::Prune(rel) => {
                // Only an empty folder goes: a user's file keeps its folder.
                let _ = fs::remove_dir(dir.join(rel));
                Ok(())
            }
            Step::WriteMarker => {
                write_json(&marker_path(dir, &journal.marker.command), &journal.marker)
            }
            Step::Finish => {
                let path = dir.join(JOURNAL);
                fs::remove_file(&path).map_err(io_at(&path))?;
                for temp in [&journal.stage, &journal.trash] {
                    let _ = fs::remove_dir_all(dir.join(temp));
                }
                Ok(())
            }
        }
    }
}

/// Finishes a swap a dead run began, then removes what dead runs left.
/// Called with the folder's lock held, so nothing here is a live run's.
fn recover(dir: &Path) -> Result<(), OutputError> {
    if let Some(journal) = read_json::<Journal>(&dir.join(JOURNAL))? {
        for step in steps(dir, &journal) {
            step.apply(dir, &journal)?;
        }
    }
    for entry in fs::read_dir(dir).map_err(io_at(dir))? {
        let entry = entry.map_err(io_at(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_leftover(&name) {
            continue;
        }
        let path = entry.path();
        let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(io_at(&path))?;
    }
    Ok(())
}

/// Names of the temporaries a run makes in its output folder.
fn is_leftover(name: &str) -> bool {
    let pid_suffix = |prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
    };
    if pid_suffix(STAGE_PREFIX) || pid_suffix(TRASH_PREFIX) || pid_suffix(SPOOL_PREFIX) {
        return true;
    }
    // `AtomicFile`: `.NAME.partial-PID`.
    name.starts_with('.')
        && name
            .rsplit_once(".partial-")
            .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Claims `parts` of `dir` for a command that fills them by running other
/// commands (`demo`): refused with one line when one exists and an earlier
/// claim of the same command does not list it, so a user's folder of that
/// name is never replaced.
pub(crate) fn claim(dir: &Path, command: &str, parts: &[&str]) -> Result<(), OutputError> {
    fs::create_dir_all(dir).map_err(io_at(dir))?;
    let claimed = Marker::read(dir, command)?.map_or_else(Vec::new, |m| m.files);
    for part in parts {
        let path = dir.join(part);
        if fs::symlink_metadata(&path).is_ok() && !claimed.iter().any(|c| c == part) {
            return Err(OutputError::Foreign {
                path,
                command: command.to_string(),
            });
        }
    }
    let marker = Marker {
        command: command.to_string(),
        facekit_version: crate::VERSION.to_string(),
        files: parts.iter().map(|p| p.to_string()).collect(),
        fingerprint: None,
        derived_from: None,
    };
    write_json(&marker_path(dir, command), &marker)
}

/// When `path` (a file or a folder) was made from a dataset that has since
/// been converted again, or is gone: the sentence that says so.
pub(crate) fn stale_source(path: &Path) -> Result<Option<String>, OutputError> {
    let (dir, name) = if path.is_dir() {
        (path.to_path_buf(), None)
    } else {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        (
            dir,
            path.file_name().map(|n| n.to_string_lossy().into_owned()),
        )
    };
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(_) => return Ok(None),
    };
    let mut markers: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let n = file_name(p);
            n.starts_with(".facekit-") && n.ends_with(".json") && n != JOURNAL
        })
        .collect();
    markers.sort();
    for marker_file in markers {
        let Some(marker) = read_json::<Marker>(&marker_file)? else {
            continue;
        };
        let Some(source) = &marker.derived_from else {
            continue;
        };
        if name.as_ref().is_some_and(|n| !marker.files.contains(n)) {
            continue;
        }
        let what = match &name {
            Some(_) => path.display().to_string(),
            None => format!("{} ({})", path.display(), marker.files.join(", ")),
        };
        let now = Marker::read(&source.dir, &source.command)?.and_then(|m| m.fingerprint);
        let rerun = format!("rerun facekit {}", marker.command);
        let stale = match now {
            Some(f) if f == source.fingerprint => None,
            Some(_) => Some(format!(
                "{what}: made from {} as it was before the last facekit {}; {rerun}",
                source.dir.display(),
                source.command
            )),
            None => Some(format!(
                "{what}: made from {}, which no longer holds that facekit {} output; {rerun}",
                source.dir.display(),
                source.command
            )),
        };
        if stale.is_some() {
            return Ok(stale);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// Every file under `dir` with its text, `/`-separated.
    fn tree(dir: &Path) -> BTreeMap<String, String> {
        walkdir::WalkDir::new(dir)
            .min_depth(1)
            .into_iter()
            .map(Result::unwrap)
            .filter(|e| !e.file_type().is_dir())
            .map(|e| {
                let rel = e.path().strip_prefix(dir).unwrap();
                let rel = rel.to_string_lossy().replace('\\', "/");
                (rel, fs::read_to_string(e.path()).unwrap())
            })
            .collect()
    }

    fn run(dir: &Path, command: &str, files: &[(&str, &str)], force: bool) -> Vec<String> {
        let out = OutputDir::begin(dir, command, force).unwrap();
        for (rel, text) in files {
            write(out.stage(), rel, text);
        }
        out.commit().unwrap()
    }

    #[test]
    fn a_commit_swaps_the_output_in_and_records_it() {
        let dir = tempfile::tempdir().unwrap();
        let files = run(
            dir.path(),
            "evaluate",
            &[("summary.json", "{}"), ("sub/roc.csv", "x")],
            true,
        );
        assert_eq!(files, ["sub/roc.csv", "summary.json"]);
        let marker = Marker::read(dir.path(), "evaluate").unwrap().unwrap();
        assert_eq!(marker.files, files);
        assert_eq!(marker.facekit_version, crate::VERSION);
        let left: Vec<String> = tree(dir.path()).into_keys().collect();
        assert_eq!(
            left,
            [".facekit-evaluate.json", "sub/roc.csv", "summary.json"]
        );
    }

    #[test]
    fn force_replaces_only_what_the_same_command_wrote() {
        let dir = tempfile::tempdir().unwrap();
        run(
            dir.path(),
            "convert",
            &[("train/0/a.jpg", "old"), ("dataset.json", "1")],
            true,
        );
        write(dir.path(), "train/notes.py", "mine");
        run(dir.path(), "pairs", &[("pairs.txt", "p")], true);

        let refused = OutputDir::begin(dir.path(), "convert", false).unwrap_err();
        assert!(matches!(refused, OutputError::Taken { .. }), "{refused}");
        assert!(refused.to_string().contains("--force"), "{refused}");

        run(
            dir.path(),
            "convert",
            &[("train/1/b.jpg", "new"), ("dataset.json", "2")],
            true,
        );
        let left = tree(dir.path());
        assert_eq!(left.get("train/notes.py").map(String::as_str), Some("mine"));
        assert_eq!(left.get("pairs.txt").map(String::as_str), Some("p"));
        assert_eq!(left.get("dataset.json").map(String::as_str), Some("2"));
        assert!(left.contains_key("train/1/b.jpg"));
        assert!(
            !dir.path().join("train/0").exists(),
            "the emptied folder goes"
        );
    }

    #[test]
    fn a_file_the_command_did_not_write_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "summary.json", "mine");
        let out = OutputDir::begin(dir.path(), "evaluate", true).unwrap();
        let early = out.check_free(&["summary.json"]).unwrap_err();
        assert!(matches!(early, OutputError::Foreign { .. }), "{early}");
        write(out.stage(), "summary.json", "new");
        let refused = out.commit().unwrap_err();
        assert!(refused
            .to_string()
            .contains("was not written by facekit evaluate"));
        assert_eq!(
            tree(dir.path()).into_iter().collect::<Vec<_>>(),
            [("summary.json".to_string(), "mine".to_string())]
        );
    }

    #[test]
    fn a_failed_run_leaves_no_folder_it_made() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("new");
        let run = OutputDir::begin(&out, "embed", true).unwrap();
        write(run.stage(), "embeddings.npy", "half");
        drop(run);
        assert!(!out.exists());
        fs::create_dir(&out).unwrap();
        drop(OutputDir::begin(&out, "embed", true).unwrap());
        assert!(out.is_dir(), "a folder that was there stays");
    }

    #[test]
    fn a_second_run_on_a_locked_folder_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = OutputDir::begin(dir.path(), "convert", true).unwrap();
        let refused = OutputDir::begin(dir.path(), "pairs", true).unwrap_err();
        let pid = std::process::id();
        assert!(
            refused
                .to_string()
                .contains(&format!("facekit convert (pid {pid})")),
            "{refused}"
        );
        drop(first);
        OutputDir::begin(dir.path(), "pairs", true).unwrap();
    }

    #[test]
    fn temporaries_of_dead_runs_are_removed_by_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        for leftover in [
            ".facekit-spool-77",
            ".train.rec.partial-77",
            ".facekit-stage-78/x/y.jpg",
            ".facekit-trash-3/z",
        ] {
            write(dir.path(), leftover, "junk");
        }
        write(dir.path(), ".hidden-but-mine", "keep");
        write(dir.path(), ".facekit-stage-notapid", "keep");
        drop(OutputDir::begin(dir.path(), "convert", true).unwrap());
        let left: Vec<String> = tree(dir.path()).into_keys().collect();
        assert_eq!(left, [".facekit-stage-notapid", ".hidden-but-mine"]);
    }

    #[test]
    fn a_derived_output_says_when_its_dataset_was_converted_again() {
        let dir = tempfile::tempdir().unwrap();
        let convert = |manifest: &str| {
            let mut out = OutputDir::begin(dir.path(), "convert", true).unwrap();
            write(out.stage(), "manifest.parquet", manifest);
            out.fingerprint_of("manifest.parquet");
            out.commit().unwrap();
        };
        convert("seed 0");
        let mut pairs = OutputDir::begin(dir.path(), "pairs", true).unwrap();
        write(pairs.stage(), "kface.bin", "bin");
        pairs.derived_from(dir.path(), "convert").unwrap();
        pairs.commit().unwrap();
        let bin = dir.path().join("kface.bin");
        assert_eq!(stale_source(&bin).unwrap(), None);
        assert_eq!(stale_source(dir.path()).unwrap(), None);

        convert("seed 1");
        let said = stale_source(&bin).unwrap().expect("stale");
        assert!(
            said.contains("before the last facekit convert")
                && said.contains("rerun facekit pairs"),
            "{said}"
        );
        assert!(stale_source(dir.path()).unwrap().is_some());
        convert("seed 0");
        assert_eq!(stale_source(&bin).unwrap(), None, "the same dataset again");
    }

    #[derive(Debug, Clone)]
    enum Outcome {
        Commit,
        Fail,
        /// Killed while writing, before the journal.
        KillWriting,
        /// Killed after this many steps of the swap.
        KillSwapping(usize),
    }

    const POOL: [&str; 6] = ["a", "b", "sub/c", "sub/d", "e/f/g", "e/h"];
    const USER: [(&str, &str); 3] = [
        ("notes.py", "u1"),
        ("sub/notes.py", "u2"),
        ("e/f/keep", "u3"),
    ];

    fn outcome() -> impl Strategy<Value = Outcome> {
        prop_oneof![
            Just(Outcome::Commit),
            Just(Outcome::Fail),
            Just(Outcome::KillWriting),
            (0usize..16).prop_map(Outcome::KillSwapping),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever runs, failures and kills happen in one folder, the next
        /// run finds there the whole result of one run or what was there
        /// before, and the user's files untouched.
        #[test]
        fn a_folder_holds_one_whole_result_whatever_happens(
            runs in prop::collection::vec((prop::collection::vec(any::<bool>(), POOL.len()), outcome()), 1..8)
        ) {
            let dir = tempfile::tempdir().unwrap();
            for (rel, text) in USER {
                write(dir.path(), rel, text);
            }
            let mut expected: BTreeMap<String, String> = BTreeMap::new();
            for (i, (pick, outcome)) in runs.iter().enumerate() {
                let mut out = OutputDir::begin(dir.path(), "evaluate", true).unwrap();
                let files: BTreeMap<String, String> = POOL
                    .iter()
                    .zip(pick)
                    .filter(|(_, keep)| **keep)
                    .map(|(rel, _)| (rel.to_string(), format!("run {i}")))
                    .collect();
                for (rel, text) in &files {
                    write(out.stage(), rel, text);
                }
                match outcome {
                    Outcome::Commit => {
                        out.commit().unwrap();
                        expected = files;
                    }
                    Outcome::Fail => drop(out),
                    Outcome::KillWriting => {
                        out.journaled = true; // a dead run cleans nothing
                        drop(out);
                    }
                    Outcome::KillSwapping(k) => {
                        let journal = out.write_journal().unwrap();
                        for step in steps(dir.path(), &journal).into_iter().take(*k) {
                            step.apply(dir.path(), &journal).unwrap();
                        }
                        drop(out);
                        expected = files;
                    }
                }
                // What the next run finds once it holds the folder.
                let next = OutputDir::begin(dir.path(), "evaluate", true).unwrap();
                drop(next);
                let mut want: BTreeMap<String, String> = USER
                    .iter()
                    .map(|(r, t)| (r.to_string(), t.to_string()))
                    .collect();
                want.extend(expected.clone());
                let mut found = tree(dir.path());
                let marker = found.remove(".facekit-evaluate.json");
                prop_assert_eq!(&found, &want);
                let listed = marker.map(|m| serde_json::from_str::<Marker>(&m).unwrap().files);
                let had_commit = listed.is_some();
                prop_assert_eq!(listed.unwrap_or_default(), expected.keys().cloned().collect::<Vec<_>>());
                prop_assert!(had_commit || expected.is_empty());
            }
        }
    }
}
