//! 2-D affine matrices, the Umeyama similarity and the face-box transform.

use super::AlignError;

/// A 2×3 affine matrix `[[a, b, tx], [c, d, ty]]` mapping a source pixel
/// `(x, y)` to `(a x + b y + tx, c x + d y + ty)` in the crop; pixel centres
/// are at integer coordinates (OpenCV's convention). The same as insightface's
/// `M = tform.params[0:2, :]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine(pub [[f64; 3]; 2]);

impl Affine {
    /// Maps a source point into the crop.
    pub(crate) fn apply(&self, [x, y]: [f64; 2]) -> [f64; 2] {
        let [[a, b, tx], [c, d, ty]] = self.0;
        [a * x + b * y + tx, c * x + d * y + ty]
    }

    /// The inverse, computed exactly as `cv2.warpAffine` computes it (same
    /// operations in the same order), so that the fixed-point warp sees the
    /// same numbers. A singular matrix gives the zero matrix, as in OpenCV.
    pub fn inverse(&self) -> Affine {
        let [[m0, m1, m2], [m3, m4, m5]] = self.0;
        let det = m0 * m4 - m1 * m3;
        let det = if det != 0.0 { 1.0 / det } else { 0.0 };
        let (a11, a22) = (m4 * det, m0 * det);
        let (m1, m3) = (m1 * -det, m3 * -det);
        let b1 = -a11 * m2 - m1 * m5;
        let b2 = -m3 * m2 - a22 * m5;
        Affine([[a11, m1, b1], [m3, a22, b2]])
    }
}

/// A point set split into its mean and its deviations from the mean, with
/// numpy's arithmetic for the array's dtype (sequential sums, then a division).
pub(super) struct Centred<const N: usize> {
    mean: [f64; 2],
    dev: [[f64; 2]; N],
}

impl<const N: usize> Centred<N> {
    pub(super) fn from_f64(points: &[[f64; 2]; N]) -> Centred<N> {
        let mean = mean_f64(points);
        let dev = points.map(|p| [p[0] - mean[0], p[1] - mean[1]]);
        Centred { mean, dev }
    }

    /// float32 points centred in float32 arithmetic: insightface's template
    /// is a float32 array, so numpy centres it in float32, and the matrix
    /// equals skimage's to the last bits only if we do the same.
    pub(super) fn from_f32(points: &[[f32; 2]; N]) -> Centred<N> {
        let mut sum = points[0];
        for p in &points[1..] {
            sum = [sum[0] + p[0], sum[1] + p[1]];
        }
        let mean = [sum[0] / N as f32, sum[1] / N as f32];
        let dev = points.map(|p| [f64::from(p[0] - mean[0]), f64::from(p[1] - mean[1])]);
        Centred {
            mean: mean.map(f64::from),
            dev,
        }
    }
}

fn mean_f64<const N: usize>(points: &[[f64; 2]; N]) -> [f64; 2] {
    let mut sum = points[0];
    for p in &points[1..] {
        sum = [sum[0] + p[0], sum[1] + p[1]];
    }
    [sum[0] / N as f64, sum[1] / N as f64]
}

/// The least-squares similarity (rotation, uniform scale, translation; no
/// reflection) taking `src` onto `dst`: skimage's `_umeyama(src, dst,
/// estimate_scale=True)`, the matrix insightface uses.
///
/// `Err(Degenerate)` where skimage returns NaN (all source or all
/// destination points equal: rank 0) and where its fit has zero scale (the
/// points are the template's mirror image).
#[cfg(test)]
pub(crate) fn umeyama<const N: usize>(
    src: &[[f64; 2]; N],
    dst: &[[f64; 2]; N],
) -> Result<Affine, AlignError> {
    similarity(&Centred::from_f64(src), &Centred::from_f64(dst))
}

