//! The user's exported model as an onnxruntime session: which input it
//! takes and in what shape (names and sizes come from the model, never
//! assumed), which execution provider runs it, and one call that turns a
//! batch of prepared images into rows of raw embeddings.

use std::path::PathBuf;

use ort::ep::ExecutionProvider;
use ort::session::Session;
use ort::value::TensorRef;

use super::modelfile::{Dim, ModelFile};
use super::preprocess::Layout;
use crate::evalinput::one_line;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ModelError {
    #[error("{path}: {message}")]
    Model { path: PathBuf, message: String },
    #[error("{path}: --device cuda: {reason}")]
    NoCuda { path: PathBuf, reason: String },
}

/// Which device `embed` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Device {
    Auto,
    Cpu,
    Cuda,
}

/// The model's input as facekit feeds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InputSpec {
    pub name: String,
    /// The shape as the model declares it, e.g. `["None", 3, 112, 112]`.
    pub declared: Vec<String>,
    pub layout: Layout,
    /// Side of the square image the model takes.
    pub size: u32,
    /// The batch size when the model fixes it (older exports fix it at 1).
    pub fixed_batch: Option<usize>,
}

/// Images the model's input must be, from its declared shape: rank 4, three
/// channels first (NCHW, as torch2onnx) or last (NHWC), square.
pub(crate) fn input_spec(model: &ModelFile) -> Result<InputSpec, String> {
    let input = match model.inputs.as_slice() {
        [one] => one,
        many => {
            let names: Vec<&str> = many.iter().map(|i| i.name.as_str()).collect();
            return Err(format!(
                "the model has {} inputs ({}); a face model takes one image tensor",
                many.len(),
                names.join(", ")
            ));
        }
    };
    if input.elem_type != 1 {
        return Err(format!(
            "input {:?} has ONNX element type {} ; facekit feeds float32 (type 1)",
            input.name, input.elem_type
        ));
    }
    let declared: Vec<String> = input
        .dims
        .iter()
        .map(|d| match d {
            Dim::Fixed(v) => v.to_string(),
            Dim::Dynamic(name) if name.is_empty() => "?".into(),
            Dim::Dynamic(name) => name.clone(),
        })
        .collect();
    let shape = declared.join("x");
    if input.dims.len() != 4 {
        return Err(format!(
            "input {:?} has rank {} ({shape}); a face model takes [N, 3, H, W]",
            input.name,
            input.dims.len()
        ));
    }
    let fixed = |d: &Dim| match d {
        Dim::Fixed(v) => Some(*v),
        Dim::Dynamic(_) => None,
    };
    let dims: Vec<Option<i64>> = input.dims.iter().map(fixed).collect();
    let (layout, h, w) = match (dims[1], dims[3]) {
        (Some(3), _) => (Layout::Nchw, dims[2], dims[3]),
        (_, Some(3)) => (Layout::Nhwc, dims[1], dims[2]),
        (None, None) => (Layout::Nchw, dims[2], dims[3]),
        (Some(c), _) => {
            return Err(format!(
                "input {:?} has {c} channels ({shape}); face models take 3 (RGB)",
                input.name
            ))
        }
        (None, Some(c)) => {
            return Err(format!(
                "input {:?} has {c} channels last ({shape}); face models take 3 (RGB)",
                input.name
            ))
        }
    };
    // A spatially dynamic model gets arcface's 112 px crops.
    let size = match (h, w) {
        (Some(h), Some(w)) if h == w && h > 0 && h <= 4096 => h as u32,
        (None, None) => 112,
        _ => {
            return Err(format!(
                "input {:?} is {shape}; facekit feeds square crops of a fixed size",
                input.name
            ))
        }
    };
    let fixed_batch = match dims[0] {
        Some(n) if n >= 1 => Some(n as usize),
        Some(n) => return Err(format!("input {:?} has batch size {n}", input.name)),
        None => None,
    };
    Ok(InputSpec {
        name: input.name.clone(),
        declared,
        layout,
        size,
        fixed_batch,
    })
}

/// Which provider runs the model, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Provider {
    pub name: &'static str,
    pub reason: String,
}

