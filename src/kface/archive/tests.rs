//! Zip fixtures are built here: with the `zip` crate's writer where a
//! standard writer's output matters, byte by byte where the fault cannot be
//! written by a well-behaved writer (bad CRC, encrypted flag, duplicates,
//! CP949 names, unsafe names).

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::zipread::{list, Listing, ListingFault};
use super::*;

fn options(method: CompressionMethod) -> SimpleFileOptions {
    SimpleFileOptions::default().compression_method(method)
}

/// A zip made by the `zip` crate, members in order.
fn zip_of(members: &[(&str, &[u8])], method: CompressionMethod) -> Vec<u8> {
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    writer.add_directory("S001/", options(method)).unwrap();
    for (name, data) in members {
        writer.start_file(*name, options(method)).unwrap();
        writer.write_all(data).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// Image-like contents that deflate does not shrink to nothing.
fn content(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x % 7) as u8 + b'a'
        })
        .collect()
}

fn identity_members(seed: u32) -> Vec<(String, Vec<u8>)> {
    [
        "S001/L1/E01/C7.jpg",
        "S001/L1/E01/C7.txt",
        "S001/L2/E01/C7.jpg",
        "S002/L1/E02/C10.jpg",
    ]
    .iter()
    .enumerate()
    .map(|(i, n)| (n.to_string(), content(seed * 10 + i as u32, 3000 + 500 * i)))
    .collect()
}