/// Umeyama on centred point sets.
///
/// In two dimensions skimage's SVD route has a closed form. With
/// `A = dstᵀ·src / n = [[a, b], [c, e]]` write `A = Rot(φ)·diag(s₁, σ)·Rot(θ)`
/// (σ signed, |σ| = s₂, sign σ = sign det A). skimage takes `d = (1, sign det A)`
/// and `R = U·diag(d)·V`; in both signs that is `Rot(φ + θ)`, the rotation by
/// `atan2(c − b, a + e)`, and `S·d = s₁ + σ = hypot(a + e, c − b)`. Its rank-1
/// branch (collinear points: `R = U·V` or `U·diag(1, −1)·V` by the sign of
/// `det U · det V`) is the rotation taking the one right singular vector to
/// the left one, the same `Rot(φ + θ)`. Rank 0 (A = 0) is NaN there and an
/// error here. The fixtures check all branches against skimage.
pub(super) fn similarity<const N: usize>(
    src: &Centred<N>,
    dst: &Centred<N>,
) -> Result<Affine, AlignError> {
    let finite = |c: &Centred<N>| {
        c.mean
            .iter()
            .chain(c.dev.iter().flatten())
            .all(|v| v.is_finite())
    };
    if N == 0 || !finite(src) || !finite(dst) {
        return Err(AlignError::NotFinite);
    }
    let n = N as f64;
    let mut a = [[0.0f64; 2]; 2];
    for (s, d) in src.dev.iter().zip(&dst.dev) {
        for i in 0..2 {
            for j in 0..2 {
                a[i][j] += d[i] * s[j];
            }
        }
    }
    let a = a.map(|row| row.map(|v| v / n));
    // numpy's var: the mean of squared deviations from the (tiny) mean of the deviations.
    let var_sum: f64 = (0..2)
        .map(|j| {
            let m = src.dev.iter().map(|p| p[j]).sum::<f64>() / n;
            src.dev.iter().map(|p| (p[j] - m) * (p[j] - m)).sum::<f64>() / n
        })
        .sum();
    let (cos_part, sin_part) = (a[0][0] + a[1][1], a[1][0] - a[0][1]);
    let trace_norm = cos_part.hypot(sin_part); // S·d
    let frobenius = a.iter().flatten().map(|v| v * v).sum::<f64>().sqrt();
    if var_sum == 0.0 || frobenius == 0.0 || trace_norm <= 1e-12 * frobenius {
        return Err(AlignError::Degenerate);
    }
    let (cos, sin) = (cos_part / trace_norm, sin_part / trace_norm);
    let scale = 1.0 / var_sum * trace_norm;
    let [mx, my] = src.mean;
    let tx = dst.mean[0] - scale * (cos * mx - sin * my);
    let ty = dst.mean[1] - scale * (sin * mx + cos * my);
    let matrix = Affine([
        [scale * cos, scale * -sin, tx],
        [scale * sin, scale * cos, ty],
    ]);
    if matrix.0.iter().flatten().all(|v| v.is_finite()) {
        Ok(matrix)
    } else {
        Err(AlignError::NotFinite)
    }
}

/// Scale + translate (no rotation) taking a face box `[x, y, w, h]` (source
/// pixels, top-left corner and size) onto a `size`×`size` crop. A box that is
/// not square is centred in a square of side `max(w, h)`. The box's outer
/// edges map onto the crop's outer edges, pixel centres aligned like
/// `cv2.resize`: `x' + ½ = s·(x + ½ − x₀)` with `s = size / side`.
pub fn face_box_transform(box_xywh: [f64; 4], size: u32) -> Result<Affine, AlignError> {
    let [x, y, w, h] = box_xywh;
    if !box_xywh.iter().all(|v| v.is_finite()) {
        return Err(AlignError::NotFinite);
    }
    if w <= 0.0 || h <= 0.0 || size == 0 {
        return Err(AlignError::EmptyBox {
            width: w,
            height: h,
        });
    }
    let side = w.max(h);
    let (x0, y0) = (x + (w - side) / 2.0, y + (h - side) / 2.0);
    let s = f64::from(size) / side;
    let shift = 0.5 * (s - 1.0);
    Ok(Affine([[s, 0.0, shift - s * x0], [0.0, s, shift - s * y0]]))
}

/// How much larger than the image a face may be: an annotation or box
/// beyond this is absurd (a typo, a hostile file), not a close-up.
const MAX_FACE_OVER_IMAGE: f64 = 2.0;

