//! The CUDA engine against a brute-force reference (the definitions in
//! `compare/mod.rs`, scores in float64) and against the CPU engine, on the
//! same data: top-k identical (ties within 1e-5 may swap), histogram counts
//! identical except pairs within 1e-6 of a bin edge, every score within
//! 1e-5 in fp32. Skipped, saying so, where no GPU is usable.
//!
//! `scripts/gpu-check.sh` runs this executable on a GPU machine.

mod require;

use facekit::compare::cpu::CpuEngine;
use facekit::compare::cuda::CudaEngine;
use facekit::compare::Precision;
use facekit::compare::{
    Candidate, CompareJob, CompareResult, Embeddings, Engine, HistogramSpec, Pairing, ProbeResult,
};
use facekit::compare::{SplitMix, TileShape};

const TOL: f64 = 1e-5;
const EDGE: f64 = 1e-6;

fn gpu(precision: Precision) -> Option<CudaEngine> {
    match CudaEngine::new(0, precision) {
        Ok(engine) => Some(engine),
        Err(e) => {
            require::skip(
                "gpu",
                &require::this_test(),
                &format!("no usable GPU ({e})"),
            );
            None
        }
    }
}

/// Roughly normal: a sum of four uniforms in [0, 1), centred.
fn normal(rng: &mut SplitMix) -> f32 {
    (0..4)
        .map(|_| (rng.next() >> 40) as f32 / (1u64 << 24) as f32)
        .sum::<f32>()
        - 2.0
}

/// `ids` identities, `per_id` images each: an identity centre plus noise,
/// so genuine scores sit high and impostors spread around zero. Every
/// 97th row repeats the one before it, to make exact ties.
fn faces(ids: usize, per_id: usize, dim: usize, noise: f32, seed: u64) -> (Embeddings, Vec<u32>) {
    let mut rng = SplitMix(seed);
    let centres: Vec<Vec<f32>> = (0..ids)
        .map(|_| (0..dim).map(|_| normal(&mut rng)).collect())
        .collect();
    let mut data = Vec::with_capacity(ids * per_id * dim);
    let mut labels = Vec::new();
    for n in 0..ids * per_id {
        let id = n % ids;
        if n % 97 == 96 {
            let prev = data[(n - 1) * dim..n * dim].to_vec();
            data.extend_from_slice(&prev);
            labels.push(labels[n - 1]);
            continue;
        }
        data.extend(centres[id].iter().map(|c| c + noise * normal(&mut rng)));
        labels.push(id as u32);
    }
    (Embeddings::normalized(data, dim).unwrap(), labels)
}

fn exact(a: &Embeddings, i: usize, b: &Embeddings, j: usize) -> f64 {
    a.row(i)
        .iter()
        .zip(b.row(j))
        .map(|(&x, &y)| x as f64 * y as f64)
        .sum()
}

/// The definitions, brute force. Also returns the number of impostor
/// pairs within EDGE of a bin edge (their bin may differ by rounding).
fn reference(job: &CompareJob<'_>) -> (CompareResult, u64) {
    let ad = job.pairing == Pairing::AllDistinct;
    let (gallery, gl) = if ad {
        (job.probes, job.probe_labels)
    } else {
        (job.gallery, job.gallery_labels)
    };
    let h = job.histogram;
    let mut hist = vec![0u64; h.bins as usize];
    let mut genuine = Vec::new();
    let mut genuine_subjects = Vec::new();
    let mut tail = Vec::new();
    let mut near_edge = 0;
    let mut probes = Vec::new();
    for i in 0..job.probes.rows() {
        let mut cands = Vec::new();
        let mut mates = Vec::new();
        let mut non_mates = Vec::new();
        for j in 0..gallery.rows() {
            if ad && i == j {
                continue;
            }
            let s64 = exact(job.probes, i, gallery, j);
            let s = s64 as f32;
            cands.push(Candidate {
                index: j as u32,
                score: s,
            });
            if job.probe_labels[i] == gl[j] {
                mates.push(s);
                if !ad || j > i {
                    genuine.push(s);
                    genuine_subjects.push(job.probe_labels[i]);
                }
            } else {
                non_mates.push(s);
                if !ad || j > i {
                    hist[h.bin(s)] += 1;
                    tail.push(s);
                    let x = (s64 + 1.0) * h.bins as f64 / 2.0;
                    if (x - x.round()).abs() * 2.0 / (h.bins as f64) < EDGE {
                        near_edge += 1;
                    }
                }
            }
        }
        cands.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
        cands.truncate(job.top_k);
        let mate_score = mates.iter().copied().reduce(f32::max);
        let mate_rank =
            mate_score.map(|m| 1 + non_mates.iter().filter(|&&s| s >= m).count() as u64);
        probes.push(ProbeResult {
            top: cands,
            mate_score,
            mate_rank,
        });
    }
    tail.sort_by(|a, b| b.total_cmp(a));
    tail.truncate(job.tail_capacity);
    (
        CompareResult {
            genuine,
            genuine_subjects,
            impostor_hist: hist,
            impostor_tail: tail,
            probes,
        },
        near_edge,
    )
}

