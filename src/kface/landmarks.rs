//! Where the landmarks of each image come from (`--landmarks`).
//!
//! Only S001 images under four lights carry an annotation file. The rig is
//! fixed and a sitter barely moves within a session, so an unannotated
//! image can borrow the points of its *sibling*: the annotated S001 image of
//! the same identity, camera and expression under the nearest light (spec
//! §4.5 b, what MIX does with detector output). Full profiles (C1, C13) are
//! always cropped from the square face box: their two eye points almost
//! coincide and a 5-point similarity fit is ill-conditioned there.
//!
//! Everything here is a pure function of an identity's annotations; the
//! pipeline reads the files and applies the result.

use std::collections::BTreeMap;

use super::annotation::{Annotation, AnnotationError, BoundingBox};
use super::Attributes;

/// `--landmarks`, named in `dataset.json` as on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Policy {
    /// The image's own annotation, else its nearest-light S001 sibling's.
    Sibling,
    /// The image's own annotation only; images without one are skipped.
    Annotation,
    /// A square face-box crop without rotation, the box found as for `Sibling`.
    Bbox,
}

/// How the aligned crop is made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Crop {
    /// Similarity transform of these five points (insightface order) to
    /// the ArcFace template.
    Points([[f32; 2]; 5]),
    /// Centre and scale of this face box, no rotation.
    FaceBox(BoundingBox),
}

/// Whose annotation was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Own,
    Sibling(Attributes),
}

/// The landmarks chosen for one image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Choice {
    pub crop: Crop,
    pub origin: Origin,
}

impl Choice {
    /// The manifest's `landmark_source`: `own`, `sibling:S001/L1/E01/C4.txt`,
    /// or, for face-box crops, `bbox` (own box) and `bbox:sibling:…`.
    pub(crate) fn source_label(&self) -> String {
        let origin = match self.origin {
            Origin::Own => None,
            Origin::Sibling(a) => Some(format!("sibling:{}.txt", a.relative_stem())),
        };
        match (self.crop, origin) {
            (Crop::Points(_), None) => "own".to_string(),
            (Crop::Points(_), Some(o)) => o,
            (Crop::FaceBox(_), None) => "bbox".to_string(),
            (Crop::FaceBox(_), Some(o)) => format!("bbox:{o}"),
        }
    }
}

/// The outcome for one image.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    Use(Choice),
    /// Not converted by choice of policy (a `skipped` row).
    Skip(String),
    /// Not convertible (a `failed` row).
    Fail(String),
}

/// An identity's annotations, parsed or not, by the image they describe.
pub(crate) type Annotations = BTreeMap<Attributes, Result<Annotation, AnnotationError>>;

/// Full profiles, cropped from the face box under every policy.
pub(crate) fn is_full_profile(camera: u8) -> bool {
    camera == 1 || camera == 13
}

/// Illuminance of each light in lux (official table, KF-DBINFO).
fn lux(light: u8) -> f32 {
    const ALL: [f32; 7] = [1000.0, 400.0, 200.0, 150.0, 100.0, 40.0, 0.0];
    match light {
        1..=7 => ALL[light as usize - 1],
        8..=15 => [400.0, 200.0, 100.0, 40.0][(light as usize - 8) % 4],
        _ => [400.0, 200.0, 100.0][(light as usize - 16) % 3],
    }
}

/// The annotated S001 sibling nearest in illuminance (log lux; the same
/// light first, then the lower light code on a tie).
fn nearest_sibling<'a>(
    attrs: &Attributes,
    annotations: &'a Annotations,
) -> Option<(Attributes, &'a Annotation)> {
    let distance = |light: u8| {
        let d = ((lux(light) + 1.0).ln() - (lux(attrs.light) + 1.0).ln()).abs();
        (light != attrs.light, d, light)
    };
    annotations
        .iter()
        .filter(|(a, parsed)| {
            a.accessory == 1
                && a.camera == attrs.camera
                && a.expression == attrs.expression
                && parsed.is_ok()
        })
        .filter_map(|(a, parsed)| parsed.as_ref().ok().map(|ann| (*a, ann)))
        .min_by(|(a, _), (b, _)| {
            let (da, db) = (distance(a.light), distance(b.light));
            da.0.cmp(&db.0)
                .then(da.1.total_cmp(&db.1))
                .then(da.2.cmp(&db.2))
        })
}

