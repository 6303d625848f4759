//! The synthetic head: per-identity shape and colours, the camera rig of
//! the K-Face studio, and where each landmark and annotation box falls in
//! the image. Pure geometry; `draw.rs` paints what this module places.
//!
//! Head frame (the rig's world frame): x toward the subject's left (image
//! right in the frontal C7 view), y down, z out of the face toward C7. The
//! head is an ellipsoid with half-height 1. Cameras are orthographic, aimed
//! at the head centre; yaw + puts the camera on the subject's left (C1-C6),
//! pitch + puts it above (C14-C18), as the spec's visibility flags imply.

use chacha20::ChaCha8Rng;
use rand::RngExt;

use crate::kface::Attributes;

/// Camera yaw and pitch in degrees, C1..C20 (spec §3.4).
const CAMERA_ANGLES: [(f32, f32); 20] = [
    (90.0, 0.0),
    (75.0, 0.0),
    (60.0, 0.0),
    (45.0, 0.0),
    (30.0, 0.0),
    (15.0, 0.0),
    (0.0, 0.0),
    (-15.0, 0.0),
    (-30.0, 0.0),
    (-45.0, 0.0),
    (-60.0, 0.0),
    (-75.0, 0.0),
    (-90.0, 0.0),
    (45.0, 30.0),
    (15.0, 30.0),
    (0.0, 30.0),
    (-15.0, 30.0),
    (-45.0, 30.0),
    (30.0, -15.0),
    (-30.0, -15.0),
];

/// One synthetic person: head shape, feature placement and colours.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub id: String,
    /// Half-width and depth of the head ellipsoid (half-height is 1).
    pub head_w: f32,
    pub head_d: f32,
    pub eye_dx: f32,
    pub eye_y: f32,
    pub nose_y: f32,
    pub nose_len: f32,
    pub mouth_y: f32,
    pub mouth_dx: f32,
    pub ear_y: f32,
    pub hairline: f32,
    /// Head size as a share of the image height, and the head centre's
    /// offset from the frame centre, as shares of width and height.
    pub scale: f32,
    pub offset: [f32; 2],
    pub skin: [f32; 3],
    pub hair: [f32; 3],
    pub iris: [f32; 3],
    pub lips: [f32; 3],
    pub clothes: [f32; 3],
    pub cap: [f32; 3],
    pub backdrop: [f32; 3],
}

impl Identity {
    /// The identity's look, drawn from `rng` (seeded per identity).
    pub fn random(id: String, rng: &mut ChaCha8Rng) -> Identity {
        let mut u = |lo: f32, hi: f32| rng.random_range(lo..hi);
        let skin_tone = u(0.0, 1.0);
        let skin = [
            205.0 + 35.0 * skin_tone,
            160.0 + 35.0 * skin_tone,
            130.0 + 35.0 * skin_tone,
        ];
        let hair_level = u(15.0, 70.0);
        let grey = u(170.0, 200.0);
        Identity {
            id,
            head_w: u(0.72, 0.84),
            head_d: u(0.86, 0.96),
            eye_dx: u(0.29, 0.35),
            eye_y: u(-0.10, -0.02),
            nose_y: u(0.24, 0.32),
            nose_len: u(0.12, 0.20),
            mouth_y: u(0.52, 0.60),
            mouth_dx: u(0.18, 0.24),
            ear_y: u(0.04, 0.14),
            hairline: u(-0.62, -0.48),
            scale: u(0.28, 0.32),
            offset: [u(-0.03, 0.03), u(-0.04, 0.02)],
            skin,
            hair: [
                hair_level * u(0.9, 1.3),
                hair_level,
                hair_level * u(0.8, 1.0),
            ],
            iris: [u(40.0, 80.0), u(25.0, 50.0), u(15.0, 35.0)],
            lips: [u(170.0, 200.0), u(90.0, 120.0), u(95.0, 125.0)],
            clothes: [u(30.0, 200.0), u(30.0, 200.0), u(30.0, 200.0)],
            cap: [u(20.0, 220.0), u(20.0, 220.0), u(20.0, 220.0)],
            backdrop: [
                grey + u(-6.0, 6.0),
                grey + u(-6.0, 6.0),
                grey + u(-2.0, 10.0),
            ],
        }
    }

    /// z of the head surface at (x, y), 0 outside the frontal outline.
    pub(crate) fn surface_z(&self, x: f32, y: f32) -> f32 {
        let t = 1.0 - (x / self.head_w).powi(2) - y * y;
        self.head_d * t.max(0.0).sqrt()
    }

    /// Outward unit normal of the head ellipsoid at a point on (or near) it.
    pub fn normal(&self, p: [f32; 3]) -> [f32; 3] {
        normalize([
            p[0] / (self.head_w * self.head_w),
            p[1],
            p[2] / (self.head_d * self.head_d),
        ])
    }

