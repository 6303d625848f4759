//! Synthetic K-Face data in the exact shipped layout, for tests, the demo
//! and benchmarks: drawn faces at known landmarks, annotation files only
//! where the real set has them (S001 under L1/L3/L6/L7, spec §4.1), the
//! folder tree `<ID>/S00a/Lb/E0c/Cn.jpg` and the AI Hub zip form (a tier
//! zip of per-identity zips), and, on request, the faults real downloads
//! carry. Same config and seed → byte-identical files.
//!
//! `face.rs` holds the geometry (where every point and box falls),
//! `draw.rs` the painting; this file lays the files out.

pub(crate) mod draw;
pub mod face;

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io::{self, Cursor, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chacha20::ChaCha8Rng;
use image::RgbImage;
use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::kface::{Attributes, Selection};
use crate::output::AtomicFile;
use face::{mix, Annotation, Identity};

/// JPEG quality of the synthetic photos. They are written with 4:2:0
/// chroma subsampling, as cameras and libjpeg do by default (`image`'s
/// encoder only writes 4:4:4, and is 2-4x slower here). jpeg-encoder takes
/// its AVX2 path where the CPU has one: the bytes are the same run to run
/// on one machine, but a machine without AVX2 writes other (equally valid)
/// bytes.
pub(crate) const JPEG_QUALITY: u8 = 90;

/// The three resolution tiers of the AI Hub release (spec §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Low,
    Middle,
    High,
}

impl Tier {
    /// Width × height of the tier's photos.
    pub fn size(self) -> (u32, u32) {
        match self {
            Tier::Low => (173, 115),
            Tier::Middle => (346, 230),
            Tier::High => (864, 576),
        }
    }

    /// The tier folder and archive stem: `Middle_Resolution`.
    pub fn folder(self) -> &'static str {
        match self {
            Tier::Low => "Low_Resolution",
            Tier::Middle => "Middle_Resolution",
            Tier::High => "High_Resolution",
        }
    }

    fn lowercase(self) -> &'static str {
        match self {
            Tier::Low => "low",
            Tier::Middle => "middle",
            Tier::High => "high",
        }
    }
}

impl FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Tier, String> {
        match s.to_ascii_lowercase().as_str() {
            "low" => Ok(Tier::Low),
            "middle" => Ok(Tier::Middle),
            "high" => Ok(Tier::High),
            _ => Err(format!("unknown tier {s:?} (expected low, middle or high)")),
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.lowercase())
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub identities: usize,
    pub tier: Tier,
    /// The images written for every identity.
    pub selection: Selection,
    pub seed: u64,
    /// Plant the faults of [`FaultKind`].
    pub faults: bool,
    /// Write the extracted tree `Middle_Resolution/<ID>/…`.
    pub tree: bool,
    /// Write `Middle_Resolution.zip` of per-identity zips.
    pub zip: bool,
    /// Put everything under `한국인 안면 이미지/`, as the download is named.
    pub korean_parent: bool,
    /// Nest the tree one level deeper: `Middle_Resolution/middle/<ID>/…`.
    pub extra_nesting: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            identities: 4,
            tier: Tier::Middle,
            selection: Selection::all(),
            seed: 0,
            faults: false,
            tree: true,
            zip: false,
            korean_parent: false,
            extra_nesting: false,
        }
    }
}

/// The parent folder name of the AI Hub download.
pub const KOREAN_PARENT: &str = "한국인 안면 이미지";

/// A planted fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The first half of a good JPEG.
    TruncatedJpeg,
    /// A zero-byte `.jpg`.
    EmptyJpeg,
    /// A `.jpg` holding an HTML error page.
    NotJpeg,
    /// An annotation cut after its fifth line (fewer than the 7 points + face box).
    MalformedAnnotation,
    /// An annotation whose seven points lie left of the image (negative x,
    /// so no tier rescale brings them onto it).
    LandmarksOutside,
    /// A file that is no image: `readme.txt`, `.DS_Store`, `Thumbs.db`, a `__MACOSX` AppleDouble file.
    StrayFile,
}

