//! `facekit pairs` end to end, on an eval directory the test writes: the
//! pair list and the `.bin` agree with each other and with the crops, seeds
//! reproduce, constraints hold; and Python's `pickle.load` reads the `.bin`
//! (interop, with FACEKIT_PYTHON_INTEROP).

mod require;

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use facekit::kface::Attributes;
use facekit::shard::verification_bin;
use polars::prelude::*;

const IDS: [&str; 4] = ["19082641", "19090641", "19090342", "19090531"];

/// Writes `DIR/eval/` as convert does: crops at `eval/<path>` and
/// `eval/manifest.parquet`.
fn write_eval(dir: &Path) {
    let mut rows: Vec<(String, String, &str, bool, Attributes)> = Vec::new();
    for (n, id) in IDS.iter().enumerate() {
        for light in [1u8, 2, 3] {
            for camera in [4u8, 7, 10] {
                let attrs = Attributes::new(1, light, 1, camera).unwrap();
                let role = if light == 1 && camera == 7 && n % 2 == 0 {
                    "gallery"
                } else {
                    "probe"
                };
                rows.push((
                    format!("{id}/{}.jpg", attrs.relative_stem()),
                    id.to_string(),
                    role,
                    n % 2 == 0,
                    attrs,
                ));
            }
        }
    }
    for (i, (path, ..)) in rows.iter().enumerate() {
        let full = dir.join("eval").join(path);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        let img = image::RgbImage::from_fn(112, 112, |x, y| {
            image::Rgb([(x + i as u32) as u8, (y * 2) as u8, (i * 9) as u8])
        });
        img.save(&full).unwrap();
    }
    let mut df = df!(
        "path" => rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
        "identity" => rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
        "role" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        "in_db" => rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        "accessory" => rows.iter().map(|r| r.4.accessory_code()).collect::<Vec<_>>(),
        "light" => rows.iter().map(|r| r.4.light_code()).collect::<Vec<_>>(),
        "expression" => rows.iter().map(|r| r.4.expression_code()).collect::<Vec<_>>(),
        "camera" => rows.iter().map(|r| r.4.camera_code()).collect::<Vec<_>>(),
    )
    .unwrap();
    let file = fs::File::create(dir.join("eval/manifest.parquet")).unwrap();
    ParquetWriter::new(file).finish(&mut df).unwrap();
}

fn facekit(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_facekit"))
        .args(args)
        .output()
        .unwrap()
}

fn pairs_run(dir: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "pairs",
        dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    facekit(&args)
}

fn parse_lines(text: &str) -> Vec<(String, String, bool)> {
    text.lines()
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            assert_eq!(parts.len(), 3, "{l}");
            (parts[0].to_string(), parts[1].to_string(), parts[2] == "1")
        })
        .collect()
}

#[test]
fn pairs_txt_and_bin_agree_with_the_crops() {
    let dir = tempfile::tempdir().unwrap();
    write_eval(dir.path());
    let out = dir.path().join("pairs");
    let run = pairs_run(
        dir.path(),
        &out,
        &["--positives", "20", "--negatives", "25", "--seed", "5"],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let lines = parse_lines(&fs::read_to_string(out.join("pairs.txt")).unwrap());
    assert_eq!(lines.len(), 45);
    let mut seen = HashSet::new();
    // 10 folds of 2 genuine then 2-3 impostor pairs, as LFW's list.
    let kinds: Vec<bool> = lines.iter().take(5).map(|l| l.2).collect();
    assert_eq!(kinds, [true, true, false, false, false]);
    assert_eq!(lines.iter().filter(|l| l.2).count(), 20);
    for (a, b, same) in &lines {
        assert_eq!(*same, a[..8] == b[..8], "label of {a} {b}");
        assert_ne!(a, b);
        let key = if a < b {
            (a.clone(), b.clone())
        } else {
            (b.clone(), a.clone())
        };
        assert!(seen.insert(key), "pair repeated: {a} {b}");
    }

    let bin = verification_bin::read(&fs::read(out.join("kface.bin")).unwrap()).unwrap();
    assert_eq!(bin.issame, lines.iter().map(|l| l.2).collect::<Vec<_>>());
    for (i, (a, b, _)) in lines.iter().enumerate() {
        assert_eq!(
            bin.images[2 * i],
            fs::read(dir.path().join("eval").join(a)).unwrap()
        );
        assert_eq!(
            bin.images[2 * i + 1],
            fs::read(dir.path().join("eval").join(b)).unwrap()
        );
    }
    let leftovers: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        3,
        "only pairs.txt, kface.bin and the record of the run: {leftovers:?}"
    );
}