    /// A point on the face surface, lifted by `lift` along z.
    pub(crate) fn on_surface(&self, x: f32, y: f32, lift: f32) -> [f32; 3] {
        [x, y, self.surface_z(x, y) + lift]
    }
}

/// How an expression moves the mouth and brows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Expression {
    /// Mouth width factor, corner lift (negative = up), mouth opening,
    /// brow drop.
    pub width: f32,
    pub corner_dy: f32,
    pub open: f32,
    pub brow_drop: f32,
}

impl Expression {
    pub fn of(code: u8) -> Expression {
        match code {
            // E02 broad smile: wide, corners up, teeth showing.
            2 => Expression {
                width: 1.2,
                corner_dy: -0.05,
                open: 0.11,
                brow_drop: -0.01,
            },
            // E03 frown: narrow, corners down, brows lowered.
            3 => Expression {
                width: 0.88,
                corner_dy: 0.035,
                open: 0.0,
                brow_drop: 0.035,
            },
            _ => Expression {
                width: 1.0,
                corner_dy: 0.0,
                open: 0.0,
                brow_drop: 0.0,
            },
        }
    }
}

/// An orthographic camera: head frame → image pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct View {
    /// Rows of the rotation head frame → camera frame.
    pub rot: [[f32; 3]; 3],
    /// Pixels per head unit, and the head centre in pixels.
    pub scale: f32,
    pub centre: [f32; 2],
}

impl View {
    /// The view of `camera` (1..=20) for an identity in an image of
    /// `width` × `height`, with the sitter shifted by `shift` (a share of
    /// the height, per accessory session).
    pub fn new(identity: &Identity, camera: u8, width: u32, height: u32, shift: [f32; 2]) -> View {
        let (yaw, pitch) = CAMERA_ANGLES[(camera.clamp(1, 20) - 1) as usize];
        let (sy, cy) = yaw.to_radians().sin_cos();
        let (sp, cp) = pitch.to_radians().sin_cos();
        // Yaw about the vertical axis, then the camera's elevation.
        let yaw_rot = [[cy, 0.0, -sy], [0.0, 1.0, 0.0], [sy, 0.0, cy]];
        let pitch_rot = [[1.0, 0.0, 0.0], [0.0, cp, sp], [0.0, -sp, cp]];
        let rot = matmul(&pitch_rot, &yaw_rot);
        let (w, h) = (width as f32, height as f32);
        View {
            rot,
            scale: identity.scale * h,
            centre: [
                w * (0.5 + identity.offset[0]) + shift[0] * h,
                h * (0.47 + identity.offset[1]) + shift[1] * h,
            ],
        }
    }

    /// A head-frame vector in camera coordinates.
    pub(crate) fn rotate(&self, p: [f32; 3]) -> [f32; 3] {
        let r = &self.rot;
        [dot(r[0], p), dot(r[1], p), dot(r[2], p)]
    }

    /// A camera-frame vector back in head coordinates.
    pub(crate) fn unrotate(&self, q: [f32; 3]) -> [f32; 3] {
        let r = &self.rot;
        [
            r[0][0] * q[0] + r[1][0] * q[1] + r[2][0] * q[2],
            r[0][1] * q[0] + r[1][1] * q[1] + r[2][1] * q[2],
            r[0][2] * q[0] + r[1][2] * q[1] + r[2][2] * q[2],
        ]
    }

    /// Image position of a head-frame point.
    pub(crate) fn project(&self, p: [f32; 3]) -> [f32; 2] {
        let q = self.rotate(p);
        [
            self.centre[0] + self.scale * q[0],
            self.centre[1] + self.scale * q[1],
        ]
    }

    /// How much a head-frame normal faces the camera (cosine).
    pub(crate) fn facing(&self, n: [f32; 3]) -> f32 {
        dot(self.rot[2], n)
    }
}

/// Head-frame positions of the seven points for an expression, in file
/// order. The subject's right has negative x, so it lands image-left on C7.
pub(crate) fn head_points(identity: &Identity, expression: Expression) -> [[f32; 3]; 7] {
    let i = identity;
    let eye = |x: f32| i.on_surface(x, i.eye_y, -0.03);
    let mouth_dx = i.mouth_dx * expression.width;
    let mouth = |x: f32| i.on_surface(x, i.mouth_y + expression.corner_dy, 0.0);
    let ear = |x: f32| [x * (i.head_w + 0.02), i.ear_y, -0.05];
    [
        i.on_surface(0.0, i.nose_y, i.nose_len),
        eye(-i.eye_dx),
        eye(i.eye_dx),
        mouth(-mouth_dx),
        mouth(mouth_dx),
        ear(-1.0),
        ear(1.0),
    ]
}

/// The boxes of an annotation file, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BoxKind {
    Face,
    EyeR,
    EyeL,
    Nose,
    Mouth,
    EarR,
    EarL,
}

