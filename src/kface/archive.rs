//! K-Face as AI Hub ships it, read in place and never extracted: a tier zip
//! (`Middle_Resolution.zip`) holding one `<ID>.zip` per identity, or such
//! per-identity zips on their own, whose members are `S001/L1/E01/C7.jpg`
//! and `S001/L1/E01/C7.txt` with no identity prefix.
//!
//! Work goes one identity archive at a time: [`open`] lists a zip (the
//! central directory only), [`IdentityZip::load`] opens one identity's
//! archive in place (inflating a deflated inner archive into a file in the
//! run's stage, never into memory), and [`IdentityArchive::read`] inflates
//! one member, from any thread. Memory is bounded by one member (64 MiB at
//! most) per worker, whatever the size of an archive.
//! Damage is reported per member (and per archive where members are lost),
//! never as a panic. [`units`] hands the identity archives to convert's
//! discovery as units, their K-Face members listed in the order a sorted
//! walk of the extracted tree meets them, so both give the same outputs.

mod window;
mod zipread;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufReader, BufWriter};
use std::path::{Path, PathBuf};

use super::path::{parse_components, parse_flat, parse_in_identity, FileRole};
use super::source::{FileKind, LoadedUnit, SourceError, SourceFile, Unit, MAX_FILE_BYTES};
use super::Attributes;
use window::Window;
use zipread::{copy_entry, data_start, list, read_entry, ListError};
pub(crate) use zipread::{Entry, MemberFault};

/// Separates an archive from a member in a display source:
/// `Middle_Resolution.zip!19062421.zip!S001/L1/E01/C7.jpg`.
pub(crate) const SEPARATOR: char = '!';

/// Write buffer of the file a deflated inner archive is inflated into.
const SPILL_BUFFER: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{archive}: {source}")]
    Io { archive: String, source: io::Error },
    #[error("{archive}: not a zip archive")]
    NotZip { archive: String },
    #[error("{archive}: {reason}")]
    Layout { archive: String, reason: String },
    #[error("{archive}: {fault}")]
    Member { archive: String, fault: MemberFault },
}

/// A member of an archive that could not be used, with its display source.
#[derive(Debug)]
pub struct Failure {
    /// The stem of the member's name (`19062422` for `19062422.zip`).
    pub identity: String,
    pub source: String,
    pub fault: MemberFault,
}

/// What a zip on disk holds.
#[derive(Debug)]
pub struct ZipSource {
    /// The identity archives: those inside a tier zip, in listing order, or
    /// the zip itself when it is one identity's.
    pub identities: Vec<IdentityZip>,
    /// Inner archives of a tier zip that cannot be read at all (encrypted,
    /// duplicate, unsafe name).
    pub failures: Vec<Failure>,
    /// Set when the zip is damaged so that members may be missing (the
    /// central directory is gone and local headers were walked instead).
    pub damage: Option<String>,
}

/// One identity's zip: a file, or a member of a tier zip.
#[derive(Debug, Clone)]
pub struct IdentityZip {
    /// The zip's file stem (`19062421` for `19062421.zip`), or for a zip on
    /// its own the identity its members' paths name, if they do.
    pub identity: String,
    /// Display source of the archive: `Middle_Resolution.zip!19062421.zip`.
    pub source: String,
    location: Location,
    /// Damage of the tier zip that shows at this identity (the last one
    /// found in a tier zip whose central directory is gone).
    outer_damage: Option<String>,
}

#[derive(Debug, Clone)]
enum Location {
    File(PathBuf),
    Member { outer: PathBuf, entry: Entry },
}

fn file_stem(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    match base.rfind('.') {
        Some(dot) if dot > 0 => base[..dot].to_string(),
        _ => base.to_string(),
    }
}

fn list_file(path: &Path, archive: &str) -> Result<zipread::Listing, ArchiveError> {
    let io_err = |source| ArchiveError::Io {
        archive: archive.to_string(),
        source,
    };
    let mut reader = BufReader::new(File::open(path).map_err(io_err)?);
    list(&mut reader).map_err(|e| match e {
        ListError::NotZip => ArchiveError::NotZip {
            archive: archive.to_string(),
        },
        ListError::Io(source) => io_err(source),
    })
}