fn identity_zip(seed: u32, method: CompressionMethod) -> Vec<u8> {
    let members = identity_members(seed);
    let refs: Vec<(&str, &[u8])> = members
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    zip_of(&refs, method)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn listing(bytes: &[u8]) -> Listing {
    list(&mut Cursor::new(bytes)).unwrap()
}

/// Where a member's data starts, from its local header.
fn data_start(bytes: &[u8], entry: &Entry) -> usize {
    let h = entry.header_offset as usize;
    let len = |i: usize| u16::from_le_bytes([bytes[h + i], bytes[h + i + 1]]) as usize;
    h + 30 + len(26) + len(28)
}

fn read_all(archive: &IdentityArchive) -> Vec<(String, Result<Vec<u8>, MemberFault>)> {
    archive
        .members()
        .map(|m| (m.name.to_string(), archive.read(m.index)))
        .collect()
}

/// One member of a hand-made zip.
struct Raw {
    name: Vec<u8>,
    data: Vec<u8>,
    flags: u16,
    /// The CRC written in the headers, when not the data's.
    crc: Option<u32>,
}

impl Raw {
    fn new(name: &str, data: &[u8]) -> Raw {
        Raw {
            name: name.as_bytes().to_vec(),
            data: data.to_vec(),
            flags: 0,
            crc: None,
        }
    }
}

/// A stored-only zip, written byte by byte.
fn raw_zip(members: &[Raw]) -> Vec<u8> {
    build_zip(members, false)
}

/// The same with every size and offset in zip64 fields and a zip64 end
/// record, as a tier zip over 4 GiB has them.
fn raw_zip64(members: &[Raw]) -> Vec<u8> {
    build_zip(members, true)
}

fn build_zip(members: &[Raw], zip64: bool) -> Vec<u8> {
    let u16le = |buf: &mut Vec<u8>, v: u16| buf.extend_from_slice(&v.to_le_bytes());
    let u32le = |buf: &mut Vec<u8>, v: u32| buf.extend_from_slice(&v.to_le_bytes());
    let u64le = |buf: &mut Vec<u8>, v: u64| buf.extend_from_slice(&v.to_le_bytes());
    let narrow = |v: u64| if zip64 { u32::MAX } else { v as u32 };
    let mut out = Vec::new();
    let mut central = Vec::new();
    for m in members {
        let offset = out.len() as u64;
        let crc = m.crc.unwrap_or_else(|| crc32fast::hash(&m.data));
        let size = m.data.len() as u64;
        let common = |buf: &mut Vec<u8>, extra_len: u16| {
            u16le(buf, if zip64 { 45 } else { 20 }); // version needed
            u16le(buf, m.flags);
            u16le(buf, 0); // stored
            u16le(buf, 0); // time
            u16le(buf, 0x21); // date 1980-01-01
            u32le(buf, crc);
            u32le(buf, narrow(size));
            u32le(buf, narrow(size));
            u16le(buf, m.name.len() as u16);
            u16le(buf, if zip64 { extra_len } else { 0 });
        };
        u32le(&mut out, 0x0403_4b50);
        common(&mut out, 20);
        out.extend_from_slice(&m.name);
        if zip64 {
            u16le(&mut out, 1);
            u16le(&mut out, 16);
            u64le(&mut out, size);
            u64le(&mut out, size);
        }
        out.extend_from_slice(&m.data);
        u32le(&mut central, 0x0201_4b50);
        u16le(&mut central, 45); // made by
        common(&mut central, 28);
        central.extend_from_slice(&[0; 10]); // comment len, disk, attributes
        u32le(&mut central, narrow(offset));
        central.extend_from_slice(&m.name);
        if zip64 {
            u16le(&mut central, 1);
            u16le(&mut central, 24);
            u64le(&mut central, size);
            u64le(&mut central, size);
            u64le(&mut central, offset);
        }
    }
    let cd_offset = out.len() as u64;
    let count = members.len() as u64;
    out.extend_from_slice(&central);
    if zip64 {
        let record = out.len() as u64;
        u32le(&mut out, 0x0606_4b50);
        u64le(&mut out, 44);
        u16le(&mut out, 45);
        u16le(&mut out, 45);
        out.extend_from_slice(&[0; 8]); // disks
        u64le(&mut out, count);
        u64le(&mut out, count);
        u64le(&mut out, central.len() as u64);
        u64le(&mut out, cd_offset);
        u32le(&mut out, 0x0706_4b50);
        u32le(&mut out, 0);
        u64le(&mut out, record);
        u32le(&mut out, 1);
    }
    u32le(&mut out, 0x0605_4b50);
    out.extend_from_slice(&[0; 4]);
    u16le(&mut out, if zip64 { u16::MAX } else { count as u16 });
    u16le(&mut out, if zip64 { u16::MAX } else { count as u16 });
    u32le(&mut out, narrow(central.len() as u64));
    u32le(&mut out, narrow(cd_offset));
    u16le(&mut out, 0);
    out
}

fn load_single(dir: &Path, bytes: &[u8]) -> IdentityArchive {
    let path = write(dir, "19062421.zip", bytes);
    let source = open(&path).unwrap();
    assert_eq!(source.identities.len(), 1);
    source.identities[0].load(&std::env::temp_dir()).unwrap()
}

#[test]
fn tier_zip_holding_identity_zips_is_read_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let a = identity_zip(1, CompressionMethod::Deflated);
    let b = identity_zip(2, CompressionMethod::Stored);
    let tier = zip_of(
        &[("19062421.zip", &a), ("19062422.zip", &b)],
        CompressionMethod::Stored,
    );
    let path = write(dir.path(), "Middle_Resolution.zip", &tier);

    let source = open(&path).unwrap();
    assert!(source.failures.is_empty() && source.damage.is_none());
    let ids: Vec<&str> = source
        .identities
        .iter()
        .map(|u| u.identity.as_str())
        .collect();
    assert_eq!(ids, ["19062421", "19062422"]);
    for (seed, unit) in [1, 2].into_iter().zip(&source.identities) {
        let archive = unit.load(&std::env::temp_dir()).unwrap();
        assert!(archive.damage.is_none());
        let got: Vec<(String, Vec<u8>)> = read_all(&archive)
            .into_iter()
            .map(|(n, d)| (n, d.unwrap()))
            .collect();
        assert_eq!(got, identity_members(seed));
    }
    let archive = source.identities[0].load(&std::env::temp_dir()).unwrap();
    let expected = format!("{}!19062421.zip!S001/L1/E01/C7.jpg", path.display());
    assert_eq!(archive.member_source(0), expected);
    assert!(archive
        .member_source(0)
        .ends_with("Middle_Resolution.zip!19062421.zip!S001/L1/E01/C7.jpg"));
    // Nothing was extracted next to the archive.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn deflated_tier_zip_and_nested_folders_work_too() {
    let dir = tempfile::tempdir().unwrap();
    let a = identity_zip(3, CompressionMethod::Deflated);
    let tier = zip_of(
        &[("Middle_Resolution/19062421.zip", &a)],
        CompressionMethod::Deflated,
    );
    let source = open(&write(dir.path(), "Middle_Resolution.zip", &tier)).unwrap();
    assert_eq!(source.identities.len(), 1);
    assert_eq!(source.identities[0].identity, "19062421");
    let archive = source.identities[0].load(&std::env::temp_dir()).unwrap();
    assert_eq!(archive.read(2).unwrap(), identity_members(3)[2].1);
}

