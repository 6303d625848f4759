//! Painting a synthetic K-Face photo: backdrop, torso, a shaded head with
//! hair, and the features (eyes, brows, nose, mouth, ears, glasses, cap) at
//! the positions `face.rs` computes, so an aligned crop of the drawn face
//! lands where the annotation says. Plain scanline rasterisation: no
//! anti-aliasing, painter's order, whole-feature or per-sample culling.

use image::RgbImage;

use super::face::{dot, mix, normalize, Identity, Placement};
use crate::kface::Attributes;

/// A light of the K-Face rig: brightness, direction toward the light in
/// the head frame, and the share of light that does not depend on it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Light {
    pub level: f32,
    pub dir: [f32; 3],
    pub ambient: f32,
}

impl Light {
    /// The light of code `L1`..`L30` (spec §3.3).
    pub fn of(code: u8) -> Light {
        const DIRECTIONAL: [u32; 3] = [400, 200, 100];
        let (lux, dir, ambient): (u32, [f32; 3], f32) = match code {
            1..=7 => (
                [1000, 400, 200, 150, 100, 40, 0][code as usize - 1],
                [0.0, 0.0, 1.0],
                0.75,
            ),
            8..=11 => (
                [400, 200, 100, 40][code as usize - 8],
                angled(0.0, 30.0),
                0.45,
            ),
            12..=15 => (
                [400, 200, 100, 40][code as usize - 12],
                angled(0.0, -15.0),
                0.45,
            ),
            16..=30 => {
                let group = (code as usize - 16) / 3;
                let lux = DIRECTIONAL[(code as usize - 16) % 3];
                let yaw = [90.0, 45.0, 0.0, -45.0, -90.0][group];
                (lux, angled(yaw, 0.0), 0.35)
            }
            _ => (1000, [0.0, 0.0, 1.0], 0.75),
        };
        // Brightness on a log scale: 40 lx → 0.3, 1000 lx → 1; 0 lx is
        // practically black.
        let level = if lux == 0 {
            0.035
        } else {
            0.3 + 0.7 * (lux as f32 / 40.0).ln() / 25f32.ln()
        };
        Light {
            level,
            dir,
            ambient,
        }
    }

    /// Brightness factor of a surface with unit normal `n`.
    pub fn shade(&self, n: [f32; 3]) -> f32 {
        self.level * (self.ambient + (1.0 - self.ambient) * dot(n, self.dir).max(0.0))
    }
}

/// Direction toward a light `yaw` degrees to the side (+ = image right on
/// C7) and `elevation` degrees up.
fn angled(yaw: f32, elevation: f32) -> [f32; 3] {
    let (sy, cy) = yaw.to_radians().sin_cos();
    let (se, ce) = elevation.to_radians().sin_cos();
    [sy * ce, -se, cy * ce]
}

/// Paints the image of `attrs` for an identity placed by `placement`.
pub(crate) fn render(
    identity: &Identity,
    attrs: &Attributes,
    placement: &Placement,
    width: u32,
    height: u32,
) -> RgbImage {
    let mut img = RgbImage::new(width, height);
    let light = Light::of(attrs.light);
    let painter = Painter {
        id: identity,
        placement,
        light,
        s: placement.view.scale,
    };
    painter.backdrop(&mut img);
    painter.torso(&mut img);
    let ears_in_front = painter.ears_facing();
    painter.ears(&mut img, |front| !front, &ears_in_front);
    painter.head(&mut img, attrs.accessory);
    if attrs.accessory != 4 {
        painter.eyes(&mut img);
    }
    painter.brows(&mut img);
    painter.nose(&mut img);
    painter.mouth(&mut img);
    painter.ears(&mut img, |front| front, &ears_in_front);
    match attrs.accessory {
        2 => painter.glasses(&mut img, 0.011, [150.0, 150.0, 160.0], false),
        3 | 6 => painter.glasses(&mut img, 0.028, [28.0, 22.0, 20.0], false),
        4 => painter.glasses(&mut img, 0.016, [20.0, 20.0, 24.0], true),
        _ => {}
    }
    if matches!(attrs.accessory, 5 | 6) {
        painter.brim(&mut img);
    }
    add_noise(&mut img, noise_seed(&identity.id, attrs));
    img
}

