//! Running the user's exported face model (ONNX) over aligned crops with
//! onnxruntime, loaded at run time: finding the library (`runtime`), reading
//! the model file (`modelfile`) and opening it (`model`), the inputs faces
//! come from (`source`), pixels to tensors (`preprocess`) and the batch
//! pipeline that overlaps decoding with inference (`pipeline`).

pub(crate) mod model;
pub(crate) mod modelfile;
pub(crate) mod pipeline;
pub(crate) mod preprocess;
pub(crate) mod runtime;
pub(crate) mod source;