#[test]
fn identity_zip_on_its_own_is_one_unit_named_by_its_stem() {
    let dir = tempfile::tempdir().unwrap();
    let archive = load_single(dir.path(), &identity_zip(4, CompressionMethod::Deflated));
    assert_eq!(archive.identity, "19062421");
    assert_eq!(archive.len(), 4);
    assert!(archive
        .member_source(1)
        .ends_with("19062421.zip!S001/L1/E01/C7.txt"));
    assert_eq!(archive.read(1).unwrap(), identity_members(4)[1].1);
}

#[test]
fn crc_error_fails_that_member_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = Raw::new("S001/L1/E01/C8.jpg", b"bytes that do not match");
    bad.crc = Some(0xdead_beef);
    let bytes = raw_zip(&[
        Raw::new("S001/L1/E01/C7.jpg", b"good one"),
        bad,
        Raw::new("S001/L1/E01/C9.jpg", b"good two"),
    ]);
    let archive = load_single(dir.path(), &bytes);
    let got = read_all(&archive);
    assert_eq!(got[0].1.as_ref().unwrap(), b"good one");
    assert!(
        matches!(
            got[1].1,
            Err(MemberFault::Crc {
                expected: 0xdead_beef,
                ..
            })
        ),
        "{:?}",
        got[1].1
    );
    assert_eq!(got[2].1.as_ref().unwrap(), b"good two");
}

#[test]
fn flipped_byte_in_deflated_data_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = identity_zip(5, CompressionMethod::Deflated);
    let entry = listing(&bytes)
        .entries
        .into_iter()
        .find(|e| e.name == "S001/L2/E01/C7.jpg")
        .unwrap();
    let at = data_start(&bytes, &entry) + entry.compressed_size as usize / 2;
    bytes[at] ^= 0x55;
    let archive = load_single(dir.path(), &bytes);
    let got = read_all(&archive);
    let bad: Vec<&String> = got
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(n, _)| n)
        .collect();
    assert_eq!(bad, ["S001/L2/E01/C7.jpg"]);
    let fault = got[2].1.as_ref().unwrap_err();
    assert!(
        matches!(
            fault,
            MemberFault::Crc { .. } | MemberFault::Corrupt(_) | MemberFault::Size { .. }
        ),
        "{fault}"
    );
}