fn crop_of(annotation: &Annotation, camera: u8, policy: Policy) -> Crop {
    if policy == Policy::Bbox || is_full_profile(camera) {
        Crop::FaceBox(annotation.face)
    } else {
        Crop::Points(annotation.arcface_points())
    }
}

/// Chooses the landmarks of the image `attrs` of an identity under `policy`.
pub(crate) fn choose(policy: Policy, attrs: &Attributes, annotations: &Annotations) -> Decision {
    let own_name = format!("{}.txt", attrs.relative_stem());
    let own = match annotations.get(attrs) {
        Some(Ok(annotation)) => Some(annotation),
        Some(Err(err)) => return Decision::Fail(format!("{own_name}: {err}")),
        None => None,
    };
    if let Some(annotation) = own {
        return Decision::Use(Choice {
            crop: crop_of(annotation, attrs.camera, policy),
            origin: Origin::Own,
        });
    }
    if policy == Policy::Annotation {
        return Decision::Skip("no annotation file (--landmarks annotation)".to_string());
    }
    match nearest_sibling(attrs, annotations) {
        Some((sibling, annotation)) => Decision::Use(Choice {
            crop: crop_of(annotation, attrs.camera, policy),
            origin: Origin::Sibling(sibling),
        }),
        None => Decision::Fail(format!(
            "no annotation for {} nor a usable one for any S001 image of camera {}, expression {}",
            attrs.relative_stem(),
            attrs.camera_code(),
            attrs.expression_code()
        )),
    }
}

impl Crop {
    /// The same geometry on an image scaled by `s` (pixel centres kept).
    pub fn scaled(&self, s: f32) -> Crop {
        match self {
            Crop::Points(points) => Crop::Points(points.map(|p| p.map(|v| (v + 0.5) * s - 0.5))),
            Crop::FaceBox(b) => Crop::FaceBox(BoundingBox {
                x: b.x * s,
                y: b.y * s,
                w: b.w * s,
                h: b.h * s,
            }),
        }
    }

    /// Every point on the image, or the face box's centre.
    fn lies_on(&self, width: u32, height: u32) -> bool {
        let (w, h) = (width as f32, height as f32);
        let inside = |[x, y]: [f32; 2]| (0.0..=w).contains(&x) && (0.0..=h).contains(&y);
        match self {
            Crop::Points(points) => points.iter().all(|p| inside(*p)),
            Crop::FaceBox(b) => inside([b.x + b.w / 2.0, b.y + b.h / 2.0]),
        }
    }
}

/// Image widths of the High, Middle and Low tiers (spec §2.3).
const TIER_WIDTHS: [u32; 3] = [864, 346, 173];

/// A crop fitted to its image: the geometry to use and, when the annotation
/// had to be rescaled from a larger tier's pixels, the factor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Fitted {
    pub crop: Crop,
    pub scale: Option<f32>,
}