/// The identity the members of an identity zip name in their paths
/// (`19062421/S001/L1/E01/C7.jpg`), when they name one; their zip's stem
/// is the identity otherwise. Members naming several identities are a zip
/// of an extracted tree, which is not read: it would have to be held in
/// memory whole.
fn named_identities(entries: &[Entry]) -> Result<Option<String>, String> {
    let mut found = BTreeSet::new();
    for entry in entries {
        let parts: Vec<&str> = entry.name.split('/').collect();
        if let Some(m) = parse_components(&parts) {
            found.insert(m.key.identity);
        }
    }
    if found.len() > 1 {
        let shown: Vec<&str> = found.iter().take(3).map(String::as_str).collect();
        return Err(format!(
            "holds {} identities ({}{}), not one identity's zip nor a zip of per-identity zips; \
             extract it and convert the folder",
            found.len(),
            shown.join(", "),
            if found.len() > 3 { ", …" } else { "" }
        ));
    }
    Ok(found.pop_first())
}

/// Lists a zip and tells a tier zip (its members are zips: one identity
/// archive each, wherever they sit in it) from an identity zip (anything
/// else). Reads only the central directory, or walks local headers when
/// that is gone.
pub fn open(path: &Path) -> Result<ZipSource, ArchiveError> {
    let archive = path.display().to_string();
    let listing = list_file(path, &archive)?;
    let inner: Vec<&Entry> = listing
        .entries
        .iter()
        .filter(|e| !e.is_dir() && e.name.to_ascii_lowercase().ends_with(".zip"))
        .collect();
    if inner.is_empty() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| archive.clone());
        let identity =
            match named_identities(&listing.entries).map_err(|reason| ArchiveError::Layout {
                archive: archive.clone(),
                reason,
            })? {
                Some(identity) => identity,
                None => file_stem(&name),
            };
        return Ok(ZipSource {
            identities: vec![IdentityZip {
                identity,
                source: archive,
                location: Location::File(path.to_path_buf()),
                outer_damage: None,
            }],
            failures: Vec::new(),
            damage: listing.salvaged,
        });
    }
    let mut source = ZipSource {
        identities: Vec::new(),
        failures: Vec::new(),
        damage: listing.salvaged.clone(),
    };
    for entry in inner {
        let member_source = format!("{archive}{SEPARATOR}{}", entry.name);
        match entry.fault {
            Some(fault) => source.failures.push(Failure {
                identity: file_stem(&entry.name),
                source: member_source,
                fault: fault.into(),
            }),
            None => source.identities.push(IdentityZip {
                identity: file_stem(&entry.name),
                source: member_source,
                location: Location::Member {
                    outer: path.to_path_buf(),
                    entry: entry.clone(),
                },
                outer_damage: None,
            }),
        }
    }
    if let (Some(damage), Some(last)) = (&source.damage, source.identities.last_mut()) {
        last.outer_damage = Some(format!("{archive}: {damage}"));
    }
    Ok(source)
}

/// One identity's archive, its members listed, read in place: a window on
/// the identity zip's file, on a stored member of the tier zip, or on a
/// spill file the deflated member was inflated into.
#[derive(Debug)]
pub struct IdentityArchive {
    pub identity: String,
    pub source: String,
    /// Set when the archive is damaged so that members may be missing.
    pub damage: Option<String>,
    window: Window,
    entries: Vec<Entry>,
}

/// A member of an identity archive, as listed.
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    pub index: usize,
    /// The decoded member name, `/`-separated: `S001/L1/E01/C7.jpg`.
    pub name: &'a str,
}

impl IdentityZip {
    /// Opens the identity's archive and lists its members, reading it in
    /// place so that memory does not follow its size: an identity zip on
    /// its own and a stored member of a tier zip are read where they lie
    /// (the latter checked in one pass first); a deflated member is
    /// inflated into an unnamed file in `scratch` (the run's stage), gone
    /// when the archive is dropped or the process dies. An inner archive
    /// that is cut short or fails its CRC is still listed as far as it goes
    /// (its members carry their own CRCs); one that cannot be read at all
    /// is an error for the whole unit.
    pub fn load(&self, scratch: &Path) -> Result<IdentityArchive, ArchiveError> {
        let io_err = |source| ArchiveError::Io {
            archive: self.source.clone(),
            source,
        };
        let mut damage: Vec<String> = self.outer_damage.iter().cloned().collect();
        let window = match &self.location {
            Location::File(path) => {
                Window::whole(File::open(path).map_err(io_err)?).map_err(io_err)?
            }
            Location::Member { outer, entry } => {
                self.inner_window(outer, entry, scratch, &mut damage)?
            }
        };
        let listing = list(&mut window.reader()).map_err(|e| match e {
            ListError::NotZip => ArchiveError::NotZip {
                archive: self.source.clone(),
            },
            ListError::Io(source) => io_err(source),
        })?;
        damage.extend(listing.salvaged);
        let entries = listing
            .entries
            .into_iter()
            .filter(|e| !e.is_dir())
            .collect();
        Ok(IdentityArchive {
            identity: self.identity.clone(),
            source: self.source.clone(),
            damage: (!damage.is_empty()).then(|| damage.join("; ")),
            window,
            entries,
        })
    }

