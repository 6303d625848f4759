//! A stand-in for a face model when none is available offline (the demo,
//! tests, benchmarks): embeddings whose genuine/impostor structure looks
//! like an ArcFace model's on K-Face, so every metric and chart has
//! something realistic to show. It is NOT a face model: the numbers it
//! yields say nothing about any real network.
//!
//! An embedding is `normalize(q·identity + sqrt(1-q²)·nuisance)` where
//! * `identity` is a unit vector per person, itself pulled toward one of a
//!   few "look-alike" directions so some impostor pairs score high, as
//!   real impostor tails do;
//! * `nuisance` mixes a vector shared by every image taken under the same
//!   camera and light (same-condition impostors correlate a little) with
//!   noise of the image itself;
//! * `q`, the share of identity that survives, falls with yaw and pitch,
//!   darkness, occlusion (sunglasses, caps) and expression, as recognition
//!   accuracy does in the K-Face paper's analyses.
//!
//! Everything is a pure function of the image key and the seed.

use std::hash::{Hash, Hasher};

use chacha20::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use crate::kface::{Attributes, ImageKey};

/// Said on every output made from this model.
pub const NOTE: &str = "Synthetic embeddings: these scores come from facekit's documented \
synthetic generator (src/synthetic_model.rs), not from a face recognition model. They show how \
to read the report; they say nothing about any real model's accuracy.";

const LOOKALIKE_GROUPS: u64 = 16;
const LOOKALIKE_WEIGHT: f64 = 0.3;
const CONDITION_WEIGHT: f64 = 0.35;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SyntheticModel {
    pub dim: usize,
    pub seed: u64,
}

impl SyntheticModel {
    pub fn new(dim: usize, seed: u64) -> SyntheticModel {
        SyntheticModel { dim, seed }
    }

    /// The embedding of one image (unit length).
    pub fn embed(&self, key: &ImageKey) -> Vec<f32> {
        let identity = self.identity_vector(&key.identity);
        let condition = self.unit_vector(&("condition", key.attrs.camera, key.attrs.light));
        let own = self.unit_vector(&("image", key.identity.as_str(), key.attrs));
        let q = quality(&key.attrs);
        let rest = (1.0 - q * q).sqrt();
        let own_weight = (1.0 - CONDITION_WEIGHT * CONDITION_WEIGHT).sqrt();
        let v: Vec<f64> = (0..self.dim)
            .map(|i| {
                q * identity[i] + rest * (CONDITION_WEIGHT * condition[i] + own_weight * own[i])
            })
            .collect();
        normalize(v).into_iter().map(|x| x as f32).collect()
    }

    fn identity_vector(&self, identity: &str) -> Vec<f64> {
        let group = self.hash(&("group", identity)) % LOOKALIKE_GROUPS;
        let lookalike = self.unit_vector(&("lookalike", group));
        let own = self.unit_vector(&("identity", identity));
        let w = (1.0 - LOOKALIKE_WEIGHT * LOOKALIKE_WEIGHT).sqrt();
        normalize(
            lookalike
                .iter()
                .zip(&own)
                .map(|(a, b)| LOOKALIKE_WEIGHT * a + w * b)
                .collect(),
        )
    }

    fn hash<T: Hash>(&self, what: &T) -> u64 {
        // SipHash with fixed keys: stable across runs and platforms.
        #[allow(deprecated)]
        let mut h = std::hash::SipHasher::new_with_keys(self.seed, 0x6661_6365_6b69_7421);
        what.hash(&mut h);
        h.finish()
    }

    /// A direction drawn uniformly on the sphere, seeded by `what`.
    fn unit_vector<T: Hash>(&self, what: &T) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.hash(what));
        normalize((0..self.dim).map(|_| standard_normal(&mut rng)).collect())
    }
}

/// How much of the identity survives the capture conditions, in (0, 1).
pub fn quality(a: &Attributes) -> f64 {
    let (yaw, pitch) = camera_angles(a.camera);
    let pose = 1.0 - 0.6 * (yaw.abs() / 90.0).powf(1.5) - 0.12 * (pitch.abs() / 30.0);
    let lux = light_lux(a.light);
    let light = 1.0 - 0.7 * (1.0 - (lux / 200.0).min(1.0)).powi(2);
    let accessory = [1.0, 0.97, 0.95, 0.72, 0.9, 0.83][(a.accessory - 1) as usize];
    let expression = [1.0, 0.94, 0.92][(a.expression - 1) as usize];
    (0.86 * pose * light * accessory * expression).clamp(0.02, 0.98)
}

