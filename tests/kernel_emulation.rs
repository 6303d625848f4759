//! Runs the fold and tail kernels (`src/compare/cuda/kernels/`) on the CPU
//! under a small emulation of CUDA's threads and warp intrinsics
//! (`tests/kernel_emu/`), over several tiles and probe blocks (with a row
//! offset) in the engine's order, and checks histogram, mate-rank counts,
//! top-k and the impostor tail (redone tiles, ties beyond the store)
//! against brute force. This is the kernels' logic run where there is no
//! GPU; the GPU tests (`tests/gpu.rs`) check the real thing. The top-k
//! lengths cover each shape of the warp's list (one slot per lane partly
//! or wholly filled, two slots) up to the engine's limit of 64. Skipped,
//! saying so, without a C++20 compiler (`$CXX` or `c++`).

mod require;

use std::path::Path;
use std::process::Command;

fn emulate(top_k: usize, block: usize) {
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
            require::skip("cxx", "kernel_emulation", "no C++ compiler");
            return;
        }
        Ok(out) => panic!(
            "building the emulation failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("cannot run bash: {e}"),
    }
    let run = Command::new(dir.path().join("fold_test")).output().unwrap();
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "top-{top_k}, {block} threads:\n{report}"
    );
    assert_eq!(
        report.lines().filter(|l| l.ends_with(": ok")).count(),
        9,
        "{report}"
    );
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
