//! Tests that need a tool outside cargo (Python interop, onnxruntime, NVRTC,
//! Chromium, Slurm) may skip on a developer's machine, with one line saying
//! so. `.ci/run` declares what it installed in `FACEKIT_REQUIRE` (a comma
//! list such as `interop,nvrtc,chromium,onnxruntime,slurm`); there a skip of
//! a declared tool is a failure, so a test cannot pass without running.

/// Whether `.ci/run` (or the developer) declared `tool` as installed.
#[allow(dead_code)] // not every test binary that includes this module asks
pub fn is_required(tool: &str) -> bool {
    std::env::var("FACEKIT_REQUIRE")
        .map(|list| list.split(',').any(|t| t.trim() == tool))
        .unwrap_or(false)
}

/// Reports a skip of `test` for want of `tool`: one line on stderr, and a
/// panic (a failed test) when `tool` is declared in `FACEKIT_REQUIRE`.
#[allow(dead_code)]
pub fn skip(tool: &str, test: &str, reason: &str) {
    if is_required(tool) {
        panic!("{test}: FACEKIT_REQUIRE declares {tool}, but {reason}");
    }
    // Straight to stderr, past the harness's capture, so that a plain
    // `cargo test` shows it.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason} (tool: {tool})");
}

/// The running test's name (the harness names its thread after it).
#[allow(dead_code)]
pub fn this_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string()
}
