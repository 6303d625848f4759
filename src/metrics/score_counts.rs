//! One class of scores (genuine or impostor) as distinct values with their
//! counts, highest first: the exact step function every verification metric
//! is read from.

use rayon::prelude::*;

use crate::compare::{
    score_of_descending_key, sorted_keys, split_by_sizes, BandCounts, HistogramSpec,
};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoreCounts {
    /// Distinct values, strictly descending.
    values: Vec<f64>,
    /// `at_or_above[i]` scores are >= `values[i]`; the count at `values[i]`
    /// (for binned scores: in the bin whose lower edge it is) is the
    /// difference from the previous entry. One cumulative vector instead of
    /// counts plus prefix sums: 10^7 distinct values make 80 MB less to
    /// allocate and fault in.
    at_or_above: Vec<u64>,
    total: u64,
    /// The score ranges `[low, high)` whose scores stand at bin edges (the
    /// low end), descending and disjoint; empty when every score is held
    /// as itself. Outside them the values are the scores, ties complete.
    collapsed: Vec<(f64, f64)>,
}

impl ScoreCounts {
    /// Exact counts of the given scores. NaN scores are dropped by the
    /// caller (they are failures to compare, not scores).
    ///
    /// The keys sorted by [`sorted_keys`] (a parallel radix sort), then
    /// each of its buckets written out as distinct values, buckets in
    /// parallel: a run's cumulative count is the bucket's start plus the
    /// run's end, so no bucket waits for another. The result does not
    /// depend on the threads.
    pub fn from_scores(scores: Vec<f32>) -> ScoreCounts {
        let total = scores.len() as u64;
        let (keys, sizes) = sorted_keys(scores);
        let mut starts = Vec::with_capacity(sizes.len());
        let mut sum = 0;
        for &size in &sizes {
            starts.push(sum);
            sum += size;
        }
        let bucket = |b: usize| &keys[starts[b]..starts[b] + sizes[b]];
        let distinct: Vec<usize> = (0..sizes.len())
            .into_par_iter()
            .map(|b| bucket(b).chunk_by(|x, y| x == y).count())
            .collect();
        let mut values = vec![0f64; distinct.iter().sum()];
        let mut at_or_above = vec![0u64; values.len()];
        split_by_sizes(&mut values, &distinct)
            .into_par_iter()
            .zip(split_by_sizes(&mut at_or_above, &distinct))
            .enumerate()
            .for_each(|(b, (values, at_or_above))| {
                let mut end = starts[b];
                let runs = bucket(b).chunk_by(|x, y| x == y);
                for ((v, c), run) in values.iter_mut().zip(at_or_above.iter_mut()).zip(runs) {
                    end += run.len();
                    *v = score_of_descending_key(run[0]) as f64;
                    *c = end as u64;
                }
            });
        ScoreCounts {
            values,
            at_or_above,
            total,
            collapsed: Vec::new(),
        }
    }