/// One planted fault. `file` is relative to the tier root, `/`-separated:
/// `19062421/S001/L1/E01/C7.jpg` is that path in the tree and member
/// `S001/L1/E01/C7.jpg` of `19062421.zip` in the zip form; a name with no
/// `/` is a file beside the identity folders (a member of the tier zip).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Fault {
    pub kind: FaultKind,
    pub file: String,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub tier: Tier,
    pub seed: u64,
    pub selection: String,
    pub identities: Vec<String>,
    /// `.jpg` files per form (faulted ones included, strays not).
    pub images: u64,
    /// `.txt` annotation files per form.
    pub annotations: u64,
    /// The folder holding the identity folders, when the tree was written.
    pub tree_root: Option<PathBuf>,
    /// The tier zip, when written.
    pub zip_path: Option<PathBuf>,
    pub faults: Vec<Fault>,
}

impl Summary {
    /// The files of the faults of `kind`.
    pub fn files_of(&self, kind: FaultKind) -> Vec<&str> {
        self.faults
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| f.file.as_str())
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: {source}", path.display())]
    Zip {
        path: PathBuf,
        source: zip::result::ZipError,
    },
    #[error("encoding a JPEG: {0}")]
    Encode(#[from] jpeg_encoder::EncodingError),
    #[error("bad synth config: {0}")]
    Config(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SynthError + '_ {
    move |source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn zip_err(path: &Path) -> impl FnOnce(zip::result::ZipError) -> SynthError + '_ {
    move |source| SynthError::Zip {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether the real set has an annotation for these conditions: S001 under
/// L1, L3, L6 and L7, every expression and camera (spec §4.1).
pub(crate) fn has_annotation(a: &Attributes) -> bool {
    a.accessory == 1 && matches!(a.light, 1 | 3 | 6 | 7)
}

/// `n` distinct, sorted identity IDs in the real style: `YYMMDD`, rig 1-4,
/// order of the day 1-2 (e.g. `19062421`), from 2019-06-24 on.
pub(crate) fn identity_ids(n: usize, seed: u64) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed ^ 0x1D5));
    let (mut year, mut month, mut day) = (2019u32, 6u32, 24u32);
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        for rig in 1..=4 {
            for order in 1..=2 {
                if ids.len() < n && rng.random_bool(0.45) {
                    ids.push(format!("{:02}{month:02}{day:02}{rig}{order}", year % 100));
                }
            }
        }
        day += 1;
        if day > days_in_month(year, month) {
            day = 1;
            month += 1;
            if month > 12 {
                month = 1;
                year += 1;
            }
        }
    }
    ids
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The look of identity `index` (of `id`) under `seed`.
pub fn identity(id: &str, index: usize, seed: u64) -> Identity {
    Identity::random(
        id.to_string(),
        &mut ChaCha8Rng::seed_from_u64(mix(seed ^ mix(index as u64 + 1))),
    )
}

/// One photo: the drawn image and, where the real set has one, its
/// annotation (the points the face was drawn at).
pub fn photo(
    person: &Identity,
    index: usize,
    attrs: &Attributes,
    tier: Tier,
    seed: u64,
) -> (RgbImage, Annotation) {
    let (w, h) = tier.size();
    let shift = face::session_shift(index, attrs.accessory, seed);
    let placement = face::place(person, attrs, w, h, shift);
    let image = draw::render(person, attrs, &placement, w, h);
    (image, face::annotate(&placement, attrs.camera, w, h))
}

/// The files of one image as written: JPEG bytes and the annotation text.
struct Item {
    attrs: Attributes,
    jpg: Vec<u8>,
    txt: Option<String>,
}

fn make_item(
    person: &Identity,
    index: usize,
    attrs: Attributes,
    config: &Config,
) -> Result<Item, SynthError> {
    let (image, annotation) = photo(person, index, &attrs, config.tier, config.seed);
    let mut jpg = Vec::with_capacity(32 << 10);
    let mut encoder = Encoder::new(&mut jpg, JPEG_QUALITY);
    encoder.set_sampling_factor(SamplingFactor::F_2_2);
    // Tier sizes fit u16.
    encoder.encode(
        image.as_raw(),
        image.width() as u16,
        image.height() as u16,
        ColorType::Rgb,
    )?;
    let txt = has_annotation(&attrs).then(|| annotation.to_text());
    Ok(Item { attrs, jpg, txt })
}

/// The selected conditions in path order (S, L, E, C).
fn conditions(selection: &Selection) -> Vec<Attributes> {
    let mut out = Vec::new();
    for s in selection.accessories() {
        for l in selection.lights() {
            for e in selection.expressions() {
                for c in selection.cameras() {
                    out.extend(Attributes::new(s, l, e, c));
                }
            }
        }
    }
    out
}

/// Picks the images to break: distinct images, annotation faults only on
/// annotated ones, L7 only when nothing else is left (facekit's default
/// selection skips it); a fault is left out when no image is left for it.
fn plan_faults(
    ids: &[String],
    conds: &[Attributes],
    seed: u64,
) -> Vec<(usize, Attributes, FaultKind)> {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed ^ 0xFA17));
    let all: Vec<(usize, Attributes)> = (0..ids.len())
        .flat_map(|i| conds.iter().map(move |a| (i, *a)))
        .collect();
    let mut taken = BTreeSet::new();
    let mut plan = Vec::new();
    let kinds = [
        FaultKind::TruncatedJpeg,
        FaultKind::EmptyJpeg,
        FaultKind::NotJpeg,
        FaultKind::MalformedAnnotation,
        FaultKind::LandmarksOutside,
    ];
    for kind in kinds {
        let needs_txt = matches!(
            kind,
            FaultKind::MalformedAnnotation | FaultKind::LandmarksOutside
        );
        let free = |(i, a): &&(usize, Attributes)| {
            !taken.contains(&(*i, *a)) && (!needs_txt || has_annotation(a))
        };
        // Prefer images that facekit's default selection (all but L7) takes.
        let mut pool: Vec<&(usize, Attributes)> = all
            .iter()
            .filter(free)
            .filter(|(_, a)| a.light != 7)
            .collect();
        if pool.is_empty() {
            pool = all.iter().filter(free).collect();
        }
        if !pool.is_empty() {
            let (i, a) = *pool[rng.random_range(0..pool.len())];
            taken.insert((i, a));
            plan.push((i, a, kind));
        }
    }
    plan
}