fn close(a: f32, b: f32, tol: f64) -> bool {
    ((a as f64) - (b as f64)).abs() <= tol
}

/// Asserts that `got` agrees with `want` within the tolerances of the
/// module docs, naming the case and the first disagreement.
fn assert_agree(
    case: &str,
    job: &CompareJob<'_>,
    got: &CompareResult,
    want: &CompareResult,
    near_edge: u64,
) {
    let ad = job.pairing == Pairing::AllDistinct;
    let (gallery, gl) = if ad {
        (job.probes, job.probe_labels)
    } else {
        (job.gallery, job.gallery_labels)
    };

    assert_eq!(
        got.impostor_count(),
        want.impostor_count(),
        "{case}: impostor count"
    );
    let moved: u64 = got
        .impostor_hist
        .iter()
        .zip(&want.impostor_hist)
        .map(|(a, b)| a.abs_diff(*b))
        .sum();
    assert!(
        moved <= 2 * near_edge,
        "{case}: {moved} bin counts differ, {near_edge} pairs near an edge"
    );

    let sorted = |v: &[f32]| {
        let mut v = v.to_vec();
        v.sort_by(f32::total_cmp);
        v
    };
    let (g1, g2) = (sorted(&got.genuine), sorted(&want.genuine));
    assert_eq!(g1.len(), g2.len(), "{case}: genuine count");
    for (a, b) in g1.iter().zip(&g2) {
        assert!(close(*a, *b, TOL), "{case}: genuine {a} vs {b}");
    }

    assert_eq!(
        got.impostor_tail.len(),
        want.impostor_tail.len(),
        "{case}: tail length"
    );
    for (q, (a, b)) in got
        .impostor_tail
        .iter()
        .zip(&want.impostor_tail)
        .enumerate()
    {
        assert!(close(*a, *b, TOL), "{case}: tail[{q}] {a} vs {b}");
    }

    assert_eq!(got.probes.len(), want.probes.len(), "{case}: probe count");
    for (i, (a, b)) in got.probes.iter().zip(&want.probes).enumerate() {
        assert_eq!(a.top.len(), b.top.len(), "{case}: probe {i} top length");
        for (q, (x, y)) in a.top.iter().zip(&b.top).enumerate() {
            assert!(
                close(x.score, y.score, TOL),
                "{case}: probe {i} top[{q}] score {} vs {}",
                x.score,
                y.score
            );
            if x.index != y.index {
                // A swap among ties: the candidate given must score as the
                // expected one does.
                let s = exact(job.probes, i, gallery, x.index as usize);
                assert!(
                    (s - y.score as f64).abs() <= TOL,
                    "{case}: probe {i} top[{q}] {} vs {}",
                    x.index,
                    y.index
                );
            }
        }
        assert_eq!(
            a.mate_score.is_some(),
            b.mate_score.is_some(),
            "{case}: probe {i} mated"
        );
        if let (Some(x), Some(y)) = (a.mate_score, b.mate_score) {
            assert!(close(x, y, TOL), "{case}: probe {i} mate score {x} vs {y}");
            let (ra, rb) = (a.mate_rank.unwrap(), b.mate_rank.unwrap());
            if ra != rb {
                let ties = (0..gallery.rows())
                    .filter(|&j| !(ad && j == i) && gl[j] != job.probe_labels[i])
                    .filter(|&j| (exact(job.probes, i, gallery, j) - y as f64).abs() <= TOL)
                    .count() as u64;
                assert!(
                    ra.abs_diff(rb) <= ties,
                    "{case}: probe {i} mate rank {ra} vs {rb}"
                );
            }
        }
    }
}

