//! `facekit convert` from the zips as AI Hub ships them (a tier zip of
//! per-identity zips, a folder of per-identity zips, one per-identity zip)
//! gives the same outputs as converting the extracted tree, byte for byte,
//! but for the manifest's source column; and damaged zips give failed rows,
//! not a failed run.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use polars::prelude::{DataFrame, ParquetReader, SerReader};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

mod kface_fixture;
use kface_fixture::{annotation, photo};

const IDS: [&str; 6] = [
    "19062421", "19062431", "19070111", "19071241", "19080541", "19091132",
];

/// One identity's files, as members of its zip: annotated S001 images,
/// an unannotated S002 one (sibling landmarks), an L7 one (not selected).
fn identity_files(i: usize) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for light in [1, 3] {
        for camera in [4, 7, 10] {
            let stem = format!("S001/L{light}/E01/C{camera}");
            files.push((
                format!("{stem}.jpg"),
                photo(i as u32 * 31 + light * 7 + camera),
            ));
            files.push((
                format!("{stem}.txt"),
                annotation(camera, i as i32).into_bytes(),
            ));
        }
    }
    files.push(("S002/L1/E01/C7.jpg".into(), photo(i as u32 * 31 + 5)));
    files.push(("S001/L7/E01/C7.jpg".into(), photo(0)));
    files
}

fn zip_bytes(members: &[(String, Vec<u8>)], method: CompressionMethod) -> Vec<u8> {
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(method);
    for (name, data) in members {
        writer.start_file(name.as_str(), options).unwrap();
        writer.write_all(data).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// The same data four ways: the extracted tree, the tier zip, a folder of
/// identity zips, and one identity zip alone.
struct Sources {
    _dir: tempfile::TempDir,
    root: PathBuf,
    tree: PathBuf,
    tier_zip: PathBuf,
    zip_folder: PathBuf,
}

fn sources() -> Sources {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let tree = root.join("tree/Middle_Resolution");
    let zip_folder = root.join("zips");
    fs::create_dir_all(&zip_folder).unwrap();
    let mut inner = Vec::new();
    for (i, id) in IDS.iter().enumerate() {
        let files = identity_files(i);
        for (name, data) in &files {
            let path = tree.join(id).join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, data).unwrap();
        }
        let zip = zip_bytes(&files, CompressionMethod::Deflated);
        fs::write(zip_folder.join(format!("{id}.zip")), &zip).unwrap();
        inner.push((format!("{id}.zip"), zip));
    }
    let tier_zip = root.join("Middle_Resolution.zip");
    fs::write(&tier_zip, zip_bytes(&inner, CompressionMethod::Stored)).unwrap();
    Sources {
        _dir: dir,
        root,
        tree,
        tier_zip,
        zip_folder,
    }
}

fn convert(src: &Path, out: &Path, extra: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_facekit"))
        .args([
            "convert",
            src.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}: {}",
        src.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn manifest(path: &Path) -> DataFrame {
    ParquetReader::new(fs::File::open(path).unwrap())
        .finish()
        .unwrap()
}

fn strings(df: &DataFrame, column: &str) -> Vec<String> {
    df.column(column)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.unwrap_or("").to_string())
        .collect()
}

/// Where `needle` first occurs (a member name: its local header).
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).unwrap()
}

/// Every file below `dir`, relative path → bytes.
fn files_below(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let rel = entry
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.insert(rel, fs::read(entry.path()).unwrap());
        }
    }
    out
}

/// Outputs equal byte for byte, but for the manifest's source column,
/// whose zip form names archive and member of the same image.
fn assert_same_outputs(tree_out: &Path, zip_out: &Path, zip_prefix: &dyn Fn(&str) -> String) {
    let a = files_below(tree_out);
    let b = files_below(zip_out);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    // dataset.json names the output directory, which differs by run.
    let with_dir = |out: &Path, bytes: &[u8]| {
        String::from_utf8_lossy(bytes).replace(&out.display().to_string(), "<OUT>")
    };
    assert_eq!(
        with_dir(tree_out, &a["dataset.json"]),
        with_dir(zip_out, &b["dataset.json"])
    );
    // The record of the run holds the manifest's fingerprint.
    for (name, bytes) in &a {
        if !["manifest.parquet", "dataset.json", ".facekit-convert.json"].contains(&name.as_str()) {
            assert!(bytes == &b[name], "{name} differs");
        }
    }
    assert!(a.contains_key("train.rec") && a.contains_key("eval/manifest.parquet"));

    let ma = manifest(&tree_out.join("manifest.parquet"));
    let mb = manifest(&zip_out.join("manifest.parquet"));
    let (sa, sb) = (strings(&ma, "source"), strings(&mb, "source"));
    let ids = strings(&ma, "identity");
    assert_eq!(sa.len(), sb.len());
    for ((a, b), id) in sa.iter().zip(&sb).zip(&ids) {
        let member = a.split(&format!("{id}/")).nth(1).unwrap();
        assert_eq!(b, &format!("{}!{member}", zip_prefix(id)), "source of {a}");
    }
    let rest = |df: &DataFrame| df.drop("source").unwrap();
    assert!(
        rest(&ma).equals_missing(&rest(&mb)),
        "manifests differ beyond the source column"
    );
}

/// Two held-out identities, so that `eval/` is compared too.
const HOLDOUT: &[&str] = &["--holdout", "2", "--seed", "7"];

