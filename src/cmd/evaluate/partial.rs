//! The partial state of an evaluation: what the comparisons of one part of
//! a job leave behind, and what every figure of EVAL_DIR is computed from.
//! Each field merges exactly (`shared/specs/slurm.md`): u64 bins are summed,
//! genuine scores and the parts' listed-pair scores and probe results are
//! unions kept in a canonical order, impostor tails are bounded top-lists
//! merged with one tie rule and capacity, the score error is a maximum.
//! A plain run is the merge of its one part, so a merge of N parts gives
//! the same bytes whatever N is.

use crate::compare::{BandCounts, CompareResult, Hardest, PairScore, ProbeResult, ScoreBand};

use super::examples::PER_KIND;

/// What a job keeps exactly of its impostor scores, beside their bins: the
/// `capacity` highest, and every score in `bands`. The same in every part
/// of one job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exact {
    pub capacity: usize,
    pub bands: Vec<ScoreBand>,
}

/// One set of comparisons scored by an engine: every genuine score and the
/// impostors as bins plus their exact highest scores and the exact scores
/// of the job's bands.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Genuine scores, by score descending then subject ascending.
    pub genuine: Vec<f32>,
    /// The identity of each genuine score, or empty when the engine left
    /// them out (then no FNMR interval).
    pub subjects: Vec<u32>,
    /// Impostor counts per histogram bin.
    pub impostor_hist: Vec<u64>,
    /// The highest impostor scores, descending, at most `capacity`.
    pub impostor_tail: Vec<f32>,
    /// How many impostor scores the whole job keeps exactly: the same in
    /// every part of one job.
    pub capacity: usize,
    /// The job's score bands ([`Exact::bands`]).
    pub bands: Vec<ScoreBand>,
    /// Every impostor score in the bands, a [`BandCounts`] per band in
    /// `bands`' order; empty when the engine counted none.
    pub band_counts: Vec<BandCounts>,
    /// The lowest genuine pairs (rows of the labels), at most
    /// [`PER_KIND`], in [`Hardest::Lowest`] order.
    pub hardest_genuine: Vec<PairScore>,
    /// The highest impostor pairs, likewise ([`Hardest::Highest`]).
    pub hardest_impostors: Vec<PairScore>,
}

/// The verification comparisons of a part.
#[derive(Debug, Clone, PartialEq)]
pub enum Verification {
    /// Scored by an engine (all distinct pairs, probe × gallery).
    Scored(Scores),
    /// The scores of the part's share of `--pairs`, in list order.
    Listed(Vec<f32>),
}

/// Everything one part computed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Partial {
    pub verification: Verification,
    /// The search results of the part's block of probes, in probe order
    /// (empty without roles).
    pub probes: Vec<ProbeResult>,
    /// Per `--group-by` flag, per group (in the job's group order): the
    /// group's scores. Empty under `--pairs`, whose groups come from the
    /// listed scores.
    pub groups: Vec<Vec<Scores>>,
    /// The largest sampled score error of the engine's jobs, if sampled.
    pub score_error: Option<f64>,
    /// Why a job ran in another precision than asked for (the first such
    /// note, in part order).
    pub precision_note: Option<String>,
    /// Comparisons made, for the printed summary.
    pub comparisons: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MergeError {
    #[error("the parts hold different kinds of verification results")]
    Kinds,
    #[error("the parts hold {0} and {1} group sets")]
    Groups(usize, usize),
    #[error("the parts' impostor histograms have {0} and {1} bins")]
    Bins(usize, usize),
    #[error("the parts keep {0} and {1} impostor scores exactly")]
    Capacity(usize, usize),
    #[error("the parts keep the exact scores of different score bands")]
    Bands,
    #[error("the gallery blocks of one probe block hold {0} and {1} probes")]
    Probes(usize, usize),
}

impl Scores {
    /// An engine's result for one comparison job, in canonical order.
    pub(crate) fn from_result(r: CompareResult, exact: &Exact) -> Scores {
        let subjects = if r.genuine_subjects.len() == r.genuine.len() {
            r.genuine_subjects
        } else {
            Vec::new()
        };
        let mut s = Scores::canonical(
            r.genuine,
            subjects,
            r.impostor_hist,
            r.impostor_tail,
            exact.capacity,
        );
        s.bands = exact.bands.clone();
        s.band_counts = r.band_counts;
        s.hardest_genuine = r.hardest_genuine;
        s.hardest_impostors = r.hardest_impostors;
        s.cut_hardest();
        s
    }

