//! 95% intervals for error rates.
//!
//! * **Subject bootstrap** ([`miss_rate_intervals`]) for FNMR at fixed
//!   thresholds and FNIR: comparisons of one person are correlated, so
//!   subjects (identities), not comparisons, are resampled with
//!   replacement; each replicate's rate is its total misses over its total
//!   trials; the interval is the 2.5th and 97.5th percentile of the
//!   replicates (linear interpolation, numpy's default). Seeded ChaCha8, so
//!   the same seed gives the same interval.
//! * **Clopper–Pearson** ([`clopper_pearson`]) for FMR and FPIR: the
//!   engines do not keep impostor counts per subject, so these are exact
//!   binomial intervals that treat every comparison (or search) as an
//!   independent trial. Impostor comparisons share subjects, so the true
//!   uncertainty is larger: read them as a lower bound on the width.

use std::collections::BTreeMap;

use chacha20::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

/// One trial of a subject: a miss at threshold t iff `score < t`. For FNMR
/// the score is a genuine comparison's; for FNIR(R=1, T) it is
/// [`crate::metrics::identification::mate_score_within`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SubjectScore {
    pub subject: u32,
    pub score: f64,
}

/// The subject-bootstrap 95% interval of the miss rate at each threshold.
/// `None` when there are no samples or no replicates.
pub(crate) fn miss_rate_intervals(
    samples: &[SubjectScore],
    thresholds: &[f64],
    replicates: usize,
    seed: u64,
) -> Option<Vec<[f64; 2]>> {
    if samples.is_empty() || replicates == 0 {
        return None;
    }
    let mut by_subject: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for s in samples {
        by_subject.entry(s.subject).or_default().push(s.score);
    }
    let k = thresholds.len();
    let subjects = by_subject.len();
    let mut trials = Vec::with_capacity(subjects);
    let mut misses = Vec::with_capacity(subjects * k);
    for scores in by_subject.values() {
        trials.push(scores.len() as u64);
        for &t in thresholds {
            misses.push(scores.iter().filter(|&&s| s < t).count() as u64);
        }
    }

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rates = vec![Vec::with_capacity(replicates); k];
    let mut sum_misses = vec![0u64; k];
    for _ in 0..replicates {
        let mut sum_trials = 0u64;
        sum_misses.iter_mut().for_each(|m| *m = 0);
        for _ in 0..subjects {
            let s = rng.random_range(0..subjects);
            sum_trials += trials[s];
            for (acc, &m) in sum_misses.iter_mut().zip(&misses[s * k..(s + 1) * k]) {
                *acc += m;
            }
        }
        for (r, &m) in rates.iter_mut().zip(&sum_misses) {
            r.push(m as f64 / sum_trials as f64);
        }
    }
    Some(
        rates
            .into_iter()
            .map(|mut r| {
                r.sort_by(f64::total_cmp);
                [percentile(&r, 2.5), percentile(&r, 97.5)]
            })
            .collect(),
    )
}

/// numpy's default (linear) percentile of sorted, non-empty values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// The Clopper–Pearson (exact binomial) interval of `errors` in `trials` at
/// `confidence` (0.95 for 95%): the Beta quantiles α/2 of Beta(k, n−k+1) and
/// 1−α/2 of Beta(k+1, n−k), with the closed forms at k = 0 and k = n.
/// `[NaN, NaN]` for zero trials. Agrees with scipy's `beta.ppf` to about
/// 1e-9 relative up to 10^10 trials.
pub fn clopper_pearson(errors: u64, trials: u64, confidence: f64) -> [f64; 2] {
    if trials == 0 || errors > trials {
        return [f64::NAN, f64::NAN];
    }
    let alpha = 1.0 - confidence;
    let (k, n) = (errors as f64, trials as f64);
    let lower = if errors == 0 {
        0.0
    } else if errors == trials {
        (alpha / 2.0).powf(1.0 / n)
    } else {
        beta_quantile(alpha / 2.0, k, n - k + 1.0)
    };
    let upper = if errors == trials {
        1.0
    } else if errors == 0 {
        -((alpha / 2.0).ln() / n).exp_m1()
    } else {
        beta_quantile(1.0 - alpha / 2.0, k + 1.0, n - k)
    };
    [lower, upper]
}

/// The x with I_x(a, b) = p, by bisection (I is increasing in x).
fn beta_quantile(p: f64, a: f64, b: f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if regularized_beta(mid, a, b) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Below this many errors the binomial sum is used: the continued fraction
/// loses digits when the trials are many and the rate tiny.
const BINOMIAL_SUM_LIMIT: f64 = 1000.0;

/// The regularised incomplete beta function I_x(a, b): for a small integer
/// a, the binomial tail P(Bin(a+b−1, x) >= a) summed in log space; otherwise
/// the continued fraction (modified Lentz; Numerical Recipes §6.4).
fn regularized_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    if a <= BINOMIAL_SUM_LIMIT && a.fract() == 0.0 && b.fract() == 0.0 {
        return 1.0 - binomial_cdf(a - 1.0, a + b - 1.0, x);
    }
    let ln_front = a * x.ln() + b * (-x).ln_1p() - ln_beta(a, b);
    if x < (a + 1.0) / (a + b + 2.0) {
        (ln_front.exp() * beta_continued_fraction(x, a, b)) / a
    } else {
        1.0 - (ln_front.exp() * beta_continued_fraction(1.0 - x, b, a)) / b
    }
}