/// Which boxes a camera's annotation has (spec §4.2, KF-BBTOOL
/// `findAnnotationFlag`): face first, then the visible parts.
pub(crate) fn boxes_for_camera(camera: u8) -> &'static [BoxKind] {
    use BoxKind::*;
    match camera {
        7 | 16 => &[Face, EyeR, EyeL, Nose, Mouth, EarR, EarL],
        1 | 2 => &[Face, EyeL, Nose, Mouth, EarL],
        12 | 13 => &[Face, EyeR, Nose, Mouth, EarR],
        3..=6 | 14 | 15 | 19 => &[Face, EyeR, EyeL, Nose, Mouth, EarL],
        _ => &[Face, EyeR, EyeL, Nose, Mouth, EarR],
    }
}

/// What an annotation file holds: 7 points and the camera's boxes
/// `[x, y, w, h]`, in image pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    pub points: [[i32; 2]; 7],
    pub boxes: Vec<[i32; 4]>,
}

impl Annotation {
    /// The file text: `x<TAB>y` lines, then `x<TAB>y<TAB>w<TAB>h` lines, LF.
    pub(crate) fn to_text(&self) -> String {
        let mut s = String::new();
        for [x, y] in self.points {
            s.push_str(&format!("{x}\t{y}\n"));
        }
        for [x, y, w, h] in &self.boxes {
            s.push_str(&format!("{x}\t{y}\t{w}\t{h}\n"));
        }
        s
    }
}

/// Everything about one image's geometry: the view, and where the points
/// land (before rounding).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Placement {
    pub view: View,
    pub expression: Expression,
    pub points3: [[f32; 3]; 7],
    pub points: [[f32; 2]; 7],
}

/// Head shift of an accessory session: S001 is the reference sitting, the
/// others are separate sittings where the head sits slightly elsewhere
/// (spec §4.5), as a share of the image height.
pub(crate) fn session_shift(identity_index: usize, accessory: u8, seed: u64) -> [f32; 2] {
    if accessory <= 1 {
        return [0.0, 0.0];
    }
    let h = mix(seed ^ mix(identity_index as u64) ^ (accessory as u64).wrapping_mul(0x9E37));
    let a = (h & 0xffff) as f32 / 65535.0 - 0.5;
    let b = ((h >> 16) & 0xffff) as f32 / 65535.0 - 0.5;
    [a * 0.02, b * 0.02]
}

pub(crate) fn place(
    identity: &Identity,
    attrs: &Attributes,
    width: u32,
    height: u32,
    shift: [f32; 2],
) -> Placement {
    let view = View::new(identity, attrs.camera, width, height, shift);
    let expression = Expression::of(attrs.expression);
    let points3 = head_points(identity, expression);
    let points = points3.map(|p| view.project(p));
    Placement {
        view,
        expression,
        points3,
        points,
    }
}

/// The annotation of an image: rounded points and the camera's boxes,
/// clamped into the image. The face box is square, centred between the
/// eyes horizontally and between eyes and nose vertically (spec §4.2).
pub(crate) fn annotate(placement: &Placement, camera: u8, width: u32, height: u32) -> Annotation {
    let p = &placement.points;
    let s = placement.view.scale;
    let (w, h) = (width as f32, height as f32);
    let eye_mid = [(p[1][0] + p[2][0]) / 2.0, (p[1][1] + p[2][1]) / 2.0];
    let rect = |cx: f32, cy: f32, bw: f32, bh: f32| -> [i32; 4] {
        let bw = bw.min(w);
        let bh = bh.min(h);
        let x = (cx - bw / 2.0).clamp(0.0, w - bw);
        let y = (cy - bh / 2.0).clamp(0.0, h - bh);
        [
            x.round() as i32,
            y.round() as i32,
            bw.round() as i32,
            bh.round() as i32,
        ]
    };
    let boxes = boxes_for_camera(camera)
        .iter()
        .map(|kind| match kind {
            BoxKind::Face => {
                let side = (1.9 * s).min(h);
                rect(eye_mid[0], (eye_mid[1] + p[0][1]) / 2.0, side, side)
            }
            BoxKind::EyeR => rect(p[1][0], p[1][1], 0.3 * s, 0.22 * s),
            BoxKind::EyeL => rect(p[2][0], p[2][1], 0.3 * s, 0.22 * s),
            BoxKind::Nose => rect(p[0][0], p[0][1] - 0.1 * s, 0.32 * s, 0.42 * s),
            BoxKind::Mouth => {
                let span = (p[4][0] - p[3][0]).abs();
                rect(
                    (p[3][0] + p[4][0]) / 2.0,
                    (p[3][1] + p[4][1]) / 2.0,
                    span + 0.16 * s,
                    0.3 * s,
                )
            }
            BoxKind::EarR => rect(p[5][0], p[5][1], 0.22 * s, 0.4 * s),
            BoxKind::EarL => rect(p[6][0], p[6][1], 0.22 * s, 0.4 * s),
        })
        .collect();
    Annotation {
        points: p.map(|[x, y]| [x.round() as i32, y.round() as i32]),
        boxes,
    }
}