fn apply_fault(item: &mut Item, kind: FaultKind, width: u32) {
    match kind {
        FaultKind::TruncatedJpeg => item.jpg.truncate(item.jpg.len() / 2),
        FaultKind::EmptyJpeg => item.jpg.clear(),
        FaultKind::NotJpeg => item.jpg =
            b"<html><head><title>404 Not Found</title></head><body>404 Not Found</body></html>\n"
                .to_vec(),
        FaultKind::MalformedAnnotation => {
            if let Some(txt) = &mut item.txt {
                *txt = txt.lines().take(5).map(|l| format!("{l}\n")).collect();
            }
        }
        FaultKind::LandmarksOutside => {
            if let Some(txt) = &mut item.txt {
                *txt = txt
                    .lines()
                    .enumerate()
                    .map(|(k, line)| match line.split_once('\t') {
                        Some((x, rest)) if k < 7 => {
                            let x: i64 = x.parse().unwrap_or(0);
                            format!("{}\t{rest}\n", x - width as i64)
                        }
                        _ => format!("{line}\n"),
                    })
                    .collect();
            }
        }
        FaultKind::StrayFile => {}
    }
}

/// Stray files for the first identity: `(file relative to the tier root,
/// bytes)`, the same names in the tree and the zip form.
fn stray_files(first_id: &str, first: &Attributes) -> Vec<(String, Vec<u8>)> {
    let folder = format!(
        "{}/{}/{}",
        first.accessory_code(),
        first.light_code(),
        first.expression_code()
    );
    let apple_double = {
        // The header of an AppleDouble file, as macOS zips add under __MACOSX.
        let mut b = vec![0x00, 0x05, 0x16, 0x07, 0x00, 0x02, 0x00, 0x00];
        b.extend(b"Mac OS X        ");
        b.resize(82, 0);
        b
    };
    vec![
        (
            "readme.txt".into(),
            "K-Face synthetic sample (facekit synth). Not real faces.\n".into(),
        ),
        (".DS_Store".into(), b"\0\0\0\x01Bud1\0\0\x10\0".to_vec()),
        (
            format!("{first_id}/.DS_Store"),
            b"\0\0\0\x01Bud1\0\0\x10\0".to_vec(),
        ),
        (
            format!("{first_id}/{folder}/Thumbs.db"),
            vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1],
        ),
        (
            format!("{first_id}/__MACOSX/{folder}/._{}.jpg", first.camera_code()),
            apple_double,
        ),
    ]
}