    /// The bytes of an inner archive, as far as they can be recovered.
    fn inner_window(
        &self,
        outer: &Path,
        entry: &Entry,
        scratch: &Path,
        damage: &mut Vec<String>,
    ) -> Result<Window, ArchiveError> {
        let io_err = |source| ArchiveError::Io {
            archive: self.source.clone(),
            source,
        };
        let member_err = |fault| ArchiveError::Member {
            archive: self.source.clone(),
            fault,
        };
        let mut reader = BufReader::new(File::open(outer).map_err(io_err)?);
        let stored = entry.method == 0;
        let (start, mut spill) = if stored {
            (data_start(&mut reader, entry).map_err(member_err)?, None)
        } else {
            let file = tempfile::tempfile_in(scratch).map_err(io_err)?;
            (0, Some(BufWriter::with_capacity(SPILL_BUFFER, file)))
        };
        // The archive as a whole has no size cap (disk, not memory, holds
        // it); each of its members is capped when read.
        let copied = match &mut spill {
            None => copy_entry(&mut reader, entry, u64::MAX, &mut io::sink()),
            Some(writer) => copy_entry(&mut reader, entry, u64::MAX, writer),
        };
        let len = match copied {
            Ok(written) => written,
            Err(fault) => match fault.recovered() {
                Some(written) => {
                    damage.push(fault.to_string());
                    written
                }
                None => return Err(member_err(fault)),
            },
        };
        let file = match spill {
            None => reader.into_inner(),
            Some(writer) => writer.into_inner().map_err(|e| io_err(e.into_error()))?,
        };
        Ok(Window::new(file, start, len))
    }
}

impl IdentityArchive {
    /// Every file member, in listing order (directories left out).
    pub fn members(&self) -> impl Iterator<Item = Member<'_>> {
        self.entries.iter().enumerate().map(|(index, e)| Member {
            index,
            name: &e.name,
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Display source of a member: `archive!member`.
    pub(crate) fn member_source(&self, index: usize) -> String {
        let name = self.entries.get(index).map_or("", |e| e.name.as_str());
        format!("{}{SEPARATOR}{name}", self.source)
    }

    /// A member's listing: sizes, flags, a fault known before reading.
    pub fn entry(&self, index: usize) -> Option<&Entry> {
        self.entries.get(index)
    }

    /// Inflates and checks one member (at most [`MAX_FILE_BYTES`]); any
    /// number of threads may read at once.
    pub fn read(&self, index: usize) -> Result<Vec<u8>, MemberFault> {
        let entry = self.entries.get(index).ok_or_else(|| {
            MemberFault::Io(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no member {index}"),
            ))
        })?;
        read_entry(&mut self.window.reader(), entry, MAX_FILE_BYTES)
    }
}

/// The units of a zip for discovery ([`super::source::zip_units`]): each
/// identity archive, then each inner archive that cannot be read (its unit
/// fails to load, which the manifest records as one failed row).
pub fn units(path: &Path) -> Result<Vec<Box<dyn Unit>>, SourceError> {
    let found = open(path).map_err(source_error)?;
    let mut units: Vec<Box<dyn Unit>> = Vec::new();
    for zip in found.identities {
        units.push(Box::new(ZipUnit(zip)));
    }
    for failure in found.failures {
        units.push(Box::new(FailedZip(failure)));
    }
    Ok(units)
}

fn source_error(err: ArchiveError) -> SourceError {
    match err {
        ArchiveError::Io { archive, source } => SourceError::Io {
            path: archive,
            source,
        },
        ArchiveError::NotZip { archive } => SourceError::Unsupported {
            path: archive,
            reason: "not a zip archive".into(),
        },
        ArchiveError::Layout { archive, reason } => SourceError::Unsupported {
            path: archive,
            reason,
        },
        ArchiveError::Member { archive, fault } => SourceError::Unsupported {
            path: archive,
            reason: fault.to_string(),
        },
    }
}

/// One identity's zip as a discovery unit.
struct ZipUnit(IdentityZip);

impl Unit for ZipUnit {
    fn identity(&self) -> &str {
        &self.0.identity
    }
    fn origin(&self) -> &str {
        &self.0.source
    }
    fn load(&self, scratch: &Path) -> Result<Box<dyn LoadedUnit + '_>, SourceError> {
        let archive = self.0.load(scratch).map_err(source_error)?;
        Ok(Box::new(LoadedZip::new(archive)))
    }
}

