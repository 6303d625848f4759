//! `facekit inspect DIR | FILE.rec`: reads every record of a converted
//! directory's `train.rec` through its `train.idx` and checks what
//! arcface_torch relies on: the index parses, its offsets point at records,
//! keys run 0..N-1 once each, every record has flag 0, id = key, an integral
//! label in [0, num_classes), and a JPEG that decodes to size×size RGB.
//! Prints counts (hyperfine-like, or JSON with `--json`); exits 1 naming the
//! first problems if any record is bad, or when pairs beside it (or the
//! `.bin` inspected) were drawn from an earlier conversion of the dataset.
//!
//! A verification `.bin` goes to `inspect_bin`.
//!
//! `dataset.json` beside the `.rec` is used when present: `num_classes`,
//! `num_image` and `image_size` (a number or `[h, w]`).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rayon::prelude::*;
use serde::Serialize;

use crate::cli::InspectArgs;
use crate::imaging::{decode_jpeg, DEFAULT_MAX_PIXELS};
use crate::output::progress;
use crate::shard::{read_index, unpack, IndexEntry, Label, RecordReader};

/// Problems listed in full; the rest are only counted.
const LISTED_PROBLEMS: usize = 10;
/// Records checked in parallel at a time (bounded memory).
const BATCH: usize = 2048;

pub fn run(args: &InspectArgs) -> anyhow::Result<()> {
    check_records(args)?;
    // Pairs drawn from an earlier conversion of their dataset look valid.
    if let Some(stale) = crate::output::stale_source(&args.path)? {
        bail!(stale);
    }
    Ok(())
}

fn check_records(args: &InspectArgs) -> anyhow::Result<()> {
    if args
        .path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("bin"))
    {
        return super::inspect_bin::run(&args.path, &args.output);
    }
    let files = ShardFiles::locate(&args.path)?;
    let summary = inspect(&files, args.output.quiet)?;
    if args.output.json {
        crate::output::print(&(serde_json::to_string_pretty(&summary)? + "\n"))?;
    } else if !args.output.quiet {
        crate::output::print(&summary.render())?;
    }
    if summary.problems > 0 {
        let first = &summary.first_problems[0];
        bail!(
            "{}: {} problem(s); first: {}",
            files.rec.display(),
            summary.problems,
            first.describe()
        );
    }
    Ok(())
}

/// The files of one shard.
struct ShardFiles {
    rec: PathBuf,
    idx: PathBuf,
    dataset_json: Option<PathBuf>,
}

impl ShardFiles {
    fn locate(path: &Path) -> anyhow::Result<ShardFiles> {
        let rec = if path.is_dir() {
            path.join("train.rec")
        } else if path.extension().is_some_and(|e| e == "rec") {
            path.to_path_buf()
        } else if path.exists() {
            bail!(
                "{}: expected a converted directory or a .rec file",
                path.display()
            );
        } else {
            bail!("{}: no such file or directory", path.display());
        };
        let idx = rec.with_extension("idx");
        for needed in [&rec, &idx] {
            if !needed.is_file() {
                bail!(
                    "{}: not found (a converted directory holds train.rec and train.idx)",
                    needed.display()
                );
            }
        }
        let dataset_json = rec
            .parent()
            .map(|d| d.join("dataset.json"))
            .filter(|p| p.is_file());
        Ok(ShardFiles {
            rec,
            idx,
            dataset_json,
        })
    }
}

/// What `dataset.json` promises.
#[derive(Debug, Default, Clone, Copy, Serialize)]
struct Expected {
    num_classes: Option<u64>,
    num_image: Option<u64>,
    image_size: Option<(u32, u32)>,
}

fn read_expected(path: &Path) -> anyhow::Result<Expected> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", path.display()))?;
    let image_size = match &json["image_size"] {
        serde_json::Value::Number(n) => n.as_u64().map(|s| (s as u32, s as u32)),
        serde_json::Value::Array(a) if a.len() == 2 => a[0]
            .as_u64()
            .zip(a[1].as_u64())
            .map(|(h, w)| (w as u32, h as u32)),
        _ => None,
    };
    Ok(Expected {
        num_classes: json["num_classes"].as_u64(),
        num_image: json["num_image"].as_u64(),
        image_size,
    })
}

#[derive(Debug, Clone, Serialize)]
struct Problem {
    key: Option<u64>,
    offset: Option<u64>,
    problem: String,
}