/// Checks that a crop's geometry lies on an image of `width` × `height`.
/// When it does not, the annotation may be in the pixels of a larger tier
/// (spec §4.5): on an image of a tier's width, the nearest larger tier whose
/// scale puts it on the image is used, and said. Otherwise the image cannot
/// be aligned.
pub(crate) fn fit_to_image(crop: &Crop, width: u32, height: u32) -> Result<Fitted, String> {
    if crop.lies_on(width, height) {
        return Ok(Fitted {
            crop: *crop,
            scale: None,
        });
    }
    // Only on an image of a tier's width (within 2%) is a rescale plausible.
    let w = width as f32;
    let is_tier = TIER_WIDTHS
        .iter()
        .any(|&t| (t as f32 - w).abs() <= t as f32 * 0.02);
    let larger = TIER_WIDTHS
        .iter()
        .rev()
        .filter(|&&t| is_tier && t as f32 > w * 1.5);
    for tier in larger {
        let s = w / *tier as f32;
        let scaled = crop.scaled(s);
        if scaled.lies_on(width, height) {
            return Ok(Fitted {
                crop: scaled,
                scale: Some(s),
            });
        }
    }
    Err(format!(
        "landmarks outside the {width}x{height} image, at any tier's scale"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kface::annotation;

    fn a(s: u8, l: u8, e: u8, c: u8) -> Attributes {
        Attributes::new(s, l, e, c).unwrap()
    }

    /// An annotation whose nose x encodes a tag, to tell sources apart.
    fn ann(tag: f32) -> Annotation {
        let text = format!("{tag} 50\n40 40\n60 40\n42 70\n58 70\n20 45\n80 45\n20 10 60 60\n");
        annotation::parse(&text, 7).unwrap()
    }

    fn set(entries: &[(Attributes, f32)]) -> Annotations {
        entries.iter().map(|(k, tag)| (*k, Ok(ann(*tag)))).collect()
    }

    fn used(d: Decision) -> Choice {
        match d {
            Decision::Use(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn own_annotation_first() {
        let anns = set(&[(a(1, 1, 1, 7), 1.0), (a(1, 3, 1, 7), 3.0)]);
        let c = used(choose(Policy::Sibling, &a(1, 3, 1, 7), &anns));
        assert_eq!(c.origin, Origin::Own);
        assert_eq!(c.source_label(), "own");
        let Crop::Points(p) = c.crop else { panic!() };
        assert_eq!(p[2], [3.0, 50.0]);
        assert_eq!(p[0], [40.0, 40.0]);
    }

    #[test]
    fn sibling_is_same_camera_and_expression_nearest_light() {
        let anns = set(&[
            (a(1, 1, 1, 4), 1.0),
            (a(1, 3, 1, 4), 3.0),
            (a(1, 6, 1, 4), 6.0),
            (a(1, 7, 1, 4), 7.0),
            (a(1, 1, 2, 4), 99.0),
            (a(1, 1, 1, 5), 98.0),
        ]);
        let pick = |attrs| used(choose(Policy::Sibling, &attrs, &anns)).origin;
        // Same light under another accessory.
        assert_eq!(pick(a(4, 1, 1, 4)), Origin::Sibling(a(1, 1, 1, 4)));
        // 400 lx is nearer 200 lx (L3) than 1000 lx (L1) in log lux.
        assert_eq!(pick(a(1, 2, 1, 4)), Origin::Sibling(a(1, 3, 1, 4)));
        // 40 lx directional light: L6.
        assert_eq!(pick(a(2, 11, 1, 4)), Origin::Sibling(a(1, 6, 1, 4)));
        // 150 lx: between L3 (200) and L6 (40); L3 is nearer.
        assert_eq!(pick(a(1, 4, 1, 4)), Origin::Sibling(a(1, 3, 1, 4)));
        let c = used(choose(Policy::Sibling, &a(2, 2, 1, 4), &anns));
        assert_eq!(c.source_label(), "sibling:S001/L3/E01/C4.txt");
    }

    #[test]
    fn malformed_siblings_are_passed_over_and_missing_ones_fail() {
        let mut anns = set(&[(a(1, 6, 1, 4), 6.0)]);
        anns.insert(a(1, 1, 1, 4), Err(AnnotationError::Empty));
        assert_eq!(
            used(choose(Policy::Sibling, &a(2, 1, 1, 4), &anns)).origin,
            Origin::Sibling(a(1, 6, 1, 4))
        );
        // The image's own malformed file is a failure, not a fallback.
        match choose(Policy::Sibling, &a(1, 1, 1, 4), &anns) {
            Decision::Fail(reason) => assert_eq!(reason, "S001/L1/E01/C4.txt: annotation is empty"),
            other => panic!("{other:?}"),
        }
        match choose(Policy::Sibling, &a(2, 1, 3, 4), &anns) {
            Decision::Fail(reason) => {
                assert!(reason.contains("camera C4, expression E03"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn annotation_policy_skips_and_bbox_policy_uses_boxes() {
        let anns = set(&[(a(1, 1, 1, 7), 1.0)]);
        assert!(matches!(
            choose(Policy::Annotation, &a(2, 1, 1, 7), &anns),
            Decision::Skip(_)
        ));
        assert_eq!(
            used(choose(Policy::Annotation, &a(1, 1, 1, 7), &anns)).source_label(),
            "own"
        );
        let c = used(choose(Policy::Bbox, &a(1, 1, 1, 7), &anns));
        assert_eq!(
            c.crop,
            Crop::FaceBox(BoundingBox {
                x: 20.0,
                y: 10.0,
                w: 60.0,
                h: 60.0
            })
        );
        assert_eq!(c.source_label(), "bbox");
        let c = used(choose(Policy::Bbox, &a(3, 2, 1, 7), &anns));
        assert_eq!(c.source_label(), "bbox:sibling:S001/L1/E01/C7.txt");
    }

    #[test]
    fn full_profiles_always_use_the_face_box() {
        let anns = set(&[(a(1, 1, 1, 1), 1.0), (a(1, 1, 1, 13), 1.0)]);
        for policy in [Policy::Sibling, Policy::Annotation, Policy::Bbox] {
            for camera in [1, 13] {
                let c = used(choose(policy, &a(1, 1, 1, camera), &anns));
                assert!(matches!(c.crop, Crop::FaceBox(_)), "{policy:?} C{camera}");
            }
        }
        assert!(matches!(
            used(choose(Policy::Sibling, &a(5, 9, 1, 13), &anns)).crop,
            Crop::FaceBox(_)
        ));
    }

    #[test]
    fn lux_table() {
        assert_eq!(
            [
                lux(1),
                lux(7),
                lux(8),
                lux(11),
                lux(15),
                lux(16),
                lux(18),
                lux(30)
            ],
            [1000.0, 0.0, 400.0, 40.0, 40.0, 400.0, 100.0, 100.0]
        );
    }

    #[test]
    fn geometry_must_lie_on_the_image_or_a_larger_tier() {
        let points = Crop::Points([
            [10.0, 10.0],
            [30.0, 10.0],
            [20.0, 20.0],
            [12.0, 30.0],
            [28.0, 30.0],
        ]);
        assert_eq!(
            fit_to_image(&points, 40, 40),
            Ok(Fitted {
                crop: points,
                scale: None
            })
        );
        let err = fit_to_image(&points, 25, 40).unwrap_err();
        assert!(err.contains("25x40"), "{err}");
        let bx = Crop::FaceBox(BoundingBox {
            x: -10.0,
            y: -10.0,
            w: 40.0,
            h: 40.0,
        });
        assert!(fit_to_image(&bx, 40, 40).is_ok());
        assert!(fit_to_image(&bx, 5, 5).is_err());
        // A High-tier annotation (864 px wide) on a Middle image (346 px).
        let high = Crop::Points([
            [400.0, 250.0],
            [460.0, 250.0],
            [430.0, 290.0],
            [405.0, 330.0],
            [455.0, 330.0],
        ]);
        let fitted = fit_to_image(&high, 346, 230).unwrap();
        let s = 346.0 / 864.0;
        assert_eq!(fitted.scale, Some(s));
        let Crop::Points(p) = fitted.crop else {
            panic!()
        };
        assert!((p[0][0] - (400.5 * s - 0.5)).abs() < 1e-4);
        // A Middle-tier box on a Low image: the nearer tier (x0.5) first.
        let middle = Crop::FaceBox(BoundingBox {
            x: 150.0,
            y: 60.0,
            w: 100.0,
            h: 100.0,
        });
        let fitted = fit_to_image(&middle, 173, 115).unwrap();
        assert_eq!(fitted.scale, Some(0.5));
        assert_eq!(
            fitted.crop,
            Crop::FaceBox(BoundingBox {
                x: 75.0,
                y: 30.0,
                w: 50.0,
                h: 50.0
            })
        );
        // The largest tier has no larger one.
        assert!(fit_to_image(
            &Crop::FaceBox(BoundingBox {
                x: 900.0,
                y: 0.0,
                w: 40.0,
                h: 40.0
            }),
            864,
            576
        )
        .is_err());
    }
}
