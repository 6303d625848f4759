//! Runs the fold and tail kernels (`src/compare/cuda/kernels/`) on the CPU
//! under a small emulation of CUDA's threads and warp intrinsics
//! (`tests/kernel_emu/`), over several tiles in the engine's order, and
//! checks histogram, mate-rank counts, top-k and the impostor tail against
//! brute force. This is the kernels' logic run where there is no GPU; the
//! GPU tests (`tests/gpu.rs`) check the real thing. Skipped, saying so,
//! without a C++20 compiler (`$CXX` or `c++`).

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
            require::skip("cxx", &require::this_test(), "no C++ compiler (c++)");
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
        6,
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
