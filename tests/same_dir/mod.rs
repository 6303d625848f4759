//! Whether two output folders hold the same result: every file byte for
//! byte, except JSON files, compared with the named keys (timings, the
//! shard note) removed at any depth. Hidden files (facekit's markers) and
//! `partial.json` are not part of a result.

use std::collections::BTreeMap;
use std::path::Path;

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(dir).unwrap().to_string_lossy();
            (rel.replace('\\', "/"), std::fs::read(e.path()).unwrap())
        })
        .filter(|(rel, _)| !rel.split('/').any(|c| c.starts_with('.')) && rel != "partial.json")
        .collect()
}

fn unmask(value: &mut serde_json::Value, masked: &[&str]) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|k, _| !masked.contains(&k.as_str()));
            map.values_mut().for_each(|v| unmask(v, masked));
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| unmask(v, masked)),
        _ => {}
    }
}

/// Panics naming the first file that differs.
pub fn assert_same(want: &Path, got: &Path, masked: &[&str]) {
    let (want_files, got_files) = (files(want), files(got));
    assert_eq!(
        want_files.keys().collect::<Vec<_>>(),
        got_files.keys().collect::<Vec<_>>(),
        "{} and {} hold other files",
        want.display(),
        got.display()
    );
    for (name, bytes) in &want_files {
        let theirs = &got_files[name];
        if name.ends_with(".json") {
            let parse = |b: &[u8]| {
                let mut v: serde_json::Value = serde_json::from_slice(b).unwrap();
                unmask(&mut v, masked);
                v
            };
            assert_eq!(
                parse(bytes),
                parse(theirs),
                "{name} differs (masked {masked:?})"
            );
        } else {
            assert!(
                bytes == theirs,
                "{name} differs between {} and {}",
                want.display(),
                got.display()
            );
        }
    }
}
