//! Finding K-Face data below each `SRC`: identities are discovered, never
//! assumed, and each becomes a [`Unit`], one identity's files from one place.
//!
//! # The unit seam
//!
//! The convert pipeline sees only [`Unit`]s. It loads one unit at a time
//! ([`Unit::load`]), asks the loaded unit for its [`SourceFile`] list and
//! reads each file's bytes by index ([`LoadedUnit::read`]) from worker
//! threads; memory is bounded by what one loaded unit holds. A unit also
//! gives the display `source` string of each file, which the manifest
//! records.
//!
//! Two kinds of units exist:
//!
//! * [`FolderUnit`] (here): an identity folder `<ID>/S00a/Lb/E0c/Cn.jpg`, or
//!   the flat files `<ID>_S00a_Lb_E0c_Cn.jpg` of one folder. Loading is free
//!   (the walk already listed the files); `read` reads one file.
//! * a zip-backed unit ([`crate::kface::archive`]): an inner `<ID>.zip`, inside a
//!   tier zip or alone, whose members are `S001/L1/E01/C7.jpg`. Its `load`
//!   opens the inner archive in place (or inflates it into a file under
//!   `scratch`) and lists the members
//!   ([`crate::kface::path::parse_in_identity`]); `read` inflates one member;
//!   its sources read `outer.zip!19062421.zip!S001/L1/E01/C7.jpg`. Discovery
//!   hands every `.zip` it meets to [`zip_units`], the one place that reader
//!   plugs in; the pipeline does not change.
//!
//! Units come out of [`discover`] sorted by identity, one per identity: the
//! first place an identity is found (in the order of the SRCs, then of the
//! paths) wins and later ones are reported as duplicates.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use super::path::{classify, Classified, FileRole, Form};
use super::Attributes;

/// Files larger than this are refused unread: no K-Face JPEG comes near it.
pub(crate) const MAX_FILE_BYTES: u64 = 64 << 20;

/// What a listed file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    Image(Attributes),
    Annotation(Attributes),
    /// A file that looked like an image but cannot be listed under its
    /// conditions (an undecodable member name, a damaged entry): a failed row.
    Broken(String),
}

/// One file of a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Where it is, as the manifest shows it: a path, or archive and member.
    pub source: String,
    pub kind: FileKind,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: no such file or directory")]
    Missing { path: String },
    #[error("{path}: file is {size} bytes, over the {limit}-byte limit")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("{path}: {reason}")]
    Unsupported { path: String, reason: String },
}

/// One identity's files from one place (see the module docs).
pub trait Unit: Send + Sync {
    fn identity(&self) -> &str;
    /// Where the unit is, for messages: its folder, or its archive.
    fn origin(&self) -> &str;
    /// Lists the unit's files and makes their bytes readable. `scratch` is
    /// a folder on the output's file system where a unit may park what it
    /// must not hold in memory (an inflated inner archive).
    fn load(&self, scratch: &Path) -> Result<Box<dyn LoadedUnit + '_>, SourceError>;
    /// The number of images, when known without loading (for progress).
    fn image_count(&self) -> Option<u64> {
        None
    }
}

/// A unit ready to read; dropping it frees what it holds.
pub trait LoadedUnit: Sync {
    fn files(&self) -> &[SourceFile];
    /// The bytes of `files()[index]`.
    fn read(&self, index: usize) -> Result<Vec<u8>, SourceError>;
}

/// Files of one identity on disk.
#[derive(Debug, Clone)]
pub(crate) struct FolderUnit {
    identity: String,
    origin: String,
    files: Vec<SourceFile>,
    paths: Vec<PathBuf>,
}

impl Unit for FolderUnit {
    fn identity(&self) -> &str {
        &self.identity
    }
    fn origin(&self) -> &str {
        &self.origin
    }
    fn load(&self, _scratch: &Path) -> Result<Box<dyn LoadedUnit + '_>, SourceError> {
        Ok(Box::new(self))
    }
    fn image_count(&self) -> Option<u64> {
        Some(
            self.files
                .iter()
                .filter(|f| !matches!(f.kind, FileKind::Annotation(_)))
                .count() as u64,
        )
    }
}