/// An open session with its input and output.
pub(crate) struct Model {
    session: Session,
    pub input: InputSpec,
    pub output_name: String,
    pub provider: Provider,
    path: PathBuf,
}

impl Model {
    /// Opens `file` on the device asked for, with `threads` intra-op threads.
    /// Call only after `runtime::load` succeeded.
    pub(crate) fn open(
        file: &ModelFile,
        input: InputSpec,
        device: Device,
        threads: usize,
    ) -> Result<Model, ModelError> {
        let path = file.path.clone();
        let model_err = |e: ort::Error| ModelError::Model {
            path: path.clone(),
            message: one_line(&e),
        };
        let environment = ort::init()
            .with_name("facekit")
            .build()
            .map_err(model_err)?;
        let cuda_available = ort::ep::CUDA::is_available().unwrap_or(false);
        let (session, provider) = match (device, cuda_available) {
            (Device::Cpu, _) => (
                cpu_session(&environment, file, threads).map_err(model_err)?,
                Provider {
                    name: "CPUExecutionProvider",
                    reason: "--device cpu".into(),
                },
            ),
            (Device::Cuda, false) | (Device::Auto, false) => {
                let reason = "the loaded onnxruntime has no CUDA provider \
                              (`pip install onnxruntime-gpu` has one)";
                if device == Device::Cuda {
                    return Err(ModelError::NoCuda {
                        path,
                        reason: reason.into(),
                    });
                }
                (
                    cpu_session(&environment, file, threads).map_err(model_err)?,
                    Provider {
                        name: "CPUExecutionProvider",
                        reason: reason.into(),
                    },
                )
            }
            (_, true) => match cuda_session(&environment, file, threads) {
                Ok(session) => (
                    session,
                    Provider {
                        name: "CUDAExecutionProvider",
                        reason: "the loaded onnxruntime has the CUDA provider and it started"
                            .into(),
                    },
                ),
                Err(e) if device == Device::Auto => (
                    cpu_session(&environment, file, threads).map_err(model_err)?,
                    Provider {
                        name: "CPUExecutionProvider",
                        reason: format!("the CUDA provider did not start ({})", one_line(&e)),
                    },
                ),
                Err(e) => {
                    return Err(ModelError::NoCuda {
                        path,
                        reason: one_line(&e),
                    })
                }
            },
        };
        let output_name = match session.outputs() {
            [] => {
                return Err(ModelError::Model {
                    path,
                    message: "the model has no output".into(),
                })
            }
            outputs => outputs[0].name().to_string(),
        };
        Ok(Model {
            session,
            input,
            output_name,
            provider,
            path,
        })
    }

    /// Runs `n` prepared images (`data` holds `n` images' floats in the
    /// input layout) and returns `n` raw embedding rows of the output's
    /// width. A model with a fixed batch size runs in pieces of that size,
    /// the last one padded with zeros.
    pub(crate) fn run(&mut self, data: &[f32], n: usize) -> Result<(Vec<f32>, usize), ModelError> {
        let per_image = data.len() / n.max(1);
        let piece = self.input.fixed_batch.unwrap_or(n).max(1);
        let side = self.input.size as i64;
        let mut rows = Vec::new();
        let mut width = None;
        let mut padded = Vec::new();
        for start in (0..n).step_by(piece) {
            let count = piece.min(n - start);
            let mut chunk = &data[start * per_image..(start + count) * per_image];
            if count < piece {
                padded.clear();
                padded.extend_from_slice(chunk);
                padded.resize(piece * per_image, 0.0);
                chunk = &padded;
            }
            let shape = match self.input.layout {
                Layout::Nchw => [piece as i64, 3, side, side],
                Layout::Nhwc => [piece as i64, side, side, 3],
            };
            let (out, w) = self.run_piece(chunk, shape, piece)?;
            if *width.get_or_insert(w) != w {
                return Err(self.error("the output width changed between batches".into()));
            }
            rows.extend_from_slice(&out[..count * w]);
        }
        Ok((rows, width.unwrap_or(0)))
    }