fn job<'a>(
    probes: &'a Embeddings,
    pl: &'a [u32],
    gallery: &'a Embeddings,
    gl: &'a [u32],
    pairing: Pairing,
    top_k: usize,
    bins: u32,
    tail_capacity: usize,
) -> CompareJob<'a> {
    CompareJob {
        probes,
        probe_labels: pl,
        gallery,
        gallery_labels: gl,
        pairing,
        top_k,
        histogram: HistogramSpec { bins },
        tail_capacity,
    }
}

/// Runs one case on the GPU engine and the CPU engine and checks both
/// against the reference.
fn check(case: &str, engine: &CudaEngine, job: &CompareJob<'_>) {
    let (want, near_edge) = reference(job);
    let (got, profile) = engine
        .compare_profiled(job)
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_agree(
        &format!("{case} (cuda vs reference)"),
        job,
        &got,
        &want,
        near_edge,
    );
    let err = profile.max_abs_score_error.expect("sampled error");
    assert!(err <= 1e-5, "{case}: fp32 products off by {err}");
    eprintln!(
        "{case}: agrees ({} tiles, max sampled error {err:.1e})",
        profile.tiles
    );
}

#[test]
fn probe_gallery_in_one_tile_and_in_many() {
    let Some(engine) = gpu(Precision::Fp32) else {
        return;
    };
    let (probes, pl) = faces(220, 3, 96, 0.9, 1);
    let (gallery, gl) = faces(200, 5, 96, 0.9, 2);
    // Probes of identities 0..200 are mated, 200..220 are not.
    let j = job(
        &probes,
        &pl,
        &gallery,
        &gl,
        Pairing::ProbeGallery,
        10,
        1 << 16,
        2000,
    );
    check("probe-gallery, one tile", &engine, &j);
    let small = engine.with_tile(TileShape {
        rows: 64,
        cols: 128,
    });
    check("probe-gallery, 64×128 tiles", &small, &j);
    // Top-1, a histogram coarser than the window, a long tail that forces
    // the store's compaction on the device.
    let j1 = job(
        &probes,
        &pl,
        &gallery,
        &gl,
        Pairing::ProbeGallery,
        1,
        1000,
        200_000,
    );
    check("probe-gallery, top-1, 1000 bins", &small, &j1);
}

#[test]
fn all_distinct_with_a_streamed_gallery_and_wide_histogram() {
    let Some(engine) = gpu(Precision::Fp32) else {
        return;
    };
    let (rows, labels) = faces(250, 4, 100, 1.1, 3);
    // 2^18 bins: wider than the fold's shared-memory window, so scores out
    // of it take the global path.
    let j = job(
        &rows,
        &labels,
        &rows,
        &labels,
        Pairing::AllDistinct,
        7,
        1 << 18,
        5000,
    );
    check("all-distinct, resident", &engine, &j);
    let streamed = engine
        .with_tile(TileShape {
            rows: 96,
            cols: 256,
        })
        .with_streamed_gallery();
    check("all-distinct, streamed gallery", &streamed, &j);
    let j0 = job(
        &rows,
        &labels,
        &rows,
        &labels,
        Pairing::AllDistinct,
        0,
        1 << 16,
        0,
    );
    check("all-distinct, no top-k, no tail", &streamed, &j0);
}

#[test]
fn reduced_precisions_report_their_error() {
    let Some(engine) = gpu(Precision::Fp32) else {
        return;
    };
    drop(engine);
    let (probes, pl) = faces(100, 3, 128, 0.8, 4);
    let (gallery, gl) = faces(120, 4, 128, 0.8, 5);
    let j = job(
        &probes,
        &pl,
        &gallery,
        &gl,
        Pairing::ProbeGallery,
        10,
        1 << 16,
        1000,
    );
    let (want, _) = reference(&j);
    for (p, bound) in [
        (Precision::Tf32, 5e-3),
        (Precision::Bf16, 2e-2),
        (Precision::Fp16, 5e-3),
    ] {
        let engine = CudaEngine::new(0, p).unwrap();
        let (got, profile) = engine.compare_profiled(&j).unwrap();
        let err = profile.max_abs_score_error.unwrap();
        assert!(err > 0.0 && err <= bound, "{p:?}: sampled error {err}");
        assert_eq!(engine.score_error(), Some(err));
        assert_eq!(got.impostor_count(), want.impostor_count(), "{p:?}");
        assert_eq!(got.genuine.len(), want.genuine.len(), "{p:?}");
        let top1 = got
            .probes
            .iter()
            .zip(&want.probes)
            .filter(|(a, b)| a.top[0].index == b.top[0].index)
            .count();
        assert!(
            top1 * 100 >= 95 * want.probes.len(),
            "{p:?}: top-1 agrees for {top1} probes"
        );
        eprintln!(
            "{p:?}: max sampled error {err:.2e}, top-1 agrees for {top1}/{}",
            want.probes.len()
        );
    }
}

