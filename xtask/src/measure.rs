//! Running a child process and measuring it: wall time, the peak of the
//! summed resident memory of its process tree (sampled from /proc, so a
//! multi-process pipeline counts all its workers) and the largest single
//! process's peak (from wait4's rusage).

use std::fs;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

#[derive(Debug, Clone)]
pub struct Measured {
    pub seconds: f64,
    /// Peak of the sampled sum of VmRSS over the process tree, bytes.
    pub peak_tree_rss: u64,
    /// ru_maxrss of the largest process, bytes.
    pub peak_process_rss: u64,
    /// User + system CPU time of the process and its waited-for children:
    /// unlike wall time, barely inflated by other load on the machine.
    pub cpu_seconds: f64,
    pub stdout: String,
}

/// Builds the release `facekit` of the workspace at `root` and returns
/// its path.
pub fn build_facekit(root: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let status = Command::new("cargo")
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "facekit",
            "--bin",
            "facekit",
        ])
        .current_dir(root)
        .status()?;
    anyhow::ensure!(status.success(), "cargo build --release failed");
    Ok(root.join("target/release/facekit"))
}

/// `dir`, relative to the workspace at `root` unless absolute.
pub fn in_workspace(root: &std::path::Path, dir: &std::path::Path) -> std::path::PathBuf {
    if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        root.join(dir)
    }
}

pub fn run(cmd: &mut Command) -> anyhow::Result<Measured> {
    let shown = format!("{cmd:?}");
    let start = Instant::now();
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {shown}"))?;
    let pid = child.id() as libc::pid_t;
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let mut peak = 0u64;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(tree_rss(pid as u32));
                thread::sleep(Duration::from_millis(10));
            }
            peak
        })
    };
    let mut stdout = child.stdout.context("child stdout")?;
    let reader = thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).map(|_| s)
    });
    let mut status = 0;
    // SAFETY: plain FFI call on our own child's pid with valid out-pointers;
    // std's `Child` is never waited on after this.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let seconds = start.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let peak_tree_rss = sampler.join().unwrap_or(0);
    let stdout = reader
        .join()
        .map_err(|_| anyhow::anyhow!("stdout reader panicked"))??;
    if waited != pid {
        bail!("waiting for {shown}: {}", std::io::Error::last_os_error());
    }
    if !libc::WIFEXITED(status) {
        bail!("{shown} was killed by signal {}", libc::WTERMSIG(status));
    }
    if libc::WEXITSTATUS(status) != 0 {
        bail!("{shown} exited with status {}", libc::WEXITSTATUS(status));
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    Ok(Measured {
        seconds,
        peak_tree_rss,
        peak_process_rss: usage.ru_maxrss as u64 * 1024,
        cpu_seconds: tv(usage.ru_utime) + tv(usage.ru_stime),
        stdout,
    })
}

/// Summed VmRSS of `pid` and all its descendants, bytes (0 once gone).
fn tree_rss(pid: u32) -> u64 {
    let mut total = 0;
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        let Ok(status) = fs::read_to_string(format!("/proc/{p}/status")) else {
            continue;
        };
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        total += kb * 1024;
        let Ok(tasks) = fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            if let Ok(children) = fs::read_to_string(task.path().join("children")) {
                stack.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
    }
    total
}

/// The median of a non-empty list.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_lists() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn measures_a_child_and_its_memory() {
        let m = run(Command::new("sh").args(["-c", "echo hi; sleep 0.1"])).unwrap();
        assert_eq!(m.stdout.trim(), "hi");
        assert!(m.seconds >= 0.1);
        assert!(m.peak_process_rss > 0);
        assert!(m.cpu_seconds < m.seconds, "sleeping takes no CPU");
        assert!(run(&mut Command::new("false")).is_err());
    }
}
