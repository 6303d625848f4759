//! `cv2.warpAffine(src, M, (size, size), borderValue=0)` by hand: bilinear,
//! black border, in OpenCV's fixed point, so crops match insightface's pixel
//! for pixel (up to the rare coordinate that rounds the other way because the
//! matrix differs in its last bits).
//!
//! OpenCV inverts M, then for each crop pixel computes the source position
//! in 1/1024 pixel (`AB_BITS`), rounds it to 1/32 pixel (`INTER_BITS`), and
//! blends the four neighbours with integer weights summing to 2^15
//! (`INTER_REMAP_COEF_BITS`), rounding the result to nearest. A neighbour
//! outside the source counts as black (`BORDER_CONSTANT`).

use image::RgbImage;

use super::transform::Affine;

const INTER_BITS: i32 = 5;
const INTER_TAB_SIZE: i32 = 1 << INTER_BITS;
const AB_BITS: i32 = 10;
const AB_SCALE: f64 = (1 << AB_BITS) as f64;
const ROUND_DELTA: i32 = (1 << AB_BITS) / INTER_TAB_SIZE / 2;
const COEF_BITS: u32 = 15;

/// OpenCV's `saturate_cast<int>(double)`: round half to even, saturating.
fn cv_round(v: f64) -> i32 {
    v.round_ties_even() as i32
}

/// The `size`×`size` crop of `src` under `matrix` (source → crop).
pub fn warp_affine(src: &RgbImage, matrix: &Affine, size: u32) -> RgbImage {
    let [[m0, m1, m2], [m3, m4, m5]] = matrix.inverse().0;
    let n = size as usize;
    let (width, height) = (src.width() as usize, src.height() as usize);
    let stride = width * 3;
    let pixels = src.as_raw();
    let adelta: Vec<i32> = (0..n).map(|x| cv_round(m0 * x as f64 * AB_SCALE)).collect();
    let bdelta: Vec<i32> = (0..n).map(|x| cv_round(m3 * x as f64 * AB_SCALE)).collect();
    let mut out = vec![0u8; n * n * 3];
    // Interior test in one unsigned comparison each: 0 <= sx < width - 1.
    let (last_x, last_y) = (
        width.saturating_sub(1) as u32,
        height.saturating_sub(1) as u32,
    );
    for (y, row) in out.chunks_exact_mut(n * 3).enumerate() {
        let x0 = cv_round((m1 * y as f64 + m2) * AB_SCALE).wrapping_add(ROUND_DELTA);
        let y0 = cv_round((m4 * y as f64 + m5) * AB_SCALE).wrapping_add(ROUND_DELTA);
        for ((dst, &ad), &bd) in row.chunks_exact_mut(3).zip(&adelta).zip(&bdelta) {
            let sx = x0.wrapping_add(ad) >> (AB_BITS - INTER_BITS);
            let sy = y0.wrapping_add(bd) >> (AB_BITS - INTER_BITS);
            let (fx, fy) = (sx & (INTER_TAB_SIZE - 1), sy & (INTER_TAB_SIZE - 1));
            let (sx, sy) = (sx >> INTER_BITS, sy >> INTER_BITS);
            // OpenCV's table: products of (1 - f, f) in 1/32 steps, scaled to 2^15; exact.
            let (gx, gy) = (INTER_TAB_SIZE - fx, INTER_TAB_SIZE - fy);
            let weights = [gy * gx << 5, gy * fx << 5, fy * gx << 5, fy * fx << 5];
            let inside = |v: i32, len: usize| v >= 0 && (v as usize) < len;
            if (sx as u32) < last_x && (sy as u32) < last_y {
                let at = sy as usize * stride + sx as usize * 3;
                let top: &[u8; 6] = pixels[at..at + 6].try_into().expect("6 bytes");
                let bottom: &[u8; 6] = pixels[at + stride..at + stride + 6]
                    .try_into()
                    .expect("6 bytes");
                for c in 0..3 {
                    let taps = [top[c], top[c + 3], bottom[c], bottom[c + 3]];
                    dst[c] = blend(taps.map(i32::from), weights);
                }
            } else if sx >= -1
                && sy >= -1
                && (sx as i64) < width as i64
                && (sy as i64) < height as i64
            {
                // On the edge: neighbours outside the image are black.
                let tap = |x: i32, y: i32, c: usize| -> i32 {
                    if inside(x, width) && inside(y, height) {
                        i32::from(pixels[y as usize * stride + x as usize * 3 + c])
                    } else {
                        0
                    }
                };
                for (c, value) in dst.iter_mut().enumerate() {
                    *value = blend(
                        [
                            tap(sx, sy, c),
                            tap(sx + 1, sy, c),
                            tap(sx, sy + 1, c),
                            tap(sx + 1, sy + 1, c),
                        ],
                        weights,
                    );
                }
            }
        }
    }
    RgbImage::from_raw(size, size, out).expect("buffer sized for the crop")
}

/// OpenCV's `FixedPtCast<int, uchar, 15>`: weights sum to 2^15, round to nearest.
fn blend(values: [i32; 4], weights: [i32; 4]) -> u8 {
    let sum: i32 = values.iter().zip(weights).map(|(v, w)| v * w).sum();
    ((sum + (1 << (COEF_BITS - 1))) >> COEF_BITS).clamp(0, 255) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient() -> RgbImage {
        RgbImage::from_fn(40, 30, |x, y| {
            image::Rgb([(x * 6) as u8, (y * 8) as u8, 200])
        })
    }

    #[test]
    fn identity_copies_pixels_and_pads_black() {
        let src = gradient();
        let crop = warp_affine(&src, &Affine([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), 32);
        for y in 0..32 {
            for x in 0..32 {
                let want = if x < 40 && y < 30 {
                    *src.get_pixel(x, y)
                } else {
                    image::Rgb([0, 0, 0])
                };
                assert_eq!(*crop.get_pixel(x, y), want, "({x}, {y})");
            }
        }
    }

    #[test]
    fn half_pixel_shift_averages_neighbours() {
        let src = gradient();
        // Crop x = source x - 0.5... i.e. sample at source x + 0.5.
        let crop = warp_affine(&src, &Affine([[1.0, 0.0, -0.5], [0.0, 1.0, 0.0]]), 20);
        let p = crop.get_pixel(3, 2);
        assert_eq!(p[0], 21); // between 18 and 24
        assert_eq!(p[1], 16);
        // Sampling half a pixel left of the image blends with black.
        let left = warp_affine(&src, &Affine([[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]]), 8);
        assert_eq!(left.get_pixel(0, 1)[2], 100);
    }

    #[test]
    fn far_outside_is_black_and_never_panics() {
        let src = gradient();
        for m in [
            Affine([[1.0, 0.0, 1e9], [0.0, 1.0, -1e9]]),
            Affine([[1e-9, 0.0, 0.0], [0.0, 1e-9, 0.0]]),
            Affine([[0.0; 3]; 2]),
            Affine([[f64::NAN; 3]; 2]),
        ] {
            let _ = warp_affine(&src, &m, 16);
        }
        let far = warp_affine(&src, &Affine([[1.0, 0.0, -500.0], [0.0, 1.0, 0.0]]), 16);
        assert!(far.as_raw().iter().all(|&v| v == 0));
        let tiny = RgbImage::from_pixel(1, 1, image::Rgb([90, 90, 90]));
        let _ = warp_affine(&tiny, &Affine([[0.1, 0.0, 0.0], [0.0, 0.1, 0.0]]), 16);
    }
}