pub(crate) fn dot(a: [f32; 3], b: [f32; 3]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub(crate) fn normalize(v: [f32; 3]) -> [f32; 3] {
    let n = dot(v, v).sqrt().max(1e-12);
    [v[0] / n, v[1] / n, v[2] / n]
}

fn matmul(a: &[[f32; 3]; 3], b: &[[f32; 3]; 3]) -> [[f32; 3]; 3] {
    let mut m = [[0.0; 3]; 3];
    for (i, row) in m.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    m
}

/// A 64-bit mixer (splitmix64's finaliser) for seeding per-item streams.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn someone() -> Identity {
        Identity::random("19062421".into(), &mut ChaCha8Rng::seed_from_u64(1))
    }

    fn points(camera: u8) -> [[f32; 2]; 7] {
        let a = Attributes::new(1, 1, 1, camera).unwrap();
        place(&someone(), &a, 346, 230, [0.0, 0.0]).points
    }

    #[test]
    fn frontal_view_puts_the_subjects_right_image_left() {
        let p = points(7);
        assert!(p[1][0] < p[2][0], "eyeR left of eyeL");
        assert!(p[3][0] < p[4][0], "mouthR left of mouthL");
        assert!(
            p[5][0] < p[1][0] && p[6][0] > p[2][0],
            "ears outside the eyes"
        );
        assert!(
            p[1][1] < p[0][1] && p[0][1] < p[3][1],
            "eyes above nose above mouth"
        );
    }

    #[test]
    fn profiles_face_the_way_the_visibility_flags_say() {
        // C1 sees the subject's left side: the nose points image-left.
        let c1 = points(1);
        assert!(
            c1[0][0] < c1[6][0] - 30.0,
            "C1 nose left of the visible (left) ear"
        );
        let c13 = points(13);
        assert!(
            c13[0][0] > c13[5][0] + 30.0,
            "C13 nose right of the visible (right) ear"
        );
        // The two eyes nearly coincide in a full profile.
        assert!((c1[1][0] - c1[2][0]).abs() < 3.0);
    }

    #[test]
    fn camera_from_above_moves_the_nose_down_toward_the_mouth() {
        let (front, above) = (points(7), points(16));
        let gap = |p: [[f32; 2]; 7]| p[3][1] - p[0][1];
        assert!(gap(above) < gap(front));
    }

    #[test]
    fn box_counts_follow_the_spec_table() {
        let counts: Vec<usize> = (1..=20).map(|c| boxes_for_camera(c).len()).collect();
        assert_eq!(
            counts,
            [5, 5, 6, 6, 6, 6, 7, 6, 6, 6, 6, 5, 5, 6, 6, 7, 6, 6, 6, 6]
        );
        for c in 1..=20 {
            assert_eq!(boxes_for_camera(c)[0], BoxKind::Face);
        }
    }

    #[test]
    fn face_box_is_square_and_centred_between_the_eyes() {
        let a = Attributes::new(1, 1, 1, 7).unwrap();
        let placed = place(&someone(), &a, 346, 230, [0.0, 0.0]);
        let ann = annotate(&placed, 7, 346, 230);
        let [x, y, w, h] = ann.boxes[0];
        assert_eq!(w, h);
        let p = ann.points;
        let mid_x = (p[1][0] + p[2][0]) as f32 / 2.0;
        assert!(((x as f32 + w as f32 / 2.0) - mid_x).abs() <= 1.5);
        let mid_y = ((p[1][1] + p[2][1]) as f32 / 2.0 + p[0][1] as f32) / 2.0;
        assert!(((y as f32 + h as f32 / 2.0) - mid_y).abs() <= 1.5);
    }

    #[test]
    fn every_point_and_box_lies_in_the_image_for_every_camera_and_tier() {
        for (w, h) in [(173, 115), (346, 230), (864, 576)] {
            for c in 1..=20 {
                for e in 1..=3 {
                    let a = Attributes::new(1, 1, e, c).unwrap();
                    let ann = annotate(&place(&someone(), &a, w, h, [0.0, 0.0]), c, w, h);
                    for [x, y] in ann.points {
                        assert!(
                            (0..w as i32).contains(&x) && (0..h as i32).contains(&y),
                            "C{c} {x},{y}"
                        );
                    }
                    for [x, y, bw, bh] in ann.boxes {
                        assert!(x >= 0 && y >= 0 && x + bw <= w as i32 && y + bh <= h as i32);
                    }
                }
            }
        }
    }
}