    /// The hardest pairs cut to [`PER_KIND`] by the lists' tie rule, so
    /// the lists of disjoint parts merge exactly.
    fn cut_hardest(&mut self) {
        Hardest::Lowest.keep(&mut self.hardest_genuine, PER_KIND);
        Hardest::Highest.keep(&mut self.hardest_impostors, PER_KIND);
    }

    /// No comparisons.
    pub fn empty(bins: usize, exact: &Exact) -> Scores {
        Scores {
            genuine: Vec::new(),
            subjects: Vec::new(),
            impostor_hist: vec![0; bins],
            impostor_tail: Vec::new(),
            capacity: exact.capacity,
            bands: exact.bands.clone(),
            band_counts: Vec::new(),
            hardest_genuine: Vec::new(),
            hardest_impostors: Vec::new(),
        }
    }

    fn canonical(
        genuine: Vec<f32>,
        subjects: Vec<u32>,
        impostor_hist: Vec<u64>,
        mut impostor_tail: Vec<f32>,
        capacity: usize,
    ) -> Scores {
        let (genuine, subjects) = if subjects.is_empty() {
            let mut g = genuine;
            g.sort_unstable_by(|a, b| b.total_cmp(a));
            (g, subjects)
        } else {
            let mut pairs: Vec<(f32, u32)> = genuine.into_iter().zip(subjects).collect();
            pairs.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            pairs.into_iter().unzip()
        };
        // Engines and merges give it sorted: checked, not sorted again.
        if !impostor_tail.is_sorted_by(|a, b| a.total_cmp(b).is_ge()) {
            impostor_tail.sort_unstable_by(|a, b| b.total_cmp(a));
        }
        impostor_tail.truncate(capacity);
        Scores {
            genuine,
            subjects,
            impostor_hist,
            impostor_tail,
            capacity,
            bands: Vec::new(),
            band_counts: Vec::new(),
            hardest_genuine: Vec::new(),
            hardest_impostors: Vec::new(),
        }
    }

    /// The scores of disjoint sets of comparisons as one set: genuine
    /// scores united (subjects kept only when every part has them), bins
    /// summed, and the `capacity` highest of the tails (each part's tail
    /// holds its own `capacity` highest, so the highest of the union are
    /// among them; equal scores are equal bits, so ties cannot differ).
    pub fn merge(parts: Vec<Scores>) -> Result<Scores, MergeError> {
        let mut parts = parts.into_iter();
        let Some(first) = parts.next() else {
            return Ok(Scores::empty(0, &Exact::default()));
        };
        let keep_subjects = first.subjects.len() == first.genuine.len();
        let mut acc = first;
        let mut all_subjects = keep_subjects;
        for p in parts {
            if p.impostor_hist.len() != acc.impostor_hist.len() {
                return Err(MergeError::Bins(
                    acc.impostor_hist.len(),
                    p.impostor_hist.len(),
                ));
            }
            if p.capacity != acc.capacity {
                return Err(MergeError::Capacity(acc.capacity, p.capacity));
            }
            if p.bands != acc.bands {
                return Err(MergeError::Bands);
            }
            add_band_counts(&mut acc.band_counts, p.band_counts)?;
            all_subjects &= p.subjects.len() == p.genuine.len();
            acc.genuine.extend(p.genuine);
            acc.subjects.extend(p.subjects);
            for (a, b) in acc.impostor_hist.iter_mut().zip(&p.impostor_hist) {
                *a += b;
            }
            acc.impostor_tail = merge_descending(
                std::mem::take(&mut acc.impostor_tail),
                p.impostor_tail,
                acc.capacity,
            );
            acc.hardest_genuine.extend(p.hardest_genuine);
            acc.hardest_impostors.extend(p.hardest_impostors);
        }
        if !all_subjects {
            acc.subjects.clear();
        }
        let mut merged = Scores::canonical(
            acc.genuine,
            acc.subjects,
            acc.impostor_hist,
            acc.impostor_tail,
            acc.capacity,
        );
        merged.bands = acc.bands;
        merged.band_counts = acc.band_counts;
        merged.hardest_genuine = acc.hardest_genuine;
        merged.hardest_impostors = acc.hardest_impostors;
        merged.cut_hardest();
        Ok(merged)
    }
}

