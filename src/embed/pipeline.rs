//! The batch pipeline: while the model runs one batch, the next is read,
//! decoded and prepared on the worker threads, so the model never waits for
//! JPEG decoding. At most two prepared batches exist at a time, so memory
//! is bounded by the batch size, not by the number of faces.
//!
//! A face that cannot be read, decoded, or is not the model's size becomes
//! a failed row with its reason; it gets no embedding and no label, and the
//! rows that were embedded keep their input order, so labels and
//! embeddings cannot shift against each other.

use std::sync::mpsc::sync_channel;

use indicatif::ProgressBar;
use rayon::prelude::*;

use super::model::{Model, ModelError};
use super::preprocess::{normalise_row, Preprocess};
use super::source::{self, Face};

/// What a run produced: `embedded[i]` is the face index of embedding row i.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub embeddings: Vec<f32>,
    pub dim: usize,
    pub embedded: Vec<usize>,
    pub failed: Vec<(usize, String)>,
    /// Seconds spent inside the model.
    pub model_seconds: f64,
}

/// One batch, prepared: the faces that made it, in order, with their input
/// floats (the mirrored copies after the originals when flipping).
struct Prepared {
    ok: Vec<usize>,
    failed: Vec<(usize, String)>,
    data: Vec<f32>,
}

/// Largest image decoded at all: a few times a crop, so a stray
/// photograph is refused before its pixels take memory.
fn max_pixels(pre: &Preprocess) -> u64 {
    u64::from(pre.size) * u64::from(pre.size) * 64
}

fn prepare(faces: &[Face], first: usize, pre: &Preprocess, flip: bool) -> Prepared {
    let per_image = pre.len();
    let results: Vec<Result<Vec<f32>, String>> = faces
        .par_iter()
        .map(|face| {
            let image = source::load(&face.image, max_pixels(pre))?;
            if image.width() != pre.size || image.height() != pre.size {
                return Err(format!(
                    "image is {}x{} pixels; the model takes {}x{} (crops are not resized)",
                    image.width(),
                    image.height(),
                    pre.size,
                    pre.size
                ));
            }
            let copies = if flip { 2 } else { 1 };
            let mut floats = vec![0.0; per_image * copies];
            pre.write(image.as_raw(), false, &mut floats[..per_image]);
            if flip {
                pre.write(image.as_raw(), true, &mut floats[per_image..]);
            }
            Ok(floats)
        })
        .collect();
    let mut prepared = Prepared {
        ok: Vec::new(),
        failed: Vec::new(),
        data: Vec::new(),
    };
    let mut mirrored = Vec::new();
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(floats) => {
                prepared.ok.push(first + i);
                prepared.data.extend_from_slice(&floats[..per_image]);
                mirrored.extend_from_slice(&floats[per_image..]);
            }
            Err(reason) => prepared.failed.push((first + i, reason)),
        }
    }
    prepared.data.extend_from_slice(&mirrored);
    prepared
}

/// Embeds every face, `batch` at a time, preparing on `pool`.
pub(crate) fn run(
    faces: &[Face],
    model: &mut Model,
    pre: &Preprocess,
    flip: bool,
    batch: usize,
    pool: &rayon::ThreadPool,
    progress: &ProgressBar,
) -> Result<Outcome, ModelError> {
    let batch = batch.max(1);
    std::thread::scope(|scope| {
        let (sender, receiver) = sync_channel::<Prepared>(1);
        scope.spawn(move || {
            for (n, chunk) in faces.chunks(batch).enumerate() {
                let prepared = pool.install(|| prepare(chunk, n * batch, pre, flip));
                // The consumer has stopped (a model error): stop too.
                if sender.send(prepared).is_err() {
                    break;
                }
            }
        });
        let mut outcome = Outcome::default();
        for prepared in receiver {
            let count = prepared.ok.len();
            progress.inc((count + prepared.failed.len()) as u64);
            outcome.failed.extend(prepared.failed);
            if count == 0 {
                continue;
            }
            let images = if flip { 2 * count } else { count };
            let started = std::time::Instant::now();
            let (rows, dim) = model.run(&prepared.data, images)?;
            outcome.model_seconds += started.elapsed().as_secs_f64();
            outcome.dim = dim;
            for (i, &face) in prepared.ok.iter().enumerate() {
                let mut row = rows[i * dim..(i + 1) * dim].to_vec();
                if flip {
                    let mirror = &rows[(count + i) * dim..(count + i + 1) * dim];
                    row.iter_mut().zip(mirror).for_each(|(a, b)| *a += b);
                }
                if normalise_row(&mut row) {
                    outcome.embeddings.extend_from_slice(&row);
                    outcome.embedded.push(face);
                } else {
                    outcome.failed.push((
                        face,
                        "the model's output is NaN, infinite or zero for this image".into(),
                    ));
                }
            }
        }
        outcome.failed.sort_by_key(|(face, _)| *face);
        Ok(outcome)
    })
}