#[test]
fn tier_zip_and_zip_folder_convert_like_the_extracted_tree() {
    let s = sources();
    let tree_out = s.root.join("out-tree");
    convert(&s.tree, &tree_out, HOLDOUT);

    let tier_out = s.root.join("out-tier");
    convert(&s.tier_zip, &tier_out, HOLDOUT);
    let tier = s.tier_zip.display().to_string();
    assert_same_outputs(&tree_out, &tier_out, &|id| format!("{tier}!{id}.zip"));

    let folder_out = s.root.join("out-folder");
    convert(&s.zip_folder, &folder_out, HOLDOUT);
    let folder = s.zip_folder.display().to_string();
    assert_same_outputs(&tree_out, &folder_out, &|id| format!("{folder}/{id}.zip"));

    // Nothing was extracted next to the zips.
    assert_eq!(fs::read_dir(&s.zip_folder).unwrap().count(), IDS.len());
}

/// The whole issue-3 path: tier zip → convert --holdout → pairs → a `.bin`
/// whose images are the eval crops convert wrote.
#[test]
fn pairs_from_the_eval_set_convert_wrote() {
    let s = sources();
    let out = s.root.join("out");
    convert(&s.tier_zip, &out, &["--holdout", "3", "--seed", "1"]);
    let pairs_dir = s.root.join("pairs");
    let run = Command::new(env!("CARGO_BIN_EXE_facekit"))
        .args([
            "pairs",
            out.to_str().unwrap(),
            "--out",
            pairs_dir.to_str().unwrap(),
        ])
        .args(["--positives", "30", "--negatives", "30", "--quiet"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let bin =
        facekit::shard::verification_bin::read(&fs::read(pairs_dir.join("kface.bin")).unwrap())
            .unwrap();
    let text = fs::read_to_string(pairs_dir.join("pairs.txt")).unwrap();
    assert_eq!(text.lines().count(), 60);
    for (i, line) in text.lines().enumerate() {
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(
            bin.images[2 * i],
            fs::read(out.join("eval").join(parts[0])).unwrap()
        );
        assert_eq!(
            bin.images[2 * i + 1],
            fs::read(out.join("eval").join(parts[1])).unwrap()
        );
        assert_eq!(bin.issame[i], parts[2] == "1");
        assert_eq!(bin.issame[i], parts[0][..8] == parts[1][..8]);
    }
    let inspect = Command::new(env!("CARGO_BIN_EXE_facekit"))
        .args([
            "inspect",
            pairs_dir.join("kface.bin").to_str().unwrap(),
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(report["pairs"], 60);
    assert_eq!(report["sizes"][0]["width"], 112);
    assert_eq!(report["sizes"][0]["count"], 120);
}

#[test]
fn one_identity_zip_converts_alone() {
    let s = sources();
    let out = s.root.join("out-one");
    let one = s.zip_folder.join(format!("{}.zip", IDS[2]));
    convert(&one, &out, &[]);
    let m = manifest(&out.join("manifest.parquet"));
    let status = strings(&m, "status");
    assert_eq!(
        status.iter().filter(|s| *s == "ok").count(),
        7,
        "{status:?}"
    );
    assert!(strings(&m, "source")
        .iter()
        .all(|s| s.starts_with(&format!("{}!S00", one.display()))));
    assert!(strings(&m, "identity").iter().all(|s| s == IDS[2]));
}

#[test]
fn damaged_zips_give_failed_rows_and_the_rest_converts() {
    let s = sources();
    let dir = s.root.join("damaged");
    fs::create_dir_all(&dir).unwrap();
    // A member whose bytes were flipped (its CRC fails), in an otherwise good zip.
    let mut files = identity_files(0);
    let mut zip = zip_bytes(&files, CompressionMethod::Stored);
    let at = find(&zip, b"S001/L1/E01/C7.jpg");
    zip[at + 18 + 500] ^= 0xff;
    fs::write(dir.join(format!("{}.zip", IDS[0])), &zip).unwrap();
    // A zip cut off in the middle of its fourth image.
    files = identity_files(1);
    let zip = zip_bytes(&files, CompressionMethod::Stored);
    let at = find(&zip, files[6].0.as_bytes());
    fs::write(dir.join(format!("{}.zip", IDS[1])), &zip[..at + 18 + 1000]).unwrap();

    let out = s.root.join("out-damaged");
    convert(&dir, &out, &[]);
    let m = manifest(&out.join("manifest.parquet"));
    let (source, status, reason) = (
        strings(&m, "source"),
        strings(&m, "status"),
        strings(&m, "reason"),
    );
    let failed: Vec<(String, String)> = (0..source.len())
        .filter(|&i| status[i] == "failed")
        .map(|i| {
            (
                source[i].rsplit('!').next().unwrap().to_string(),
                reason[i].clone(),
            )
        })
        .collect();
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert_eq!(failed[0].0, "S001/L1/E01/C7.jpg");
    assert!(failed[0].1.contains("CRC mismatch"), "{failed:?}");
    assert!(
        failed
            .iter()
            .any(|(s, r)| s.ends_with(".zip") && r.contains("damaged archive")),
        "{failed:?}"
    );
    assert!(
        failed
            .iter()
            .any(|(s, r)| s == "S001/L3/E01/C4.jpg" && r.contains("truncated")),
        "{failed:?}"
    );
    // The first identity's other images and the second's first three convert.
    assert_eq!(
        status.iter().filter(|s| *s == "ok").count(),
        6 + 3,
        "{status:?}"
    );
}
