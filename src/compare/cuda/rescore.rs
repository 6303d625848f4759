//! Decision scores: the one fp32 arithmetic in which the CUDA engine makes
//! every decision (genuine and mate scores, mate ranks, top-k lists, the
//! exact impostor tail), whatever the precision of its products. The fold
//! rescores a product near a decision's bar (`kernels/fold.cu`); this
//! module holds the same sum on the host, the bound on how far a product
//! may be from it, and the tail's last step.

use super::params::TailEntry;
use crate::compare::{CompareJob, Hardest, HistogramSpec, PairScore, Precision};

/// Each probe's best decision score against its mates outside the job's
/// gallery ([`CompareJob::mates_elsewhere`]; `-inf` where it has none), in
/// the genuine kernel's arithmetic ([`decision_score`]): the device's mate
/// scores start from them, so a probe has the same mate score in every
/// block of a split gallery. Few pairs (a probe's mates), scored here.
pub(crate) fn outside_mate_scores(job: &CompareJob<'_>) -> Vec<f32> {
    use rayon::prelude::*;
    let mut best = vec![f32::NEG_INFINITY; job.probes.rows()];
    let Some((rows, labels)) = job.mates_elsewhere else {
        return best;
    };
    let mut of: std::collections::HashMap<u32, Vec<usize>> = Default::default();
    for (j, &label) in labels.iter().enumerate() {
        of.entry(label).or_default().push(j);
    }
    best.par_iter_mut().enumerate().for_each(|(i, b)| {
        for &j in of.get(&job.probe_labels[i]).into_iter().flatten() {
            *b = b.max(decision_score(job.probes.row(i), rows.row(j)));
        }
    });
    best
}

/// The decision score of two rows, bit for bit as `warp_dot32` in
/// `kernels/common.cuh`: partial sum l (of 32) takes the terms l, l + 32,
/// l + 64, ... with fused multiply-adds from 0, then the partial sums meet
/// in a butterfly, partners 16, 8, 4, 2, 1 apart.
pub fn decision_score(a: &[f32], b: &[f32]) -> f32 {
    let mut part = [0f32; 32];
    for (t, (x, y)) in a.iter().zip(b).enumerate() {
        part[t % 32] = x.mul_add(*y, part[t % 32]);
    }
    for o in [16, 8, 4, 2, 1] {
        let before = part;
        for (l, p) in part.iter_mut().enumerate() {
            *p = before[l] + before[l ^ o];
        }
    }
    part[0]
}

/// How the products read an operand in `precision` (tf32 taken as
/// truncated, which is never nearer than rounding); None for fp32.
fn rounded(precision: Precision) -> Option<fn(f32) -> f32> {
    match precision {
        Precision::Fp32 => None,
        Precision::Tf32 => Some(|v| f32::from_bits(v.to_bits() & !0x1fff)),
        Precision::Bf16 => Some(|v| half::bf16::from_f32(v).to_f32()),
        Precision::Fp16 => Some(|v| half::f16::from_f32(v).to_f32()),
    }
}

