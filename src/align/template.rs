//! The arcface alignment template and insightface's `estimate_norm`.

use super::transform::{similarity, Affine, Centred};
use super::AlignError;

/// insightface's `arcface_dst` for a 112×112 crop, (x, y), float32 as there:
/// eye on the image's left, eye on the image's right, nose tip, mouth corner
/// image-left, mouth corner image-right.
pub(crate) const ARCFACE_112: [[f32; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// The template for a `size`×`size` crop, as `estimate_norm` scales it: a
/// multiple of 112 scales the 112 template; otherwise a multiple of 128
/// scales it by `size/128` and shifts x by `8·size/128` (checked in that
/// order, so 448 is 4×112). float32 arithmetic, as numpy does it.
pub(crate) fn template(size: u32) -> Result<[[f32; 2]; 5], AlignError> {
    let (ratio, diff_x) = if size > 0 && size % 112 == 0 {
        ((size / 112) as f32, 0.0f32)
    } else if size > 0 && size % 128 == 0 {
        let ratio = (size / 128) as f32;
        (ratio, 8.0 * ratio)
    } else {
        return Err(AlignError::BadSize(size));
    };
    Ok(ARCFACE_112.map(|[x, y]| [x * ratio + diff_x, y * ratio]))
}

/// insightface's `estimate_norm(lmk, image_size)`: the similarity taking five
/// landmarks (source pixels, template order) onto the template for `size`.
pub fn estimate_norm(landmarks: &[[f64; 2]; 5], size: u32) -> Result<Affine, AlignError> {
    let dst = template(size)?;
    similarity(&Centred::from_f64(landmarks), &Centred::from_f32(&dst))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_insightface() {
        assert_eq!(template(112).unwrap(), ARCFACE_112);
        assert_eq!(
            template(224).unwrap()[0],
            [38.2946f32 * 2.0, 51.6963f32 * 2.0]
        );
        assert_eq!(template(128).unwrap()[0], [38.2946f32 + 8.0, 51.6963]);
        assert_eq!(
            template(256).unwrap()[4],
            [70.7299f32 * 2.0 + 16.0, 92.2041f32 * 2.0]
        );
        // 448 is a multiple of both; the 112 branch wins, as in insightface.
        assert_eq!(
            template(448).unwrap()[0],
            [38.2946f32 * 4.0, 51.6963f32 * 4.0]
        );
        for bad in [0, 100, 150, 113] {
            assert_eq!(template(bad), Err(AlignError::BadSize(bad)));
        }
    }

    #[test]
    fn the_template_itself_maps_to_identity() {
        let points = ARCFACE_112.map(|p| p.map(f64::from));
        let m = estimate_norm(&points, 112).unwrap();
        let identity = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
        for (row, want) in m.0.iter().zip(identity) {
            for (v, w) in row.iter().zip(want) {
                assert!((v - w).abs() < 1e-5, "{m:?}");
            }
        }
    }
}
