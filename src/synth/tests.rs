use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use super::*;

/// Every file below `root`, relative and `/`-separated, with its bytes.
fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, fs::read(e.path()).unwrap())
        })
        .collect()
}

/// The shipped grammar `<8 digits>/S00a/Lb/E0c/Cn.(jpg|txt)`, spelled as in
/// spec §2.2 (no padding on L and C, `S` three digits, `E` two).
fn parse_rel(rel: &str) -> Option<(String, Attributes, String)> {
    let parts: Vec<&str> = rel.split('/').collect();
    let [id, s, l, e, file] = parts[..] else {
        return None;
    };
    let (stem, ext) = file.rsplit_once('.')?;
    let code = |text: &str, prefix: &str, width: Option<usize>| -> Option<u8> {
        let digits = text.strip_prefix(prefix)?;
        let ok = digits.bytes().all(|b| b.is_ascii_digit())
            && match width {
                Some(w) => digits.len() == w,
                None => !digits.starts_with('0'),
            };
        ok.then(|| digits.parse().ok()).flatten()
    };
    let attrs = Attributes::new(
        code(s, "S", Some(3))?,
        code(l, "L", None)?,
        code(e, "E", Some(2))?,
        code(stem, "C", None)?,
    )?;
    let id_ok = id.len() == 8 && id.bytes().all(|b| b.is_ascii_digit());
    (id_ok && matches!(ext, "jpg" | "txt")).then(|| (id.to_string(), attrs, ext.to_string()))
}

fn small(seed: u64) -> Config {
    Config {
        identities: 2,
        selection: "S1-2 L1-2,7 E1-3 C1,7,12,16".parse().unwrap(),
        seed,
        ..Config::default()
    }
}

#[test]
fn identity_ids_look_real_and_are_sorted() {
    let ids = identity_ids(50, 7);
    assert_eq!(ids.len(), 50);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "sorted and distinct");
    for id in &ids {
        let b = id.as_bytes();
        assert_eq!(b.len(), 8);
        assert!(id.starts_with("19"), "{id}");
        assert!(
            (b'1'..=b'4').contains(&b[6]) && (b'1'..=b'2').contains(&b[7]),
            "{id}"
        );
    }
    assert_ne!(identity_ids(5, 1), identity_ids(5, 2));
}

#[test]
fn tree_matches_the_shipped_layout_and_annotation_coverage() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        korean_parent: true,
        extra_nesting: true,
        faults: true,
        ..small(1)
    };
    let summary = generate(&config, dir.path()).unwrap();
    let root = dir
        .path()
        .join(KOREAN_PARENT)
        .join("Middle_Resolution")
        .join("middle");
    assert_eq!(summary.tree_root.as_deref(), Some(root.as_path()));
    let strays: BTreeSet<&str> = summary.files_of(FaultKind::StrayFile).into_iter().collect();
    let mut jpgs = BTreeSet::new();
    let mut txts = BTreeSet::new();
    for rel in files(&root).keys() {
        let classified = crate::kface::path::classify(&root.join(rel));
        if strays.contains(rel.as_str()) {
            assert_eq!(classified, crate::kface::path::Classified::Stray, "{rel}");
            continue;
        }
        let (id, attrs, ext) =
            parse_rel(rel).unwrap_or_else(|| panic!("{rel} is not in the K-Face grammar"));
        let crate::kface::path::Classified::Match(found) = classified else {
            panic!("facekit's path grammar does not take {rel}");
        };
        assert_eq!(
            (found.key.identity.as_str(), found.key.attrs),
            (id.as_str(), attrs),
            "{rel}"
        );
        assert!(summary.identities.contains(&id));
        assert!(
            config.selection.contains(&attrs),
            "{rel} outside the selection"
        );
        match ext.as_str() {
            "jpg" => jpgs.insert((id, attrs)),
            _ => txts.insert((id, attrs)),
        };
    }
    // 2 identities × 2 accessories × 3 lights × 3 expressions × 4 cameras.
    assert_eq!(jpgs.len(), 144);
    assert_eq!(summary.images, 144);
    // Annotations only for S001 under L1 and L7 here, each beside its image.
    let expected: BTreeSet<_> = jpgs
        .iter()
        .filter(|(_, a)| has_annotation(a))
        .cloned()
        .collect();
    assert_eq!(txts, expected);
    assert_eq!(txts.len(), 2 * 2 * 3 * 4);
    assert_eq!(summary.annotations, txts.len() as u64);
    assert!(txts
        .iter()
        .all(|(_, a)| a.accessory == 1 && (a.light == 1 || a.light == 7)));
    assert_eq!(strays.len(), 5);
    for stray in strays {
        assert!(root.join(stray).is_file(), "{stray}");
    }
}