    fn run_piece(
        &mut self,
        chunk: &[f32],
        shape: [i64; 4],
        piece: usize,
    ) -> Result<(Vec<f32>, usize), ModelError> {
        let tensor =
            TensorRef::from_array_view((shape, chunk)).map_err(|e| self.error(one_line(&e)))?;
        let input_name = self.input.name.clone();
        let output_name = self.output_name.clone();
        let path = self.path.clone();
        let err = |message: String| ModelError::Model {
            path: path.clone(),
            message,
        };
        let outputs = self
            .session
            .run(ort::inputs![input_name.as_str() => tensor])
            .map_err(|e| err(format!("running the model: {}", one_line(&e))))?;
        let value = &outputs[output_name.as_str()];
        let (out_shape, values) = value.try_extract_tensor::<f32>().map_err(|e| {
            err(format!(
                "output {output_name:?} is not a float32 tensor: {}",
                one_line(&e)
            ))
        })?;
        let dims: Vec<i64> = out_shape.iter().copied().collect();
        if dims.first() != Some(&(piece as i64)) || values.len() % piece != 0 || values.is_empty() {
            return Err(err(format!(
                "output {output_name:?} has shape {dims:?} for a batch of {piece}; expected [N, D]"
            )));
        }
        Ok((values.to_vec(), values.len() / piece))
    }

    fn error(&self, message: String) -> ModelError {
        ModelError::Model {
            path: self.path.clone(),
            message,
        }
    }
}

fn builder(
    environment: &ort::environment::Environment,
    threads: usize,
) -> ort::Result<ort::session::builder::SessionBuilder> {
    Ok(Session::builder(environment)?.with_intra_threads(threads)?)
}

fn cpu_session(
    environment: &ort::environment::Environment,
    file: &ModelFile,
    threads: usize,
) -> ort::Result<Session> {
    builder(environment, threads)?.commit_from_file(&file.path)
}

fn cuda_session(
    environment: &ort::environment::Environment,
    file: &ModelFile,
    threads: usize,
) -> ort::Result<Session> {
    builder(environment, threads)?
        .with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])?
        .commit_from_file(&file.path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::modelfile::GraphInput;

    fn model(dims: Vec<Dim>) -> ModelFile {
        ModelFile {
            path: "m.onnx".into(),
            sha256: String::new(),
            bytes: 0,
            producer: String::new(),
            opset: Some(11),
            inputs: vec![GraphInput {
                name: "data".into(),
                elem_type: 1,
                dims,
            }],
            first_nodes: vec![],
        }
    }

    #[test]
    fn shapes_as_users_export_them() {
        use Dim::*;
        let none = || Dynamic("None".into());
        let spec = input_spec(&model(vec![none(), Fixed(3), Fixed(112), Fixed(112)])).unwrap();
        assert_eq!(
            (spec.layout, spec.size, spec.fixed_batch),
            (Layout::Nchw, 112, None)
        );
        assert_eq!(spec.declared, ["None", "3", "112", "112"]);
        let spec = input_spec(&model(vec![Fixed(1), Fixed(3), Fixed(128), Fixed(128)])).unwrap();
        assert_eq!((spec.size, spec.fixed_batch), (128, Some(1)));
        let spec = input_spec(&model(vec![none(), Fixed(112), Fixed(112), Fixed(3)])).unwrap();
        assert_eq!(spec.layout, Layout::Nhwc);
        let spec = input_spec(&model(vec![none(), Fixed(3), none(), none()])).unwrap();
        assert_eq!(spec.size, 112);
        let err = input_spec(&model(vec![none(), Fixed(3), Fixed(112)])).unwrap_err();
        assert!(err.contains("rank 3"), "{err}");
        let err = input_spec(&model(vec![none(), Fixed(1), Fixed(112), Fixed(112)])).unwrap_err();
        assert!(err.contains("1 channels"), "{err}");
        let err = input_spec(&model(vec![none(), Fixed(3), Fixed(112), Fixed(96)])).unwrap_err();
        assert!(err.contains("square"), "{err}");
        let mut half = model(vec![none(), Fixed(3), Fixed(112), Fixed(112)]);
        half.inputs[0].elem_type = 10;
        assert!(input_spec(&half).unwrap_err().contains("float32"));
    }
}
