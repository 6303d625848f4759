//! K-Face as AI Hub ships it, read in place and never extracted: a tier zip
//! (`Middle_Resolution.zip`) holding one `<ID>.zip` per identity, or such
//! per-identity zips on their own, whose members are `S001/L1/E01/C7.jpg`
//! and `S001/L1/E01/C7.txt` with no identity prefix.
//!
//! Work goes one identity archive at a time: [`open`] lists a zip (the
//! central directory only), [`IdentityZip::load`] reads one identity's
//! archive into memory, and [`IdentityArchive::read`] inflates one member,
//! from any thread. Memory is bounded by one identity archive per worker.
//! Damage is reported per member (and per archive where members are lost),
//! never as a panic.

mod zipread;

use std::fs::File;
use std::io::{self, BufReader, Cursor};
use std::path::{Path, PathBuf};

pub use zipread::{decode_name, is_unsafe_name, Entry, ListingFault, MemberFault};
use zipread::{list, read_entry, ListError};

/// Separates an archive from a member in a display source:
/// `Middle_Resolution.zip!19062421.zip!S001/L1/E01/C7.jpg`.
pub const SEPARATOR: char = '!';

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{archive}: {source}")]
    Io { archive: String, source: io::Error },
    #[error("{archive}: not a zip archive")]
    NotZip { archive: String },
    #[error("{archive}: {fault}")]
    Member { archive: String, fault: MemberFault },
}

/// Whether a path names a zip, by its extension.
pub fn is_zip(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip"))
}

/// A member of an archive that could not be used, with its display source.
#[derive(Debug)]
pub struct Failure {
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
    /// The zip's file stem (`19062421` for `19062421.zip`).
    pub identity: String,
    /// Display source of the archive: `Middle_Resolution.zip!19062421.zip`.
    pub source: String,
    location: Location,
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
    let io_err = |source| ArchiveError::Io { archive: archive.to_string(), source };
    let mut reader = BufReader::new(File::open(path).map_err(io_err)?);
    list(&mut reader).map_err(|e| match e {
        ListError::NotZip => ArchiveError::NotZip { archive: archive.to_string() },
        ListError::Io(source) => io_err(source),
    })
}

/// Lists a zip and tells a tier zip (its members are zips: one identity
/// archive each, wherever they sit in it) from an identity zip (anything
/// else). Reads only the central directory, or walks local headers when
/// that is gone.
pub fn open(path: &Path) -> Result<ZipSource, ArchiveError> {
    let archive = path.display().to_string();
    let listing = list_file(path, &archive)?;
    let inner: Vec<&Entry> =
        listing.entries.iter().filter(|e| !e.is_dir() && e.name.to_ascii_lowercase().ends_with(".zip")).collect();
    if inner.is_empty() {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| archive.clone());
        return Ok(ZipSource {
            identities: vec![IdentityZip {
                identity: file_stem(&name),
                source: archive,
                location: Location::File(path.to_path_buf()),
            }],
            failures: Vec::new(),
            damage: listing.salvaged,
        });
    }
    let mut source = ZipSource { identities: Vec::new(), failures: Vec::new(), damage: listing.salvaged.clone() };
    for entry in inner {
        let member_source = format!("{archive}{SEPARATOR}{}", entry.name);
        match entry.fault {
            Some(fault) => source.failures.push(Failure { source: member_source, fault: fault.into() }),
            None => source.identities.push(IdentityZip {
                identity: file_stem(&entry.name),
                source: member_source,
                location: Location::Member { outer: path.to_path_buf(), entry: entry.clone() },
            }),
        }
    }
    Ok(source)
}

/// One identity's archive in memory, its members listed.
#[derive(Debug)]
pub struct IdentityArchive {
    pub identity: String,
    pub source: String,
    /// Set when the archive is damaged so that members may be missing.
    pub damage: Option<String>,
    bytes: Vec<u8>,
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
    /// Reads the identity's archive into memory and lists its members. An
    /// inner archive that is cut short or fails its CRC is still listed as
    /// far as it goes (its members carry their own CRCs); one that cannot
    /// be read at all is an error for the whole unit.
    pub fn load(&self) -> Result<IdentityArchive, ArchiveError> {
        let io_err = |source| ArchiveError::Io { archive: self.source.clone(), source };
        let mut damage = Vec::new();
        let bytes = match &self.location {
            Location::File(path) => std::fs::read(path).map_err(io_err)?,
            Location::Member { outer, entry } => {
                let mut reader = BufReader::new(File::open(outer).map_err(io_err)?);
                match read_entry(&mut reader, entry) {
                    Ok(bytes) => bytes,
                    Err(fault) => {
                        damage.push(fault.to_string());
                        fault.into_recovered().map_err(|fault| ArchiveError::Member {
                            archive: self.source.clone(),
                            fault,
                        })?
                    }
                }
            }
        };
        let listing = list(&mut Cursor::new(&bytes[..])).map_err(|e| match e {
            ListError::NotZip => ArchiveError::NotZip { archive: self.source.clone() },
            ListError::Io(source) => io_err(source),
        })?;
        damage.extend(listing.salvaged);
        let entries = listing.entries.into_iter().filter(|e| !e.is_dir()).collect();
        Ok(IdentityArchive {
            identity: self.identity.clone(),
            source: self.source.clone(),
            damage: (!damage.is_empty()).then(|| damage.join("; ")),
            bytes,
            entries,
        })
    }
}

impl IdentityArchive {
    /// Every file member, in listing order (directories left out).
    pub fn members(&self) -> impl Iterator<Item = Member<'_>> {
        self.entries.iter().enumerate().map(|(index, e)| Member { index, name: &e.name })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Display source of a member: `archive!member`.
    pub fn member_source(&self, index: usize) -> String {
        let name = self.entries.get(index).map_or("", |e| e.name.as_str());
        format!("{}{SEPARATOR}{name}", self.source)
    }

    /// Inflates and checks one member.
    pub fn read(&self, index: usize) -> Result<Vec<u8>, MemberFault> {
        let entry = self.entries.get(index).ok_or_else(|| {
            MemberFault::Io(io::Error::new(io::ErrorKind::NotFound, format!("no member {index}")))
        })?;
        read_entry(&mut Cursor::new(&self.bytes[..]), entry)
    }
}

#[cfg(test)]
mod tests;
