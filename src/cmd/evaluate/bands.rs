//! Exact operating points beyond the exact tail. A job of more impostor
//! comparisons than `--exact-budget` keeps only its highest scores
//! exactly, so an FMR target whose threshold lies below them would be read
//! in the histogram's bins. Instead the engine keeps every score of the
//! bins around each such threshold ([`ScoreBand`]), placed from a sample
//! of the job's scores. The sample's rows are drawn with the job's seed,
//! so every part of a split job places the same bands; the bands are wide
//! enough that a threshold falls outside its band only with negligible
//! probability, and should one, `fmr_point` finds it and the figure is
//! marked inexact, never silently wrong.

use crate::compare::{
    cpu::products, sort_descending, HistogramSpec, ScoreBand, SplitMix, MAX_BAND_VALUES,
};

/// Rows drawn for each side of the sample: up to 1024 × 1024 scores. Every
/// part of a split job scores the same sample, so it is kept small: at
/// 2048 it took 0.3 s of each part's 3 CPU-seconds on `cargo xtask bench
/// shard` (mostly sorting 4·10^6 scores); 1024 makes bands √2 wider.
pub(super) const SAMPLE_ROWS: usize = 1024;
/// Standard errors on each side of a threshold's estimate.
const Z: f64 = 8.0;
/// Bins added on each side of a band: the engine's scores may differ from
/// the sample's by rounding (the CUDA engine's order of sums), and the
/// score below the threshold must be in the band too.
const PAD: u32 = 2;
/// Fewer impostor scores than this in the sample place no bands.
const MIN_SAMPLE: usize = 1000;

/// `n` of `rows` (all of them when fewer), drawn with `seed`, ascending.
pub(super) fn sample_rows(rows: &[usize], n: usize, seed: u64) -> Vec<usize> {
    let mut pool = rows.to_vec();
    if pool.len() > n {
        let mut rng = SplitMix(seed ^ 0x6261_6e64_7361_6d70);
        for i in 0..n {
            let j = i + (rng.next() % (pool.len() - i) as u64) as usize;
            pool.swap(i, j);
        }
        pool.truncate(n);
    }
    pool.sort_unstable();
    pool
}

/// The impostor scores between a sample of a job's probes (rows) and of
/// its gallery (columns), NaN where a pair is not an impostor pair. For
/// all distinct pairs the two samples are one (`symmetric`).
#[derive(Debug, Clone)]
pub(super) struct Sample {
    rows: usize,
    cols: usize,
    scores: Vec<f32>,
    symmetric: bool,
}

impl Sample {
    /// Scores the sampled rows (L2-normalised, `dim` wide) with the CPU
    /// engine's fp32 products. `gallery` is None for all distinct pairs.
    pub(super) fn new(
        dim: usize,
        probes: (&[f32], &[u32]),
        gallery: Option<(&[f32], &[u32])>,
    ) -> Sample {
        let symmetric = gallery.is_none();
        let (g, g_labels) = gallery.unwrap_or(probes);
        let (rows, cols) = (probes.1.len(), g_labels.len());
        let mut scores = vec![0f32; rows * cols];
        products(probes.0, g, dim, &mut scores);
        for (i, row) in scores.chunks_mut(cols.max(1)).enumerate() {
            for (j, s) in row.iter_mut().enumerate() {
                if probes.1[i] == g_labels[j] || (symmetric && i == j) {
                    *s = f32::NAN;
                }
            }
        }
        Sample {
            rows,
            cols,
            scores,
            symmetric,
        }
    }

    /// Every impostor score once (all distinct pairs: the upper
    /// triangle), descending.
    fn sorted(&self) -> Vec<f32> {
        let out: Vec<f32> = self
            .scores
            .chunks(self.cols.max(1))
            .enumerate()
            .flat_map(|(i, row)| {
                let from = if self.symmetric { i + 1 } else { 0 };
                row[from.min(row.len())..].iter().copied()
            })
            .filter(|s| !s.is_nan())
            .collect();
        sort_descending(out)
    }

    /// The variance of the share of scores >= `t` as an estimate of the
    /// job's share: the pairs' own (binomial) part plus the rows' and the
    /// columns' (Hoeffding's decomposition: the pairs of a sample of rows
    /// are not independent; a row that scores high against everyone moves
    /// many pairs at once).
    fn variance_at(&self, t: f32, share: f64, pairs: usize) -> f64 {
        let spread = |shares: Vec<f64>| {
            let n = shares.len().max(1) as f64;
            let mean = shares.iter().sum::<f64>() / n;
            shares.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n
        };
        let share_of = |scores: &mut dyn Iterator<Item = f32>| {
            let (mut above, mut all) = (0u64, 0u64);
            for s in scores.filter(|s| !s.is_nan()) {
                all += 1;
                above += u64::from(s >= t);
            }
            (all > 0).then(|| above as f64 / all as f64)
        };
        let cols = self.cols.max(1);
        let rows: Vec<f64> = self
            .scores
            .chunks(cols)
            .filter_map(|row| share_of(&mut row.iter().copied()))
            .collect();
        let rows_part = spread(rows) / self.rows.max(1) as f64;
        let units = if self.symmetric {
            // One sample on both sides: U-statistic, 4·ζ1/n.
            4.0 * rows_part
        } else {
            let columns: Vec<f64> = (0..self.cols)
                .filter_map(|j| share_of(&mut (0..self.rows).map(|i| self.scores[i * cols + j])))
                .collect();
            rows_part + spread(columns) / self.cols.max(1) as f64
        };
        share * (1.0 - share) / pairs as f64 + units
    }
}