    /// Impostor counts from an engine: the exact highest scores (`tail`,
    /// descending, also counted in `hist`), every score of the bins that
    /// the job's score bands cover (`bands`, in ascending order, also
    /// counted in `hist`), and the histogram. Scores held neither way stand
    /// at the lower edge of their bin ("collapsed"), so the count of scores
    /// at or above any listed value is exact, and a threshold chosen among
    /// the values errs on the conservative side by less than one bin.
    ///
    /// Unless the tail holds every score, its lowest value may have tied
    /// scores left out of it (an engine cuts the tail at its capacity), so
    /// that value goes back to its bin: the tail kept is whole. A band bin
    /// whose scores do not add up to its count (an engine that collects no
    /// bands) stays collapsed.
    pub(crate) fn from_binned(
        tail: &[f32],
        bands: &[BandCounts],
        hist: &[u64],
        spec: HistogramSpec,
    ) -> ScoreCounts {
        let total: u64 = hist.iter().sum();
        if tail.len() as u64 >= total && bands.is_empty() {
            // Every score, sorted: the exact counts in one pass (2·10^8 of
            // them took 4 s through the bins and a second sort).
            return ScoreCounts::from_descending(tail);
        }
        let whole = if tail.len() as u64 >= total {
            tail
        } else {
            let lowest = tail.last().copied().unwrap_or(f32::INFINITY);
            &tail[..tail.partition_point(|&s| s > lowest)]
        };
        // Per bin, whether the band counts hold all its scores.
        let band_runs = || bands.iter().rev().flat_map(BandCounts::runs);
        let mut in_band = vec![0u64; hist.len()];
        for (s, n) in band_runs() {
            in_band[spec.bin(s)] += n;
        }
        let complete: Vec<bool> = in_band
            .iter()
            .zip(hist)
            .map(|(&n, &h)| {
                debug_assert!(
                    n == 0 || n == h,
                    "a band bin holds other scores than counted"
                );
                n > 0 && n == h
            })
            .collect();
        let mut rest = hist.to_vec();
        let mut exact = Vec::with_capacity(whole.len());
        for &s in whole {
            let b = spec.bin(s);
            if complete[b] {
                continue;
            }
            debug_assert!(rest[b] > 0, "tail score {s} missing from its bin");
            rest[b] = rest[b].saturating_sub(1);
            exact.push(s);
        }
        for (r, &c) in rest.iter_mut().zip(&complete) {
            if c {
                *r = 0;
            }
        }
        // The tail's values and the bands', both descending, in one list
        // (their bins are disjoint: no value is in both).
        let tail_counts = ScoreCounts::from_scores(exact);
        let mut exact_runs = interleave_descending(
            tail_counts.values.iter().copied().zip(tail_counts.counts()),
            band_runs()
                .filter(|&(s, _)| complete[spec.bin(s)])
                .map(|(s, n)| (s as f64, n)),
        )
        .peekable();

        // The exact values and the collapsed bins' edges, descending, as
        // one list (an edge equal to an exact value adds to its count).
        // Room for every value: pages not written cost nothing.
        let room = tail_counts.values.len()
            + bands.iter().map(BandCounts::width).sum::<usize>()
            + rest.iter().filter(|&&n| n > 0).count();
        let mut values = Vec::with_capacity(room);
        let mut at_or_above = Vec::with_capacity(room);
        let mut sum = 0u64;
        let mut collapsed: Vec<(f64, f64)> = Vec::new();
        let mut push = |values: &mut Vec<f64>, v: f64, n: u64| {
            sum += n;
            if values.last() == Some(&v) {
                *at_or_above.last_mut().expect("counts follow values") = sum;
            } else {
                values.push(v);
                at_or_above.push(sum);
            }
        };
        for (i, &n) in rest.iter().enumerate().rev() {
            if n == 0 {
                continue;
            }
            let edge = spec.lower_edge(i);
            while let Some((v, c)) = exact_runs.next_if(|&(v, _)| v >= edge) {
                push(&mut values, v, c);
            }
            // The bin's scores lie below its next edge and below any exact
            // value in it (those are the tail's, above every other score).
            let top = match values.last() {
                Some(&v) if v < spec.lower_edge(i + 1) => v,
                _ => spec.lower_edge(i + 1),
            };
            // Ranges with no exact value between them are one: the empty
            // bins between hide no score, but nothing is read there either.
            let joins = values
                .last()
                .is_some_and(|&v| collapsed.last().is_some_and(|r| r.0 == v));
            push(&mut values, edge, n);
            match collapsed.last_mut() {
                Some(last) if joins || last.0 == top => last.0 = edge,
                _ => collapsed.push((edge, top)),
            }
        }
        for (v, c) in exact_runs {
            push(&mut values, v, c);
        }
        ScoreCounts {
            values,
            at_or_above,
            total: sum,
            collapsed,
        }
    }

    /// Exact counts of scores sorted descending: runs of equal scores, in
    /// one pass (the same counts as [`ScoreCounts::from_scores`]).
    fn from_descending(scores: &[f32]) -> ScoreCounts {
        debug_assert!(scores.is_sorted_by(|a, b| a >= b), "scores not descending");
        let mut values = Vec::new();
        let mut at_or_above = Vec::new();
        let mut end = 0;
        for run in scores.chunk_by(|a, b| a == b) {
            end += run.len() as u64;
            values.push((run[0] + 0.0) as f64);
            at_or_above.push(end);
        }
        ScoreCounts {
            values,
            at_or_above,
            total: end,
            collapsed: Vec::new(),
        }
    }

    /// The lowest threshold from which on [`ScoreCounts::at_or_above`] is
    /// what the exact scores give at every threshold (-inf when every score
    /// is exact): the top of the highest collapsed range.
    pub fn exact_from(&self) -> f64 {
        self.collapsed.first().map_or(f64::NEG_INFINITY, |r| r.1)
    }

    /// The ranges `[low, high)` whose scores are counted at bin edges,
    /// descending.
    pub(crate) fn collapsed(&self) -> &[(f64, f64)] {
        &self.collapsed
    }