#[test]
fn a_top_k_beyond_the_limit_is_an_error() {
    let Some(engine) = gpu(Precision::Fp32) else {
        return;
    };
    let (rows, labels) = faces(10, 2, 16, 0.5, 6);
    let j = job(
        &rows,
        &labels,
        &rows,
        &labels,
        Pairing::AllDistinct,
        10_000,
        1 << 16,
        10,
    );
    let err = engine.compare(&j).unwrap_err().to_string();
    assert!(err.contains("top-k"), "{err}");
}

/// The reference above against the CPU engine, everywhere (no GPU needed):
/// it makes the GPU tests' yardstick trustworthy.
#[test]
fn the_reference_agrees_with_the_cpu_engine() {
    let (probes, pl) = faces(60, 3, 32, 0.9, 7);
    let (gallery, gl) = faces(50, 4, 32, 0.9, 8);
    let (rows, labels) = faces(40, 5, 24, 1.0, 9);
    let cases = [
        job(
            &probes,
            &pl,
            &gallery,
            &gl,
            Pairing::ProbeGallery,
            5,
            1 << 16,
            300,
        ),
        job(
            &rows,
            &labels,
            &rows,
            &labels,
            Pairing::AllDistinct,
            3,
            1000,
            50_000,
        ),
    ];
    for (n, j) in cases.iter().enumerate() {
        let (want, near_edge) = reference(j);
        let cpu = CpuEngine::new().compare(j).unwrap();
        assert_agree(
            &format!("case {n} (cpu vs reference)"),
            j,
            &cpu,
            &want,
            near_edge,
        );
    }
}

/// Every kernel compiles to machine code for Hopper (sm_90) through NVRTC,
/// which needs no GPU (CI installs the `nvidia-cuda-nvrtc==13.0.*` wheel
/// and names its lib folder in FACEKIT_NVRTC_LIB_DIR), the fold at every
/// top-k the engine allows, and ptxas (inside NVRTC) reports no register
/// spills for any of them. The figures are printed.
#[test]
fn every_kernel_compiles_for_sm90_without_spills() {
    use facekit::compare::cuda::{kernels, libs};
    if !libs::nvrtc_present() {
        require::skip(
            "nvrtc",
            "every_kernel_compiles_for_sm90_without_spills",
            &format!("libnvrtc not found (set {})", libs::LIB_DIR_VAR),
        );
        return;
    }
    let mut variants: Vec<(kernels::Source, Vec<String>)> = kernels::ALL
        .iter()
        .map(|s| (*s, kernels::default_defines(s)))
        .collect();
    variants.extend((0..=kernels::MAX_TOP_K).map(|k| (kernels::FOLD, kernels::fold_defines(k))));
    for (source, defines) in &variants {
        let c = kernels::compile(source, "sm_90", defines).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            c.cubin.starts_with(b"\x7fELF"),
            "{}: not a CUBIN",
            source.file
        );
        for f in source.functions {
            assert!(
                c.report.contains(&format!("entry function '{f}'")),
                "{}: no {f} in\n{}",
                source.file,
                c.report
            );
        }
        let resources: Vec<&str> = c
            .report
            .lines()
            .filter(|l| l.contains("registers") || l.contains("spill"))
            .map(str::trim)
            .collect();
        eprintln!(
            "{} {}: {}",
            source.file,
            defines.join(" "),
            resources.join("; ")
        );
        assert!(
            c.report.contains("bytes spill stores"),
            "{}: no report",
            source.file
        );
        assert_eq!(
            c.spill_store_bytes(),
            0,
            "{} {}: spills\n{}",
            source.file,
            defines.join(" "),
            c.report
        );
    }
}