/// Writes the synthetic data set under `out` and says what it wrote.
pub fn generate(config: &Config, out: &Path) -> Result<Summary, SynthError> {
    if config.identities == 0 {
        return Err(SynthError::Config("at least one identity is needed".into()));
    }
    if !config.tree && !config.zip {
        return Err(SynthError::Config(
            "neither the tree nor the zip form was asked for".into(),
        ));
    }
    let conds = conditions(&config.selection);
    if conds.is_empty() {
        return Err(SynthError::Config(format!(
            "selection {} holds no image",
            config.selection
        )));
    }
    let ids = identity_ids(config.identities, config.seed);
    let plan = if config.faults {
        plan_faults(&ids, &conds, config.seed)
    } else {
        Vec::new()
    };
    let strays = if config.faults {
        stray_files(&ids[0], &conds[0])
    } else {
        Vec::new()
    };

    let base = if config.korean_parent {
        out.join(KOREAN_PARENT)
    } else {
        out.to_path_buf()
    };
    let mut tree_root = base.join(config.tier.folder());
    if config.extra_nesting {
        tree_root.push(config.tier.lowercase());
    }
    let zip_path = base.join(format!("{}.zip", config.tier.folder()));
    fs::create_dir_all(&base).map_err(io_err(&base))?;
    if config.tree {
        fs::create_dir_all(&tree_root).map_err(io_err(&tree_root))?;
    }
    let mut outer = if config.zip {
        Some(ZipWriter::new(
            AtomicFile::create(&zip_path).map_err(io_err(&zip_path))?,
        ))
    } else {
        None
    };

    let (width, _) = config.tier.size();
    let mut summary = Summary {
        tier: config.tier,
        seed: config.seed,
        selection: config.selection.to_string(),
        identities: ids.clone(),
        images: 0,
        annotations: 0,
        tree_root: config.tree.then(|| tree_root.clone()),
        zip_path: config.zip.then(|| zip_path.clone()),
        faults: Vec::new(),
    };
    for (index, id) in ids.iter().enumerate() {
        let person = identity(id, index, config.seed);
        let mut items: Vec<Item> = conds
            .par_iter()
            .map(|a| make_item(&person, index, *a, config))
            .collect::<Result<_, _>>()?;
        for &(_, attrs, kind) in plan.iter().filter(|(i, _, _)| *i == index) {
            if let Some(item) = items.iter_mut().find(|it| it.attrs == attrs) {
                apply_fault(item, kind, width);
                let ext = if matches!(
                    kind,
                    FaultKind::MalformedAnnotation | FaultKind::LandmarksOutside
                ) {
                    "txt"
                } else {
                    "jpg"
                };
                summary.faults.push(Fault {
                    kind,
                    file: format!("{id}/{}.{ext}", attrs.relative_stem()),
                });
            }
        }
        summary.images += items.len() as u64;
        summary.annotations += items.iter().filter(|it| it.txt.is_some()).count() as u64;
        let own_strays: Vec<(&str, &[u8])> = strays
            .iter()
            .filter_map(|(file, bytes)| {
                Some((
                    file.strip_prefix(id.as_str())?.strip_prefix('/')?,
                    bytes.as_slice(),
                ))
            })
            .collect();
        if config.tree {
            write_identity_tree(&tree_root.join(id), &items, &own_strays)?;
        }
        if let Some(outer) = outer.as_mut() {
            let inner = identity_zip(&items, &own_strays).map_err(zip_err(&zip_path))?;
            outer
                .start_file(
                    format!("{id}.zip"),
                    member_options(CompressionMethod::Stored),
                )
                .map_err(zip_err(&zip_path))?;
            outer.write_all(&inner).map_err(io_err(&zip_path))?;
        }
    }
    for (file, bytes) in strays.iter().filter(|(file, _)| !file.contains('/')) {
        if config.tree {
            let path = tree_root.join(file);
            fs::write(&path, bytes).map_err(io_err(&path))?;
        }
        if let Some(outer) = outer.as_mut() {
            outer
                .start_file(file.as_str(), member_options(CompressionMethod::Deflated))
                .map_err(zip_err(&zip_path))?;
            outer.write_all(bytes).map_err(io_err(&zip_path))?;
        }
    }
    summary.faults.extend(strays.iter().map(|(file, _)| Fault {
        kind: FaultKind::StrayFile,
        file: file.clone(),
    }));
    summary.faults.sort();
    if let Some(outer) = outer {
        let file = outer.finish().map_err(zip_err(&zip_path))?;
        file.commit().map_err(io_err(&zip_path))?;
    }
    Ok(summary)
}