impl LoadedUnit for &FolderUnit {
    fn files(&self) -> &[SourceFile] {
        &self.files
    }
    fn read(&self, index: usize) -> Result<Vec<u8>, SourceError> {
        let path = &self.paths[index];
        read_limited(path, MAX_FILE_BYTES)
    }
}

/// Reads a whole file, refusing one over `limit` bytes.
pub(crate) fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, SourceError> {
    let io = |source| SourceError::Io {
        path: path.to_string_lossy().into_owned(),
        source,
    };
    let file = fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size > limit {
        return Err(SourceError::TooLarge {
            path: path.to_string_lossy().into_owned(),
            size,
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(SourceError::TooLarge {
            path: path.to_string_lossy().into_owned(),
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// An image file that belongs to no unit: its conditions (and perhaps its
/// identity) cannot be read from its name; or a folder or zip that cannot
/// be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Orphan {
    pub source: String,
    pub identity: Option<String>,
    pub reason: String,
}

/// Everything found below the SRCs.
#[derive(Default)]
pub(crate) struct Discovery {
    /// One unit per identity, sorted by identity.
    pub units: Vec<Box<dyn Unit>>,
    /// Later places of an identity already found, with the origin that won.
    pub duplicates: Vec<(Box<dyn Unit>, String)>,
    pub orphans: Vec<Orphan>,
    /// Files that are not K-Face data (left alone).
    pub stray_files: u64,
    /// What the walk could not read (a folder, a zip): data lost whole,
    /// its identities unknown.
    pub unreadable: Vec<Orphan>,
}

impl Discovery {
    /// Whether nothing at all was found: no unit, no duplicate, no orphan.
    pub fn is_empty(&self) -> bool {
        self.units.is_empty() && self.duplicates.is_empty() && self.orphans.is_empty()
    }
}

/// What discovery looks for, for the message when it finds nothing.
pub(crate) const PATTERN: &str =
    "<ID>/S00a/Lb/E0c/Cn.jpg or <ID>_S00a_Lb_E0c_Cn.jpg (or zips of them)";

/// The units of a zip file: the seam where the archive reader plugs in.
pub(crate) fn zip_units(path: &Path) -> Result<Vec<Box<dyn Unit>>, SourceError> {
    super::archive::units(path)
}

fn is_image(path: &Path) -> bool {
    matches!(classify(path), Classified::Match(m) if m.role == FileRole::Image)
}

fn is_zip(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
}

/// Walks every SRC and groups what it finds into identity units.
pub(crate) fn discover(sources: &[PathBuf]) -> Result<Discovery, SourceError> {
    let mut found = Discovery::default();
    // Units in the order they were found: SRC order, then path order.
    let mut ordered: Vec<Box<dyn Unit>> = Vec::new();
    for src in sources {
        if !src.exists() {
            return Err(SourceError::Missing {
                path: src.to_string_lossy().into_owned(),
            });
        }
        // (unit folder, identity) -> files, in path order.
        let mut folders: BTreeMap<(PathBuf, String), FolderUnit> = BTreeMap::new();
        let mut order: Vec<(PathBuf, String)> = Vec::new();
        for entry in WalkDir::new(src).follow_links(true).sort_by_file_name() {
            // A K-Face image the walk cannot stat (a dangling link) is still
            // listed: reading it fails, and that becomes its manifest row.
            let path = match &entry {
                Ok(entry) if entry.file_type().is_file() => entry.path(),
                Ok(_) => continue,
                Err(err) => match err.path() {
                    Some(path) if is_image(path) => path,
                    _ => {
                        let at = err.path().unwrap_or(src);
                        found.unreadable.push(Orphan {
                            source: at.to_string_lossy().into_owned(),
                            identity: None,
                            reason: format!(
                                "cannot read: {}",
                                err.io_error()
                                    .map_or_else(|| err.to_string(), |e| e.to_string())
                            ),
                        });
                        continue;
                    }
                },
            };
            if is_zip(path) {
                match zip_units(path) {
                    Ok(units) => ordered.extend(units),
                    Err(err) => found.unreadable.push(Orphan {
                        source: path.to_string_lossy().into_owned(),
                        identity: None,
                        reason: err.to_string(),
                    }),
                }
                continue;
            }
            let source = path.to_string_lossy().into_owned();
            let matched = match classify(path) {
                Classified::Match(m) => m,
                Classified::Undecodable { identity } => {
                    found.orphans.push(Orphan {
                        source,
                        identity,
                        reason: "file name is not valid UTF-8".into(),
                    });
                    continue;
                }
                Classified::Stray => {
                    found.stray_files += 1;
                    continue;
                }
            };
            let folder = match matched.form {
                Form::Nested => path.ancestors().nth(4),
                Form::Flat => path.parent(),
            }
            .unwrap_or(path)
            .to_path_buf();
            let identity = matched.key.identity;
            let unit_key = (folder.clone(), identity.clone());
            let unit = folders.entry(unit_key.clone()).or_insert_with(|| {
                order.push(unit_key);
                let origin = match matched.form {
                    Form::Nested => folder.to_string_lossy().into_owned(),
                    Form::Flat => format!("{}/{}_*", folder.to_string_lossy(), identity),
                };
                FolderUnit {
                    identity: identity.clone(),
                    origin,
                    files: Vec::new(),
                    paths: Vec::new(),
                }
            });
            let kind = match matched.role {
                FileRole::Image => FileKind::Image(matched.key.attrs),
                FileRole::Annotation => FileKind::Annotation(matched.key.attrs),
            };
            unit.files.push(SourceFile { source, kind });
            unit.paths.push(path.to_path_buf());
        }
        for key in order {
            if let Some(unit) = folders.remove(&key) {
                ordered.push(Box::new(unit));
            }
        }
    }
    let mut winners: BTreeMap<String, Box<dyn Unit>> = BTreeMap::new();
    for unit in ordered {
        match winners.get(unit.identity()) {
            Some(first) => {
                let origin = first.origin().to_string();
                found.duplicates.push((unit, origin));
            }
            None => {
                winners.insert(unit.identity().to_string(), unit);
            }
        }
    }
    found.units = winners.into_values().collect();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str, bytes: &[u8]) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    fn listing(unit: &dyn Unit) -> Vec<(String, FileKind)> {
        let loaded = unit.load(&std::env::temp_dir()).unwrap();
        let root = unit.origin().to_string();
        loaded
            .files()
            .iter()
            .map(|f| {
                (
                    f.source.trim_start_matches(&root).to_string(),
                    f.kind.clone(),
                )
            })
            .collect()
    }

    fn attrs(s: u8, l: u8, e: u8, c: u8) -> Attributes {
        Attributes::new(s, l, e, c).unwrap()
    }

    #[test]
    fn finds_identities_at_any_depth_and_ignores_strays() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(
            root,
            "한국인 안면 이미지/Middle_Resolution/19062421/S001/L1/E01/C7.jpg",
            b"a",
        );
        touch(
            root,
            "한국인 안면 이미지/Middle_Resolution/19062421/S001/L1/E01/C7.txt",
            b"t",
        );
        touch(
            root,
            "한국인 안면 이미지/Middle_Resolution/19062421/S001/L1/E01/Thumbs.db",
            b"",
        );
        touch(
            root,
            "한국인 안면 이미지/Middle_Resolution/middle/19070101/S002/L3/E02/C4.jpg",
            b"b",
        );
        touch(root, "한국인 안면 이미지/readme.pdf", b"");
        touch(root, "flat/19080101_S001_L1_E01_C7.jpg", b"c");
        touch(root, "flat/19080101_S001_L1_E01_C7.txt", b"t");
        let found = discover(&[root.to_path_buf()]).unwrap();
        let ids: Vec<&str> = found.units.iter().map(|u| u.identity()).collect();
        assert_eq!(ids, ["19062421", "19070101", "19080101"]);
        assert_eq!(found.stray_files, 2);
        assert!(found.duplicates.is_empty() && found.orphans.is_empty());
        assert_eq!(
            listing(found.units[0].as_ref()),
            [
                (
                    "/S001/L1/E01/C7.jpg".to_string(),
                    FileKind::Image(attrs(1, 1, 1, 7))
                ),
                (
                    "/S001/L1/E01/C7.txt".to_string(),
                    FileKind::Annotation(attrs(1, 1, 1, 7))
                ),
            ]
        );
        let loaded = found.units[2].load(&std::env::temp_dir()).unwrap();
        assert_eq!(loaded.files().len(), 2);
        assert_eq!(loaded.read(0).unwrap(), b"c");
        assert!(found.units[2].origin().ends_with("flat/19080101_*"));
    }

    #[test]
    fn duplicates_across_sources_are_reported_first_wins() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        touch(a.path(), "19062421/S001/L1/E01/C7.jpg", b"a");
        touch(b.path(), "x/19062421/S001/L1/E01/C7.jpg", b"b");
        touch(b.path(), "x/19062422/S001/L1/E01/C7.jpg", b"c");
        let found = discover(&[b.path().to_path_buf(), a.path().to_path_buf()]).unwrap();
        assert_eq!(found.units.len(), 2);
        assert_eq!(found.duplicates.len(), 1);
        let (dup, winner) = &found.duplicates[0];
        assert_eq!(dup.identity(), "19062421");
        assert!(dup.origin().starts_with(a.path().to_str().unwrap()));
        assert!(winner.starts_with(b.path().to_str().unwrap()));
        assert_eq!(
            found.units[0]
                .load(&std::env::temp_dir())
                .unwrap()
                .read(0)
                .unwrap(),
            b"b"
        );
    }

    #[test]
    fn missing_sources_and_empty_trees() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(matches!(
            discover(&[missing]),
            Err(SourceError::Missing { .. })
        ));
        touch(dir.path(), "notes.txt", b"");
        let found = discover(&[dir.path().to_path_buf()]).unwrap();
        assert!(found.is_empty());
        assert_eq!(found.stray_files, 1);
    }

    #[test]
    fn a_single_file_source_and_zips_until_supported() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "19062421_S001_L1_E01_C7.jpg", b"a");
        touch(dir.path(), "19062422.zip", b"PK");
        let found = discover(&[dir.path().join("19062421_S001_L1_E01_C7.jpg")]).unwrap();
        assert_eq!(found.units.len(), 1);
        let found = discover(&[dir.path().join("19062422.zip")]).unwrap();
        assert!(found.is_empty());
        assert!(
            found.unreadable[0].reason.contains("zip"),
            "{:?}",
            found.unreadable[0].reason
        );
    }

    #[test]
    fn oversized_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "big.jpg", &[0u8; 100]);
        let err = read_limited(&dir.path().join("big.jpg"), 99).unwrap_err();
        assert!(err.to_string().contains("over the 99-byte limit"), "{err}");
        assert_eq!(
            read_limited(&dir.path().join("big.jpg"), 100)
                .unwrap()
                .len(),
            100
        );
    }

    #[cfg(unix)]
    #[test]
    fn dangling_links_are_listed_and_fail_to_read() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "19062421/S001/L1/E01/C7.jpg", b"a");
        std::os::unix::fs::symlink(
            dir.path().join("gone.jpg"),
            dir.path().join("19062421/S001/L1/E01/C4.jpg"),
        )
        .unwrap();
        std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("elsewhere")).unwrap();
        let found = discover(&[dir.path().to_path_buf()]).unwrap();
        let loaded = found.units[0].load(&std::env::temp_dir()).unwrap();
        assert_eq!(loaded.files().len(), 2);
        assert_eq!(loaded.files()[0].kind, FileKind::Image(attrs(1, 1, 1, 4)));
        assert!(matches!(loaded.read(0), Err(SourceError::Io { .. })));
        assert_eq!(found.unreadable.len(), 1);
        assert!(found.unreadable[0].source.ends_with("elsewhere"));
    }

    #[cfg(unix)]
    #[test]
    fn undecodable_names_become_orphans() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "19062421/S001/L1/E01/C7.jpg", b"a");
        let bad = dir
            .path()
            .join("19062421/S001/L1/E01")
            .join(OsString::from_vec(b"C\xff.jpg".to_vec()));
        fs::write(bad, b"x").unwrap();
        let found = discover(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(found.units.len(), 1);
        assert_eq!(found.orphans.len(), 1);
        assert_eq!(found.orphans[0].identity.as_deref(), Some("19062421"));
    }
}
