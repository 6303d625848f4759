//! The speed figure of the issue, printed, never asserted: 10^7 impostor
//! and 10^4 genuine scores already in memory, every verification metric.
//! `cargo test --release --lib metrics::speed_tests -- --ignored --nocapture`

use std::time::Instant;

use chacha20::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use super::verification::verification;
use super::ScoreCounts;

fn normal_scores(n: usize, mean: f64, sd: f64, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n)
        .map(|_| {
            // Box-Muller.
            let (u, v): (f64, f64) = (rng.random::<f64>().max(f64::MIN_POSITIVE), rng.random());
            let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
            (mean + sd * z).clamp(-1.0, 1.0) as f32
        })
        .collect()
}

/// This process's CPU time (user + system, all threads) in seconds, from
/// /proc/self/stat (10 ms ticks): the machine is shared, so wall time alone
/// says little.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (ticks(11) + ticks(12)) / 100.0
}

#[test]
#[ignore = "timing, run by hand"]
fn ten_million_impostor_scores() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let impostor = normal_scores(10_000_000, 0.0, 0.1, &mut rng);
    let genuine = normal_scores(10_000, 0.45, 0.1, &mut rng);
    let targets = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1];
    let cpu = cpu_seconds();
    let start = Instant::now();
    let i = ScoreCounts::from_scores(impostor);
    let g = ScoreCounts::from_scores(genuine);
    let counted = start.elapsed();
    let cpu_counted = cpu_seconds();
    let report = verification(&g, &i, &targets).expect("both classes present");
    let total = start.elapsed();
    let cpu_total = cpu_seconds();
    println!(
        "cpu: counts {:.0} ms, metrics {:.0} ms",
        (cpu_counted - cpu) * 1e3,
        (cpu_total - cpu_counted) * 1e3
    );
    println!(
        "10^7 impostor + 10^4 genuine: counts {:.1} ms, metrics {:.1} ms, total {:.1} ms \
         ({} distinct impostor values, {} roc.csv rows, EER {:.5}, AUC {:.6})",
        counted.as_secs_f64() * 1e3,
        (total - counted).as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3,
        i.values().len(),
        report.roc.len(),
        report.summary.eer,
        report.summary.auc,
    );
}
