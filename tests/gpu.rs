//! The CUDA engine against brute force and against the CPU engine, on the
//! same data. Against brute force on its decision scores
//! (`rescore::decision_score`), in every precision: genuine and mate
//! scores, mate ranks, top-k lists, the impostor tail and score bands
//! identical, bit for bit. Against the definitions in float64 and the CPU engine: top-k
//! identical (ties within 1e-5 may swap), histogram counts identical
//! except pairs within 1e-6 of a bin edge, every score within 1e-5.
//! Skipped, saying so, where no GPU is usable.
//!
//! `scripts/gpu-check.sh` runs this executable on a GPU machine.

mod require;

use facekit::compare::cpu::CpuEngine;
use facekit::compare::cuda::rescore::decision_score;
use facekit::compare::cuda::CudaEngine;
use facekit::compare::Precision;
use facekit::compare::{dot_f64, SplitMix, TileShape};
use facekit::compare::{
    BandCounts, Candidate, CompareJob, CompareResult, EmbeddingRows, Embeddings, Engine, Hardest,
    HistogramSpec, PairScore, Pairing, ProbeResult, ScoreBand,
};

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

fn exact(a: EmbeddingRows<'_>, i: usize, b: EmbeddingRows<'_>, j: usize) -> f64 {
    dot_f64(a.row(i), b.row(j))
}

/// The definitions, brute force, with float64 scores. Also returns the
/// number of impostor pairs within EDGE of a bin edge (their bin may differ
/// by rounding).
fn reference(job: &CompareJob<'_>) -> (CompareResult, u64) {
    reference_by(job, |a, b| dot_f64(a, b) as f32)
}

/// The brute force on the CUDA engine's decision scores: its results in
/// every precision, bit for bit, but for the histogram below the tail.
fn decisions(job: &CompareJob<'_>) -> CompareResult {
    reference_by(job, decision_score).0
}

