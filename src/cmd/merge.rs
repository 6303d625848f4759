//! `facekit merge`: the parts of a job split with `--shard` become the
//! result one machine would have written. Which merge runs is read from the
//! parts' headers; `partition::gather` has already checked that they are
//! every part of one job.

use anyhow::Context;

use crate::cli::MergeArgs;
use crate::partition::{self, PartKind};

pub fn run(args: &MergeArgs) -> anyhow::Result<()> {
    let parts = partition::gather(&args.parts).context("merge")?;
    match parts[0].header.kind {
        PartKind::Embed => crate::cmd::embed::merge::run(args, &parts),
        PartKind::Evaluate => crate::cmd::evaluate::merge(&parts, args),
    }
}