#[test]
fn truncated_identity_zip_keeps_its_complete_members() {
    let dir = tempfile::tempdir().unwrap();
    let full = identity_zip(6, CompressionMethod::Deflated);
    let third = &listing(&full).entries[3];
    assert_eq!(third.name, "S001/L2/E01/C7.jpg");
    let cut = data_start(&full, third) + 100;
    let archive = load_single(dir.path(), &full[..cut]);
    assert!(
        archive
            .damage
            .as_deref()
            .unwrap()
            .contains("end of central directory"),
        "{:?}",
        archive.damage
    );
    let got = read_all(&archive);
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "S001/L1/E01/C7.jpg",
            "S001/L1/E01/C7.txt",
            "S001/L2/E01/C7.jpg"
        ]
    );
    let members = identity_members(6);
    assert_eq!(got[0].1.as_ref().unwrap(), &members[0].1);
    assert_eq!(got[1].1.as_ref().unwrap(), &members[1].1);
    assert!(
        matches!(got[2].1, Err(MemberFault::Truncated { .. })),
        "{:?}",
        got[2].1
    );
}

#[test]
fn truncated_tier_zip_keeps_what_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let a = identity_zip(7, CompressionMethod::Deflated);
    let b = identity_zip(8, CompressionMethod::Stored);
    let tier = zip_of(
        &[("19062421.zip", &a), ("19062422.zip", &b)],
        CompressionMethod::Stored,
    );
    // Cut inside the second identity's third member.
    let b_start = data_start(&tier, &listing(&tier).entries[2]);
    assert_eq!(&tier[b_start..b_start + b.len()], &b[..]);
    let cut = b_start + data_start(&b, &listing(&b).entries[3]) + 10;
    let source = open(&write(dir.path(), "Middle_Resolution.zip", &tier[..cut])).unwrap();
    assert!(source.damage.is_some());
    assert_eq!(source.identities.len(), 2);

    let first = source.identities[0].load(&std::env::temp_dir()).unwrap();
    assert!(first.damage.is_none());
    assert!(read_all(&first).iter().all(|(_, r)| r.is_ok()));

    let second = source.identities[1].load(&std::env::temp_dir()).unwrap();
    assert!(
        second.damage.as_deref().unwrap().contains("truncated"),
        "{:?}",
        second.damage
    );
    let got = read_all(&second);
    let members = identity_members(8);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].1.as_ref().unwrap(), &members[0].1);
    assert_eq!(got[1].1.as_ref().unwrap(), &members[1].1);
    assert!(matches!(got[2].1, Err(MemberFault::Truncated { .. })));
}

#[test]
fn stream_written_zip_with_data_descriptors_is_salvaged() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = ZipWriter::new_stream(Vec::new());
    let members = identity_members(9);
    for (name, data) in &members {
        writer
            .start_file(name.as_str(), options(CompressionMethod::Deflated))
            .unwrap();
        writer.write_all(data).unwrap();
    }
    let full = writer.finish().unwrap().into_inner();
    let whole = listing(&full);
    assert!(whole.salvaged.is_none());
    assert!(
        whole.entries.iter().all(|e| e.flags & 8 != 0),
        "the stream writer uses data descriptors"
    );
    // Without its central directory, the local headers and descriptors still tell every member.
    let cd_start = full
        .windows(4)
        .position(|w| w == 0x0201_4b50u32.to_le_bytes())
        .unwrap();
    let archive = load_single(dir.path(), &full[..cd_start]);
    assert!(archive.damage.is_some());
    let got: Vec<(String, Vec<u8>)> = read_all(&archive)
        .into_iter()
        .map(|(n, d)| (n, d.unwrap()))
        .collect();
    assert_eq!(got, members);
}

#[test]
fn cp949_and_backslash_names_are_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let (korean, _, _) = encoding_rs::EUC_KR.encode("한국인/S001/L1/E01/C7.jpg");
    assert!(std::str::from_utf8(&korean).is_err());
    let mut cp949 = Raw::new("", b"one");
    cp949.name = korean.into_owned();
    let mut utf8 = Raw::new("얼굴/C7.jpg", b"two");
    utf8.flags = 1 << 11;
    let bytes = raw_zip(&[cp949, utf8, Raw::new("S001\\L1\\E01\\C7.jpg", b"three")]);
    let archive = load_single(dir.path(), &bytes);
    let names: Vec<&str> = archive.members().map(|m| m.name).collect();
    assert_eq!(
        names,
        [
            "한국인/S001/L1/E01/C7.jpg",
            "얼굴/C7.jpg",
            "S001/L1/E01/C7.jpg"
        ]
    );
    assert_eq!(archive.read(0).unwrap(), b"one");
}