fn reference_by(
    job: &CompareJob<'_>,
    score: impl Fn(&[f32], &[f32]) -> f32,
) -> (CompareResult, u64) {
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
    let (mut hardest_genuine, mut hardest_impostors) = (Vec::new(), Vec::new());
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
            let s = score(job.probes.row(i), gallery.row(j));
            cands.push(Candidate {
                index: j as u32,
                score: s,
            });
            if job.probe_labels[i] == gl[j] {
                mates.push(s);
                if !ad || j > i {
                    genuine.push(s);
                    genuine_subjects.push(job.probe_labels[i]);
                    hardest_genuine.push(pair(s, i, j));
                }
            } else {
                non_mates.push(s);
                if !ad || j > i {
                    hist[h.bin(s)] += 1;
                    tail.push(s);
                    hardest_impostors.push(pair(s, i, j));
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
    // Every score in a band's bins, counted by value.
    let mut band_counts: Vec<BandCounts> =
        job.bands.iter().map(|&b| BandCounts::new(b, h)).collect();
    for &s in &tail {
        for (band, counts) in job.bands.iter().zip(&mut band_counts) {
            if band.holds(h.bin(s)) {
                assert!(counts.add(s, 1), "{s} in its band's bins but not its range");
            }
        }
    }
    tail.truncate(job.tail_capacity);
    Hardest::Lowest.keep(&mut hardest_genuine, job.examples);
    // An engine names impostor pairs from its exact tail ([`CompareResult`]).
    Hardest::Highest.keep(&mut hardest_impostors, job.examples.min(job.tail_capacity));
    (
        CompareResult {
            genuine,
            genuine_subjects,
            impostor_hist: hist,
            impostor_tail: tail,
            probes,
            score_error: None,
            precision_note: None,
            hardest_genuine,
            hardest_impostors,
            band_counts,
        },
        near_edge,
    )
}

fn pair(score: f32, probe: usize, gallery: usize) -> PairScore {
    PairScore {
        score,
        probe: probe as u32,
        gallery: gallery as u32,
    }
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
        probes: probes.view(),
        probe_labels: pl,
        gallery: gallery.view(),
        gallery_labels: gl,
        pairing,
        top_k,
        histogram: HistogramSpec { bins },
        tail_capacity,
        examples: 8,
        bands: &[],
        mates_elsewhere: None,
    }
}

/// Asserts that `got` makes exactly the decisions of `want` (from
/// [`decisions`]): the same genuine scores, tail, mate scores, ranks,
/// top-k lists and score bands (their counts and their bins), bit for
/// bit, and the same impostor count.
fn assert_same_decisions(
    case: &str,
    job: &CompareJob<'_>,
    got: &CompareResult,
    want: &CompareResult,
) {
    let bits = |v: &[f32]| {
        let mut b: Vec<u32> = v.iter().map(|s| s.to_bits()).collect();
        b.sort_unstable();
        b
    };
    assert_eq!(bits(&got.genuine), bits(&want.genuine), "{case}: genuine");
    assert_eq!(got.impostor_tail, want.impostor_tail, "{case}: tail");
    assert_eq!(got.impostor_count(), want.impostor_count(), "{case}: count");
    assert_eq!(got.band_counts, want.band_counts, "{case}: band counts");
    // The faces the report's explorer shows (issue 16).
    assert_eq!(
        got.hardest_genuine, want.hardest_genuine,
        "{case}: hardest genuine pairs"
    );
    assert_eq!(
        got.hardest_impostors, want.hardest_impostors,
        "{case}: hardest impostor pairs"
    );
    for band in job.bands {
        let bins = band.low as usize..band.high as usize;
        assert_eq!(
            got.impostor_hist[bins.clone()],
            want.impostor_hist[bins],
            "{case}: band bins"
        );
    }
    for (i, (a, b)) in got.probes.iter().zip(&want.probes).enumerate() {
        assert_eq!(a, b, "{case}: probe {i}");
    }
}

/// Runs one case on the GPU engine and checks it against its decision
/// scores exactly and against the float64 reference and the CPU engine
/// within the tolerances of the module docs.
fn check(case: &str, engine: &CudaEngine, job: &CompareJob<'_>) {
    let (want, near_edge) = reference(job);
    let (got, profile) = engine
        .compare_profiled(job)
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_same_decisions(
        &format!("{case} (cuda vs decisions)"),
        job,
        &got,
        &decisions(job),
    );
    assert_agree(
        &format!("{case} (cuda vs reference)"),
        job,
        &got,
        &want,
        near_edge,
    );
    // Either engine may bin a pair near an edge differently.
    let cpu = CpuEngine::new().compare(job).unwrap();
    assert_agree(
        &format!("{case} (cuda vs cpu)"),
        job,
        &got,
        &cpu,
        2 * near_edge,
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

/// tf32, bf16 and fp16 products make exactly the decisions of the decision
/// scores (so of fp32): every product near a bar is rescored. Probe ×
/// gallery, all distinct pairs with a top-k (the square) and without (the
/// triangle), one tile and many.
#[test]
fn reduced_precisions_make_the_same_decisions() {
    let Some(engine) = gpu(Precision::Fp32) else {
        return;
    };
    drop(engine);
    let (probes, pl) = faces(100, 3, 128, 0.8, 4);
    let (gallery, gl) = faces(120, 4, 128, 0.8, 5);
    let (rows, labels) = faces(150, 4, 128, 1.0, 10);
    let pairs = |top_k| {
        let (ad, bins, tail) = (Pairing::AllDistinct, 1 << 16, 3000);
        job(&rows, &labels, &rows, &labels, ad, top_k, bins, tail)
    };
    let pg = Pairing::ProbeGallery;
    // A band of 100 bins (cosine 0.1 to 0.103) among the impostor scores:
    // every product within the margin of it is rescored and counted.
    let bands = [ScoreBand {
        low: 36_045,
        high: 36_145,
    }];
    let jobs = [
        job(&probes, &pl, &gallery, &gl, pg, 10, 1 << 16, 1000),
        pairs(5),
        pairs(0),
        CompareJob {
            bands: &bands,
            mates_elsewhere: None,
            ..pairs(0)
        },
    ];
    for (p, bound) in [
        (Precision::Tf32, 5e-3),
        (Precision::Bf16, 2e-2),
        (Precision::Fp16, 5e-3),
    ] {
        let engine = CudaEngine::new(0, p).unwrap();
        let small = CudaEngine::new(0, p).unwrap().with_tile(TileShape {
            rows: 64,
            cols: 128,
        });
        for (n, j) in jobs.iter().enumerate() {
            let want = decisions(j);
            for (shape, e) in [("one tile", &engine), ("64×128 tiles", &small)] {
                let case = format!("{p:?}, job {n}, {shape}");
                let (got, profile) = e
                    .compare_profiled(j)
                    .unwrap_or_else(|e| panic!("{case}: {e}"));
                let err = profile.max_abs_score_error.unwrap();
                assert_eq!(got.score_error, Some(err), "{case}");
                assert!(err > 0.0 && err <= bound, "{case}: sampled error {err}");
                assert!(
                    profile.max_rescored_gap <= profile.margin,
                    "{case}: gap {} past the margin {}",
                    profile.max_rescored_gap,
                    profile.margin
                );
                assert_same_decisions(&case, j, &got, &want);
                eprintln!(
                    "{case}: same decisions (sampled error {err:.2e}, margin {:.2e}, largest \
                     rescored gap {:.2e})",
                    profile.margin, profile.max_rescored_gap
                );
            }
        }
    }
}

/// A gallery in two blocks, each run with the other's rows as mates
/// elsewhere (what `evaluate --gallery-blocks` does), combines to the whole
/// gallery's run: the same candidates, mate scores and ranks (non-mates of
/// both blocks added), and the genuine and impostor counts split between
/// the blocks. Mates sit in both blocks, in one only, and in neither.
/// On the CPU engine everywhere, on the GPU where there is one.
#[test]
fn gallery_blocks_combine_to_the_whole_gallery() {
    blocks_combine("cpu", &CpuEngine::new());
    if let Some(engine) = gpu(Precision::Fp32) {
        blocks_combine("cuda", &engine);
    }
}

fn blocks_combine(name: &str, engine: &dyn Engine) {
    let (probes, pl) = faces(90, 3, 96, 1.3, 11);
    let (gallery, gl) = faces(80, 2, 96, 1.3, 12);
    // Identity 35's two images straddle the split.
    let split = 71;
    let (first, second): (Vec<usize>, Vec<usize>) =
        ((0..split).collect(), (split..gallery.rows()).collect());
    let block = |rows: &[usize]| {
        (
            gallery.select(rows),
            rows.iter().map(|&r| gl[r]).collect::<Vec<u32>>(),
        )
    };
    let (a, al) = block(&first);
    let (b, bl) = block(&second);
    let top_k = 7;
    let whole = job(
        &probes,
        &pl,
        &gallery,
        &gl,
        Pairing::ProbeGallery,
        top_k,
        1 << 16,
        500,
    );
    let want = engine.compare(&whole).unwrap();
    let run = |g: &Embeddings, l: &[u32], other: &Embeddings, ol: &[u32]| {
        let j = CompareJob {
            mates_elsewhere: Some((other.view(), ol)),
            ..job(
                &probes,
                &pl,
                g,
                l,
                Pairing::ProbeGallery,
                top_k,
                1 << 16,
                500,
            )
        };
        engine.compare(&j).unwrap()
    };
    let (ra, rb) = (run(&a, &al, &b, &bl), run(&b, &bl, &a, &al));
    for (i, w) in want.probes.iter().enumerate() {
        let (x, y) = (&ra.probes[i], &rb.probes[i]);
        let mut top: Vec<Candidate> = x.top.clone();
        top.extend(y.top.iter().map(|c| Candidate {
            index: c.index + split as u32,
            score: c.score,
        }));
        top.sort_by(|p, q| q.score.total_cmp(&p.score).then(p.index.cmp(&q.index)));
        top.truncate(top_k);
        assert_eq!(top, w.top, "{name}, probe {i}: candidates");
        for (block, r) in [("first", x), ("second", y)] {
            let m = r.mate_score;
            assert_eq!(
                m, w.mate_score,
                "{name}, probe {i}: mate score, {block} block"
            );
        }
        let rank = x.mate_rank.zip(y.mate_rank).map(|(p, q)| p + q - 1);
        assert_eq!(rank, w.mate_rank, "{name}, probe {i}: rank");
    }
    assert_eq!(
        ra.genuine.len() + rb.genuine.len(),
        want.genuine.len(),
        "{name}: genuine scores"
    );
    let hist: Vec<u64> = ra
        .impostor_hist
        .iter()
        .zip(&rb.impostor_hist)
        .map(|(p, q)| p + q)
        .collect();
    assert_eq!(hist, want.impostor_hist, "{name}: impostor bins");
    let outranked = want.probes.iter().filter(|p| p.mate_rank > Some(1)).count();
    assert!(outranked > 0, "{name}: no mate outranked, ranks untested");
    eprintln!(
        "{name}, gallery blocks: {} probes ({outranked} mates outranked) combine to the whole \
         gallery's results",
        want.probes.len()
    );
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

/// The references above against the CPU engine and each other, everywhere
/// (no GPU needed): it makes the GPU tests' yardsticks trustworthy.
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
        assert_agree(
            &format!("case {n} (decision scores vs reference)"),
            j,
            &decisions(j),
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
