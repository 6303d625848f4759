//! One class of scores (genuine or impostor) as distinct values with their
//! counts, highest first: the exact step function every verification metric
//! is read from.

use crate::compare::HistogramSpec;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScoreCounts {
    /// Distinct values, strictly descending.
    values: Vec<f64>,
    /// `counts[i]` scores equal `values[i]` (or, for binned scores, lie in
    /// the bin whose lower edge is `values[i]`).
    counts: Vec<u64>,
    /// `above[i]` = sum of `counts[..i]`, the number of scores > `values[i]`.
    above: Vec<u64>,
    total: u64,
}

impl ScoreCounts {
    /// Exact counts of the given scores. NaN scores are dropped by the
    /// caller (they are failures to compare, not scores).
    pub fn from_scores(scores: Vec<f32>) -> ScoreCounts {
        let keys = sort_descending_keys(scores);
        let mut values: Vec<f64> = Vec::new();
        let mut counts: Vec<u64> = Vec::new();
        let mut last_key = None;
        for key in keys {
            if last_key == Some(key) {
                *counts.last_mut().expect("counts follow values") += 1;
                continue;
            }
            last_key = Some(key);
            let s = score_of_key(key) as f64;
            match values.last() {
                // -0.0 and 0.0 have different keys but are one value.
                Some(&last) if last == s => *counts.last_mut().expect("counts follow values") += 1,
                _ => {
                    values.push(s);
                    counts.push(1);
                }
            }
        }
        ScoreCounts::from_runs(values, counts)
    }

    /// Impostor counts from an engine: the exact highest scores (`tail`,
    /// descending, also counted in `hist`) and the histogram. Scores below
    /// the tail are represented by the lower edge of their bin, so the count
    /// of scores >= any listed value is exact, and a threshold chosen among
    /// the values errs on the conservative side by less than one bin.
    pub fn from_binned(tail: &[f32], hist: &[u64], spec: HistogramSpec) -> ScoreCounts {
        let mut rest = hist.to_vec();
        for &s in tail {
            let b = spec.bin(s);
            debug_assert!(rest[b] > 0, "tail score {s} missing from its bin");
            rest[b] = rest[b].saturating_sub(1);
        }
        let exact = ScoreCounts::from_scores(tail.to_vec());
        let mut values = exact.values;
        let mut counts = exact.counts;
        for (i, &n) in rest.iter().enumerate().rev() {
            if n == 0 {
                continue;
            }
            let edge = spec.lower_edge(i);
            match values.last() {
                Some(&last) if last == edge => {
                    *counts.last_mut().expect("counts follow values") += n
                }
                Some(&last) if last < edge => {
                    // A bin above the lowest tail value still holding scores
                    // means the tail was not the highest scores; keep the
                    // order valid by folding the bin into the tail's end.
                    debug_assert!(false, "histogram bin above the exact tail");
                    *counts.last_mut().expect("counts follow values") += n;
                }
                _ => {
                    values.push(edge);
                    counts.push(n);
                }
            }
        }
        ScoreCounts::from_runs(values, counts)
    }

    fn from_runs(values: Vec<f64>, counts: Vec<u64>) -> ScoreCounts {
        let mut above = Vec::with_capacity(counts.len());
        let mut total = 0u64;
        for &c in &counts {
            above.push(total);
            total += c;
        }
        ScoreCounts {
            values,
            counts,
            above,
            total,
        }
    }

    pub fn values(&self) -> &[f64] {
        &self.values
    }
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }
    pub fn total(&self) -> u64 {
        self.total
    }
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The number of scores >= `values()[i]`.
    pub fn at_or_above_index(&self, i: usize) -> u64 {
        self.above[i] + self.counts[i]
    }

    /// The number of scores >= `t`.
    pub fn at_or_above(&self, t: f64) -> u64 {
        // values are descending: find the first index with value < t.
        let i = self.values.partition_point(|&v| v >= t);
        if i == self.values.len() {
            self.total
        } else {
            self.above[i]
        }
    }

    /// The number of scores < `t`.
    pub fn below(&self, t: f64) -> u64 {
        self.total - self.at_or_above(t)
    }
}

/// A u32 whose descending order is the descending `total_cmp` order of the
/// f32 it came from: flip every bit of a negative number, only the sign bit
/// of a positive one, then complement (ascending key = descending score).
#[inline]
fn key_of_score(s: f32) -> u32 {
    let bits = s.to_bits();
    let ascending = if bits >> 31 == 1 {
        !bits
    } else {
        bits | 0x8000_0000
    };
    !ascending
}

#[inline]
fn score_of_key(key: u32) -> f32 {
    let ascending = !key;
    let bits = if ascending >> 31 == 1 {
        ascending & 0x7fff_ffff
    } else {
        !ascending
    };
    f32::from_bits(bits)
}

/// The scores as keys sorted ascending (scores descending): an LSD radix
/// sort, 8 bits a pass, skipping passes whose digit is the same for every
/// score. Several times faster than a comparison sort on 10^7 scores.
fn sort_descending_keys(scores: Vec<f32>) -> Vec<u32> {
    let mut keys: Vec<u32> = scores.into_iter().map(key_of_score).collect();
    if keys.len() < 256 {
        keys.sort_unstable();
        return keys;
    }
    let mut histograms = [[0usize; 256]; 4];
    for &k in &keys {
        for (pass, h) in histograms.iter_mut().enumerate() {
            h[((k >> (8 * pass)) & 0xff) as usize] += 1;
        }
    }
    let mut buffer = vec![0u32; keys.len()];
    for (pass, h) in histograms.iter().enumerate() {
        if h.iter().any(|&c| c == keys.len()) {
            continue;
        }
        let mut offsets = [0usize; 256];
        let mut sum = 0;
        for (o, &c) in offsets.iter_mut().zip(h) {
            *o = sum;
            sum += c;
        }
        let shift = 8 * pass;
        for &k in &keys {
            let d = ((k >> shift) & 0xff) as usize;
            buffer[offsets[d]] = k;
            offsets[d] += 1;
        }
        std::mem::swap(&mut keys, &mut buffer);
    }
    keys
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
        assert_eq!(c.counts(), &[1, 2, 1, 1]);
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
        let scores = [0.95f32, 0.9, 0.6, 0.55, 0.1, 0.05, -0.3, -0.9];
        let mut hist = vec![0u64; 8];
        for &s in &scores {
            hist[spec.bin(s)] += 1;
        }
        let c = ScoreCounts::from_binned(&[0.95, 0.9, 0.6], &hist, spec);
        assert_eq!(c.total(), 8);
        // 0.55 shares the 0.5 bin with the tail's 0.6 and sits at its edge.
        assert_eq!(
            c.values(),
            &[
                0.95f32 as f64,
                0.9f32 as f64,
                0.6f32 as f64,
                0.5,
                0.0,
                -0.5,
                -1.0
            ]
        );
        for v in c.values().to_vec() {
            let truth = scores.iter().filter(|&&s| s as f64 >= v).count() as u64;
            assert_eq!(c.at_or_above(v), truth, "at {v}");
        }
    }
}