#[test]
fn unsafe_names_are_failures_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "../19062421/S001/L1/E01/C7.jpg",
        "/etc/C7.jpg",
        "C:/C7.jpg",
        "S001/../../C7.jpg",
        "..\\C7.jpg",
    ];
    let mut members: Vec<Raw> = names.iter().map(|n| Raw::new(n, b"x")).collect();
    members.push(Raw::new("S001/L1/E01/C7.jpg", b"fine"));
    let archive = load_single(dir.path(), &raw_zip(&members));
    let got = read_all(&archive);
    for (name, result) in &got[..5] {
        assert!(
            matches!(result, Err(MemberFault::Listing(ListingFault::UnsafeName))),
            "{name}: {result:?}"
        );
    }
    assert_eq!(got[5].1.as_ref().unwrap(), b"fine");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    assert!(!dir.path().parent().unwrap().join("19062421").exists());
}

#[test]
fn encrypted_and_duplicate_members_are_failures() {
    let dir = tempfile::tempdir().unwrap();
    let mut secret = Raw::new("S001/L1/E01/C8.jpg", b"ciphertext");
    secret.flags = 1;
    let bytes = raw_zip(&[
        Raw::new("S001/L1/E01/C7.jpg", b"first"),
        secret,
        Raw::new("S001/L1/E01/C7.jpg", b"second"),
    ]);
    let archive = load_single(dir.path(), &bytes);
    let got = read_all(&archive);
    assert_eq!(got[0].1.as_ref().unwrap(), b"first");
    assert!(matches!(
        got[1].1,
        Err(MemberFault::Listing(ListingFault::Encrypted))
    ));
    assert!(matches!(
        got[2].1,
        Err(MemberFault::Listing(ListingFault::Duplicate))
    ));
    assert_eq!(
        got[2].1.as_ref().unwrap_err().to_string(),
        "duplicate member name (the first copy is used)"
    );
}

#[test]
fn bad_inner_archives_of_a_tier_zip_are_failures() {
    let dir = tempfile::tempdir().unwrap();
    let a = identity_zip(10, CompressionMethod::Stored);
    let mut secret = Raw::new("19062422.zip", &a);
    secret.flags = 1;
    let tier = raw_zip(&[
        Raw::new("19062421.zip", &a),
        secret,
        Raw::new("19062421.zip", &a),
        Raw::new("../19062423.zip", &a),
        Raw::new("19062424.zip", b"not a zip at all"),
    ]);
    let path = write(dir.path(), "Middle_Resolution.zip", &tier);
    let source = open(&path).unwrap();
    let ids: Vec<&str> = source
        .identities
        .iter()
        .map(|u| u.identity.as_str())
        .collect();
    assert_eq!(ids, ["19062421", "19062424"]);
    let failed: Vec<String> = source
        .failures
        .iter()
        .map(|f| format!("{}: {}", f.source, f.fault))
        .collect();
    let archive = path.display();
    assert_eq!(
        failed,
        [
            format!("{archive}!19062422.zip: encrypted member"),
            format!("{archive}!19062421.zip: duplicate member name (the first copy is used)"),
            format!("{archive}!../19062423.zip: member name is absolute or contains `..`"),
        ]
    );
    let err = source.identities[1]
        .load(&std::env::temp_dir())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{archive}!19062424.zip: not a zip archive")
    );
}

#[test]
fn not_a_zip_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "19062421.zip", b"<html>login required</html>");
    let err = open(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: not a zip archive", path.display())
    );
    let missing = dir.path().join("missing.zip");
    assert!(matches!(open(&missing), Err(ArchiveError::Io { .. })));
}