#[test]
fn annotations_have_the_spec_line_counts_and_format() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        identities: 1,
        selection: "S1 L1,3,6 E1-3".parse().unwrap(),
        ..Config::default()
    };
    let summary = generate(&config, dir.path()).unwrap();
    assert_eq!(summary.annotations, 3 * 3 * 20);
    let root = summary.tree_root.unwrap();
    for (rel, bytes) in files(&root).iter().filter(|(rel, _)| rel.ends_with(".txt")) {
        let (_, attrs, _) = parse_rel(rel).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let expected = match attrs.camera {
            7 | 16 => 14,
            1 | 2 | 12 | 13 => 12,
            _ => 13,
        };
        assert_eq!(lines.len(), expected, "{rel}");
        let rows: Vec<Vec<i32>> = lines
            .iter()
            .map(|l| l.split('\t').map(|v| v.parse().unwrap()).collect())
            .collect();
        assert!(
            rows[..7].iter().all(|r| r.len() == 2),
            "{rel}: 7 x<TAB>y lines"
        );
        assert!(
            rows[7..].iter().all(|r| r.len() == 4),
            "{rel}: x y w h boxes"
        );
        let face = &rows[7];
        assert_eq!(face[2], face[3], "{rel}: square face box");
        let parsed = crate::kface::annotation::parse(&text, attrs.camera)
            .unwrap_or_else(|e| panic!("facekit's annotation parser rejects {rel}: {e}"));
        assert_eq!(
            parsed.parts.len(),
            expected - 8,
            "{rel}: part boxes after the face box"
        );
        for r in &rows[..7] {
            assert!(
                (0..346).contains(&r[0]) && (0..230).contains(&r[1]),
                "{rel}: {r:?}"
            );
        }
        if attrs.camera == 7 {
            assert!(rows[1][0] < rows[2][0], "{rel}: eyeR is image-left");
        }
    }
}

#[test]
fn same_config_and_seed_give_byte_identical_files_whatever_the_threads() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let config = Config {
        faults: true,
        zip: true,
        ..small(3)
    };
    let sa = generate(&config, a.path()).unwrap();
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let sb = one_thread.install(|| generate(&config, b.path())).unwrap();
    assert_eq!(sa.faults, sb.faults);
    let (fa, fb) = (files(a.path()), files(b.path()));
    assert_eq!(fa.len(), 144 + 48 + 5 + 1);
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (rel, bytes) in &fa {
        assert!(bytes == &fb[rel], "{rel} differs between runs");
    }
    let other = tempfile::tempdir().unwrap();
    generate(
        &Config {
            zip: false,
            ..small(4)
        },
        other.path(),
    )
    .unwrap();
    let c = files(other.path());
    let differing = c
        .iter()
        .filter(|(rel, bytes)| fa.get(*rel) != Some(bytes))
        .count();
    assert_eq!(differing, c.len(), "another seed gives other files");
}