/// Yaw and pitch of a K-Face camera in degrees (official table).
pub(crate) fn camera_angles(camera: u8) -> (f64, f64) {
    match camera {
        1..=13 => (90.0 - 15.0 * (camera as f64 - 1.0), 0.0),
        14 => (45.0, 30.0),
        15 => (15.0, 30.0),
        16 => (0.0, 30.0),
        17 => (-15.0, 30.0),
        18 => (-45.0, 30.0),
        19 => (30.0, -15.0),
        _ => (-30.0, -15.0),
    }
}

/// Illuminance of a K-Face light code in lux (official table).
pub(crate) fn light_lux(light: u8) -> f64 {
    const ALL: [f64; 7] = [1000.0, 400.0, 200.0, 150.0, 100.0, 40.0, 0.0];
    const FOUR: [f64; 4] = [400.0, 200.0, 100.0, 40.0];
    const THREE: [f64; 3] = [400.0, 200.0, 100.0];
    match light {
        1..=7 => ALL[(light - 1) as usize],
        8..=15 => FOUR[((light - 8) % 4) as usize],
        _ => THREE[((light - 16) % 3) as usize],
    }
}

fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box–Muller; 1 - u keeps the logarithm finite.
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random::<f64>();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

fn normalize(mut v: Vec<f64>) -> Vec<f64> {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, s: u8, l: u8, e: u8, c: u8) -> ImageKey {
        ImageKey {
            identity: id.into(),
            attrs: Attributes::new(s, l, e, c).unwrap(),
        }
    }

    fn cos(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (*x as f64) * (*y as f64))
            .sum()
    }

    #[test]
    fn embeddings_are_unit_and_deterministic() {
        let m = SyntheticModel::new(512, 7);
        let e = m.embed(&key("19062421", 1, 1, 1, 7));
        assert_eq!(e.len(), 512);
        assert!((cos(&e, &e) - 1.0).abs() < 1e-5);
        assert_eq!(e, m.embed(&key("19062421", 1, 1, 1, 7)));
        assert_ne!(
            e,
            SyntheticModel::new(512, 8).embed(&key("19062421", 1, 1, 1, 7))
        );
    }

    #[test]
    fn genuine_pairs_outscore_impostors_and_conditions_matter() {
        let m = SyntheticModel::new(512, 0);
        let a = m.embed(&key("19062421", 1, 1, 1, 7));
        let frontal = m.embed(&key("19062421", 1, 2, 2, 8));
        let profile = m.embed(&key("19062421", 4, 6, 3, 1));
        let other = m.embed(&key("19070541", 1, 1, 1, 7));
        let g_easy = cos(&a, &frontal);
        let g_hard = cos(&a, &profile);
        let imp = cos(&a, &other);
        assert!(g_easy > 0.5, "{g_easy}");
        assert!(g_hard < g_easy && g_hard > imp, "{g_hard} {g_easy} {imp}");
        assert!(imp.abs() < 0.3, "{imp}");
    }

    #[test]
    fn condition_tables_follow_the_official_codes() {
        assert_eq!(camera_angles(1), (90.0, 0.0));
        assert_eq!(camera_angles(7), (0.0, 0.0));
        assert_eq!(camera_angles(13), (-90.0, 0.0));
        assert_eq!(camera_angles(16), (0.0, 30.0));
        assert_eq!(camera_angles(20), (-30.0, -15.0));
        assert_eq!(light_lux(1), 1000.0);
        assert_eq!(light_lux(7), 0.0);
        assert_eq!(light_lux(11), 40.0);
        assert_eq!(light_lux(12), 400.0);
        assert_eq!(light_lux(18), 100.0);
        assert_eq!(light_lux(30), 100.0);
        let dark = quality(&Attributes::new(1, 7, 1, 7).unwrap());
        let bright = quality(&Attributes::new(1, 1, 1, 7).unwrap());
        assert!(dark < 0.4 * bright);
    }
}