impl Problem {
    fn describe(&self) -> String {
        match (self.key, self.offset) {
            (Some(k), Some(o)) => format!("key {k} at byte {o}: {}", self.problem),
            (None, Some(o)) => format!("byte {o}: {}", self.problem),
            (Some(k), None) => format!("key {k}: {}", self.problem),
            (None, None) => self.problem.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
struct PerClass {
    min: u64,
    median: u64,
    max: u64,
}

#[derive(Debug, Serialize)]
struct Summary {
    rec: String,
    records: u64,
    index_entries: u64,
    classes: u64,
    label_min: Option<u64>,
    label_max: Option<u64>,
    images_per_class: Option<PerClass>,
    image_size: Option<(u32, u32)>,
    expected: Expected,
    problems: u64,
    first_problems: Vec<Problem>,
}

impl Summary {
    fn render(&self) -> String {
        let mut out = format!("{}\n", self.rec);
        out += &format!(
            "  records:          {} ({} index entries)\n",
            self.records, self.index_entries
        );
        match (self.label_min, self.label_max) {
            (Some(lo), Some(hi)) => {
                out += &format!(
                    "  classes:          {} (labels {lo} .. {hi})\n",
                    self.classes
                )
            }
            _ => out += "  classes:          0\n",
        }
        if let Some(c) = &self.images_per_class {
            out += &format!(
                "  images per class: min {}, median {}, max {}\n",
                c.min, c.median, c.max
            );
        }
        if let Some((w, h)) = self.image_size {
            out += &format!("  image size:       {w}x{h}x3 JPEG\n");
        }
        out += &format!("  problems:         {}\n", self.problems);
        for p in &self.first_problems {
            out += &format!("    {}\n", p.describe());
        }
        out
    }
}

/// Collects problems, keeping the first few in full.
#[derive(Default)]
struct Problems {
    count: u64,
    listed: Vec<Problem>,
}

impl Problems {
    fn add(&mut self, key: Option<u64>, offset: Option<u64>, problem: String) {
        self.count += 1;
        if self.listed.len() < LISTED_PROBLEMS {
            self.listed.push(Problem {
                key,
                offset,
                problem,
            });
        }
    }
}

fn inspect(files: &ShardFiles, quiet: bool) -> anyhow::Result<Summary> {
    let expected = match &files.dataset_json {
        Some(path) => read_expected(path)?,
        None => Expected::default(),
    };
    let idx_file =
        File::open(&files.idx).with_context(|| format!("{}: cannot open", files.idx.display()))?;
    let entries =
        read_index(BufReader::new(idx_file)).with_context(|| format!("{}", files.idx.display()))?;
    let mut problems = Problems::default();
    let key_at = check_index(&entries, &mut problems);

    let rec_file =
        File::open(&files.rec).with_context(|| format!("{}: cannot open", files.rec.display()))?;
    let image_size = match expected.image_size {
        Some(size) => Some(size),
        None => first_image_size(&files.rec, &entries),
    };
    let bar = progress(entries.len() as u64, "inspect", quiet);
    let mut reader = RecordReader::new(BufReader::with_capacity(1 << 20, rec_file));
    let mut seen_offsets = HashSet::with_capacity(entries.len());
    let mut label_counts: HashMap<u64, u64> = HashMap::new();
    let mut records = 0u64;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let next = match reader.next_record() {
            Ok(next) => next,
            Err(err) => {
                problems.add(None, None, format!("{}: {err}", files.rec.display()));
                None
            }
        };
        let done = next.is_none();
        if let Some((offset, payload)) = next {
            batch.push((offset, key_at.get(&offset).copied(), payload));
        }
        if batch.len() == BATCH || (done && !batch.is_empty()) {
            let checked: Vec<RecordCheck> = batch
                .par_iter()
                .map(|(_, key, payload)| check_record(*key, payload, &expected, image_size))
                .collect();
            for (check, (offset, key, _)) in checked.into_iter().zip(&batch) {
                records += 1;
                seen_offsets.insert(*offset);
                if key.is_none() {
                    problems.add(None, Some(*offset), "record is not in the index".into());
                }
                if let Some(label) = check.label {
                    *label_counts.entry(label).or_default() += 1;
                }
                for problem in check.problems {
                    problems.add(*key, Some(*offset), problem);
                }
            }
            bar.inc(batch.len() as u64);
            batch.clear();
        }
        if done {
            break;
        }
    }
    bar.finish_and_clear();
    for entry in &entries {
        if !seen_offsets.contains(&entry.offset) {
            problems.add(
                Some(entry.key),
                Some(entry.offset),
                "index offset is not the start of a record".into(),
            );
        }
    }
    check_counts(&label_counts, records, &expected, &mut problems);

    let mut counts: Vec<u64> = label_counts.values().copied().collect();
    counts.sort_unstable();
    Ok(Summary {
        rec: files.rec.display().to_string(),
        records,
        index_entries: entries.len() as u64,
        classes: label_counts.len() as u64,
        label_min: label_counts.keys().min().copied(),
        label_max: label_counts.keys().max().copied(),
        images_per_class: (!counts.is_empty()).then(|| PerClass {
            min: counts[0],
            median: counts[(counts.len() - 1) / 2],
            max: counts[counts.len() - 1],
        }),
        image_size,
        expected,
        problems: problems.count,
        first_problems: problems.listed,
    })
}

/// Keys must be 0..N-1, each once. Returns offset → key.
fn check_index(entries: &[IndexEntry], problems: &mut Problems) -> HashMap<u64, u64> {
    let n = entries.len() as u64;
    let mut seen = vec![false; entries.len()];
    let mut key_at = HashMap::with_capacity(entries.len());
    for entry in entries {
        if entry.key >= n {
            problems.add(
                Some(entry.key),
                Some(entry.offset),
                format!("key outside 0..{n}"),
            );
        } else if std::mem::replace(&mut seen[entry.key as usize], true) {
            problems.add(
                Some(entry.key),
                Some(entry.offset),
                "key listed twice in the index".into(),
            );
        }
        if let Some(other) = key_at.insert(entry.offset, entry.key) {
            problems.add(
                Some(entry.key),
                Some(entry.offset),
                format!("offset also listed for key {other}"),
            );
        }
    }
    for (key, _) in seen.iter().enumerate().filter(|(_, s)| !**s) {
        problems.add(Some(key as u64), None, "key missing from the index".into());
    }
    key_at
}

/// The size of the first record's image, when dataset.json does not say.
fn first_image_size(rec: &Path, entries: &[IndexEntry]) -> Option<(u32, u32)> {
    let first = entries.iter().min_by_key(|e| e.key)?;
    let mut reader = RecordReader::new(File::open(rec).ok()?);
    let payload = reader.read_at(first.offset).ok()?;
    let image = decode_jpeg(unpack(&payload).ok()?.image, DEFAULT_MAX_PIXELS).ok()?;
    Some(image.dimensions())
}

struct RecordCheck {
    label: Option<u64>,
    problems: Vec<String>,
}

fn check_record(
    key: Option<u64>,
    payload: &[u8],
    expected: &Expected,
    image_size: Option<(u32, u32)>,
) -> RecordCheck {
    let mut problems = Vec::new();
    let record = match unpack(payload) {
        Ok(record) => record,
        Err(err) => {
            return RecordCheck {
                label: None,
                problems: vec![err.to_string()],
            }
        }
    };
    if record.header.flag != 0 {
        problems.push(format!(
            "flag {} (a vector label); the flat layout has flag 0",
            record.header.flag
        ));
    }
    if let Some(key) = key {
        if record.header.id != key {
            problems.push(format!("id {} differs from the key", record.header.id));
        }
    }
    let value = match &record.label {
        Label::Scalar(v) => *v,
        Label::Vector(v) => v.first().copied().unwrap_or(f32::NAN),
    };
    let label = if value.is_finite() && value >= 0.0 && value.fract() == 0.0 {
        let label = value as u64;
        match expected.num_classes {
            Some(k) if label >= k => {
                problems.push(format!(
                    "label {label} outside [0, {k}) (num_classes in dataset.json)"
                ));
            }
            _ => {}
        }
        Some(label)
    } else {
        problems.push(format!("label {value} is not a non-negative integer"));
        None
    };
    match decode_jpeg(record.image, DEFAULT_MAX_PIXELS) {
        Ok(image) => {
            if let Some((w, h)) = image_size.filter(|&s| s != image.dimensions()) {
                let (iw, ih) = image.dimensions();
                problems.push(format!("image is {iw}x{ih}, expected {w}x{h}"));
            }
        }
        Err(err) => problems.push(format!("image: {err}")),
    }
    RecordCheck { label, problems }
}

/// Whole-shard checks: dense labels, and the counts dataset.json promises.
fn check_counts(
    label_counts: &HashMap<u64, u64>,
    records: u64,
    expected: &Expected,
    problems: &mut Problems,
) {
    if let Some(n) = expected.num_image.filter(|&n| n != records) {
        problems.add(
            None,
            None,
            format!("dataset.json says num_image {n}, the .rec holds {records} records"),
        );
    }
    let classes = expected
        .num_classes
        .or_else(|| label_counts.keys().max().map(|m| m + 1))
        .unwrap_or(0);
    let empty: Vec<u64> = (0..classes)
        .filter(|l| !label_counts.contains_key(l))
        .collect();
    if let Some(first) = empty.first() {
        problems.add(
            None,
            None,
            format!(
                "{} of labels 0..{classes} have no images (first: {first})",
                empty.len()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_checks_find_duplicates_holes_and_strays() {
        let e = |key, offset| IndexEntry { key, offset };
        let mut problems = Problems::default();
        check_index(&[e(0, 0), e(2, 40), e(2, 80), e(9, 120)], &mut problems);
        let text: Vec<String> = problems.listed.iter().map(Problem::describe).collect();
        assert_eq!(
            text,
            [
                "key 2 at byte 80: key listed twice in the index",
                "key 9 at byte 120: key outside 0..4",
                "key 1: key missing from the index",
                "key 3: key missing from the index",
            ]
        );
    }

    #[test]
    fn empty_labels_are_reported() {
        let counts = HashMap::from([(0, 3), (2, 1)]);
        let mut problems = Problems::default();
        check_counts(&counts, 4, &Expected::default(), &mut problems);
        assert_eq!(problems.count, 1);
        assert!(problems.listed[0].problem.contains("first: 1"));
        let mut problems = Problems::default();
        let expected = Expected {
            num_classes: Some(2),
            num_image: Some(5),
            image_size: None,
        };
        check_counts(
            &HashMap::from([(0, 4), (1, 1)]),
            4,
            &expected,
            &mut problems,
        );
        assert_eq!(problems.count, 1, "num_image 5 against 4 records");
    }
}