struct Painter<'a> {
    id: &'a Identity,
    placement: &'a Placement,
    light: Light,
    /// Pixels per head unit.
    s: f32,
}

/// Lower edge of the cap's crown, in head-frame y.
const CAP_LINE: f32 = -0.42;

impl Painter<'_> {
    fn project(&self, p: [f32; 3]) -> [f32; 2] {
        self.placement.view.project(p)
    }

    fn facing(&self, p: [f32; 3]) -> f32 {
        self.placement.view.facing(self.id.normal(p))
    }

    fn lit(&self, colour: [f32; 3], n: [f32; 3]) -> [u8; 3] {
        scale(colour, self.light.shade(n))
    }

    fn backdrop(&self, img: &mut RgbImage) {
        let (w, h) = img.dimensions();
        let base = self.light.level * (0.6 + 0.4 * self.light.dir[2]);
        // A sideways gradient for side lights and a soft vertical falloff.
        let fx: Vec<f32> = (0..w)
            .map(|x| base * (1.0 + 0.3 * self.light.dir[0] * (x as f32 / w as f32 - 0.5)))
            .collect();
        for (y, row) in img.as_mut().chunks_exact_mut(3 * w as usize).enumerate() {
            let fy = 1.0 - 0.12 * (y as f32 / h as f32);
            for (px, k) in row.chunks_exact_mut(3).zip(&fx) {
                px.copy_from_slice(&scale(self.id.backdrop, k * fy));
            }
        }
    }

    fn torso(&self, img: &mut RgbImage) {
        let s = self.s;
        let yaw_c = self.placement.view.rot[0][0].abs();
        let front = [0.0, 0.0, 1.0];
        let shoulders = self.project([0.0, 2.05, -0.1]);
        let rx = s * (0.8 + 0.75 * yaw_c);
        fill_ellipse(
            img,
            shoulders,
            rx,
            0.8 * s,
            self.lit(self.id.clothes, front),
        );
        let top = self.project([0.0, 0.6, -0.15]);
        let bottom = self.project([0.0, 1.45, -0.15]);
        let half = 0.36 * s;
        let neck = [
            [top[0] - half, top[1]],
            [top[0] + half, top[1]],
            [bottom[0] + half, bottom[1]],
            [bottom[0] - half, bottom[1]],
        ];
        fill_polygon(
            img,
            &neck,
            scale(self.id.skin, 0.8 * self.light.shade(front)),
        );
    }

    /// The head ellipsoid, pixel by pixel: the visible surface point under
    /// each pixel decides skin, hair or cap, and its normal the shading.
    fn head(&self, img: &mut RgbImage, accessory: u8) {
        let view = &self.placement.view;
        let (a, c) = (self.id.head_w, self.id.head_d);
        let d = [1.0 / (a * a), 1.0, 1.0 / (c * c)];
        // The ellipsoid in camera coordinates: q' A q = 1 with A = R D R'.
        let r = &view.rot;
        let m = |i: usize, j: usize| (0..3).map(|k| r[i][k] * d[k] * r[j][k]).sum::<f32>();
        let (axx, axy, axz, ayy, ayz, azz) = (m(0, 0), m(0, 1), m(0, 2), m(1, 1), m(1, 2), m(2, 2));
        let capped = matches!(accessory, 5 | 6);
        let (w, h) = img.dimensions();
        let s = self.s;
        let x0 = ((view.centre[0] - s * 1.05).floor().max(0.0)) as u32;
        let x1 = ((view.centre[0] + s * 1.05).ceil().min(w as f32)) as u32;
        let y0 = ((view.centre[1] - s * 1.05).floor().max(0.0)) as u32;
        let y1 = ((view.centre[1] + s * 1.05).ceil().min(h as f32)) as u32;
        for py in y0..y1 {
            let v = (py as f32 + 0.5 - view.centre[1]) / s;
            for px in x0..x1 {
                let u = (px as f32 + 0.5 - view.centre[0]) / s;
                let qb = 2.0 * (axz * u + ayz * v);
                let qc = axx * u * u + 2.0 * axy * u * v + ayy * v * v - 1.0;
                let disc = qb * qb - 4.0 * azz * qc;
                if disc < 0.0 {
                    continue;
                }
                let z = (-qb + disc.sqrt()) / (2.0 * azz);
                let p = view.unrotate([u, v, z]);
                let colour = if capped && p[1] < CAP_LINE {
                    self.id.cap
                } else if self.is_hair(p) {
                    self.id.hair
                } else {
                    self.id.skin
                };
                img.put_pixel(px, py, image::Rgb(self.lit(colour, self.id.normal(p))));
            }
        }
    }

    fn is_hair(&self, p: [f32; 3]) -> bool {
        let side = p[0].abs() / self.id.head_w;
        p[1] < self.id.hairline + 0.25 * side * side
            || (p[2] < -0.2 * self.id.head_d && p[1] < 0.5)
            || (side > 0.8 && p[1] < -0.05 && p[2] < 0.3 * self.id.head_d)
    }

    fn eyes(&self, img: &mut RgbImage) {
        let id = self.id;
        for x in [-id.eye_dx, id.eye_dx] {
            let centre = id.on_surface(x, id.eye_y, -0.03);
            if self.facing(centre) < 0.15 {
                continue;
            }
            let n = id.normal(centre);
            let ring = |rx: f32, ry: f32, lower: f32| -> Vec<[f32; 2]> {
                (0..16)
                    .map(|i| {
                        let t = i as f32 / 16.0 * std::f32::consts::TAU;
                        let dy = if t.sin() > 0.0 { lower } else { 1.0 } * ry * t.sin();
                        self.project(id.on_surface(x + rx * t.cos(), id.eye_y + dy, -0.02))
                    })
                    .collect()
            };
            fill_polygon(
                img,
                &ring(0.09, 0.045, 0.8),
                self.lit([235.0, 230.0, 225.0], n),
            );
            fill_polygon(img, &ring(0.04, 0.04, 1.0), self.lit(id.iris, n));
            fill_polygon(img, &ring(0.016, 0.016, 1.0), self.lit([10.0, 8.0, 8.0], n));
            // The upper lid line.
            let lid: Vec<[f32; 3]> = (0..=8)
                .map(|i| {
                    let t = std::f32::consts::PI * (1.0 + i as f32 / 8.0);
                    id.on_surface(x + 0.095 * t.cos(), id.eye_y + 0.05 * t.sin(), -0.015)
                })
                .collect();
            self.curve(img, &lid, 0.012, [40.0, 30.0, 28.0]);
        }
    }

    fn brows(&self, img: &mut RgbImage) {
        let id = self.id;
        let drop = self.placement.expression.brow_drop;
        for side in [-1.0f32, 1.0] {
            let pts: Vec<[f32; 3]> = (0..=10)
                .map(|i| {
                    let t = i as f32 / 10.0; // 0 inner end → 1 outer end
                    let x = side * (id.eye_dx - 0.11 + 0.24 * t);
                    // Arched; a frown pulls the inner ends down.
                    let y = id.eye_y - 0.14 + 0.05 * (t - 0.45).powi(2) + drop * (1.0 - t);
                    id.on_surface(x, y, 0.01)
                })
                .collect();
            self.curve(img, &pts, 0.024, id.hair);
        }
    }

    fn nose(&self, img: &mut RgbImage) {
        let id = self.id;
        let tip = self.placement.points3[0];
        let bridge = id.on_surface(0.0, id.eye_y + 0.06, 0.01);
        let base = id.on_surface(0.0, id.nose_y + 0.07, id.nose_len * 0.45);
        let ala_r = id.on_surface(-0.09, id.nose_y + 0.04, 0.03);
        let ala_l = id.on_surface(0.09, id.nose_y + 0.04, 0.03);
        let colour = scale(
            id.skin,
            0.86 * self.light.shade(normalize([0.0, 0.25, 1.0])),
        );
        let [b, t, bs, r, l] = [bridge, tip, base, ala_r, ala_l].map(|p| self.project(p));
        for tri in [[b, t, bs], [b, r, bs], [b, l, bs], [r, t, l], [r, bs, l]] {
            fill_polygon(img, &tri, colour);
        }
        for x in [-0.04f32, 0.04] {
            let nostril = id.on_surface(x, id.nose_y + 0.055, id.nose_len * 0.35);
            let facing = self.placement.view.facing(normalize([x * 6.0, 0.8, 0.5]));
            if facing > 0.2 {
                fill_ellipse(
                    img,
                    self.project(nostril),
                    0.022 * self.s,
                    0.014 * self.s,
                    [30, 20, 20],
                );
            }
        }
    }

    fn mouth(&self, img: &mut RgbImage) {
        let id = self.id;
        let e = self.placement.expression;
        let half = id.mouth_dx * e.width;
        let line = |open: f32| -> Vec<[f32; 3]> {
            (0..=16)
                .map(|i| {
                    let t = i as f32 / 8.0 - 1.0;
                    let y = id.mouth_y + e.corner_dy * t * t + open * (1.0 - t * t);
                    id.on_surface(t * half, y, 0.0)
                })
                .filter(|&p| self.facing(p) > 0.0)
                .collect()
        };
        let upper = line(-0.012);
        if e.open > 0.0 {
            let lower = line(e.open);
            let teeth = line(0.035);
            let outline = |a: &[[f32; 3]], b: &[[f32; 3]]| -> Vec<[f32; 2]> {
                a.iter()
                    .chain(b.iter().rev())
                    .map(|&p| self.project(p))
                    .collect()
            };
            fill_polygon(
                img,
                &outline(&upper, &lower),
                self.lit([90.0, 25.0, 35.0], [0.0, 0.0, 1.0]),
            );
            fill_polygon(
                img,
                &outline(&upper, &teeth),
                self.lit([240.0, 238.0, 230.0], [0.0, 0.0, 1.0]),
            );
            self.curve(img, &lower, 0.022, id.lips);
            self.curve(img, &upper, 0.016, id.lips);
        } else {
            self.curve(img, &upper, 0.024, id.lips);
        }
    }

    /// Whether each ear (right, left) faces the camera.
    fn ears_facing(&self) -> [bool; 2] {
        [-1.0f32, 1.0].map(|side| {
            self.placement
                .view
                .facing(normalize([side * 0.87, 0.0, 0.5]))
                > 0.05
        })
    }

    /// Draws the ears whose facing passes `which`; the hidden ones go under
    /// the head, so only what sticks out past the outline shows.
    fn ears(&self, img: &mut RgbImage, which: impl Fn(bool) -> bool, facing: &[bool; 2]) {
        for (k, side) in [-1.0f32, 1.0].into_iter().enumerate() {
            if !which(facing[k]) {
                continue;
            }
            let c = self.placement.points3[5 + k];
            let u = [side * 0.5, 0.0, -0.866];
            let ring = |ru: f32, rv: f32| -> Vec<[f32; 2]> {
                (0..16)
                    .map(|i| {
                        let t = i as f32 / 16.0 * std::f32::consts::TAU;
                        let (a, b) = (ru * t.cos(), rv * t.sin());
                        self.project([c[0] + a * u[0], c[1] + b, c[2] + a * u[2]])
                    })
                    .collect()
            };
            let n = normalize([side * 0.87, 0.0, 0.5]);
            fill_polygon(img, &ring(0.09, 0.17), self.lit(self.id.skin, n));
            fill_polygon(
                img,
                &ring(0.045, 0.1),
                scale(self.id.skin, 0.7 * self.light.shade(n)),
            );
        }
    }

    fn glasses(&self, img: &mut RgbImage, thickness: f32, colour: [f32; 3], dark_lenses: bool) {
        let id = self.id;
        let r = 0.14;
        for side in [-1.0f32, 1.0] {
            let cx = side * id.eye_dx;
            let rim: Vec<[f32; 3]> = (0..=24)
                .map(|i| {
                    let t = i as f32 / 24.0 * std::f32::consts::TAU;
                    id.on_surface(cx + r * t.cos(), id.eye_y + 0.8 * r * t.sin(), 0.05)
                })
                .collect();
            if dark_lenses && self.facing(id.on_surface(cx, id.eye_y, 0.0)) > 0.1 {
                let lens: Vec<[f32; 2]> = rim.iter().map(|&p| self.project(p)).collect();
                fill_polygon(img, &lens, scale([18.0, 20.0, 26.0], self.light.level));
            }
            self.curve(img, &rim, thickness, colour);
            // The temple, from the rim's outer edge back to the ear.
            let from = id.on_surface(cx + side * r, id.eye_y, 0.05);
            let to = [side * (id.head_w + 0.03), id.eye_y + 0.06, -0.08];
            let temple: Vec<[f32; 3]> = (0..=10)
                .map(|i| {
                    let t = i as f32 / 10.0;
                    let x = from[0] + (to[0] - from[0]) * t;
                    let y = from[1] + (to[1] - from[1]) * t;
                    let z = (id.surface_z(x, y) + 0.05).max(from[2] + (to[2] - from[2]) * t);
                    [x, y, z]
                })
                .collect();
            self.curve(img, &temple, thickness, colour);
        }
        let bridge: Vec<[f32; 3]> = (0..=6)
            .map(|i| {
                let x = (-id.eye_dx + r) + 2.0 * (id.eye_dx - r) * i as f32 / 6.0;
                id.on_surface(x, id.eye_y - 0.03, 0.06)
            })
            .collect();
        self.curve(img, &bridge, thickness, colour);
    }

    fn brim(&self, img: &mut RgbImage) {
        let id = self.id;
        let y = CAP_LINE;
        let inner = (0..=12).map(|i| {
            let x = (i as f32 / 6.0 - 1.0) * 0.9 * id.head_w;
            id.on_surface(x, y, 0.0)
        });
        let outer = (0..=12).rev().map(|i| {
            let t = i as f32 / 6.0 - 1.0;
            let x = t * 0.85 * id.head_w;
            // Tilted down, so the brim shows as a band from the front too.
            id.on_surface(x, y + 0.14, 0.4 * (1.0 - 0.5 * t * t))
        });
        let pts: Vec<[f32; 2]> = inner.chain(outer).map(|p| self.project(p)).collect();
        fill_polygon(
            img,
            &pts,
            scale(id.cap, 0.8 * self.light.shade(normalize([0.0, -1.0, 0.2]))),
        );
    }

    /// A thick line through head-frame points, each sample shaded by its
    /// surface normal and dropped where the surface turns away.
    fn curve(&self, img: &mut RgbImage, pts: &[[f32; 3]], thickness: f32, colour: [f32; 3]) {
        let r = (thickness * self.s).max(0.6);
        for pair in pts.windows(2) {
            let (p, q) = (pair[0], pair[1]);
            if self.facing(p) <= 0.0 || self.facing(q) <= 0.0 {
                continue;
            }
            let c = self.lit(colour, self.id.normal(p));
            let (a, b) = (self.project(p), self.project(q));
            let len = ((b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2)).sqrt();
            let steps = (len / (0.5 * r)).ceil().max(1.0) as usize;
            for k in 0..=steps {
                let t = k as f32 / steps as f32;
                fill_ellipse(
                    img,
                    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t],
                    r,
                    r,
                    c,
                );
            }
        }
    }
}