#[test]
fn faults_are_planted_when_asked_and_only_then() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(
        &Config {
            faults: true,
            ..small(5)
        },
        dir.path(),
    )
    .unwrap();
    let root = summary.tree_root.clone().unwrap();
    let read = |file: &str| fs::read(root.join(file)).unwrap();
    let kinds: Vec<FaultKind> = summary.faults.iter().map(|f| f.kind).collect();
    for kind in [
        FaultKind::TruncatedJpeg,
        FaultKind::EmptyJpeg,
        FaultKind::NotJpeg,
        FaultKind::MalformedAnnotation,
        FaultKind::LandmarksOutside,
    ] {
        assert_eq!(kinds.iter().filter(|k| **k == kind).count(), 1, "{kind:?}");
    }
    assert!(
        summary.faults.iter().all(|f| !f.file.contains("/L7/")),
        "faults avoid L7, which convert skips by default"
    );
    let truncated = read(summary.files_of(FaultKind::TruncatedJpeg)[0]);
    assert!(truncated.starts_with(&[0xFF, 0xD8]) && !truncated.ends_with(&[0xFF, 0xD9]));
    // `image`'s default decode pads a truncated scan with grey; strict mode fails.
    let strict = zune_core::options::DecoderOptions::default().set_strict_mode(true);
    assert!(
        zune_jpeg::JpegDecoder::new_with_options(Cursor::new(&truncated), strict)
            .decode()
            .is_err()
    );
    assert!(read(summary.files_of(FaultKind::EmptyJpeg)[0]).is_empty());
    assert!(!read(summary.files_of(FaultKind::NotJpeg)[0]).starts_with(&[0xFF, 0xD8]));
    let malformed =
        String::from_utf8(read(summary.files_of(FaultKind::MalformedAnnotation)[0])).unwrap();
    assert!(malformed.lines().count() < 8);
    let outside =
        String::from_utf8(read(summary.files_of(FaultKind::LandmarksOutside)[0])).unwrap();
    for line in outside.lines().take(7) {
        let x: i32 = line.split('\t').next().unwrap().parse().unwrap();
        assert!(x < 0, "{line}");
    }
    // Every image not listed as faulty decodes at the tier size.
    let faulty: BTreeSet<&str> = summary.faults.iter().map(|f| f.file.as_str()).collect();
    let all = files(&root);
    let good: Vec<_> = all
        .iter()
        .filter(|(rel, _)| rel.ends_with(".jpg") && !faulty.contains(rel.as_str()))
        .collect();
    assert_eq!(good.len(), 144 - 3);
    for (rel, bytes) in good {
        let img = image::load_from_memory(bytes).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!((img.width(), img.height()), (346, 230));
    }

    let clean = tempfile::tempdir().unwrap();
    let summary = generate(&small(5), clean.path()).unwrap();
    assert!(summary.faults.is_empty());
    let all = files(clean.path());
    assert!(all
        .keys()
        .all(|rel| rel.ends_with(".jpg") || rel.ends_with(".txt")));
    assert!(all
        .iter()
        .filter(|(rel, _)| rel.ends_with(".jpg"))
        .all(|(_, b)| image::load_from_memory(b).is_ok()));
}

#[test]
fn zip_form_holds_per_identity_zips_with_unprefixed_members() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(
        &Config {
            zip: true,
            faults: true,
            ..small(6)
        },
        dir.path(),
    )
    .unwrap();
    let zip_path = summary.zip_path.clone().unwrap();
    assert_eq!(zip_path, dir.path().join("Middle_Resolution.zip"));
    let tree = files(summary.tree_root.as_ref().unwrap());
    let mut outer = zip::ZipArchive::new(fs::File::open(&zip_path).unwrap()).unwrap();
    let names: BTreeSet<String> = outer
        .file_names()
        .map(|n| n.unwrap().into_owned())
        .collect();
    let mut expected: BTreeSet<String> = summary
        .identities
        .iter()
        .map(|id| format!("{id}.zip"))
        .collect();
    expected.extend(["readme.txt".to_string(), ".DS_Store".to_string()]);
    assert_eq!(names, expected);
    let mut members_seen = 0;
    for id in &summary.identities {
        let mut bytes = Vec::new();
        let mut entry = outer.by_name(&format!("{id}.zip")).unwrap();
        assert_eq!(entry.compression(), CompressionMethod::Stored);
        entry.read_to_end(&mut bytes).unwrap();
        drop(entry);
        let mut inner = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let tree_members: BTreeMap<&str, &Vec<u8>> = tree
            .iter()
            .filter_map(|(rel, b)| Some((rel.strip_prefix(id.as_str())?.strip_prefix('/')?, b)))
            .collect();
        let inner_names: BTreeSet<String> = inner
            .file_names()
            .map(|n| n.unwrap().into_owned())
            .collect();
        assert_eq!(
            inner_names,
            tree_members.keys().map(|k| k.to_string()).collect()
        );
        for (name, tree_bytes) in tree_members {
            assert!(!name.starts_with(id.as_str()), "no identity prefix: {name}");
            let mut member = inner.by_name(name).unwrap();
            let method = member.compression();
            let mut content = Vec::new();
            member.read_to_end(&mut content).unwrap();
            assert!(
                &content == tree_bytes,
                "{id}.zip!{name} differs from the tree"
            );
            if name.ends_with(".jpg") && !name.contains("__MACOSX") {
                assert_eq!(method, CompressionMethod::Stored, "{name}");
            }
            if name.ends_with(".txt") {
                assert_eq!(method, CompressionMethod::Deflated, "{name}");
            }
            members_seen += 1;
        }
    }
    assert_eq!(members_seen, 144 + 48 + 3);
}

