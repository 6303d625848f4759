#![allow(dead_code)] // each test crate uses part of it

//! A small flat-layout shard written with facekit's own writer, for the
//! inspect and mxnet interop tests.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use facekit::imaging::encode_jpeg;
use facekit::shard::recordio::MAGIC;
use facekit::shard::{pack, write_index, IndexEntry, RecordWriter};
use image::{Rgb, RgbImage};

pub const NUM_CLASSES: u64 = 4;
pub const NUM_IMAGES: u64 = 12;

/// The label stored under each key (a shuffled order, every class present).
pub fn label_of(key: u64) -> u64 {
    [2, 0, 3, 1, 1, 0, 2, 3, 0, 2, 1, 3][key as usize]
}

/// A 112×112 crop whose colour says its label (label 0 mostly red, 1 green,
/// 2 blue, 3 grey), with a gradient so the JPEG is not trivial.
pub fn image_of(key: u64) -> RgbImage {
    let label = label_of(key);
    RgbImage::from_fn(112, 112, |x, y| {
        let shade = ((x + y + key as u32 * 5) % 40) as u8;
        let base = match label {
            0 => [200, 30, 30],
            1 => [30, 200, 30],
            2 => [30, 30, 200],
            _ => [120, 120, 120],
        };
        Rgb(base.map(|v: u8| v + shade))
    })
}

/// The JPEG stored under `key`. Key 3's carries a JPEG comment holding the
/// RecordIO magic number at 4-byte-aligned offsets of the record payload, so
/// readers must undo the writer's escape.
pub fn jpeg_of(key: u64) -> Vec<u8> {
    let jpeg = encode_jpeg(&image_of(key), 95);
    if key != 3 {
        return jpeg;
    }
    // Payload = 24-byte header + JPEG; JPEG byte 6 is payload byte 30.
    // COM segment: FF FE, length (2 + 14), then data from JPEG byte 6:
    // 2 filler bytes, magic at payload 32, filler, magic at payload 40.
    let mut data = vec![b'x', b'x'];
    data.extend_from_slice(&MAGIC.to_le_bytes());
    data.extend_from_slice(b"yyyy");
    data.extend_from_slice(&MAGIC.to_le_bytes());
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xFE, 0, (data.len() + 2) as u8]);
    out.extend_from_slice(&data);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// How to spoil the shard, for tests of `inspect`'s checks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Key 5 stores label 7 (num_classes is 4).
    LabelOutOfRange,
    /// Key 6's id is 99.
    IdNotKey,
    /// Key 8's JPEG is cut in half.
    BrokenJpeg,
    /// Key 10 is missing from the .idx.
    MissingIndexLine,
}

/// Writes train.rec, train.idx and dataset.json into `dir`.
pub fn write_shard(dir: &Path, fault: Fault) {
    let mut writer = RecordWriter::new(File::create(dir.join("train.rec")).unwrap());
    let mut entries = Vec::new();
    for key in 0..NUM_IMAGES {
        let mut label = label_of(key);
        let mut id = key;
        let mut jpeg = jpeg_of(key);
        match fault {
            Fault::LabelOutOfRange if key == 5 => label = 7,
            Fault::IdNotKey if key == 6 => id = 99,
            Fault::BrokenJpeg if key == 8 => jpeg.truncate(jpeg.len() / 2),
            _ => {}
        }
        let offset = writer.write(&pack(label as f32, id, &jpeg)).unwrap();
        if !(fault == Fault::MissingIndexLine && key == 10) {
            entries.push(IndexEntry { key, offset });
        }
    }
    writer.into_inner().flush().unwrap();
    write_index(File::create(dir.join("train.idx")).unwrap(), &entries).unwrap();
    let dataset = serde_json::json!({
        "num_classes": NUM_CLASSES, "num_image": NUM_IMAGES, "image_size": 112,
    });
    std::fs::write(dir.join("dataset.json"), dataset.to_string()).unwrap();
}
