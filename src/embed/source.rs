//! What `embed` reads faces from, and the label row each face gets:
//!
//! - convert's `eval/` (its `manifest.parquet`: identity, role, in_db and
//!   the K-Face conditions go into the labels, paths stay relative to
//!   `eval/` so `facekit pairs`' lists match them);
//! - a folder of aligned crops, `<identity>/<file>.jpg|png` (identity = the
//!   first folder under the root, any name);
//! - a `train.rec` (identity from `identities.csv` beside it, else the
//!   label), images addressed as `train.rec#<key>`;
//! - a verification `.bin` (`kface.bin`, `lfw.bin`): every image once,
//!   addressed as `kface.bin#<index>`, and its pairs in order.
//!
//! Enumeration only reads names, manifests and record headers; pixels are
//! read later, a batch at a time (`load`).

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::RgbImage;

use crate::evalinput::labels;
use crate::shard::{recordio, verification_bin};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },
}

fn input_error(path: &Path, message: impl Into<String>) -> SourceError {
    SourceError::Input {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Where one face's encoded bytes are.
#[derive(Debug, Clone)]
pub(crate) enum ImageRef {
    File(PathBuf),
    /// A record of a `.rec`, at a byte offset.
    Record {
        rec: Arc<PathBuf>,
        offset: u64,
    },
    /// An image of a verification `.bin`, held in memory.
    Bin {
        images: Arc<Vec<Vec<u8>>>,
        index: usize,
    },
}

/// One face to embed and its label row (`columns` order of `Faces`).
#[derive(Debug, Clone)]
pub(crate) struct Face {
    pub image: ImageRef,
    pub values: Vec<String>,
}

/// What an input turned out to be, for messages and `embed.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum InputKind {
    EvalDir,
    Folder,
    Rec,
    Bin,
}

/// A verification pair, as indices into `Faces::faces`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FacePair {
    pub first: usize,
    pub second: usize,
    pub same: bool,
}

/// Every face of every input, with one label table over all of them.
#[derive(Debug, Default)]
pub(crate) struct Faces {
    /// Label columns: `path`, `identity`, then the others in the order the
    /// inputs first name them.
    pub columns: Vec<String>,
    pub faces: Vec<Face>,
    /// Pairs of the `.bin` inputs, in file order.
    pub pairs: Vec<FacePair>,
    pub inputs: Vec<(PathBuf, InputKind, usize)>,
}

impl Faces {
    /// Reads every input in the order given.
    pub(crate) fn collect(inputs: &[PathBuf]) -> Result<Faces, SourceError> {
        let mut faces = Faces {
            columns: vec!["path".into(), "identity".into()],
            ..Faces::default()
        };
        for input in inputs {
            let before = faces.faces.len();
            let kind = faces.add(input)?;
            faces
                .inputs
                .push((input.clone(), kind, faces.faces.len() - before));
        }
        Ok(faces)
    }

    fn column(&mut self, name: &str) -> usize {
        match self.columns.iter().position(|c| c == name) {
            Some(i) => i,
            None => {
                self.columns.push(name.to_string());
                for face in &mut self.faces {
                    face.values.push(String::new());
                }
                self.columns.len() - 1
            }
        }
    }

    fn push(&mut self, image: ImageRef, cells: &[(&str, String)]) {
        let slots: Vec<usize> = cells.iter().map(|(name, _)| self.column(name)).collect();
        let mut values = vec![String::new(); self.columns.len()];
        for (slot, (_, value)) in slots.into_iter().zip(cells) {
            values[slot] = value.clone();
        }
        self.faces.push(Face { image, values });
    }

    fn add(&mut self, input: &Path) -> Result<InputKind, SourceError> {
        let meta = std::fs::metadata(input).map_err(|e| input_error(input, e.to_string()))?;
        let extension = input
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        if meta.is_dir() {
            if input.join("manifest.parquet").is_file() {
                if input.join("train.rec").is_file() || input.join("dataset.json").is_file() {
                    return Err(input_error(
                        input,
                        "a converted dataset; embed its held-out set (DIR/eval) or its train.rec",
                    ));
                }
                self.add_eval_dir(input)?;
                return Ok(InputKind::EvalDir);
            }
            self.add_folder(input)?;
            return Ok(InputKind::Folder);
        }
        match extension.as_deref() {
            Some("rec") => self.add_rec(input).map(|()| InputKind::Rec),
            Some("bin") => self.add_bin(input).map(|()| InputKind::Bin),
            _ => Err(input_error(
                input,
                "not an input embed reads (an eval/ directory, a folder of crops, a .rec or a verification .bin)",
            )),
        }
    }