/// Luma of a pixel.
fn luma(img: &RgbImage, [x, y]: [i32; 2]) -> f32 {
    let p = img.get_pixel(x as u32, y as u32).0;
    0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32
}

#[test]
fn features_are_drawn_at_the_annotated_points() {
    let person = identity("19062421", 0, 9);
    let frontal = Attributes::new(1, 1, 1, 7).unwrap();
    let (img, ann) = photo(&person, 0, &frontal, Tier::Middle, 9);
    let [nose, eye_r, eye_l, mouth_r, mouth_l, _, _] = ann.points;
    // Pupils are dark, the forehead between and above the eyes is skin.
    let forehead = [(eye_r[0] + eye_l[0]) / 2, eye_r[1] - 18];
    assert!(luma(&img, eye_r) < 60.0 && luma(&img, eye_l) < 60.0);
    assert!(luma(&img, forehead) > 120.0);
    // Mouth corners sit on the lips: redder than the skin beside them.
    for corner in [mouth_r, mouth_l] {
        let p = img.get_pixel(corner[0] as u32, corner[1] as u32).0;
        assert!(
            p[0] as i32 - p[1] as i32 > 50,
            "lip colour at {corner:?}: {p:?}"
        );
    }
    // The nose tip lies on the drawn face, below the eyes, above the mouth.
    assert!(eye_r[1] < nose[1] && nose[1] < mouth_r[1]);
    assert!(luma(&img, nose) > 60.0);

    // L7 (0 lux) is practically black; L1 is bright.
    let dark = photo(
        &person,
        0,
        &Attributes::new(1, 7, 1, 7).unwrap(),
        Tier::Middle,
        9,
    )
    .0;
    let mean = |img: &RgbImage| {
        img.as_raw().iter().map(|&v| v as f64).sum::<f64>() / img.as_raw().len() as f64
    };
    assert!(mean(&dark) < 15.0, "L7 mean {}", mean(&dark));
    assert!(mean(&img) > 100.0);
    // Sunglasses cover the eyes of S004: dark, and the iris is not drawn.
    let (shades, _) = photo(
        &person,
        0,
        &Attributes::new(4, 1, 1, 7).unwrap(),
        Tier::Middle,
        9,
    );
    let diff: u64 = shades
        .as_raw()
        .iter()
        .zip(img.as_raw())
        .map(|(a, b)| a.abs_diff(*b) as u64)
        .sum();
    assert!(diff > 0);
}

#[test]
fn expressions_move_the_mouth_corners() {
    let person = identity("19062421", 0, 2);
    let corners = |e: u8| {
        photo(
            &person,
            0,
            &Attributes::new(1, 1, e, 7).unwrap(),
            Tier::Middle,
            2,
        )
        .1
        .points
    };
    let (neutral, smile, frown) = (corners(1), corners(2), corners(3));
    let width = |p: [[i32; 2]; 7]| p[4][0] - p[3][0];
    assert!(width(smile) > width(neutral) && width(frown) < width(neutral));
    assert!(smile[3][1] < neutral[3][1] && frown[3][1] > neutral[3][1]);
}