#[test]
fn same_seed_same_files_other_seed_other_pairs() {
    let dir = tempfile::tempdir().unwrap();
    write_eval(dir.path());
    let run = |name: &str, seed: &str| {
        let out = dir.path().join(name);
        let r = pairs_run(
            dir.path(),
            &out,
            &["--positives", "10", "--negatives", "10", "--seed", seed],
        );
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        (
            fs::read(out.join("pairs.txt")).unwrap(),
            fs::read(out.join("kface.bin")).unwrap(),
        )
    };
    let a = run("a", "1");
    assert_eq!(a, run("b", "1"));
    assert_ne!(a.0, run("c", "2").0);
}

#[test]
fn side_constraints_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    write_eval(dir.path());
    let out = dir.path().join("pairs");
    let r = pairs_run(
        dir.path(),
        &out,
        &[
            "--positives",
            "8",
            "--negatives",
            "30",
            "--first",
            "L1 C7",
            "--second",
            "L2-3",
            "--name",
            "kface_l1",
        ],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(out.join("kface_l1.bin").exists());
    for (a, b, _) in parse_lines(&fs::read_to_string(out.join("pairs.txt")).unwrap()) {
        assert!(a.ends_with("/S001/L1/E01/C7.jpg"), "{a}");
        assert!(b.contains("/L2/") || b.contains("/L3/"), "{b}");
    }
}

#[test]
fn asking_for_too_many_pairs_fails_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    write_eval(dir.path());
    // 4 identities × 9 images: 4 × C(9,2) = 144 genuine pairs.
    let r = pairs_run(dir.path(), &dir.path().join("p"), &["--positives", "145"]);
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("only 144 distinct genuine pairs"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let missing = pairs_run(&dir.path().join("nothing"), &dir.path().join("p"), &[]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("manifest.parquet"));
}

/// Python's own `pickle.load` reads the `.bin` on its first try (no
/// `encoding='bytes'` fallback) and gets the same bytes and labels, and
/// `mx.image.imdecode` (arcface_torch's `load_bin`) decodes every image.
#[test]
fn python_pickle_loads_the_bin() {
    let Some(python) = std::env::var_os("FACEKIT_PYTHON_INTEROP") else {
        require::skip(
            "interop",
            "python_pickle_loads_the_bin",
            "FACEKIT_PYTHON_INTEROP is not set",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_eval(dir.path());
    let out = dir.path().join("pairs");
    let r = pairs_run(
        dir.path(),
        &out,
        &["--positives", "12", "--negatives", "12"],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let script = r#"
import pickle, sys, zlib
with open(sys.argv[1], 'rb') as f:
    bins, issame = pickle.load(f)
assert all(type(b) is bytes for b in bins), [type(b) for b in bins]
assert all(type(s) is bool for s in issame)
print(len(bins), len(issame))
for b in bins:
    print(len(b), zlib.crc32(b))
print(' '.join('1' if s else '0' for s in issame))
# What arcface_torch's eval/verification.py load_bin does with each image.
import mxnet as mx
for b in bins:
    img = mx.image.imdecode(b)
    assert img.shape == (112, 112, 3), img.shape
"#;
    let py = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(out.join("kface.bin"))
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let bin = verification_bin::read(&fs::read(out.join("kface.bin")).unwrap()).unwrap();
    let mut expected = format!("{} {}\n", bin.images.len(), bin.issame.len());
    for b in &bin.images {
        expected.push_str(&format!("{} {}\n", b.len(), crc32fast::hash(b)));
    }
    let labels: Vec<&str> = bin
        .issame
        .iter()
        .map(|&s| if s { "1" } else { "0" })
        .collect();
    expected.push_str(&labels.join(" "));
    expected.push('\n');
    assert_eq!(String::from_utf8_lossy(&py.stdout), expected);
}
