//! Landmarks → similarity transform → warped crop, reproducing insightface's
//! `face_align.norm_crop` (skimage `SimilarityTransform.estimate` to the
//! arcface template, then `cv2.warpAffine` with bilinear interpolation and a
//! black border).
//!
//! The pieces, each a pure function:
//! - [`estimate_norm`]: five landmarks (source pixels, insightface order: eye
//!   on the image's left, eye on the image's right, nose tip, mouth corner
//!   image-left, mouth corner image-right) → the [`Affine`] matrix mapping the
//!   source image onto a `size`×`size` crop. `size` is a multiple of 112 or 128.
//! - [`umeyama`]: the least-squares similarity between two point sets.
//! - [`face_box_transform`]: a square face box (x, y, w, h) → scale + translate,
//!   no rotation (full profiles, the `bbox` landmark policy).
//! - [`check_in_image`]: refuses a transform whose crop would show no face
//!   (centred off the image, or a face larger than the image many times).
//! - [`warp_affine`]: the crop itself, OpenCV's fixed-point bilinear warp.
//! - [`norm_crop`]: `estimate_norm` then `warp_affine`.
//!
//! ```
//! use facekit::align::{face_box_transform, norm_crop, warp_affine};
//! let photo = image::RgbImage::new(346, 230);
//! let points = [[150.0, 100.0], [196.0, 100.0], [173.0, 125.0], [154.0, 152.0], [192.0, 152.0]];
//! let crop = norm_crop(&photo, &points, 112)?;
//! assert_eq!(crop.dimensions(), (112, 112));
//! let boxed = warp_affine(&photo, &face_box_transform([120.0, 40.0, 150.0, 150.0], 112)?, 112);
//! # Ok::<(), facekit::align::AlignError>(())
//! ```

mod template;
mod transform;
mod warp;

pub use template::estimate_norm;
pub(crate) use template::template;
pub(crate) use transform::check_in_image;
pub use transform::{face_box_transform, Affine};
pub use warp::warp_affine;

use image::RgbImage;
use thiserror::Error;

/// Why no crop could be made.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum AlignError {
    #[error("crop size {0} is not a positive multiple of 112 or 128")]
    BadSize(u32),
    #[error("landmark or box coordinates are not finite numbers")]
    NotFinite,
    #[error("the landmarks are degenerate (all at one point, or a mirror image of the template): no similarity fits")]
    Degenerate,
    #[error("the face box {width}x{height} is empty")]
    EmptyBox { width: f64, height: f64 },
    #[error("the landmarks or face box put the face {why} the {width}x{height} image: the crop would be black")]
    OutsideImage {
        why: &'static str,
        width: u32,
        height: u32,
    },
}

/// insightface's `norm_crop(img, landmark, image_size)`: the `size`×`size`
/// aligned crop of `image` for five landmarks in source pixels.
pub fn norm_crop(
    image: &RgbImage,
    landmarks: &[[f64; 2]; 5],
    size: u32,
) -> Result<RgbImage, AlignError> {
    let matrix = estimate_norm(landmarks, size)?;
    Ok(warp_affine(image, &matrix, size))
}