    /// Whether `t` lies in a collapsed range: the count at it is that of
    /// the range's low edge, not the scores'.
    pub(crate) fn collapsed_at(&self, t: f64) -> bool {
        self.collapsed
            .iter()
            .any(|&(low, high)| low <= t && t < high)
    }

    /// Whether every score in `[low, high]` is held as itself.
    pub(crate) fn exact_over(&self, low: f64, high: f64) -> bool {
        !self.collapsed.iter().any(|&(l, h)| l <= high && h > low)
    }

    /// Whether every score is held exactly.
    pub(crate) fn is_exact(&self) -> bool {
        self.collapsed.is_empty()
    }

    pub fn values(&self) -> &[f64] {
        &self.values
    }
    /// The number of scores at each of `values()`.
    pub fn counts(&self) -> impl Iterator<Item = u64> + '_ {
        let before = std::iter::once(0).chain(self.at_or_above.iter().copied());
        self.at_or_above.iter().zip(before).map(|(&a, b)| a - b)
    }
    pub fn total(&self) -> u64 {
        self.total
    }
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The number of scores >= `values()[i]`.
    pub(crate) fn at_or_above_index(&self, i: usize) -> u64 {
        self.at_or_above[i]
    }

    /// The number of scores >= `t`.
    pub(crate) fn at_or_above(&self, t: f64) -> u64 {
        // values are descending: find the first index with value < t.
        match self.values.partition_point(|&v| v >= t) {
            0 => 0,
            i => self.at_or_above[i - 1],
        }
    }

    /// The number of scores < `t`.
    pub fn below(&self, t: f64) -> u64 {
        self.total - self.at_or_above(t)
    }
}

/// Two lists of distinct values and their counts, descending, with no
/// value in both, as one descending list.
fn interleave_descending(
    a: impl Iterator<Item = (f64, u64)>,
    b: impl Iterator<Item = (f64, u64)>,
) -> impl Iterator<Item = (f64, u64)> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if x.0 > y.0 => a.next(),
        (Some(_), None) => a.next(),
        _ => b.next(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_counts_step_at_each_distinct_value() {
        let c = ScoreCounts::from_scores(vec![0.5, 0.1, 0.5, 0.9, -0.2]);
        assert_eq!(
            c.values(),
            &[0.9f32 as f64, 0.5, 0.1f32 as f64, -0.2f32 as f64]
        );
        assert_eq!(c.counts().collect::<Vec<_>>(), [1, 2, 1, 1]);
        assert_eq!(c.total(), 5);
        assert_eq!(c.at_or_above(0.5), 3);
        assert_eq!(c.at_or_above(0.50001), 1);
        assert_eq!(c.at_or_above(2.0), 0);
        assert_eq!(c.at_or_above(-1.0), 5);
        assert_eq!(c.below(0.5), 2);
    }

    #[test]
    fn binned_counts_are_exact_at_listed_values() {
        let spec = HistogramSpec { bins: 8 }; // width 0.25
        let scores = [0.95f32, 0.9, 0.6, 0.6, 0.55, 0.1, 0.05, -0.3, -0.9];
        let mut hist = vec![0u64; 8];
        for &s in &scores {
            hist[spec.bin(s)] += 1;
        }
        // The tail was cut inside the ties at 0.6: its lowest value goes
        // back to its bin, where 0.55 also stands at the edge 0.5.
        let c = ScoreCounts::from_binned(&[0.95, 0.9, 0.6], &[], &hist, spec);
        assert_eq!(c.total(), 9);
        assert_eq!(
            c.values(),
            &[0.95f32 as f64, 0.9f32 as f64, 0.5, 0.0, -0.5, -1.0]
        );
        assert_eq!(c.exact_from(), 0.75);
        assert_eq!(c.collapsed(), &[(-1.0, 0.75)]);
        assert!(!c.is_exact());
        for v in c.values().to_vec() {
            let truth = scores.iter().filter(|&&s| s as f64 >= v).count() as u64;
            assert_eq!(c.at_or_above(v), truth, "at {v}");
        }
        // Thresholds from exact_from on see the exact counts.
        for t in [0.9f32 as f64, 0.92, 0.95f32 as f64, 1.0] {
            let truth = scores.iter().filter(|&&s| s as f64 >= t).count() as u64;
            assert_eq!(c.at_or_above(t), truth, "at {t}");
        }
        // A tail holding every score is the exact counts.
        let mut all = scores.to_vec();
        all.sort_by(|a, b| b.total_cmp(a));
        let whole = ScoreCounts::from_binned(&all, &[], &hist, spec);
        assert_eq!(whole, ScoreCounts::from_scores(scores.to_vec()));
        assert!(whole.is_exact());
    }
}
