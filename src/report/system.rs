//! One evaluated system: an EVAL_DIR read whole, named after its directory.

use std::path::{Path, PathBuf};

use crate::metrics::open_set::{OpenSet, Search};

use crate::evaldir::{
    self, EvalDirError, ExampleRow, GroupScoreRow, HistogramRow, OperatingPointRow, ProbeRow,
    RocRow, Summary,
};

/// Everything `facekit evaluate` wrote about one system. Tables the
/// directory lacks are empty, and the charts that need them are left out.
#[derive(Debug, Clone, PartialEq)]
pub struct System {
    /// Shown in legends and headings: the directory's name.
    pub name: String,
    pub dir: PathBuf,
    pub summary: Summary,
    pub roc: Vec<RocRow>,
    pub operating_points: Vec<OperatingPointRow>,
    pub histograms: Vec<HistogramRow>,
    pub probes: Vec<ProbeRow>,
    pub examples: Vec<ExampleRow>,
    pub group_scores: Vec<GroupScoreRow>,
    /// Where the relative image paths of `examples` are found: the labels
    /// file's directory as `evaluate` recorded it, unless the caller says.
    pub images: PathBuf,
    /// The files this directory lacks, by name.
    pub missing: Vec<&'static str>,
}

impl System {
    pub fn load(dir: &Path, name: String) -> Result<System, EvalDirError> {
        let summary = evaldir::read_summary(dir)?;
        let mut missing = Vec::new();
        let mut present = |file: &'static str| {
            let there = dir.join(file).is_file();
            if !there {
                missing.push(file);
            }
            there
        };
        let has_roc = present(evaldir::ROC_CSV);
        let roc: Vec<RocRow> = if has_roc {
            evaldir::read_csv(&dir.join(evaldir::ROC_CSV))?
        } else {
            Vec::new()
        };
        // A run with verification metrics always writes a curve: an empty
        // one is a file cut short, not a chart to leave out quietly.
        if has_roc && roc.is_empty() && summary.verification.is_some() {
            return Err(EvalDirError::Content {
                path: dir.join(evaldir::ROC_CSV),
                message: "holds no curve, though summary.json has verification metrics (cut short?); rerun facekit evaluate".into(),
            });
        }
        let operating_points = if present(evaldir::OPERATING_POINTS_CSV) {
            evaldir::read_csv(&dir.join(evaldir::OPERATING_POINTS_CSV))?
        } else {
            Vec::new()
        };
        let histograms = if present(evaldir::SCORES_PARQUET) {
            evaldir::read_histograms(&dir.join(evaldir::SCORES_PARQUET))?
        } else {
            Vec::new()
        };
        let probes = if summary.identification.is_some() && present(evaldir::PROBES_CSV) {
            evaldir::read_csv(&dir.join(evaldir::PROBES_CSV))?
        } else {
            Vec::new()
        };
        let examples = if summary.identification.is_some() && present(evaldir::EXAMPLES_CSV) {
            evaldir::read_csv(&dir.join(evaldir::EXAMPLES_CSV))?
        } else {
            Vec::new()
        };
        let group_scores = if !summary.groups.is_empty() && present(evaldir::GROUP_SCORES_CSV) {
            evaldir::read_csv(&dir.join(evaldir::GROUP_SCORES_CSV))?
        } else {
            Vec::new()
        };
        let images = summary
            .inputs
            .labels
            .as_deref()
            .and_then(|l| Path::new(l).parent())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.to_path_buf());
        Ok(System {
            name,
            dir: dir.to_path_buf(),
            summary,
            roc,
            operating_points,
            histograms,
            probes,
            examples,
            group_scores,
            images,
            missing,
        })
    }

    /// The operating points of one kind ("fmr" or "fpir"), as in
    /// `operating_points.csv`.
    /// The open-set rates of its probes, FNIR at the evaluation's rank R
    /// (as in `summary.json`).
    pub fn open_set(&self) -> OpenSet {
        let rank = self
            .summary
            .identification
            .as_ref()
            .map_or(1, |i| i.fnir_rank);
        OpenSet::new(self.probes.iter().map(|p| Search::of_row(p, rank)))
    }

    pub fn points(&self, kind: &str) -> impl Iterator<Item = &OperatingPointRow> + '_ {
        let kind = kind.to_string();
        self.operating_points.iter().filter(move |p| p.kind == kind)
    }

    /// The histogram bins of one kind.
    pub fn bins(&self, kind: &str) -> Vec<&HistogramRow> {
        self.histograms.iter().filter(|h| h.kind == kind).collect()
    }
}

/// Names for the systems: each directory's last component, made unique
/// with a number where two directories share a name.
pub fn system_names(dirs: &[PathBuf]) -> Vec<String> {
    let base: Vec<String> = dirs
        .iter()
        .map(|d| {
            let canonical = d.canonicalize().unwrap_or_else(|_| d.clone());
            canonical
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| d.display().to_string())
        })
        .collect();
    base.iter()
        .enumerate()
        .map(|(i, name)| {
            let same = base.iter().filter(|n| *n == name).count();
            if same > 1 {
                let nth = base[..=i].iter().filter(|n| *n == name).count();
                format!("{name} ({nth})")
            } else {
                name.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_directories_and_are_unique() {
        let dirs: Vec<PathBuf> = ["runs/a/eval", "runs/b/eval", "base"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(system_names(&dirs), ["eval (1)", "eval (2)", "base"]);
    }
}
