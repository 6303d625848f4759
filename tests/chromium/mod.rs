//! Headless Chromium for the tests of the report page: where it is, and
//! one run of it with the flags that work offline in a container.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// `chromium` (Debian) or `chromium-browser` on the PATH.
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// Runs `browser` headless on `url` with `extra` flags (`--dump-dom`,
/// `--screenshot=…`, a window size), its profile and output files in
/// `work`. Returns stdout (the DOM under `--dump-dom`) and stderr, which
/// carries the page's console messages (`:CONSOLE:` lines). Panics after
/// 90 s.
pub fn run(browser: &Path, work: &Path, url: &str, extra: &[String]) -> (String, String) {
    let (out_path, err_path) = (work.join("chromium.out"), work.join("chromium.err"));
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            // Lets the page's scripts finish before the DOM or picture is taken.
            "--virtual-time-budget=3000",
            &format!("--user-data-dir={}", work.join("profile").display()),
        ])
        .args(extra)
        .arg(url)
        // Into files: a page's DOM overflows a pipe nobody reads while waiting.
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("chromium did not finish in 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
    (read(&out_path), read(&err_path))
}
