//! Small K-Face inputs the convert tests build trees from.

use image::{Rgb, RgbImage};

/// A 346x230 photograph (the Middle tier size) with some texture.
pub fn photo(seed: u32) -> Vec<u8> {
    let image = RgbImage::from_fn(346, 230, |x, y| {
        Rgb([
            (x * 255 / 346) as u8,
            (y * 255 / 230) as u8,
            ((x / 8 + y / 8 + seed) % 16 * 16) as u8,
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode(image.as_raw(), 346, 230, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

/// An annotation with the points inside the 346x230 photo; `shift` moves it.
pub fn annotation(camera: u32, shift: i32) -> String {
    let p = |x: i32, y: i32| format!("{}\t{}\n", x + shift, y);
    let mut text = [
        p(173, 125),
        p(150, 100),
        p(196, 100),
        p(154, 152),
        p(192, 152),
        p(120, 110),
        p(226, 110),
    ]
    .concat();
    text += &format!("{}\t55\t120\t120\n", 113 + shift);
    let boxes = match camera {
        7 | 16 => 6,
        1 | 2 | 12 | 13 => 4,
        _ => 5,
    };
    for _ in 0..boxes {
        text += "140\t90\t20\t20\n";
    }
    text
}
