//! What facekit reads from an `.onnx` file itself, before onnxruntime sees
//! it: that it is an ONNX model at all, its opset, its graph inputs and its
//! first nodes (insightface tells a model that normalises its own input by a
//! leading Sub/Mul pair), and the file's sha256 for `embed.json`. ONNX is a
//! protobuf `ModelProto`; the few fields needed are read straight from the
//! wire format, skipping everything else (weights included) unparsed.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ModelFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not an ONNX model ({reason})")]
    NotOnnx { path: PathBuf, reason: String },
}

/// One dimension of a tensor shape: a fixed size, or a named/unknown one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Dim {
    Fixed(i64),
    Dynamic(String),
}

/// A graph input that is not an initializer (older exports list weights as
/// inputs too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GraphInput {
    pub name: String,
    /// ONNX `TensorProto.DataType` (1 = float32, 10 = float16).
    pub elem_type: i32,
    pub dims: Vec<Dim>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeHead {
    pub name: String,
    pub op_type: String,
}

/// The parts of a model file `embed` decides by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModelFile {
    pub path: PathBuf,
    pub sha256: String,
    pub bytes: u64,
    pub producer: String,
    /// Opset of the default (`ai.onnx`) domain.
    pub opset: Option<i64>,
    pub inputs: Vec<GraphInput>,
    /// The first nodes of the graph, in file (topological) order.
    pub first_nodes: Vec<NodeHead>,
}

/// How many leading nodes insightface looks at for a built-in normalisation.
const HEAD_NODES: usize = 8;

impl ModelFile {
    pub(crate) fn read(path: &Path) -> Result<ModelFile, ModelFileError> {
        let bytes = std::fs::read(path).map_err(|source| ModelFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let not_onnx = |reason: String| ModelFileError::NotOnnx {
            path: path.to_path_buf(),
            reason,
        };
        let parsed = parse_model(&bytes).map_err(not_onnx)?;
        Ok(ModelFile {
            path: path.to_path_buf(),
            sha256: hex(&Sha256::digest(&bytes)),
            bytes: bytes.len() as u64,
            ..parsed
        })
    }

    /// insightface's rule (`ArcFaceONNX.__init__`): a Sub (or `_minus`) and
    /// a Mul/Div (or `_mul`) among the first nodes mean the graph subtracts
    /// the mean and scales itself, so it takes raw 0-255 pixels.
    pub(crate) fn normalises_itself(&self) -> bool {
        let has = |ops: &[&str], prefixes: &[&str]| {
            self.first_nodes.iter().any(|n| {
                ops.contains(&n.op_type.as_str()) || prefixes.iter().any(|p| n.name.starts_with(p))
            })
        };
        has(&["Sub"], &["Sub", "_minus"]) && has(&["Mul", "Div"], &["Mul", "_mul"])
    }
}

/// Lower-case hex of a digest.
pub(crate) fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A protobuf field: its number and its value.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// Iterates the fields of one protobuf message.
struct Fields<'a> {
    rest: &'a [u8],
}

fn varint(buf: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first().ok_or("truncated varint")?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint longer than 10 bytes".into())
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let field = (|| {
            let key = varint(&mut self.rest)?;
            let (number, wire) = (key >> 3, key & 7);
            if number == 0 {
                return Err("field number 0".to_string());
            }
            let value = match wire {
                0 => Value::Varint(varint(&mut self.rest)?),
                1 | 5 => {
                    let n = if wire == 1 { 8 } else { 4 };
                    if self.rest.len() < n {
                        return Err("truncated fixed-size field".into());
                    }
                    self.rest = &self.rest[n..];
                    Value::Fixed
                }
                2 => {
                    let len = varint(&mut self.rest)?;
                    let len = usize::try_from(len)
                        .ok()
                        .filter(|&l| l <= self.rest.len())
                        .ok_or("length past the end of the file")?;
                    let (bytes, rest) = self.rest.split_at(len);
                    self.rest = rest;
                    Value::Bytes(bytes)
                }
                other => return Err(format!("wire type {other}")),
            };
            Ok((number, value))
        })();
        if field.is_err() {
            self.rest = &[];
        }
        Some(field)
    }
}