/// The largest Euclidean distance between a row of `values` (rows of
/// `dim`) and its operands in `precision`, rows in parallel.
pub(crate) fn operand_rounding(precision: Precision, values: &[f32], dim: usize) -> f64 {
    use rayon::prelude::*;
    let Some(round) = rounded(precision) else {
        return 0.0;
    };
    values
        .par_chunks_exact(dim.max(1))
        .map(|row| {
            row.iter()
                .map(|&v| ((round(v) - v) as f64).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .reduce(|| 0.0, f64::max)
}

/// A bound on |product − decision score| for unit rows of `dim` values
/// whose operands are `rounding` (Euclidean) from them. For rows a, b
/// rounded by α, β: |ã·b̃ − a·b| ≤ |β| + |α|(1 + |β|) (Cauchy–Schwarz); the
/// products' sum of `dim` terms adds at most γ'·(1 + e)², with γ' for a
/// unit roundoff of 2^-22 (tensor cores may truncate while they
/// accumulate: four times fp32's 2^-24, in any order), and the decision
/// score's own sum at most γ (2^-24). Widened by 0.1% for rows a rounding
/// off unit length, and by 2^-20 so that the f32 sums and differences the
/// fold compares with it cannot cross a bar the exact ones do not.
pub fn margin(dim: usize, rounding: f64) -> f32 {
    let gamma = |unit: f64| {
        let n = dim as f64 * unit;
        n / (1.0 - n)
    };
    let e = rounding;
    let bound = 2.0 * e + e * e + gamma(2f64.powi(-22)) * (1.0 + e).powi(2) + gamma(2f64.powi(-24));
    (bound * 1.001 + 2f64.powi(-20)) as f32
}

/// The exact impostor tail, the `want` highest decision scores, from the
/// tail store's entries (product, decision score), and the histogram of
/// products made to agree with it. X, the want-th highest product, is
/// among the entries, and so is every pair with product + 2m >= X, the
/// only pairs whose decision score can be in the tail (`tail.cu`). Each of
/// those moves from the bin of its product to that of its decision score,
/// so no bin above the tail's least score holds a pair outside it; but a
/// pair whose product is within a band's `reach` has been moved already.
/// Also the `examples` highest pairs by decision score ([`Hardest`]).
pub(crate) fn exact_tail(
    mut entries: Vec<TailEntry>,
    want: usize,
    margin2: f32,
    spec: HistogramSpec,
    hist: &mut [u64],
    reach: &[(f32, f32)],
    examples: usize,
) -> (Vec<f32>, Vec<PairScore>) {
    if want == 0 {
        return (Vec::new(), Vec::new());
    }
    let x = if entries.len() > want {
        let by_product = |a: &TailEntry, b: &TailEntry| b.product.total_cmp(&a.product);
        let (_, kth, _) = entries.select_nth_unstable_by(want - 1, by_product);
        kth.product
    } else {
        f32::NEG_INFINITY
    };
    entries.retain(|e| e.product + margin2 >= x);
    let mut tail = Vec::with_capacity(entries.len());
    let mut hardest = Vec::new();
    for e in entries {
        if !reach
            .iter()
            .any(|&(lo, hi)| e.product >= lo && e.product <= hi)
        {
            hist[spec.bin(e.product)] -= 1;
            hist[spec.bin(e.decision)] += 1;
        }
        tail.push(e.decision);
        let pair = PairScore {
            score: e.decision,
            probe: e.row,
            gallery: e.col,
        };
        Hardest::Highest.offer(&mut hardest, examples, pair);
    }
    Hardest::Highest.keep(&mut hardest, examples);
    tail.sort_unstable_by(|a, b| b.total_cmp(a));
    tail.truncate(want);
    (tail, hardest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{dot_f64, Embeddings, SplitMix};

    /// The butterfly's order, spelled out for 64 terms: lane sums first,
    /// then pairs 16 apart, and so on.
    #[test]
    fn the_order_is_lanes_then_a_butterfly() {
        let a: Vec<f32> = (0..64).map(|i| 1.0 + i as f32 * 2f32.powi(-20)).collect();
        let b: Vec<f32> = (0..64)
            .map(|i| 1.0 - i as f32 * 3.0 * 2f32.powi(-21))
            .collect();
        let mut lane: Vec<f32> = (0..32)
            .map(|l| a[l + 32].mul_add(b[l + 32], a[l] * b[l]))
            .collect();
        let mut width = 16;
        while width > 0 {
            lane = (0..32).map(|l| lane[l] + lane[l ^ width]).collect();
            width /= 2;
        }
        assert_eq!(decision_score(&a, &b).to_bits(), lane[0].to_bits());
        // Symmetric, and exact where the sums are.
        assert_eq!(decision_score(&a, &b), decision_score(&b, &a));
        assert_eq!(decision_score(&[0.5; 100], &[0.25; 100]), 12.5);
    }

    /// The margin covers the operands' rounding and both sums, for every
    /// precision, on unit rows: the exact product of the rounded operands
    /// is within it of the decision score, with room for the products'
    /// own sum.
    #[test]
    fn rounded_products_stay_within_the_margin() {
        let mut rng = SplitMix(5);
        for dim in [3, 128, 512, 1000] {
            let data: Vec<f32> = (0..24 * dim).map(|_| rng.uniform()).collect();
            let e = Embeddings::normalized(data, dim).unwrap();
            for p in [
                Precision::Fp32,
                Precision::Tf32,
                Precision::Bf16,
                Precision::Fp16,
            ] {
                let m = margin(dim, operand_rounding(p, e.as_slice(), dim)) as f64;
                let round = rounded(p).unwrap_or(|v| v);
                let operands: Vec<f32> = e.as_slice().iter().map(|&v| round(v)).collect();
                let row = |i: usize| &operands[i * dim..(i + 1) * dim];
                let mut worst = 0f64;
                for i in 0..e.rows() {
                    for j in 0..e.rows() {
                        let d = decision_score(e.row(i), e.row(j)) as f64;
                        worst = worst.max((dot_f64(row(i), row(j)) - d).abs());
                    }
                }
                let sums = 1.1 * dim as f64 * 2f64.powi(-22);
                assert!(worst + sums <= m, "{p:?} dim {dim}: {worst} + {sums} > {m}");
                let widest = match p {
                    Precision::Fp32 => 4e-4,
                    Precision::Tf32 | Precision::Fp16 => 2.5e-3,
                    Precision::Bf16 => 1.2e-2,
                };
                assert!(m < widest, "{p:?} dim {dim}: margin {m}");
            }
        }
    }

    /// The tail's last step: the want highest decision scores, the
    /// hardest pairs among them, and each moved pair out of its product's
    /// bin.
    #[test]
    fn the_tail_moves_its_pairs_to_their_decision_bins() {
        let spec = HistogramSpec { bins: 20 };
        // (product, decision): the third pair's product is lower than the
        // fourth's, its decision score higher.
        let entry = |product, decision, row, col| TailEntry {
            product,
            decision,
            row,
            col,
        };
        let entries = vec![
            entry(0.91, 0.90, 0, 7),
            entry(0.72, 0.70, 3, 4),
            entry(0.50, 0.56, 1, 2),
            entry(0.52, 0.49, 0, 5),
            entry(0.10, 0.12, 2, 9),
        ];
        let mut hist = vec![0u64; 20];
        for e in &entries {
            hist[spec.bin(e.product)] += 1;
        }
        let (tail, hardest) = exact_tail(entries, 3, 0.08, spec, &mut hist, &[], 2);
        assert_eq!(tail, vec![0.90, 0.70, 0.56]);
        let pairs: Vec<(u32, u32)> = hardest.iter().map(|p| (p.probe, p.gallery)).collect();
        assert_eq!(pairs, [(0, 7), (3, 4)]);
        // The pair at 0.10 lies below X − 2m = 0.52 − 0.08 and stays.
        assert_eq!(hist[spec.bin(0.10)], 1);
        assert_eq!(hist[spec.bin(0.56)], 1);
        assert_eq!(hist[spec.bin(0.49)], 1);
        assert_eq!(hist.iter().sum::<u64>(), 5);
    }
}
