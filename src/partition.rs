//! Which part of a job one run does, when a job is split over the tasks of a
//! Slurm array or a Kubernetes Indexed Job: `--shard I/N`, or the
//! scheduler's environment (`shared/specs/slurm.md`). A plain run is part
//! 0 of 1. Parts are numbered from 0, as `sbatch --array=0-(N-1)` and
//! `JOB_COMPLETION_INDEX` number them.

use std::fmt;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Part `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    pub index: u32,
    pub count: u32,
}

impl ShardSpec {
    pub(crate) const WHOLE: ShardSpec = ShardSpec { index: 0, count: 1 };

    pub fn new(index: u32, count: u32) -> Result<ShardSpec, PartitionError> {
        if count == 0 {
            return Err(PartitionError::ZeroCount);
        }
        if index >= count {
            return Err(PartitionError::IndexOutOfRange { index, count });
        }
        Ok(ShardSpec { index, count })
    }

    /// This part's place in a grid of probe blocks × `gallery_blocks`
    /// gallery blocks, numbered row by row: part i of n compares probe
    /// block i / g (of n / g) with gallery block i % g (of g).
    pub(crate) fn grid(
        self,
        gallery_blocks: u32,
    ) -> Result<(ShardSpec, ShardSpec), PartitionError> {
        let g = gallery_blocks.max(1);
        if !self.count.is_multiple_of(g) {
            return Err(PartitionError::Grid {
                count: self.count,
                blocks: g,
            });
        }
        Ok((
            ShardSpec {
                index: self.index / g,
                count: self.count / g,
            },
            ShardSpec {
                index: self.index % g,
                count: g,
            },
        ))
    }

    /// This part's contiguous share of `len` items: part i of n holds
    /// `[len·i/n, len·(i+1)/n)`, so the parts tile the range in order and
    /// differ in size by at most one.
    pub(crate) fn range(&self, len: usize) -> Range<usize> {
        let cut = |i: u32| (len as u128 * i as u128 / self.count as u128) as usize;
        cut(self.index)..cut(self.index + 1)
    }

    /// This part's share of items whose costs are `weights`: the cut points
    /// fall where the running cost crosses total·i/n, so each part does
    /// about the same work whatever the weights (e.g. the rows of an upper
    /// triangle). Every item lands in exactly one part.
    pub(crate) fn weighted_range(&self, weights: &[u64]) -> Range<usize> {
        let total: u128 = weights.iter().map(|&w| w as u128).sum();
        let cut = |i: u32| {
            if i == 0 {
                return 0;
            }
            if i == self.count {
                return weights.len();
            }
            let goal = total * i as u128 / self.count as u128;
            // The first item whose preceding cost reaches the goal.
            let mut acc = 0u128;
            for (k, &w) in weights.iter().enumerate() {
                if acc >= goal {
                    return k;
                }
                acc += w as u128;
            }
            weights.len()
        };
        cut(self.index)..cut(self.index + 1)
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for ShardSpec {
    type Err = PartitionError;

    /// `I/N`, e.g. `0/4` … `3/4`.
    fn from_str(s: &str) -> Result<ShardSpec, PartitionError> {
        let bad = || PartitionError::Syntax(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index = i.trim().parse().map_err(|_| bad())?;
        let count = n.trim().parse().map_err(|_| bad())?;
        ShardSpec::new(index, count)
    }
}

/// Where a run's part came from, for summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSource {
    /// No flag and no scheduler: the whole job.
    Whole,
    /// `--shard I/N`.
    Flag,
    /// `SLURM_ARRAY_TASK_ID` / `SLURM_ARRAY_TASK_COUNT`.
    Slurm,
    /// `JOB_COMPLETION_INDEX` and `--shard-count`.
    Kubernetes,
}

impl ShardSource {
    /// How the summary names it.
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            ShardSource::Whole => "whole job (no --shard, no array task)",
            ShardSource::Flag => "--shard",
            ShardSource::Slurm => "Slurm array (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT)",
            ShardSource::Kubernetes => {
                "Kubernetes Indexed Job (JOB_COMPLETION_INDEX, --shard-count)"
            }
        }
    }
}

/// A run's part and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub spec: ShardSpec,
    pub source: ShardSource,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    #[error("--shard {0:?}: expected I/N with 0 <= I < N, e.g. 0/4")]
    Syntax(String),
    #[error("a job cannot be split into 0 parts")]
    ZeroCount,
    #[error("--gallery-blocks {blocks} must divide the job's {count} parts (--shard I/N: N a multiple of it)")]
    Grid { count: u32, blocks: u32 },
    #[error("shard {index}/{count}: parts are numbered 0 to {}", count - 1)]
    IndexOutOfRange { index: u32, count: u32 },
    #[error("{name}={value:?} is not a whole number")]
    Environment { name: &'static str, value: String },
    #[error(
        "JOB_COMPLETION_INDEX={0} is set (a Kubernetes Indexed Job): give --shard-count, the Job's completions"
    )]
    MissingCount(u32),
    #[error("--shard-count {0} needs JOB_COMPLETION_INDEX (a Kubernetes Indexed Job); elsewhere use --shard I/N")]
    CountWithoutIndex(u32),
    #[error("--shard-count {flag} disagrees with {what}'s count of {count}")]
    CountDisagrees {
        flag: u32,
        what: &'static str,
        count: u32,
    },
    #[error(
        "SLURM_ARRAY_TASK_ID={id} does not fall on the array's steps (min {min}, step {step})"
    )]
    SlurmStep { id: u32, min: u32, step: u32 },
}

/// Decides which part this run does: `--shard` first, then a Slurm array
/// task, then a Kubernetes Indexed Job (which needs `--shard-count`, the
/// count not being in its environment), else the whole job. `env` reads a
/// variable (`std::env::var` in the binary, a map in tests).
pub(crate) fn resolve(
    flag: Option<ShardSpec>,
    shard_count: Option<u32>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Shard, PartitionError> {
    if let Some(spec) = flag {
        if let Some(n) = shard_count.filter(|&n| n != spec.count) {
            return Err(PartitionError::CountDisagrees {
                flag: n,
                what: "--shard",
                count: spec.count,
            });
        }
        return Ok(Shard {
            spec,
            source: ShardSource::Flag,
        });
    }
    let number = |name: &'static str| -> Result<Option<u32>, PartitionError> {
        match env(name) {
            None => Ok(None),
            Some(v) if v.trim().is_empty() => Ok(None),
            Some(value) => value
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| PartitionError::Environment { name, value }),
        }
    };
    if let (Some(id), Some(count)) = (
        number("SLURM_ARRAY_TASK_ID")?,
        number("SLURM_ARRAY_TASK_COUNT")?,
    ) {
        if let Some(flag) = shard_count.filter(|&n| n != count) {
            return Err(PartitionError::CountDisagrees {
                flag,
                what: "SLURM_ARRAY_TASK_COUNT",
                count,
            });
        }
        // `--array=1-4` or `--array=0-6:2` number tasks from MIN by STEP.
        let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let step = number("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
        if id < min || (id - min) % step != 0 {
            return Err(PartitionError::SlurmStep { id, min, step });
        }
        return Ok(Shard {
            spec: ShardSpec::new((id - min) / step, count)?,
            source: ShardSource::Slurm,
        });
    }
    match (number("JOB_COMPLETION_INDEX")?, shard_count) {
        (Some(index), Some(count)) => Ok(Shard {
            spec: ShardSpec::new(index, count)?,
            source: ShardSource::Kubernetes,
        }),
        (Some(index), None) => Err(PartitionError::MissingCount(index)),
        (None, Some(count)) => Err(PartitionError::CountWithoutIndex(count)),
        (None, None) => Ok(Shard {
            spec: ShardSpec::WHOLE,
            source: ShardSource::Whole,
        }),
    }
}

/// [`resolve`] against this process's environment.
pub(crate) fn from_environment(
    flag: Option<ShardSpec>,
    shard_count: Option<u32>,
) -> Result<Shard, PartitionError> {
    resolve(flag, shard_count, |name| std::env::var(name).ok())
}

/// The file that makes a directory a part of a split job.
pub(crate) const PART_FILE: &str = "partial.json";
/// The `format` field of [`PART_FILE`].
pub(crate) const PART_FORMAT: &str = "facekit-partial";
/// Bumped whenever a part's contents change meaning; a merge refuses
/// parts of another version.
pub(crate) const PART_VERSION: u32 = 1;

/// Which command wrote a part, and so how it merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartKind {
    Embed,
    Evaluate,
}

/// The header every part carries in [`PART_FILE`]: what wrote it, which
/// part it is, and a fingerprint of the job's inputs and flags (the same in
/// every part of one job, whatever the part) so that a merge refuses parts
/// of different jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartHeader {
    pub format: String,
    pub version: u32,
    pub kind: PartKind,
    pub index: u32,
    pub count: u32,
    /// Where the part came from ([`ShardSource::describe`]).
    pub source: String,
    pub fingerprint: String,
    pub facekit_version: String,
}

impl PartHeader {
    pub fn new(kind: PartKind, shard: Shard, fingerprint: String) -> PartHeader {
        PartHeader {
            format: PART_FORMAT.to_string(),
            version: PART_VERSION,
            kind,
            index: shard.spec.index,
            count: shard.spec.count,
            source: shard.source.describe().to_string(),
            fingerprint,
            facekit_version: crate::VERSION.to_string(),
        }
    }

    /// Writes the header into a (staged) part directory.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let mut text = serde_json::to_string_pretty(self).expect("a header serialises");
        text.push('\n');
        crate::output::write_atomic(dir.join(PART_FILE), text.as_bytes())
    }

    /// Reads the header of the part at `dir`.
    pub fn read(dir: &Path) -> Result<PartHeader, PartError> {
        let path = dir.join(PART_FILE);
        let text = fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => PartError::NotAPart(dir.to_path_buf()),
            _ => PartError::Unreadable {
                path: path.clone(),
                problem: e.to_string(),
            },
        })?;
        let header: PartHeader =
            serde_json::from_str(&text).map_err(|e| PartError::Unreadable {
                path: path.clone(),
                problem: e.to_string(),
            })?;
        if header.format != PART_FORMAT {
            return Err(PartError::Unreadable {
                path,
                problem: format!("format {:?}, not {PART_FORMAT:?}", header.format),
            });
        }
        if header.version != PART_VERSION {
            return Err(PartError::Version {
                part: dir.to_path_buf(),
                version: header.version,
            });
        }
        Ok(header)
    }
}

/// One part of a split job, as a merge sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub dir: PathBuf,
    pub header: PartHeader,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartError {
    #[error("{}: no {PART_FILE}, not a part written with --shard", .0.display())]
    NotAPart(PathBuf),
    #[error("{}: {problem}", path.display())]
    Unreadable { path: PathBuf, problem: String },
    #[error("{}: a part of format version {version}; this facekit merges version {PART_VERSION}", part.display())]
    Version { part: PathBuf, version: u32 },
    #[error("{}: {what} differs from {}'s: not a part of the same job", part.display(), first.display())]
    Mismatch {
        part: PathBuf,
        first: PathBuf,
        what: &'static str,
    },
    #[error("shard {index}/{count} given twice: {} and {}", first.display(), second.display())]
    Duplicate {
        index: u32,
        count: u32,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("shard {index}/{count} is missing (given {given} of {count} parts)")]
    Missing {
        index: u32,
        count: u32,
        given: usize,
    },
    #[error("no parts to merge")]
    Empty,
}

/// Reads the parts at `dirs` and checks that they are every part of one
/// job exactly once: same kind, count, version and fingerprint, no index
/// twice, none missing. Returns them in part order.
pub(crate) fn gather(dirs: &[PathBuf]) -> Result<Vec<Part>, PartError> {
    let mut parts = dirs
        .iter()
        .map(|dir| {
            Ok(Part {
                dir: dir.clone(),
                header: PartHeader::read(dir)?,
            })
        })
        .collect::<Result<Vec<Part>, PartError>>()?;
    let first = parts.first().ok_or(PartError::Empty)?.clone();
    for part in &parts[1..] {
        let (a, b) = (&first.header, &part.header);
        let what = if a.kind != b.kind {
            Some("the command that wrote it")
        } else if a.count != b.count {
            Some("the number of parts")
        } else if a.fingerprint != b.fingerprint {
            Some("the fingerprint of the inputs and flags")
        } else {
            None
        };
        if let Some(what) = what {
            return Err(PartError::Mismatch {
                part: part.dir.clone(),
                first: first.dir.clone(),
                what,
            });
        }
    }
    parts.sort_by_key(|p| p.header.index);
    for pair in parts.windows(2) {
        if pair[0].header.index == pair[1].header.index {
            return Err(PartError::Duplicate {
                index: pair[0].header.index,
                count: pair[0].header.count,
                first: pair[0].dir.clone(),
                second: pair[1].dir.clone(),
            });
        }
    }
    let count = first.header.count;
    if let Some(index) =
        (0..count).find(|&i| parts.get(i as usize).map(|p| p.header.index) != Some(i))
    {
        return Err(PartError::Missing {
            index,
            count,
            given: parts.len(),
        });
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn flag_parses_and_checks_its_range() {
        assert_eq!("2/4".parse(), Ok(ShardSpec { index: 2, count: 4 }));
        assert_eq!(
            "4/4".parse::<ShardSpec>(),
            Err(PartitionError::IndexOutOfRange { index: 4, count: 4 })
        );
        assert_eq!("0/0".parse::<ShardSpec>(), Err(PartitionError::ZeroCount));
        for bad in ["", "3", "a/4", "1/-2", "1/4/5"] {
            assert!(
                matches!(bad.parse::<ShardSpec>(), Err(PartitionError::Syntax(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn ranges_tile_the_items_in_order() {
        for len in [0usize, 1, 5, 7, 100, 1001] {
            for n in [1u32, 2, 3, 7, 16] {
                let mut next = 0;
                for i in 0..n {
                    let r = ShardSpec::new(i, n).unwrap().range(len);
                    assert_eq!(r.start, next);
                    assert!(r.len() <= len / n as usize + 1);
                    next = r.end;
                }
                assert_eq!(next, len);
            }
        }
    }

    #[test]
    fn weighted_ranges_tile_and_balance_a_triangle() {
        // Row i of the upper triangle of 1000 rows holds 999 - i pairs.
        let weights: Vec<u64> = (0..1000u64).map(|i| 999 - i).collect();
        let total: u64 = weights.iter().sum();
        for n in [1u32, 2, 3, 7] {
            let mut next = 0;
            for i in 0..n {
                let r = ShardSpec::new(i, n).unwrap().weighted_range(&weights);
                assert_eq!(r.start, next);
                next = r.end;
                let cost: u64 = weights[r].iter().sum();
                // Within one row's cost of an equal share.
                assert!(cost.abs_diff(total / n as u64) <= 1000, "{i}/{n}: {cost}");
            }
            assert_eq!(next, weights.len());
        }
        assert_eq!(ShardSpec::new(1, 3).unwrap().weighted_range(&[]), 0..0);
    }

    #[test]
    fn the_flag_wins_then_slurm_then_kubernetes() {
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ];
        let got = resolve(Some(ShardSpec::new(1, 2).unwrap()), None, env(&slurm)).unwrap();
        assert_eq!(
            (got.spec, got.source),
            (ShardSpec::new(1, 2).unwrap(), ShardSource::Flag)
        );

        let got = resolve(None, None, env(&slurm)).unwrap();
        assert_eq!(
            (got.spec, got.source),
            (ShardSpec::new(3, 4).unwrap(), ShardSource::Slurm)
        );

        let got = resolve(None, Some(5), env(&[("JOB_COMPLETION_INDEX", "2")])).unwrap();
        assert_eq!(
            (got.spec, got.source),
            (ShardSpec::new(2, 5).unwrap(), ShardSource::Kubernetes)
        );

        let got = resolve(None, None, env(&[])).unwrap();
        assert_eq!(
            (got.spec, got.source),
            (ShardSpec::WHOLE, ShardSource::Whole)
        );
    }

    #[test]
    fn slurm_arrays_that_do_not_start_at_zero() {
        let e = env(&[
            ("SLURM_ARRAY_TASK_ID", "6"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "2"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
        ]);
        assert_eq!(
            resolve(None, None, e).unwrap().spec,
            ShardSpec::new(2, 4).unwrap()
        );
        let e = env(&[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "2"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
        ]);
        assert!(matches!(
            resolve(None, None, e),
            Err(PartitionError::SlurmStep { .. })
        ));
    }

    #[test]
    fn inconsistent_requests_are_refused() {
        assert_eq!(
            resolve(None, None, env(&[("JOB_COMPLETION_INDEX", "1")])),
            Err(PartitionError::MissingCount(1))
        );
        assert_eq!(
            resolve(None, Some(4), env(&[])),
            Err(PartitionError::CountWithoutIndex(4))
        );
        assert_eq!(
            resolve(
                None,
                Some(3),
                env(&[
                    ("SLURM_ARRAY_TASK_ID", "0"),
                    ("SLURM_ARRAY_TASK_COUNT", "4")
                ])
            ),
            Err(PartitionError::CountDisagrees {
                flag: 3,
                what: "SLURM_ARRAY_TASK_COUNT",
                count: 4
            })
        );
        assert!(matches!(
            resolve(Some(ShardSpec::new(0, 2).unwrap()), Some(3), env(&[])),
            Err(PartitionError::CountDisagrees {
                what: "--shard",
                ..
            })
        ));
        assert!(matches!(
            resolve(None, Some(2), env(&[("JOB_COMPLETION_INDEX", "x")])),
            Err(PartitionError::Environment { .. })
        ));
        assert_eq!(
            resolve(None, Some(2), env(&[("JOB_COMPLETION_INDEX", "2")])),
            Err(PartitionError::IndexOutOfRange { index: 2, count: 2 })
        );
    }

    fn write_part(root: &Path, name: &str, index: u32, count: u32, fp: &str) -> PathBuf {
        let dir = root.join(name);
        fs::create_dir_all(&dir).unwrap();
        let shard = Shard {
            spec: ShardSpec::new(index, count).unwrap(),
            source: ShardSource::Flag,
        };
        PartHeader::new(PartKind::Evaluate, shard, fp.to_string())
            .write(&dir)
            .unwrap();
        dir
    }

    #[test]
    fn gather_orders_parts_and_names_the_odd_one() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let p2 = write_part(root, "c", 2, 3, "f");
        let p0 = write_part(root, "a", 0, 3, "f");
        let p1 = write_part(root, "b", 1, 3, "f");
        let parts = gather(&[p2.clone(), p0.clone(), p1.clone()]).unwrap();
        let order: Vec<u32> = parts.iter().map(|p| p.header.index).collect();
        assert_eq!(order, [0, 1, 2]);

        let other = write_part(root, "d", 1, 3, "g");
        let e = gather(&[p0.clone(), other.clone(), p2.clone()]).unwrap_err();
        assert!(
            matches!(&e, PartError::Mismatch { part, .. } if *part == other),
            "{e}"
        );

        let e = gather(&[p0.clone(), p1.clone(), p1.clone(), p2.clone()]).unwrap_err();
        assert!(matches!(e, PartError::Duplicate { index: 1, .. }), "{e}");

        let e = gather(&[p0.clone(), p2.clone()]).unwrap_err();
        assert_eq!(
            e,
            PartError::Missing {
                index: 1,
                count: 3,
                given: 2
            }
        );
        assert!(matches!(
            gather(&[root.to_path_buf()]),
            Err(PartError::NotAPart(_))
        ));
        assert_eq!(gather(&[]), Err(PartError::Empty));
    }
}