/// Refuses a source→crop transform whose crop would show nothing of the
/// image: its centre off the image, or a face many times the image's size.
pub(crate) fn check_in_image(
    matrix: &Affine,
    width: u32,
    height: u32,
    size: u32,
) -> Result<(), AlignError> {
    let outside = |why| AlignError::OutsideImage { why, width, height };
    // The crop's centre, in pixel-centre coordinates.
    let centre = (f64::from(size) - 1.0) / 2.0;
    let [cx, cy] = matrix.inverse().apply([centre, centre]);
    if !(cx >= 0.0 && cy >= 0.0 && cx < f64::from(width) && cy < f64::from(height)) {
        return Err(outside("outside"));
    }
    let [[a, b, _], [c, d, _]] = matrix.0;
    // The source span the crop covers: its side over the similarity's scale.
    let span = f64::from(size) / (a * d - b * c).abs().sqrt();
    if !(span <= MAX_FACE_OVER_IMAGE * f64::from(width.max(height))) {
        return Err(outside("far larger than"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crop_must_show_the_image() {
        let fits = face_box_transform([100.0, 50.0, 150.0, 150.0], 112).unwrap();
        assert_eq!(check_in_image(&fits, 346, 230, 112), Ok(()));
        let huge = face_box_transform([173.0 - 1e6, 115.0 - 1e6, 2e6, 2e6], 112).unwrap();
        assert!(matches!(
            check_in_image(&huge, 346, 230, 112),
            Err(AlignError::OutsideImage {
                why: "far larger than",
                ..
            })
        ));
        let off = face_box_transform([5000.0, 50.0, 150.0, 150.0], 112).unwrap();
        assert!(matches!(
            check_in_image(&off, 346, 230, 112),
            Err(AlignError::OutsideImage { why: "outside", .. })
        ));
    }

    fn close(a: &Affine, b: &Affine, tol: f64) -> bool {
        a.0.iter()
            .flatten()
            .zip(b.0.iter().flatten())
            .all(|(p, q)| (p - q).abs() <= tol)
    }

    #[test]
    fn recovers_a_known_similarity_exactly() {
        let truth = {
            let (s, t) = (1.7f64, 0.4f64);
            Affine([
                [s * t.cos(), -s * t.sin(), 12.5],
                [s * t.sin(), s * t.cos(), -3.25],
            ])
        };
        let src = [
            [10.0, 20.0],
            [60.0, 25.0],
            [35.0, 50.0],
            [15.0, 80.0],
            [55.0, 78.0],
        ];
        let dst = src.map(|p| truth.apply(p));
        let fit = umeyama(&src, &dst).unwrap();
        assert!(close(&fit, &truth, 1e-12), "{fit:?}");
    }

    #[test]
    fn never_reflects() {
        // dst is src mirrored left-right: the best similarity is a rotation, det > 0.
        let src = [[0.0, 0.0], [10.0, 0.0], [5.0, 6.0], [1.0, 9.0], [9.0, 9.5]];
        let dst = src.map(|[x, y]| [-x, y]);
        let fit = umeyama(&src, &dst).unwrap();
        let [[a, b, _], [c, d, _]] = fit.0;
        assert!(a * d - b * c > 0.0);
    }

    #[test]
    fn degenerate_sets_are_errors() {
        let same = [[3.0, 4.0]; 5];
        let dst = [[0.0, 0.0], [10.0, 0.0], [5.0, 6.0], [1.0, 9.0], [9.0, 9.5]];
        assert_eq!(umeyama(&same, &dst), Err(AlignError::Degenerate));
        assert_eq!(umeyama(&dst, &same), Err(AlignError::Degenerate));
        let nan = [
            [f64::NAN, 0.0],
            [1.0, 1.0],
            [2.0, 2.0],
            [3.0, 1.0],
            [4.0, 0.0],
        ];
        assert_eq!(umeyama(&nan, &dst), Err(AlignError::NotFinite));
        // An exact mirror of a symmetric pattern: skimage's scale is 0.
        let square = [
            [-1.0, -1.0],
            [1.0, -1.0],
            [1.0, 1.0],
            [-1.0, 1.0],
            [0.0, 0.0],
        ];
        let flipped = square.map(|[x, y]| [-x, y]);
        assert_eq!(umeyama(&square, &flipped), Err(AlignError::Degenerate));
    }

    #[test]
    fn inverse_undoes_the_matrix() {
        let m = Affine([[0.8, -0.3, 14.0], [0.3, 0.8, -7.5]]);
        let p = [37.0, -12.5];
        let q = m.inverse().apply(m.apply(p));
        assert!((q[0] - p[0]).abs() < 1e-12 && (q[1] - p[1]).abs() < 1e-12);
        assert_eq!(Affine([[0.0; 3]; 2]).inverse(), Affine([[0.0; 3]; 2]));
    }

    #[test]
    fn face_box_maps_edges_to_edges() {
        let m = face_box_transform([100.0, 40.0, 150.0, 150.0], 112).unwrap();
        // Outer edges: pixel edge x = x0 - 0.5 maps to -0.5, x0 + side - 0.5 to size - 0.5.
        let [l, t] = m.apply([99.5, 39.5]);
        let [r, b] = m.apply([249.5, 189.5]);
        assert!((l + 0.5).abs() < 1e-12 && (t + 0.5).abs() < 1e-12);
        assert!((r - 111.5).abs() < 1e-12 && (b - 111.5).abs() < 1e-12);
        // A tall box is centred in a square of its height.
        let tall = face_box_transform([100.0, 40.0, 100.0, 150.0], 150).unwrap();
        assert!(
            close(
                &tall,
                &Affine([[1.0, 0.0, -75.0], [0.0, 1.0, -40.0]]),
                1e-12
            ),
            "{tall:?}"
        );
        assert!(matches!(
            face_box_transform([0.0, 0.0, 0.0, 10.0], 112),
            Err(AlignError::EmptyBox { .. })
        ));
        assert_eq!(
            face_box_transform([f64::NAN, 0.0, 10.0, 10.0], 112),
            Err(AlignError::NotFinite)
        );
    }
}
