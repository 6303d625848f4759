//! Small JPEG thumbnails of face crops, as `data:` URIs the page embeds, so
//! the report folder stays self-contained however the crops are stored.

use std::io::Cursor;
use std::path::Path;

use base64::Engine as _;
use image::codecs::jpeg::JpegEncoder;

/// The longer side of a thumbnail, in pixels (crops are 112×112).
pub(crate) const SIDE: u32 = 64;
/// JPEG quality: faces stay recognisable at about 2 KB each.
const QUALITY: u8 = 80;

/// The image at `path` scaled to fit [`SIDE`], as a `data:image/jpeg` URI;
/// `None` when it cannot be read or decoded (the page then names the path).
pub(crate) fn data_uri(path: &Path) -> Option<String> {
    let image = image::open(path).ok()?;
    let small = image.thumbnail(SIDE, SIDE).to_rgb8();
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(Cursor::new(&mut jpeg), QUALITY)
        .encode_image(&small)
        .ok()?;
    Some(format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&jpeg)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_shrink_into_jpeg_uris_and_missing_files_give_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("face.png");
        image::RgbImage::from_fn(112, 112, |x, y| image::Rgb([x as u8 * 2, y as u8 * 2, 90]))
            .save(&path)
            .unwrap();
        let uri = data_uri(&path).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(uri.strip_prefix("data:image/jpeg;base64,").unwrap())
            .unwrap();
        let back = image::load_from_memory(&bytes).unwrap();
        assert_eq!((back.width(), back.height()), (SIDE, SIDE));
        assert!(data_uri(&dir.path().join("absent.jpg")).is_none());
        std::fs::write(dir.path().join("bad.jpg"), b"not a jpeg").unwrap();
        assert!(data_uri(&dir.path().join("bad.jpg")).is_none());
    }
}