#[test]
fn tiers_have_their_sizes_and_scaled_points() {
    let person = identity("19062421", 0, 0);
    let a = Attributes::new(1, 1, 1, 7).unwrap();
    let mut eyes = Vec::new();
    for tier in [Tier::Low, Tier::Middle, Tier::High] {
        let (img, ann) = photo(&person, 0, &a, tier, 0);
        assert_eq!(img.dimensions(), tier.size());
        eyes.push(ann.points[1][0] as f32 / tier.size().0 as f32);
    }
    assert!(
        (eyes[0] - eyes[2]).abs() < 0.01,
        "same relative position: {eyes:?}"
    );
}

#[test]
fn aligned_crops_put_the_drawn_eyes_and_mouth_on_the_arcface_template() {
    use crate::align::{norm_crop, template};
    let arcface = template(112).unwrap();
    // Within `r` pixels of a template point, some pixel passes `test`. The
    // five-point fit leaves residuals: a smile or frown changes the mouth's
    // width, which the template's does not, hence the looser mouth check.
    let near = |img: &RgbImage, [x, y]: [f32; 2], r: i32, test: &dyn Fn([u8; 3]) -> bool| {
        let (x, y) = (x.round() as i32, y.round() as i32);
        (-r..=r)
            .any(|dy| (-r..=r).any(|dx| test(img.get_pixel((x + dx) as u32, (y + dy) as u32).0)))
    };
    for index in 0..3 {
        let person = identity(&format!("1906242{index}"), index, 11);
        for camera in [6, 7, 8, 16] {
            for expression in 1..=3 {
                let attrs = Attributes::new(1, 1, expression, camera).unwrap();
                let (img, ann) = photo(&person, index, &attrs, Tier::Middle, 11);
                let p = ann.points.map(|[x, y]| [x as f64, y as f64]);
                let crop = norm_crop(&img, &[p[1], p[2], p[0], p[3], p[4]], 112).unwrap();
                let at = format!("identity {index} C{camera} E0{expression}");
                let dark = |px: [u8; 3]| px.iter().all(|&v| v < 90);
                let lips = |px: [u8; 3]| px[0] as i32 - px[1] as i32 > 45;
                assert!(
                    near(&crop, arcface[0], 2, &dark),
                    "{at}: right eye off the template"
                );
                assert!(
                    near(&crop, arcface[1], 2, &dark),
                    "{at}: left eye off the template"
                );
                assert!(
                    near(&crop, arcface[3], 5, &lips),
                    "{at}: right mouth corner off the template"
                );
                assert!(
                    near(&crop, arcface[4], 5, &lips),
                    "{at}: left mouth corner off the template"
                );
            }
        }
    }
}

/// CPU time of this thread, so a loaded machine does not inflate the figure.
fn thread_cpu() -> std::time::Duration {
    let stat = fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    std::time::Duration::from_nanos(
        stat.split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    )
}

#[test]
#[ignore = "a measurement: cargo test --release --lib synth::tests::generator_cost -- --ignored --nocapture"]
fn generator_cost_per_image() {
    let person = identity("19062421", 0, 0);
    let conds = conditions(&"S1-6 L1,16 E1-3 C1-20".parse().unwrap());
    let config = Config::default();
    let start = thread_cpu();
    let mut bytes = 0;
    for a in &conds {
        let (image, _) = photo(&person, 0, a, Tier::Middle, 0);
        bytes += image.as_raw().len();
    }
    let render = (thread_cpu() - start) / conds.len() as u32;
    let start = thread_cpu();
    for a in &conds {
        bytes += make_item(&person, 0, *a, &config).unwrap().jpg.len();
    }
    let total = (thread_cpu() - start) / conds.len() as u32;
    println!(
        "Middle tier, one thread: draw {render:?}, draw + encode {total:?} per image ({:.0} images/s per core) [{bytes}]",
        1.0 / total.as_secs_f64()
    );
}