    fn add_eval_dir(&mut self, dir: &Path) -> Result<(), SourceError> {
        let manifest = dir.join("manifest.parquet");
        let table = labels::read_labels(&manifest).map_err(|e| input_error(dir, e.to_string()))?;
        let paths = table
            .path
            .as_ref()
            .ok_or_else(|| input_error(&manifest, "no `path` column"))?;
        let names = table.column_names();
        let columns: Vec<(String, Vec<String>)> = names
            .into_iter()
            .filter(|n| n != "path" && n != "identity")
            .filter_map(|n| table.column(&n).map(|v| (n, v)))
            .collect();
        for (row, path) in paths.iter().enumerate() {
            let mut cells: Vec<(&str, String)> = vec![
                ("path", path.clone()),
                ("identity", table.identity[row].clone()),
            ];
            cells.extend(columns.iter().map(|(n, v)| (n.as_str(), v[row].clone())));
            self.push(ImageRef::File(dir.join(path)), &cells);
        }
        Ok(())
    }

    fn add_folder(&mut self, root: &Path) -> Result<(), SourceError> {
        let mut files = Vec::new();
        for entry in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
            let entry = entry.map_err(|e| input_error(root, e.to_string()))?;
            if !entry.file_type().is_file() || !is_image_name(entry.path()) {
                continue;
            }
            files.push(entry.into_path());
        }
        if files.is_empty() {
            return Err(input_error(
                root,
                "no .jpg or .png crops (expected <identity>/<file>.jpg)",
            ));
        }
        for file in files {
            let relative = file.strip_prefix(root).unwrap_or(&file);
            let parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.len() < 2 {
                return Err(input_error(
                    &file,
                    "not inside an identity folder (expected <identity>/<file>.jpg)",
                ));
            }
            let cells = [("path", parts.join("/")), ("identity", parts[0].clone())];
            self.push(ImageRef::File(file.clone()), &cells);
        }
        Ok(())
    }

    fn add_rec(&mut self, rec: &Path) -> Result<(), SourceError> {
        let identities = read_identities(&rec.with_file_name("identities.csv"))?;
        let file = File::open(rec).map_err(|e| input_error(rec, e.to_string()))?;
        let mut reader = recordio::RecordReader::new(BufReader::with_capacity(1 << 20, file));
        let shared = Arc::new(rec.to_path_buf());
        let name = file_name(rec);
        let mut images = 0u64;
        while let Some((offset, payload)) = reader
            .next_record()
            .map_err(|e| input_error(rec, e.to_string()))?
        {
            let record = recordio::unpack(&payload)
                .map_err(|e| input_error(rec, format!("record at byte {offset}: {e}")))?;
            // insightface's older layout starts with a header record and
            // has identity records: no image bytes, nothing to embed.
            if record.image.is_empty() {
                continue;
            }
            let label = match &record.label {
                recordio::Label::Scalar(l) => *l,
                recordio::Label::Vector(v) => v.first().copied().unwrap_or(f32::NAN),
            };
            let label_text = if label.fract() == 0.0 && label >= 0.0 {
                format!("{}", label as u64)
            } else {
                format!("{label}")
            };
            let identity = identities
                .get(&label_text)
                .cloned()
                .unwrap_or_else(|| label_text.clone());
            let cells = [
                ("path", format!("{name}#{}", record.header.id)),
                ("identity", identity),
                ("label", label_text),
            ];
            self.push(
                ImageRef::Record {
                    rec: shared.clone(),
                    offset,
                },
                &cells,
            );
            images += 1;
        }
        if images == 0 {
            return Err(input_error(rec, "no image records"));
        }
        Ok(())
    }

    fn add_bin(&mut self, path: &Path) -> Result<(), SourceError> {
        let bytes = std::fs::read(path).map_err(|e| input_error(path, e.to_string()))?;
        let bin = verification_bin::read(&bytes).map_err(|e| input_error(path, e.to_string()))?;
        let first = self.faces.len();
        let identities = pair_components(bin.images.len(), &bin.issame);
        let name = file_name(path);
        let stem = path
            .file_stem()
            .map_or_else(|| name.clone(), |s| s.to_string_lossy().into_owned());
        let images = Arc::new(bin.images);
        for (index, component) in identities.into_iter().enumerate() {
            let cells = [
                ("path", format!("{name}#{index}")),
                ("identity", format!("{stem}:{component}")),
            ];
            self.push(
                ImageRef::Bin {
                    images: images.clone(),
                    index,
                },
                &cells,
            );
        }
        self.pairs
            .extend(bin.issame.iter().enumerate().map(|(i, &same)| FacePair {
                first: first + 2 * i,
                second: first + 2 * i + 1,
                same,
            }));
        Ok(())
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn is_image_name(path: &Path) -> bool {
    path.extension().is_some_and(|e| {
        matches!(
            e.to_string_lossy().to_ascii_lowercase().as_str(),
            "jpg" | "jpeg" | "png"
        )
    })
}

/// `identities.csv` (label, identity, images) as convert writes it; absent
/// is fine (labels then name the identities).
fn read_identities(path: &Path) -> Result<HashMap<String, String>, SourceError> {
    let mut map = HashMap::new();
    if !path.is_file() {
        return Ok(map);
    }
    let mut reader = csv::Reader::from_path(path).map_err(|e| input_error(path, e.to_string()))?;
    let headers = reader
        .headers()
        .map_err(|e| input_error(path, e.to_string()))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| input_error(path, format!("no `{name}` column")))
    };
    let (label, identity) = (col("label")?, col("identity")?);
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(|e| input_error(path, format!("row {}: {e}", row + 2)))?;
        map.insert(
            record.get(label).unwrap_or_default().to_string(),
            record.get(identity).unwrap_or_default().to_string(),
        );
    }
    Ok(map)
}