/// Fixed member metadata, so archives are byte-identical run to run.
fn member_options(method: CompressionMethod) -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(method)
        .last_modified_time(DateTime::DEFAULT)
        .unix_permissions(0o644)
}

/// One identity folder. The photos are plain writes, not temp-and-rename:
/// a synthetic tree is test data, and thousands of renames would dominate
/// the run; an interrupted run is simply run again.
fn write_identity_tree(
    dir: &Path,
    items: &[Item],
    strays: &[(&str, &[u8])],
) -> Result<(), SynthError> {
    let folders: BTreeSet<PathBuf> = items
        .iter()
        .map(|it| {
            dir.join(it.attrs.accessory_code())
                .join(it.attrs.light_code())
                .join(it.attrs.expression_code())
        })
        .chain(
            strays
                .iter()
                .filter_map(|(f, _)| dir.join(f).parent().map(Path::to_path_buf)),
        )
        .collect();
    for folder in &folders {
        fs::create_dir_all(folder).map_err(io_err(folder))?;
    }
    items
        .par_iter()
        .try_for_each(|it| -> Result<(), SynthError> {
            let stem = dir.join(it.attrs.relative_stem());
            let jpg = stem.with_extension("jpg");
            fs::write(&jpg, &it.jpg).map_err(io_err(&jpg))?;
            if let Some(txt) = &it.txt {
                let path = stem.with_extension("txt");
                fs::write(&path, txt).map_err(io_err(&path))?;
            }
            Ok(())
        })?;
    for (file, bytes) in strays {
        let path = dir.join(file);
        fs::write(&path, bytes).map_err(io_err(&path))?;
    }
    Ok(())
}

/// A per-identity zip as AI Hub ships it: members `S001/L1/E01/C7.jpg`
/// (stored) and `…/C7.txt` (deflated), no identity prefix.
fn identity_zip(items: &[Item], strays: &[(&str, &[u8])]) -> zip::result::ZipResult<Vec<u8>> {
    let size: usize = items.iter().map(|it| it.jpg.len() + 200).sum();
    let mut zip = ZipWriter::new(Cursor::new(Vec::with_capacity(size)));
    for it in items {
        let stem = it.attrs.relative_stem();
        zip.start_file(
            format!("{stem}.jpg"),
            member_options(CompressionMethod::Stored),
        )?;
        zip.write_all(&it.jpg)?;
        if let Some(txt) = &it.txt {
            zip.start_file(
                format!("{stem}.txt"),
                member_options(CompressionMethod::Deflated),
            )?;
            zip.write_all(txt.as_bytes())?;
        }
    }
    for (file, bytes) in strays {
        zip.start_file(*file, member_options(CompressionMethod::Deflated))?;
        zip.write_all(bytes)?;
    }
    Ok(zip.finish()?.into_inner())
}

#[cfg(test)]
mod tests;
