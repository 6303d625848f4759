//! `embed.json`: what made an embeddings directory. Read back by `merge`,
//! which sums the parts' counts into the record one run would have written.

use serde::{Deserialize, Serialize};

use crate::embed::model::{InputSpec, Provider};
use crate::embed::modelfile::ModelFile;
use crate::embed::preprocess::{Layout, Normalisation};
use crate::embed::runtime::Runtime;
use crate::embed::source::InputKind;

use super::pairs::{OpenPair, SecondImage};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub facekit_version: String,
    pub model: ModelRecord,
    pub input: InputRecord,
    pub output: OutputRecord,
    pub preprocessing: PreprocessRecord,
    pub flip: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flip_rule: Option<String>,
    pub device: DeviceRecord,
    pub runtime: RuntimeRecord,
    pub batch: u32,
    pub threads: usize,
    pub inputs: Vec<SourceRecord>,
    pub counts: Counts,
    pub seconds: Seconds,
    /// The shard note, as evaluate's summary has it: "one machine", "part
    /// I/N (how it was chosen)" or "merged from N parts".
    pub shards: String,
    /// A part's share of the faces and what its merge needs; only in a part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<PartNote>,
}

/// The shard note of a run that was no part of a split job.
pub(crate) const ONE_MACHINE: &str = "one machine";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ModelRecord {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    pub producer: String,
    pub opset: Option<i64>,
}

impl ModelRecord {
    pub(crate) fn of(m: &ModelFile) -> ModelRecord {
        ModelRecord {
            path: m.path.display().to_string(),
            sha256: m.sha256.clone(),
            bytes: m.bytes,
            producer: m.producer.clone(),
            opset: m.opset,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct InputRecord {
    pub name: String,
    pub declared_shape: Vec<String>,
    pub layout: Layout,
    pub size: u32,
    pub fixed_batch: Option<usize>,
}

impl InputRecord {
    pub(crate) fn of(i: &InputSpec) -> InputRecord {
        InputRecord {
            name: i.name.clone(),
            declared_shape: i.declared.clone(),
            layout: i.layout,
            size: i.size,
            fixed_batch: i.fixed_batch,
        }
    }

    pub(crate) fn layout_name(&self) -> &'static str {
        match self.layout {
            Layout::Nchw => "NCHW",
            Layout::Nhwc => "NHWC",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct OutputRecord {
    pub name: String,
    pub dim: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PreprocessRecord {
    pub channel_order: String,
    pub channel_order_reason: String,
    pub normalisation: Normalisation,
    pub normalisation_rule: String,
    pub normalisation_reason: String,
    pub resize: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DeviceRecord {
    pub requested: String,
    pub provider: ProviderRecord,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ProviderRecord {
    pub name: String,
    pub reason: String,
}

impl ProviderRecord {
    pub(crate) fn of(p: &Provider) -> ProviderRecord {
        ProviderRecord {
            name: p.name.to_string(),
            reason: p.reason.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RuntimeRecord {
    pub path: String,
    pub found_by: String,
    pub version: String,
}

impl RuntimeRecord {
    pub(crate) fn of(r: &Runtime) -> RuntimeRecord {
        RuntimeRecord {
            path: r.path.display().to_string(),
            found_by: r.source.to_string(),
            version: r.version.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SourceRecord {
    pub path: String,
    pub kind: InputKind,
    pub faces: usize,
}

/// A part's counts are its own; a merge adds them up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub faces: usize,
    pub embedded: usize,
    pub failed: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairs: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairs_dropped: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Seconds {
    pub total: f64,
    pub model: f64,
}

/// What a part did, and what its merge needs to finish the pair list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PartNote {
    /// This part's faces: `[first, end)` in the whole input list.
    pub faces: [usize; 2],
    /// Pairs this part begins whose second image lies in another part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open_pairs: Vec<OpenPair>,
    /// Whether this part embedded the second images of other parts' pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub second_images: Vec<SecondImage>,
}