/// `colour × k` as bytes; `as u8` saturates, and avoids a libm `round`
/// call per channel in the per-pixel loops.
fn scale(colour: [f32; 3], k: f32) -> [u8; 3] {
    colour.map(|v| (v * k + 0.5) as u8)
}

fn fill_ellipse(img: &mut RgbImage, centre: [f32; 2], rx: f32, ry: f32, colour: [u8; 3]) {
    let (w, h) = img.dimensions();
    let y0 = (centre[1] - ry).floor().max(0.0) as u32;
    let y1 = ((centre[1] + ry).ceil().max(0.0) as u32).min(h);
    let x0 = (centre[0] - rx).floor().max(0.0) as u32;
    let x1 = ((centre[0] + rx).ceil().max(0.0) as u32).min(w);
    for y in y0..y1 {
        let dy = (y as f32 + 0.5 - centre[1]) / ry;
        for x in x0..x1 {
            let dx = (x as f32 + 0.5 - centre[0]) / rx;
            if dx * dx + dy * dy <= 1.0 {
                img.put_pixel(x, y, image::Rgb(colour));
            }
        }
    }
}

/// Even-odd scanline fill, sampling pixel centres.
fn fill_polygon(img: &mut RgbImage, pts: &[[f32; 2]], colour: [u8; 3]) {
    if pts.len() < 3 {
        return;
    }
    let (w, h) = img.dimensions();
    let (lo, hi) = pts.iter().fold((f32::MAX, f32::MIN), |(lo, hi), p| {
        (lo.min(p[1]), hi.max(p[1]))
    });
    let y0 = lo.floor().max(0.0) as u32;
    let y1 = (hi.ceil().max(0.0) as u32).min(h);
    let mut xs: Vec<f32> = Vec::with_capacity(8);
    for y in y0..y1 {
        let yc = y as f32 + 0.5;
        xs.clear();
        for (i, a) in pts.iter().enumerate() {
            let b = pts[(i + 1) % pts.len()];
            if (a[1] <= yc) != (b[1] <= yc) {
                xs.push(a[0] + (yc - a[1]) / (b[1] - a[1]) * (b[0] - a[0]));
            }
        }
        xs.sort_by(|a, b| a.total_cmp(b));
        for span in xs.chunks_exact(2) {
            let x0 = (span[0] - 0.5).ceil().max(0.0) as u32;
            let x1 = ((span[1] - 0.5).floor() + 1.0).clamp(0.0, w as f32) as u32;
            for x in x0..x1 {
                img.put_pixel(x, y, image::Rgb(colour));
            }
        }
    }
}

fn noise_seed(id: &str, attrs: &Attributes) -> u64 {
    let id_hash = id.bytes().fold(0u64, |h, b| mix(h ^ b as u64));
    mix(id_hash
        ^ ((attrs.accessory as u64) << 24
            | (attrs.light as u64) << 16
            | (attrs.expression as u64) << 8
            | attrs.camera as u64))
}

/// Faint sensor-like noise, so the JPEGs carry texture like photos do:
/// -2..=2 grey levels per pixel, three random bits each.
fn add_noise(img: &mut RgbImage, seed: u64) {
    const LEVELS: [i16; 8] = [-2, -1, -1, 0, 0, 1, 1, 2];
    let mut state = seed | 1;
    let mut bits = 0u64;
    for (i, px) in img.as_mut().chunks_exact_mut(3).enumerate() {
        if i % 21 == 0 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bits = state;
        }
        let n = LEVELS[(bits & 7) as usize];
        bits >>= 3;
        for v in px.iter_mut() {
            *v = (*v as i16 + n).clamp(0, 255) as u8;
        }
    }
}
