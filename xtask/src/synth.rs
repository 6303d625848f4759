//! `cargo xtask synth`: the synthetic K-Face generator on the command line.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use facekit::kface::Selection;
use facekit::synth::{self, Config, Tier};

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output folder (the tier folder and zip go inside)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of identities
    #[arg(long, default_value_t = 4)]
    pub identities: usize,
    /// Resolution tier: low (173x115), middle (346x230) or high (864x576)
    #[arg(long, default_value = "middle")]
    pub tier: Tier,
    /// Images to write, in the select notation (default: all 10,800 per identity)
    #[arg(long, value_name = "SPEC")]
    pub select: Option<String>,
    /// Also write `<Tier>_Resolution.zip` of per-identity zips
    #[arg(long)]
    pub zip: bool,
    /// Write only the zip form, no extracted tree
    #[arg(long, requires = "zip")]
    pub zip_only: bool,
    /// Plant faults: truncated, empty and non-JPEG images, bad annotations, stray files
    #[arg(long)]
    pub faults: bool,
    /// Put everything under `한국인 안면 이미지/`
    #[arg(long)]
    pub korean_parent: bool,
    /// Nest the tree one level deeper: `Middle_Resolution/middle/<ID>/...`
    #[arg(long)]
    pub nested: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl SynthArgs {
    pub fn config(&self) -> anyhow::Result<Config> {
        let selection = match &self.select {
            Some(spec) => spec.parse::<Selection>()?,
            None => Selection::all(),
        };
        Ok(Config {
            identities: self.identities,
            tier: self.tier,
            selection,
            seed: self.seed,
            faults: self.faults,
            tree: !self.zip_only,
            zip: self.zip,
            korean_parent: self.korean_parent,
            extra_nesting: self.nested,
        })
    }
}

pub fn run(args: &SynthArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    // Files of an earlier run with another config would linger among the new ones.
    if std::fs::read_dir(&args.out).is_ok_and(|mut entries| entries.next().is_some()) {
        anyhow::bail!(
            "{} is not empty: write synthetic data to a new or empty folder",
            args.out.display()
        );
    }
    let start = Instant::now();
    let summary = synth::generate(&config, &args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let secs = start.elapsed().as_secs_f64();
    let json = serde_json::to_string_pretty(&summary)?;
    facekit::output::write_atomic(args.out.join("synth.json"), format!("{json}\n").as_bytes())?;
    println!(
        "{} images ({} annotated) of {} identities in {:.1} s ({:.0} images/s); faults: {}; summary: {}",
        summary.images,
        summary.annotations,
        summary.identities.len(),
        secs,
        summary.images as f64 / secs.max(1e-9),
        summary.faults.len(),
        args.out.join("synth.json").display()
    );
    Ok(())
}
