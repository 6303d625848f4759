//! Training shards: MXNet RecordIO (`train.rec` + `train.idx`, insightface's
//! flat layout) and the ImageFolder tree; and the arcface_torch verification
//! `.bin` (`verification_bin`).
//!
//! Writing the flat layout (what `convert` does):
//!
//! ```
//! use facekit::shard::recordio::{pack, write_index, IndexEntry, RecordWriter};
//! # let crops: Vec<(u32, Vec<u8>)> = vec![(0, vec![0xff, 0xd8])];
//! let mut rec = RecordWriter::new(Vec::new()); // an output::AtomicFile in practice
//! let mut index = Vec::new();
//! for (key, (label, jpeg)) in crops.iter().enumerate() {
//!     let key = key as u64; // keys 0..N-1 in the shuffled order; id = key
//!     let offset = rec.write(&pack(*label as f32, key, jpeg))?;
//!     index.push(IndexEntry { key, offset });
//! }
//! let mut idx = Vec::new();
//! write_index(&mut idx, &index)?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Reading: `RecordReader::new(file)` then `read_at(offset)` or
//! `next_record()`, `read_index`, `unpack`.

pub mod folder;
pub mod recordio;
pub mod verification_bin;

pub(crate) use folder::FolderLayout;
pub use recordio::{
    pack, read_index, unpack, write_index, IndexEntry, Label, RecordReader, RecordWriter,
};