/// The score bands of a job of `impostors` impostor comparisons around
/// the thresholds of FMR `targets`, merged, ascending, as long as the f32
/// values they span fit [`MAX_BAND_VALUES`] (an engine keeps a counter per
/// value, so a band costs its width, not its scores); and the targets left
/// without a band (all of them when the sample is too small to place any).
pub(super) fn target_bands(
    sample: &Sample,
    impostors: u64,
    targets: &[f64],
    spec: HistogramSpec,
) -> (Vec<ScoreBand>, Vec<f64>) {
    let sorted = sample.sorted();
    let m = sorted.len();
    if m < MIN_SAMPLE || impostors == 0 {
        return (Vec::new(), targets.to_vec());
    }
    let mut targets = targets.to_vec();
    targets.sort_by(f64::total_cmp);
    let mut bands = Vec::new();
    let mut refused = Vec::new();
    for f in targets {
        let k = f * m as f64;
        let estimate = sorted[(k as usize).min(m - 1)];
        let sd = sample.variance_at(estimate, f, m).sqrt() * m as f64;
        let (k_low, k_high) = (k - Z * sd - 1.0, k + Z * sd + 1.0);
        let upper = if k_low < 0.0 {
            1.0
        } else {
            sorted[k_low as usize]
        };
        let lower = sorted.get(k_high.ceil() as usize).copied().unwrap_or(-1.0);
        let band = ScoreBand {
            low: (spec.bin(lower) as u32).saturating_sub(PAD),
            high: (spec.bin(upper) as u32 + PAD + 1).min(spec.bins),
        };
        let mut with = bands.clone();
        with.push(band);
        let values: u64 = merge_bands(with).iter().map(|b| b.values(spec)).sum();
        if values <= MAX_BAND_VALUES {
            bands.push(band);
        } else {
            refused.push(f);
        }
    }
    (merge_bands(bands), refused)
}

/// Overlapping or touching bands as one, ascending.
fn merge_bands(mut bands: Vec<ScoreBand>) -> Vec<ScoreBand> {
    bands.sort_unstable();
    let mut out: Vec<ScoreBand> = Vec::with_capacity(bands.len());
    for b in bands {
        match out.last_mut() {
            Some(last) if b.low <= last.high => last.high = last.high.max(b.high),
            _ => out.push(b),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_drawn_alike_for_a_seed() {
        let rows: Vec<usize> = (10..110).collect();
        let a = sample_rows(&rows, 20, 7);
        assert_eq!(a, sample_rows(&rows, 20, 7));
        assert_eq!(a.len(), 20);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert!(a.iter().all(|r| rows.contains(r)));
        assert_ne!(a, sample_rows(&rows, 20, 8));
        assert_eq!(sample_rows(&rows[..5], 20, 7), rows[..5]);
    }

    #[test]
    fn bands_merge_when_they_touch() {
        let b = |low, high| ScoreBand { low, high };
        assert_eq!(
            merge_bands(vec![b(10, 20), b(1, 3), b(15, 25), b(25, 30), b(40, 41)]),
            [b(1, 3), b(10, 30), b(40, 41)]
        );
    }

    #[test]
    fn bands_fit_their_values_or_are_refused() {
        let (n, dim) = (1000, 64);
        let mut rng = SplitMix(3);
        let rows: Vec<f32> = (0..n * dim).map(|_| rng.uniform()).collect();
        let rows = crate::compare::Embeddings::normalized(rows, dim).unwrap();
        let labels: Vec<u32> = (0..n as u32).map(|i| i / 4).collect();
        let sample = Sample::new(dim, (rows.as_slice(), &labels), None);
        let spec = HistogramSpec::DEFAULT;
        let (bands, refused) = target_bands(&sample, 1_000_000_000, &[1e-1, 1e-2], spec);
        assert!(!bands.is_empty() && refused.is_empty());
        assert!(bands.iter().map(|b| b.values(spec)).sum::<u64>() <= MAX_BAND_VALUES);
        // Around cosine 0 f32 values crowd: no band.
        let (bands, refused) = target_bands(&sample, 1_000_000_000, &[0.5], spec);
        assert!(bands.is_empty() && refused == [0.5]);
    }
}
