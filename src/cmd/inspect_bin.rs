//! `facekit inspect FILE.bin`: a verification `.bin` (facekit's, or
//! insightface's own `lfw.bin` style): pair and label counts, and a decode
//! of every image with the sizes found.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{bail, Context};

use crate::cli::OutputFlags;
use crate::shard::verification_bin;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct ImageSize {
    pub width: u32,
    pub height: u32,
    pub count: u64,
}

/// What a check of a `.bin` found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct BinReport {
    pub pairs: u64,
    pub genuine: u64,
    pub impostor: u64,
    pub images: u64,
    /// Image sizes found, smallest first, with how many images have each.
    pub sizes: Vec<ImageSize>,
    /// Images that do not decode: `bins[i]: reason`.
    pub undecodable: Vec<String>,
}

/// Reads and checks a `.bin`; undecodable images are listed, not fatal.
pub fn check(bytes: &[u8]) -> Result<BinReport, verification_bin::BinError> {
    let bin = verification_bin::read(bytes)?;
    let mut sizes = BTreeMap::new();
    let mut undecodable = Vec::new();
    for (i, image) in bin.images.iter().enumerate() {
        match image::load_from_memory(image) {
            Ok(img) => *sizes.entry((img.width(), img.height())).or_insert(0) += 1,
            Err(e) => undecodable.push(format!("bins[{i}]: {e}")),
        }
    }
    Ok(BinReport {
        pairs: bin.pair_count() as u64,
        genuine: bin.genuine_count(),
        impostor: bin.impostor_count(),
        images: bin.images.len() as u64,
        sizes: sizes
            .into_iter()
            .map(|((width, height), count)| ImageSize {
                width,
                height,
                count,
            })
            .collect(),
        undecodable,
    })
}

pub fn run(path: &Path, output: &OutputFlags) -> anyhow::Result<()> {
    let bytes = fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let report = check(&bytes).with_context(|| path.display().to_string())?;
    if output.json {
        crate::output::print(&(serde_json::to_string(&report)? + "\n"))?;
    } else if !output.quiet {
        let sizes: Vec<String> = report
            .sizes
            .iter()
            .map(|s| format!("{}x{} ×{}", s.width, s.height, s.count))
            .collect();
        crate::output::print(&format!(
            "{}: {} pairs ({} genuine, {} impostor), {} images; sizes: {}\n",
            path.display(),
            report.pairs,
            report.genuine,
            report.impostor,
            report.images,
            if sizes.is_empty() {
                "none".to_string()
            } else {
                sizes.join(", ")
            }
        ))?;
    }
    if let Some(first) = report.undecodable.first() {
        bail!(
            "{}: {} of {} images do not decode (first: {first})",
            path.display(),
            report.undecodable.len(),
            report.images
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 128]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    #[test]
    fn counts_sizes_and_bad_images() {
        let images = vec![
            jpeg(112, 112),
            jpeg(112, 112),
            jpeg(96, 112),
            b"not a jpeg".to_vec(),
        ];
        let bytes = verification_bin::to_bytes(&images, &[true, false]).unwrap();
        let report = check(&bytes).unwrap();
        assert_eq!(
            (report.pairs, report.genuine, report.impostor, report.images),
            (2, 1, 1, 4)
        );
        let sizes: Vec<(u32, u32, u64)> = report
            .sizes
            .iter()
            .map(|s| (s.width, s.height, s.count))
            .collect();
        assert_eq!(sizes, [(96, 112, 1), (112, 112, 2)]);
        assert_eq!(report.undecodable.len(), 1);
        assert!(report.undecodable[0].starts_with("bins[3]: "));
    }
}