fn fields(bytes: &[u8]) -> Fields<'_> {
    Fields { rest: bytes }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn parse_model(bytes: &[u8]) -> Result<ModelFile, String> {
    let mut model = ModelFile {
        path: PathBuf::new(),
        sha256: String::new(),
        bytes: 0,
        producer: String::new(),
        opset: None,
        inputs: Vec::new(),
        first_nodes: Vec::new(),
    };
    let (mut ir_version, mut graph) = (None, None);
    for field in fields(bytes) {
        match field? {
            (1, Value::Varint(v)) => ir_version = Some(v),
            (2, Value::Bytes(b)) => model.producer = text(b),
            (7, Value::Bytes(b)) => graph = Some(b),
            (8, Value::Bytes(b)) => {
                let (mut domain, mut version) = (String::new(), None);
                for f in fields(b) {
                    match f? {
                        (1, Value::Bytes(d)) => domain = text(d),
                        (2, Value::Varint(v)) => version = Some(v as i64),
                        _ => {}
                    }
                }
                if domain.is_empty() || domain == "ai.onnx" {
                    model.opset = version;
                }
            }
            _ => {}
        }
    }
    if ir_version.is_none() {
        return Err("no ir_version".into());
    }
    let graph = graph.ok_or("no graph")?;
    let mut initializers = std::collections::HashSet::new();
    let mut inputs = Vec::new();
    for field in fields(graph) {
        match field? {
            (1, Value::Bytes(b)) if model.first_nodes.len() < HEAD_NODES => {
                model.first_nodes.push(parse_node(b)?)
            }
            (5, Value::Bytes(b)) => {
                for f in fields(b) {
                    if let (8, Value::Bytes(name)) = f? {
                        initializers.insert(text(name));
                    }
                }
            }
            (11, Value::Bytes(b)) => inputs.push(parse_value_info(b)?),
            _ => {}
        }
    }
    model.inputs = inputs
        .into_iter()
        .filter(|i| !initializers.contains(&i.name))
        .collect();
    if model.inputs.is_empty() {
        return Err("the graph has no input".into());
    }
    Ok(model)
}

fn parse_node(bytes: &[u8]) -> Result<NodeHead, String> {
    let mut node = NodeHead {
        name: String::new(),
        op_type: String::new(),
    };
    for field in fields(bytes) {
        match field? {
            (3, Value::Bytes(b)) => node.name = text(b),
            (4, Value::Bytes(b)) => node.op_type = text(b),
            _ => {}
        }
    }
    Ok(node)
}

/// `ValueInfoProto { name = 1; type = 2 }`, `TypeProto { tensor_type = 1 }`,
/// `Tensor { elem_type = 1; shape = 2 }`, `TensorShapeProto { dim = 1 }`,
/// `Dimension { dim_value = 1 | dim_param = 2 }`.
fn parse_value_info(bytes: &[u8]) -> Result<GraphInput, String> {
    let mut input = GraphInput {
        name: String::new(),
        elem_type: 0,
        dims: Vec::new(),
    };
    for field in fields(bytes) {
        match field? {
            (1, Value::Bytes(b)) => input.name = text(b),
            (2, Value::Bytes(ty)) => {
                for f in fields(ty) {
                    let (1, Value::Bytes(tensor)) = f? else {
                        continue;
                    };
                    for f in fields(tensor) {
                        match f? {
                            (1, Value::Varint(t)) => input.elem_type = t as i32,
                            (2, Value::Bytes(shape)) => {
                                for f in fields(shape) {
                                    let (1, Value::Bytes(dim)) = f? else { continue };
                                    input.dims.push(parse_dim(dim)?);
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(input)
}

fn parse_dim(bytes: &[u8]) -> Result<Dim, String> {
    let mut dim = Dim::Dynamic(String::new());
    for field in fields(bytes) {
        match field? {
            (1, Value::Varint(v)) => dim = Dim::Fixed(v as i64),
            (2, Value::Bytes(b)) => dim = Dim::Dynamic(text(b)),
            _ => {}
        }
    }
    Ok(dim)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/embed")
            .join(name)
    }

    #[test]
    fn reads_the_torch2onnx_contract() {
        let m = ModelFile::read(&fixture("tiny.onnx")).unwrap();
        assert_eq!(m.opset, Some(11));
        assert_eq!(
            m.inputs,
            [GraphInput {
                name: "data".into(),
                elem_type: 1,
                dims: vec![
                    Dim::Dynamic("None".into()),
                    Dim::Fixed(3),
                    Dim::Fixed(112),
                    Dim::Fixed(112)
                ],
            }]
        );
        assert!(!m.normalises_itself());
        assert_eq!(m.sha256.len(), 64);
        let named = ModelFile::read(&fixture("tiny_input1_128.onnx")).unwrap();
        assert_eq!(named.inputs[0].name, "input.1");
        assert_eq!(named.inputs[0].dims[3], Dim::Fixed(128));
    }

    #[test]
    fn a_leading_sub_mul_pair_means_raw_pixels() {
        let m = ModelFile::read(&fixture("tiny_selfnorm.onnx")).unwrap();
        assert!(m.normalises_itself());
    }

    #[test]
    fn garbage_and_truncation_are_not_onnx() {
        assert!(parse_model(b"hello, this is not a model").is_err());
        assert!(parse_model(b"").is_err());
        let bytes = std::fs::read(fixture("tiny.onnx")).unwrap();
        let err = parse_model(&bytes[..bytes.len() / 2]).unwrap_err();
        assert!(err.contains("past the end"), "{err}");
    }
}