/// A `.bin` names no identities; images joined by a genuine pair are the
/// same person. Each image gets the smallest index of its component.
fn pair_components(images: usize, issame: &[bool]) -> Vec<usize> {
    let mut parent: Vec<usize> = (0..images).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (pair, &same) in issame.iter().enumerate() {
        if same && 2 * pair + 1 < images {
            let (a, b) = (root(&mut parent, 2 * pair), root(&mut parent, 2 * pair + 1));
            let (low, high) = (a.min(b), a.max(b));
            parent[high] = low;
        }
    }
    (0..images).map(|i| root(&mut parent, i)).collect()
}

/// Reads and decodes one face (JPEG or PNG), refusing images over
/// `max_pixels` before decoding them.
pub(crate) fn load(image: &ImageRef, max_pixels: u64) -> Result<RgbImage, String> {
    let bytes_owned;
    let bytes: &[u8] = match image {
        ImageRef::File(path) => {
            bytes_owned = std::fs::read(path).map_err(|e| e.to_string())?;
            &bytes_owned
        }
        ImageRef::Record { rec, offset } => {
            let file = File::open(rec.as_path()).map_err(|e| e.to_string())?;
            let payload = recordio::RecordReader::new(BufReader::new(file))
                .read_at(*offset)
                .map_err(|e| e.to_string())?;
            bytes_owned = recordio::unpack(&payload)
                .map_err(|e| e.to_string())?
                .image
                .to_vec();
            &bytes_owned
        }
        ImageRef::Bin { images, index } => &images[*index],
    };
    if bytes.starts_with(b"\x89PNG") {
        let mut decoder =
            image::ImageReader::with_format(std::io::Cursor::new(bytes), image::ImageFormat::Png);
        let mut limits = image::Limits::default();
        let side = u32::try_from(max_pixels.isqrt()).unwrap_or(u32::MAX);
        limits.max_image_width = Some(side);
        limits.max_image_height = Some(side);
        decoder.limits(limits);
        let decoded = decoder
            .decode()
            .map_err(|e| format!("corrupt or truncated PNG: {e}"))?;
        Ok(decoded.to_rgb8())
    } else {
        crate::imaging::decode_jpeg(bytes, max_pixels).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genuine_pairs_join_identities() {
        // Pairs (0,1) same, (2,3) different, (4,5) same, (1,4) would need a
        // pair across: images 0,1 and 4,5 stay apart.
        assert_eq!(pair_components(6, &[true, false, true]), [0, 0, 2, 3, 4, 4]);
    }

    #[test]
    fn a_folder_names_identities_by_their_folder() {
        let dir = tempfile::tempdir().unwrap();
        for (id, file) in [
            ("김민수", "a.jpg"),
            ("19062421", "b.PNG"),
            ("19062421", "notes.txt"),
        ] {
            std::fs::create_dir_all(dir.path().join(id)).unwrap();
            std::fs::write(dir.path().join(id).join(file), b"x").unwrap();
        }
        let faces = Faces::collect(&[dir.path().to_path_buf()]).unwrap();
        let rows: Vec<&[String]> = faces.faces.iter().map(|f| f.values.as_slice()).collect();
        assert_eq!(faces.columns, ["path", "identity"]);
        assert_eq!(
            rows,
            [
                ["19062421/b.PNG", "19062421"].map(String::from).as_slice(),
                ["김민수/a.jpg", "김민수"].map(String::from).as_slice()
            ]
        );
        std::fs::write(dir.path().join("stray.jpg"), b"x").unwrap();
        let err = Faces::collect(&[dir.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stray.jpg: not inside an identity folder"),
            "{err}"
        );
    }

    #[test]
    fn a_converted_dataset_is_pointed_at_its_parts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("manifest.parquet"), b"").unwrap();
        std::fs::write(dir.path().join("dataset.json"), b"{}").unwrap();
        let err = Faces::collect(&[dir.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("DIR/eval"), "{err}");
        let err = Faces::collect(&[dir.path().join("model.onnx")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("model.onnx"), "{err}");
    }
}