/// The `capacity` highest of two descending lists, descending.
fn merge_descending(a: Vec<f32>, b: Vec<f32>, capacity: usize) -> Vec<f32> {
    // A part with no tail (an empty block) leaves the other as it is.
    if a.is_empty() || b.is_empty() {
        let mut only = if a.is_empty() { b } else { a };
        only.truncate(capacity);
        return only;
    }
    let mut out = Vec::with_capacity((a.len() + b.len()).min(capacity));
    let (mut i, mut j) = (0, 0);
    while out.len() < capacity && (i < a.len() || j < b.len()) {
        let take_a = j == b.len() || (i < a.len() && a[i].total_cmp(&b[j]).is_ge());
        if take_a {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out
}

/// The band counts of other comparisons added to `acc`'s, in place (the
/// merge of many parts allocates none). A side with no counts (an engine
/// that counts none) leaves the other's.
fn add_band_counts(acc: &mut Vec<BandCounts>, more: Vec<BandCounts>) -> Result<(), MergeError> {
    if acc.is_empty() {
        *acc = more;
        return Ok(());
    }
    if more.is_empty() {
        return Ok(());
    }
    if acc.len() != more.len() || !acc.iter_mut().zip(&more).all(|(a, b)| a.add_counts(b)) {
        return Err(MergeError::Bands);
    }
    Ok(())
}

/// The larger of two sampled score errors, either of which may be absent.
pub(crate) fn max_error(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

impl Partial {
    /// The parts of one probe block against each block of the gallery
    /// (`--gallery-blocks`) as that probe block against the whole gallery:
    /// each probe's results combined ([`ProbeResult::with_block`]), the
    /// rest as [`Partial::merge`] unites disjoint comparisons.
    pub fn merge_gallery_blocks(parts: Vec<Partial>, top_k: usize) -> Result<Partial, MergeError> {
        let mut probes: Option<Vec<ProbeResult>> = None;
        let mut rest = Vec::with_capacity(parts.len());
        for mut part in parts {
            let block = std::mem::take(&mut part.probes);
            probes = Some(match probes {
                None => block,
                Some(acc) if acc.len() != block.len() => {
                    return Err(MergeError::Probes(acc.len(), block.len()))
                }
                Some(acc) => acc
                    .into_iter()
                    .zip(block)
                    .map(|(a, b)| a.with_block(b, top_k))
                    .collect(),
            });
            rest.push(part);
        }
        let mut merged = Partial::merge(rest)?;
        merged.probes = probes.unwrap_or_default();
        Ok(merged)
    }

    /// The parts of one job, in part order, as one: the partial state the
    /// whole job would have computed on one machine.
    pub fn merge(parts: Vec<Partial>) -> Result<Partial, MergeError> {
        let mut parts = parts.into_iter();
        let Some(mut acc) = parts.next() else {
            return Ok(Partial {
                verification: Verification::Listed(Vec::new()),
                probes: Vec::new(),
                groups: Vec::new(),
                score_error: None,
                precision_note: None,
                comparisons: 0,
            });
        };
        // Parts are merged pairwise: `Scores::merge` of two is exact, so
        // the order of the folds does not matter.
        for p in parts {
            acc.verification = match (acc.verification, p.verification) {
                (Verification::Scored(a), Verification::Scored(b)) => {
                    Verification::Scored(Scores::merge(vec![a, b])?)
                }
                (Verification::Listed(mut a), Verification::Listed(b)) => {
                    a.extend(b);
                    Verification::Listed(a)
                }
                _ => return Err(MergeError::Kinds),
            };
            acc.probes.extend(p.probes);
            if acc.groups.len() != p.groups.len() {
                return Err(MergeError::Groups(acc.groups.len(), p.groups.len()));
            }
            acc.groups = std::mem::take(&mut acc.groups)
                .into_iter()
                .zip(p.groups)
                .map(|(a, b)| {
                    if a.len() != b.len() {
                        return Err(MergeError::Groups(a.len(), b.len()));
                    }
                    a.into_iter()
                        .zip(b)
                        .map(|(x, y)| Scores::merge(vec![x, y]))
                        .collect()
                })
                .collect::<Result<_, _>>()?;
            acc.score_error = max_error(acc.score_error, p.score_error);
            acc.precision_note = acc.precision_note.or(p.precision_note);
            acc.comparisons += p.comparisons;
        }
        // One part is put in canonical order too, so that a plain run
        // passes through exactly what a merge does.
        if let Verification::Scored(s) = acc.verification {
            acc.verification = Verification::Scored(Scores::merge(vec![s])?);
        }
        Ok(acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(genuine: &[(f32, u32)], hist: &[u64], tail: &[f32], capacity: usize) -> Scores {
        Scores::canonical(
            genuine.iter().map(|g| g.0).collect(),
            genuine.iter().map(|g| g.1).collect(),
            hist.to_vec(),
            tail.to_vec(),
            capacity,
        )
    }

    fn merged(parts: &[&Scores]) -> Scores {
        Scores::merge(parts.iter().map(|s| (*s).clone()).collect()).unwrap()
    }

    #[test]
    fn tails_keep_the_highest_with_ties_at_the_boundary() {
        // Capacity 3: the whole job's tail is 0.9, 0.5, 0.5 whichever part
        // holds which of the tied 0.5s.
        let a = scores(&[(0.7, 1)], &[1, 2], &[0.5, 0.5, 0.2], 3);
        let b = scores(&[(0.7, 0)], &[0, 3], &[0.9, 0.5, 0.1], 3);
        let c = scores(&[], &[4, 0], &[0.5, 0.3], 3);
        let want = scores(
            &[(0.7, 0), (0.7, 1)],
            &[5, 5],
            &[0.9, 0.5, 0.5, 0.5, 0.5, 0.3, 0.2, 0.1],
            3,
        );
        assert_eq!(want.impostor_tail, [0.9, 0.5, 0.5]);
        assert_eq!(merged(&[&a, &b, &c]), want);
        assert_eq!(merged(&[&c, &a, &b]), want);
        assert_eq!(merged(&[&merged(&[&a, &b]), &c]), want);
        assert_eq!(merged(&[&a, &merged(&[&b, &c])]), want);
        assert_eq!(merged(&[&want]), want);
    }

    #[test]
    fn subjects_stay_only_when_every_part_has_them() {
        let a = scores(&[(0.7, 1)], &[0], &[], 0);
        let mut b = scores(&[(0.6, 2)], &[0], &[], 0);
        b.subjects.clear();
        let m = merged(&[&a, &b]);
        assert_eq!((m.genuine, m.subjects), (vec![0.7, 0.6], vec![]));
        let mut other = a.clone();
        other.capacity = 4;
        assert_eq!(
            Scores::merge(vec![a, other]),
            Err(MergeError::Capacity(0, 4))
        );
    }

    fn partial(listed: &[f32], probes: usize, error: Option<f64>) -> Partial {
        Partial {
            verification: Verification::Listed(listed.to_vec()),
            probes: (0..probes)
                .map(|i| ProbeResult::of(&[(i as u32, 0.5)], None))
                .collect(),
            groups: vec![vec![scores(&[(0.4, 0)], &[1], &[0.1], 2)]],
            score_error: error,
            precision_note: None,
            comparisons: listed.len() as u64,
        }
    }

    #[test]
    fn parts_unite_in_part_order() {
        let m = Partial::merge(vec![
            partial(&[0.1, 0.2], 1, Some(1e-3)),
            partial(&[0.3], 2, None),
            partial(&[], 0, Some(2e-3)),
        ])
        .unwrap();
        assert_eq!(m.verification, Verification::Listed(vec![0.1, 0.2, 0.3]));
        assert_eq!(m.probes.len(), 3);
        assert_eq!(m.score_error, Some(2e-3));
        assert_eq!(m.comparisons, 3);
        assert_eq!(m.groups[0][0].genuine, [0.4, 0.4, 0.4]);
        assert_eq!(m.groups[0][0].impostor_tail, [0.1, 0.1]);
        let mut odd = partial(&[], 0, None);
        odd.groups.clear();
        assert_eq!(
            Partial::merge(vec![partial(&[], 0, None), odd]),
            Err(MergeError::Groups(1, 0))
        );
    }
}
