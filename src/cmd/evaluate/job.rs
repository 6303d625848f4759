//! What an evaluation of embeddings computes, whichever part of it a run
//! does: the inputs (named as given, and where a merge finds them again),
//! every flag that changes the result, and the engine. Each part carries it
//! as `job.json`; its hash is the fingerprint of `partial.json`, so parts
//! of different inputs or flags do not merge.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cli::{EvaluateArgs, Protocol};
use crate::evaldir::EngineInfo;

/// The file name inside a part directory.
pub(crate) const JOB_JSON: &str = "job.json";

/// One input file: its path as given (for summary.json), its absolute path
/// (for a merge run elsewhere) and what identifies its contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct InputFile {
    pub given: String,
    pub path: PathBuf,
    /// `sha256:…` of small files (labels, pairs), `size:…,mtime:…` of the
    /// embeddings, which every task would otherwise read whole to hash.
    pub identity: String,
}

impl InputFile {
    fn hashed(given: &Path) -> anyhow::Result<InputFile> {
        let bytes = fs::read(given).with_context(|| format!("{}: cannot read", given.display()))?;
        Ok(InputFile {
            given: given.display().to_string(),
            path: absolute(given)?,
            identity: format!("sha256:{}", hex(&Sha256::digest(&bytes))),
        })
    }

    fn stamped(given: &Path) -> anyhow::Result<InputFile> {
        let meta =
            fs::metadata(given).with_context(|| format!("{}: cannot read", given.display()))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        Ok(InputFile {
            given: given.display().to_string(),
            path: absolute(given)?,
            identity: format!("size:{},mtime:{mtime}", meta.len()),
        })
    }

    /// Checks that the file still is what the parts were computed from.
    pub(crate) fn check_unchanged(&self) -> anyhow::Result<()> {
        let now = InputFile::hashed(&self.path)?;
        if now.identity != self.identity {
            anyhow::bail!(
                "{}: changed since the parts were computed; run them again",
                self.path.display()
            );
        }
        Ok(())
    }
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    fs::canonicalize(p).with_context(|| format!("{}: cannot resolve", p.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub embeddings: InputFile,
    pub labels: InputFile,
    pub pairs: Option<InputFile>,
    pub probe_gallery: bool,
    pub fmr: Vec<f64>,
    pub fpir: Vec<f64>,
    pub top_k: usize,
    pub rank: u64,
    pub group_by: Vec<String>,
    pub bootstrap: usize,
    pub seed: u64,
    /// Impostor scores held exactly (`--exact-budget`).
    pub exact_budget: u64,
    /// Blocks the gallery is split into across the parts (`--gallery-blocks`).
    pub gallery_blocks: u32,
    /// The embeddings' shape.
    pub rows: u64,
    pub dim: u64,
    /// The engine, less its score error (which each part measures).
    pub engine: EngineInfo,
}

impl Job {
    pub fn new(
        args: &EvaluateArgs,
        embeddings: &Path,
        labels: &Path,
        shape: (usize, usize),
        engine: EngineInfo,
    ) -> anyhow::Result<Job> {
        Ok(Job {
            embeddings: InputFile::stamped(embeddings)?,
            labels: InputFile::hashed(labels)?,
            pairs: args.pairs.as_deref().map(InputFile::hashed).transpose()?,
            probe_gallery: args.protocol == Protocol::ProbeGallery,
            fmr: args.fmr.clone(),
            fpir: args.fpir.clone(),
            top_k: args.top_k,
            rank: args.rank,
            group_by: args.group_by.clone(),
            bootstrap: args.bootstrap,
            seed: args.seed,
            exact_budget: args.exact_budget,
            gallery_blocks: args.gallery_blocks,
            rows: shape.0 as u64,
            dim: shape.1 as u64,
            engine,
        })
    }

    fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a job serialises") + "\n"
    }

    /// The hash of everything above: equal for every part of one job.
    pub fn fingerprint(&self) -> String {
        format!("sha256:{}", hex(&Sha256::digest(self.json().as_bytes())))
    }

    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        crate::output::write_atomic(dir.join(JOB_JSON), self.json().as_bytes())
    }

    /// Reads a part's job and checks it against the part's fingerprint.
    pub fn read(dir: &Path, fingerprint: &str) -> anyhow::Result<Job> {
        let path = dir.join(JOB_JSON);
        let text = fs::read_to_string(&path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        let job: Job = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a facekit evaluate job", path.display()))?;
        if job.fingerprint() != fingerprint {
            anyhow::bail!(
                "{}: does not match the fingerprint in partial.json; the part is damaged",
                path.display()
            );
        }
        Ok(job)
    }
}