/// P(X <= k) for X ~ Bin(n, x): the terms by their ratio recurrence, in
/// log space (the first, (1−x)^n, underflows for large n·x).
fn binomial_cdf(k: f64, n: f64, x: f64) -> f64 {
    let ln_odds = x.ln() - (-x).ln_1p();
    let mut ln_term = n * (-x).ln_1p();
    let mut ln_terms = Vec::with_capacity(k as usize + 1);
    let mut j = 0.0;
    while j <= k {
        ln_terms.push(ln_term);
        ln_term += ((n - j) / (j + 1.0)).ln() + ln_odds;
        j += 1.0;
    }
    let max = ln_terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = ln_terms.iter().map(|&t| (t - max).exp()).sum();
    (max + sum.ln()).exp().min(1.0)
}

fn beta_continued_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let away_from_zero = |v: f64| if v.abs() < TINY { TINY } else { v };
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / away_from_zero(1.0 - qab * x / qap);
    let mut h = d;
    // One step of modified Lentz's method with coefficient `aa`: the
    // factor by which it moves the convergent.
    let mut step = |aa: f64| {
        d = 1.0 / away_from_zero(1.0 + aa * d);
        c = away_from_zero(1.0 + aa / c);
        d * c
    };
    for m in 1..10_000_000u64 {
        let m = m as f64;
        let m2 = 2.0 * m;
        h *= step(m * (b - m) * x / ((qam + m2) * (a + m2)));
        let del = step(-(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)));
        h *= del;
        if (del - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// ln B(a, b) without the cancellation of ln Γ(a) + ln Γ(b) − ln Γ(a+b)
/// for large arguments (R's `lbeta`): Stirling's form with only the small
/// remainders [`stirling_remainder`] subtracted.
fn ln_beta(a: f64, b: f64) -> f64 {
    let (p, q) = (a.min(b), a.max(b));
    let half_ln_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
    if p >= 10.0 {
        let corr = stirling_remainder(p) + stirling_remainder(q) - stirling_remainder(p + q);
        -0.5 * q.ln()
            + half_ln_2pi
            + corr
            + (p - 0.5) * (p / (p + q)).ln()
            + q * (-p / (p + q)).ln_1p()
    } else if q >= 10.0 {
        let corr = stirling_remainder(q) - stirling_remainder(p + q);
        ln_gamma(p) + corr + p - p * (p + q).ln() + (q - 0.5) * (-p / (p + q)).ln_1p()
    } else {
        ln_gamma(p) + ln_gamma(q) - ln_gamma(p + q)
    }
}

/// ln Γ(x) − ((x − ½) ln x − x + ½ ln 2π) for x >= 10 (Stirling's series).
fn stirling_remainder(x: f64) -> f64 {
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    inv * (1.0 / 12.0
        - inv2
            * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 * (1.0 / 1680.0 - inv2 * (1.0 / 1188.0)))))
}

/// ln Γ(x) for x > 0: Lanczos (g = 7, 9 terms) below 10, Stirling's series
/// above.
fn ln_gamma(x: f64) -> f64 {
    if x >= 10.0 {
        return (x - 0.5) * x.ln() - x
            + 0.5 * (2.0 * std::f64::consts::PI).ln()
            + stirling_remainder(x);
    }
    if x < 0.5 {
        // Reflection keeps the Lanczos sum in its accurate range.
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    let x = x - 1.0;
    let mut sum = C[0];
    for (i, &c) in C.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_subject_has_no_spread_and_a_score_at_the_threshold_is_accepted() {
        // 0.6 sits on the threshold: accepted (score >= threshold), so two
        // of four are misses; counting it as a miss would give 0.75.
        let samples: Vec<SubjectScore> = [0.1, 0.5, 0.6, 0.9]
            .iter()
            .map(|&score| SubjectScore { subject: 7, score })
            .collect();
        let ci = miss_rate_intervals(&samples, &[0.6, 0.0, 0.9, 0.91], 50, 1).unwrap();
        assert_eq!(ci, [[0.5, 0.5], [0.0, 0.0], [0.75, 0.75], [1.0, 1.0]]);
        assert_eq!(miss_rate_intervals(&[], &[0.5], 50, 1), None);
    }

    #[test]
    fn clopper_pearson_closed_forms() {
        // No errors in n trials: the upper bound solves (1 - p)^n = 0.025.
        let [lo, hi] = clopper_pearson(0, 100, 0.95);
        assert_eq!(lo, 0.0);
        assert!(((1.0 - hi).powi(100) - 0.025).abs() < 1e-12);
        let [lo, hi] = clopper_pearson(100, 100, 0.95);
        assert_eq!(hi, 1.0);
        assert!((lo.powi(100) - 0.025).abs() < 1e-12);
        assert!(clopper_pearson(1, 0, 0.95)[0].is_nan());
    }
}
