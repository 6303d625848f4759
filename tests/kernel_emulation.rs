//! Runs the genuine, fold and tail kernels (`src/compare/cuda/kernels/`) on
//! the CPU under a small emulation of CUDA's threads and warp intrinsics
//! (`tests/kernel_emu/`), over several tiles and probe blocks (with a row
//! offset) in the engine's order, with products off their decision scores
//! by up to the margin, and checks mate scores, histogram, mate-rank
//! counts, top-k, the impostor tail store (redone tiles, ties beyond the
//! store) and a score band's counters and moved bins against brute force
//! on decision scores; and checks that the
//! kernels' decision score (`warp_dot32`) is `rescore::decision_score` bit
//! for bit. This is the kernels' logic run where there is no GPU; the GPU
//! tests (`tests/gpu.rs`) check the real thing. Without a top-k the
//! all-distinct cases take the engine's triangle of tiles. The top-k
//! lengths cover each shape of the warp's list (one slot per lane partly or wholly
//! filled, two slots) up to the engine's limit of 64. Skipped, saying so,
//! without a C++20 compiler (`$CXX` or `c++`).

mod require;

use std::path::{Path, PathBuf};
use std::process::Command;

use facekit::compare::cuda::rescore::decision_score;
use facekit::compare::{Embeddings, SplitMix};

/// Builds the emulation for one top-k and block size; None (a skip) when
/// there is no C++ compiler.
fn build(top_k: usize, block: usize) -> Option<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kernel_emu/build.sh");
    let built = Command::new("bash")
        .arg(&script)
        .args([top_k.to_string(), block.to_string()])
        .arg(dir.path())
        .output();
    match built {
        Ok(out) if out.status.success() => {}
        Ok(out) if String::from_utf8_lossy(&out.stderr).contains("c++: command not found") => {
            require::skip("cxx", &require::this_test(), "no C++ compiler");
            return None;
        }
        Ok(out) => panic!(
            "building the emulation failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("cannot run bash: {e}"),
    }
    let exe = dir.path().join("fold_test");
    Some((dir, exe))
}

fn emulate(top_k: usize, block: usize) {
    let Some((_dir, exe)) = build(top_k, block) else {
        return;
    };
    let run = Command::new(exe).output().unwrap();
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "top-{top_k}, {block} threads:\n{report}"
    );
    assert_eq!(
        report.lines().filter(|l| l.ends_with(": ok")).count(),
        12,
        "{report}"
    );
}

/// No top-k: the all-distinct cases fold the upper triangle of tiles only.
#[test]
fn fold_and_tail_top0_triangle() {
    emulate(0, 64);
}

#[test]
fn fold_and_tail_top10_two_warps() {
    emulate(10, 64);
}

#[test]
fn fold_and_tail_top1_one_warp() {
    emulate(1, 32);
}

#[test]
fn fold_and_tail_top33_two_slots() {
    emulate(33, 32);
}

#[test]
fn fold_and_tail_top64_at_the_limit() {
    emulate(64, 32);
}

/// Stress rows for the decision score: unit rows, exact repeats, rows one
/// ulp off another in one value (near-ties), rows on a coarse grid (exact
/// sums, ties), and a row of values of very different sizes (where the
/// order of the sum matters most).
fn stress_rows(dim: usize) -> Vec<f32> {
    let mut rng = SplitMix(17 + dim as u64);
    let mut data: Vec<f32> = (0..24 * dim).map(|_| rng.uniform()).collect();
    let units = Embeddings::normalized(data.clone(), dim).unwrap();
    data.clear();
    for i in 0..24 {
        let row = units.row(i);
        data.extend_from_slice(row);
        match i % 4 {
            0 => data.extend_from_slice(row),
            1 => {
                data.extend(row.iter().enumerate().map(
                    |(t, &v)| {
                        if t == i % dim {
                            v.next_up()
                        } else {
                            v
                        }
                    },
                ))
            }
            2 => data.extend((0..dim).map(|t| ((t * 7 + i) % 5) as f32 / 4.0 - 0.5)),
            _ => data.extend((0..dim).map(|t| {
                let scale = [1e-3, 1.0, 1e3][t % 3];
                (rng.uniform() * scale) as f32
            })),
        }
    }
    data
}

/// The kernels' decision score of every pair of stress rows, emulated, is
/// `rescore::decision_score` of the pair, bit for bit.
#[test]
fn the_kernels_decision_score_is_the_hosts() {
    let Some((dir, exe)) = build(1, 32) else {
        return;
    };
    for dim in [1, 40, 512] {
        let rows = stress_rows(dim);
        let n = rows.len() / dim;
        let input = dir.path().join(format!("rows-{dim}.bin"));
        let output = dir.path().join(format!("scores-{dim}.bin"));
        let bytes: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&input, bytes).unwrap();
        let run = Command::new(&exe)
            .arg(&input)
            .arg(dim.to_string())
            .arg(&output)
            .output()
            .unwrap();
        assert!(run.status.success(), "dim {dim}: {run:?}");
        let got: Vec<f32> = std::fs::read(&output)
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(got.len(), n * n, "dim {dim}");
        let row = |i: usize| &rows[i * dim..(i + 1) * dim];
        let mut near_ties = 0;
        for i in 0..n {
            for j in 0..n {
                let want = decision_score(row(i), row(j));
                assert_eq!(
                    got[i * n + j].to_bits(),
                    want.to_bits(),
                    "dim {dim}, rows {i} and {j}: {} vs {want}",
                    got[i * n + j]
                );
                near_ties +=
                    usize::from(i % 8 == 2 && j != i && got[i * n + j] != got[(i + 1) * n + j]);
            }
        }
        // One ulp in one value moves some scores: the rows make near-ties.
        assert!(dim == 1 || near_ties > 0, "dim {dim}: no near-ties");
    }
}