#[test]
fn a_member_of_unknown_size_inflates_no_further_than_the_limit() {
    let zeros = vec![0u8; 1 << 20];
    let bytes = zip_of(
        &[("S001/L1/E01/C7.jpg", &zeros)],
        CompressionMethod::Deflated,
    );
    let mut entry = listing(&bytes)
        .entries
        .into_iter()
        .find(|e| e.name.ends_with("C7.jpg"))
        .unwrap();
    // As salvage leaves a member whose end was cut off.
    entry.uncompressed_size = u64::MAX;
    let read = |limit| super::zipread::read_entry(&mut Cursor::new(&bytes[..]), &entry, limit);
    let over = read(1000);
    assert!(
        matches!(over, Err(MemberFault::OverLimit { limit: 1000 })),
        "{over:?}"
    );
    assert_eq!(read(1 << 20).unwrap().len(), 1 << 20);
}

#[test]
fn reading_never_panics_on_cut_or_scrambled_archives() {
    let full = identity_zip(11, CompressionMethod::Deflated);
    for cut in (0..full.len()).step_by(97) {
        if let Ok(l) = list(&mut Cursor::new(&full[..cut])) {
            for e in &l.entries {
                let _ = super::zipread::read_entry(&mut Cursor::new(&full[..cut]), e, u64::MAX);
            }
        }
    }
    let mut scrambled = full.clone();
    for i in (0..scrambled.len()).step_by(13) {
        scrambled[i] = scrambled[i].wrapping_mul(31).wrapping_add(7);
        if let Ok(l) = list(&mut Cursor::new(&scrambled[..])) {
            for e in &l.entries {
                let _ = super::zipread::read_entry(&mut Cursor::new(&scrambled[..]), e, u64::MAX);
            }
        }
    }
}

#[test]
fn discovery_units_list_kface_members_in_walk_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut secret = Raw::new("S001/L2/E01/C7.jpg", b"ciphertext");
    secret.flags = 1;
    let inner = raw_zip(&[
        Raw::new("S001/L10/E01/C7.jpg", b"l10"),
        Raw::new("S001/L1/E01/C7.txt", b"txt"),
        Raw::new("readme.txt", b"not K-Face"),
        Raw::new("S001/L1/E01/C7.jpg", b"l1"),
        secret,
    ]);
    let mut locked = Raw::new("19062422.zip", &inner);
    locked.flags = 1;
    let tier = raw_zip(&[Raw::new("19062421.zip", &inner), locked]);
    let path = write(dir.path(), "Middle_Resolution.zip", &tier);

    let units = units(&path).unwrap();
    let ids: Vec<&str> = units.iter().map(|u| u.identity()).collect();
    assert_eq!(ids, ["19062421", "19062422"]);
    let loaded = units[0].load(&std::env::temp_dir()).unwrap();
    let listed: Vec<(String, FileKind)> = loaded
        .files()
        .iter()
        .map(|f| {
            (
                f.source.rsplit('!').next().unwrap().to_string(),
                f.kind.clone(),
            )
        })
        .collect();
    let a = |l| Attributes::new(1, l, 1, 7).unwrap();
    assert_eq!(
        listed,
        [
            ("S001/L1/E01/C7.jpg".to_string(), FileKind::Image(a(1))),
            ("S001/L1/E01/C7.txt".to_string(), FileKind::Annotation(a(1))),
            ("S001/L10/E01/C7.jpg".to_string(), FileKind::Image(a(10))),
            (
                "S001/L2/E01/C7.jpg".to_string(),
                FileKind::Broken("encrypted member".into())
            ),
        ]
    );
    assert_eq!(loaded.read(0).unwrap(), b"l1");
    assert_eq!(loaded.read(2).unwrap(), b"l10");
    assert!(loaded.files()[0]
        .source
        .ends_with("Middle_Resolution.zip!19062421.zip!S001/L1/E01/C7.jpg"));
    let err = units[1].load(&std::env::temp_dir()).err().unwrap();
    assert_eq!(
        err.to_string(),
        format!("{}!19062422.zip: encrypted member", path.display())
    );
}

