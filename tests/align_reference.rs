//! facekit's alignment against insightface's `norm_crop` (skimage
//! `SimilarityTransform.estimate` + `cv2.warpAffine`): the reference matrices
//! and crops in tests/fixtures/align/ come from
//! scripts/fixtures/align_reference.py.

use std::path::{Path, PathBuf};

use facekit::align::{estimate_norm, face_box_transform, warp_affine, Affine, AlignError};
use image::RgbImage;
use serde_json::Value;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/align")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(fixture_dir().join("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn png(name: &str) -> RgbImage {
    image::open(fixture_dir().join(name)).unwrap().to_rgb8()
}

fn points(value: &Value) -> [[f64; 2]; 5] {
    let rows: Vec<[f64; 2]> = value
        .as_array()
        .unwrap()
        .iter()
        .map(|p| [p[0].as_f64().unwrap(), p[1].as_f64().unwrap()])
        .collect();
    rows.try_into().unwrap()
}

fn matrix(value: &Value) -> Affine {
    let row = |r: usize| -> [f64; 3] { std::array::from_fn(|c| value[r][c].as_f64().unwrap()) };
    Affine([row(0), row(1)])
}

fn assert_matrix_eq(ours: &Affine, theirs: &Affine, what: &str) {
    for (a, b) in ours.0.iter().flatten().zip(theirs.0.iter().flatten()) {
        assert!(
            (a - b).abs() <= 1e-9,
            "{what}: ours {ours:?}\nskimage {theirs:?}"
        );
    }
}

/// Mean absolute difference per channel value, and the largest difference.
fn compare(ours: &RgbImage, theirs: &RgbImage) -> (f64, u8) {
    assert_eq!(ours.dimensions(), theirs.dimensions());
    let diffs = ours
        .as_raw()
        .iter()
        .zip(theirs.as_raw())
        .map(|(&a, &b)| a.abs_diff(b));
    let (sum, max) = diffs.fold((0u64, 0u8), |(s, m), d| (s + u64::from(d), m.max(d)));
    (sum as f64 / ours.as_raw().len() as f64, max)
}

#[test]
fn matrices_equal_skimage() {
    let reference = reference();
    let mut checked = 0;
    for case in reference["cases"].as_array().unwrap() {
        let landmarks = points(&case["landmarks"]);
        for (size, theirs) in case["matrices"].as_object().unwrap() {
            let size: u32 = size.parse().unwrap();
            let ours = estimate_norm(&landmarks, size).unwrap();
            assert_matrix_eq(
                &ours,
                &matrix(theirs),
                &format!("{} at {size}", case["name"]),
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 7 * 4);
}

#[test]
fn degenerate_branches_match_skimage() {
    let reference = reference();
    for case in reference["degenerate"].as_array().unwrap() {
        let ours = estimate_norm(&points(&case["landmarks"]), 112);
        if case["ok"].as_bool().unwrap() {
            assert_matrix_eq(
                &ours.unwrap(),
                &matrix(&case["matrix_112"]),
                case["name"].as_str().unwrap(),
            );
        } else {
            assert_eq!(ours, Err(AlignError::Degenerate), "{}", case["name"]);
        }
    }
}

#[test]
fn crops_match_cv2_warp_affine() {
    let reference = reference();
    let mut worst = 0.0f64;
    for case in reference["cases"].as_array().unwrap() {
        let landmarks = points(&case["landmarks"]);
        for crop in case["crops"].as_array().unwrap() {
            let size = crop["size"].as_u64().unwrap() as u32;
            let source = png(reference["images"][crop["image"].as_str().unwrap()]
                .as_str()
                .unwrap());
            let ours = warp_affine(&source, &estimate_norm(&landmarks, size).unwrap(), size);
            let (mad, max) = compare(&ours, &png(crop["file"].as_str().unwrap()));
            // Exact but for a rare 1/32-pixel rounding flip from last-bit matrix differences.
            assert!(
                mad < 0.05 && max <= 2,
                "{}: mean abs diff {mad}, max {max}",
                crop["file"]
            );
            worst = worst.max(mad);
        }
    }
    eprintln!("worst mean absolute difference against cv2: {worst}");
}

#[test]
fn face_box_crops_match_cv2() {
    let reference = reference();
    for case in reference["boxes"].as_array().unwrap() {
        let b = &case["box"];
        let box_xywh: [f64; 4] = std::array::from_fn(|i| b[i].as_f64().unwrap());
        let size = case["size"].as_u64().unwrap() as u32;
        let ours = face_box_transform(box_xywh, size).unwrap();
        assert_matrix_eq(&ours, &matrix(&case["matrix"]), "face box");
        let source = png(reference["images"][case["image"].as_str().unwrap()]
            .as_str()
            .unwrap());
        let (mad, max) = compare(
            &warp_affine(&source, &ours, size),
            &png(case["file"].as_str().unwrap()),
        );
        assert!(
            mad < 0.05 && max <= 2,
            "{}: mean abs diff {mad}, max {max}",
            case["file"]
        );
    }
}