/// An inner archive that cannot be read: loading it fails with the reason.
struct FailedZip(Failure);

impl Unit for FailedZip {
    fn identity(&self) -> &str {
        &self.0.identity
    }
    fn origin(&self) -> &str {
        &self.0.source
    }
    fn load(&self, _scratch: &Path) -> Result<Box<dyn LoadedUnit + '_>, SourceError> {
        Err(SourceError::Unsupported {
            path: self.0.source.clone(),
            reason: self.0.fault.to_string(),
        })
    }
}

/// The K-Face files of a loaded identity archive, in the order a sorted
/// walk of the extracted folder meets them, so that both give the same
/// rows.
struct LoadedZip {
    archive: IdentityArchive,
    files: Vec<SourceFile>,
    /// The member behind each file; `None` for the damage note.
    members: Vec<Option<usize>>,
}

/// Conditions and role of a member named `S001/L1/E01/C7.jpg` (any
/// folders above it), or `<ID>_S001_L1_E01_C7.jpg` of this identity.
fn member_key(name: &str, identity: &str) -> Option<(Attributes, FileRole)> {
    let parts: Vec<&str> = name.split('/').collect();
    if let Some(found) = parse_in_identity(&parts[parts.len().saturating_sub(4)..]) {
        return Some(found);
    }
    let flat = parse_flat(parts.last()?)?;
    (flat.key.identity == identity).then_some((flat.key.attrs, flat.role))
}

impl LoadedZip {
    fn new(archive: IdentityArchive) -> LoadedZip {
        let mut found: Vec<(Vec<&str>, usize, FileKind)> = Vec::new();
        for member in archive.members() {
            let Some((attrs, role)) = member_key(member.name, &archive.identity) else {
                continue;
            };
            let kind = match archive.entry(member.index).and_then(|e| e.fault) {
                Some(fault) => FileKind::Broken(fault.to_string()),
                None => match role {
                    FileRole::Image => FileKind::Image(attrs),
                    FileRole::Annotation => FileKind::Annotation(attrs),
                },
            };
            found.push((member.name.split('/').collect(), member.index, kind));
        }
        found.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut files = Vec::with_capacity(found.len() + 1);
        let mut members = Vec::with_capacity(found.len() + 1);
        for (_, index, kind) in found {
            files.push(SourceFile {
                source: archive.member_source(index),
                kind,
            });
            members.push(Some(index));
        }
        if let Some(damage) = &archive.damage {
            let reason = format!("damaged archive, members may be missing: {damage}");
            files.push(SourceFile {
                source: archive.source.clone(),
                kind: FileKind::Broken(reason),
            });
            members.push(None);
        }
        LoadedZip {
            archive,
            files,
            members,
        }
    }
}

impl LoadedUnit for LoadedZip {
    fn files(&self) -> &[SourceFile] {
        &self.files
    }

    fn read(&self, index: usize) -> Result<Vec<u8>, SourceError> {
        let source = self
            .files
            .get(index)
            .map_or_else(|| self.archive.source.clone(), |f| f.source.clone());
        let Some(&Some(member)) = self.members.get(index) else {
            return Err(SourceError::Unsupported {
                path: source,
                reason: "not a member".into(),
            });
        };
        let size = self
            .archive
            .entry(member)
            .map_or(0, |e| e.uncompressed_size);
        if size != u64::MAX && size > MAX_FILE_BYTES {
            return Err(SourceError::TooLarge {
                path: source,
                size,
                limit: MAX_FILE_BYTES,
            });
        }
        self.archive
            .read(member)
            .map_err(|fault| SourceError::Unsupported {
                path: source,
                reason: fault.to_string(),
            })
    }
}

#[cfg(test)]
mod tests;