#[test]
fn a_damaged_identity_archive_says_so_in_its_listing() {
    let dir = tempfile::tempdir().unwrap();
    let full = identity_zip(12, CompressionMethod::Stored);
    let third = &listing(&full).entries[3];
    let path = write(
        dir.path(),
        "19062421.zip",
        &full[..data_start(&full, third) + 5],
    );
    let units = units(&path).unwrap();
    let loaded = units[0].load(&std::env::temp_dir()).unwrap();
    let kinds: Vec<&FileKind> = loaded.files().iter().map(|f| &f.kind).collect();
    assert!(matches!(kinds[0], FileKind::Image(_)) && matches!(kinds[1], FileKind::Annotation(_)));
    assert!(matches!(kinds[2], FileKind::Image(_)));
    assert!(loaded
        .read(2)
        .unwrap_err()
        .to_string()
        .contains("truncated"));
    match kinds.last().unwrap() {
        FileKind::Broken(reason) => assert!(
            reason.starts_with("damaged archive, members may be missing"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn zip64_tier_zip_is_read_through_its_zip64_records() {
    let dir = tempfile::tempdir().unwrap();
    let a = raw_zip64(&[
        Raw::new("S001/L1/E01/C7.jpg", b"jpeg a"),
        Raw::new("S001/L1/E01/C7.txt", b"txt a"),
    ]);
    let b = identity_zip(13, CompressionMethod::Deflated);
    let tier = raw_zip64(&[Raw::new("19062421.zip", &a), Raw::new("19062422.zip", &b)]);
    let whole = listing(&tier);
    assert!(whole.salvaged.is_none(), "{:?}", whole.salvaged);
    assert!(whole.entries[1].header_offset > 0);
    let source = open(&write(dir.path(), "Middle_Resolution.zip", &tier)).unwrap();
    let first = source.identities[0].load(&std::env::temp_dir()).unwrap();
    assert!(first.damage.is_none());
    assert_eq!(first.read(1).unwrap(), b"txt a");
    let second = source.identities[1].load(&std::env::temp_dir()).unwrap();
    assert_eq!(second.read(3).unwrap(), identity_members(13)[3].1);
    // Cut before its central directory, the zip64 local headers still list it.
    let cd = data_start(&tier, &whole.entries[1]) + b.len();
    let cut = listing(&tier[..cd]);
    assert!(cut.salvaged.is_some());
    assert_eq!(cut.entries.len(), 2);
    assert_eq!(cut.entries[1].compressed_size, b.len() as u64);
}

#[test]
fn member_paths_name_the_identity_of_a_renamed_zip() {
    let dir = tempfile::tempdir().unwrap();
    let one = raw_zip(&[
        Raw::new("19062421/S001/L1/E01/C7.jpg", b"a"),
        Raw::new("19062421/S001/L1/E01/C7.txt", b"t"),
    ]);
    let source = open(&write(dir.path(), "kface part 1.zip", &one)).unwrap();
    assert_eq!(source.identities[0].identity, "19062421");
    let units = units(&dir.path().join("kface part 1.zip")).unwrap();
    let loaded = units[0].load(&std::env::temp_dir()).unwrap();
    assert_eq!(loaded.files().len(), 2);

    let tree = raw_zip(&[
        Raw::new("Middle_Resolution/19062421/S001/L1/E01/C7.jpg", b"a"),
        Raw::new("Middle_Resolution/19062422/S001/L1/E01/C7.jpg", b"b"),
    ]);
    let path = write(dir.path(), "Middle_Resolution.zip", &tree);
    let err = open(&path).unwrap_err().to_string();
    assert!(
        err.contains("holds 2 identities (19062421, 19062422)"),
        "{err}"
    );
}
