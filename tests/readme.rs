//! Every command in README.md's fenced `sh` blocks runs and exits 0, so the
//! README cannot rot. The commands run in order, in one temporary
//! directory where `data/` points at the repository's `data/` and the
//! release `facekit` binary is first on PATH. `cargo run --release -- X`
//! becomes `facekit X`; other cargo commands (tests, install, benchmarks,
//! builds) cannot run inside a test and are skipped with a note, as are
//! `git` and `cd` lines.

mod require;

use std::path::Path;
use std::process::Command;

/// One command of the README: the line it starts on and its text, with
/// backslash continuations joined.
#[derive(Debug, PartialEq)]
struct Snippet {
    line: usize,
    text: String,
}

/// The commands of every ```sh block (```bash and ```shell too). Comment
/// lines and blank lines are dropped; a leading `$ ` prompt is removed.
fn sh_commands(markdown: &str) -> Vec<Snippet> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut pending: Option<Snippet> = None;
    for (i, raw) in markdown.lines().enumerate() {
        let trimmed = raw.trim();
        if let Some(info) = trimmed.strip_prefix("```") {
            in_block = !in_block && matches!(info.trim(), "sh" | "bash" | "shell");
            continue;
        }
        if !in_block {
            continue;
        }
        let text = trimmed.strip_prefix("$ ").unwrap_or(trimmed);
        if pending.is_none() && (text.is_empty() || text.starts_with('#')) {
            continue;
        }
        let snippet = pending.get_or_insert(Snippet {
            line: i + 1,
            text: String::new(),
        });
        match text.strip_suffix('\\') {
            Some(head) => {
                snippet.text.push_str(head.trim_end());
                snippet.text.push(' ');
            }
            None => {
                snippet.text.push_str(text);
                out.extend(pending.take());
            }
        }
    }
    out.extend(pending);
    out
}

/// What to do with one command.
#[derive(Debug, PartialEq)]
enum Plan {
    Run(String),
    Skip(&'static str),
}

/// The README's model commands (`facekit embed` and what reads its
/// output, named `*_model*`) need the onnxruntime library.
fn needs_onnxruntime(command: &str) -> bool {
    command.contains("_model")
}

fn plan(command: &str) -> Plan {
    if let Some(rest) = command.strip_prefix("cargo run --release --") {
        return Plan::Run(format!("facekit{rest}"));
    }
    let words: Vec<&str> = command.split_whitespace().collect();
    match words.as_slice() {
        ["cargo", "test", ..] => Plan::Skip("the test suite does not run itself"),
        ["cargo", "install", ..] => Plan::Skip("installing is not part of a test"),
        ["cargo", "xtask", "bench", ..] => Plan::Skip("benchmarks take minutes"),
        ["cargo", ..] => {
            Plan::Skip("cargo commands other than `cargo run --release --` need the source tree")
        }
        ["git", ..] => Plan::Skip("no network in tests"),
        ["cd", ..] => Plan::Skip("each command runs in the test's directory"),
        _ => Plan::Run(command.to_string()),
    }
}

#[test]
fn every_readme_command_exits_zero() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(repo.join("README.md")).expect("README.md");
    let commands = sh_commands(&readme);
    assert!(!commands.is_empty(), "README.md has no ```sh block");

    let tmp = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(repo.join("data"), tmp.path().join("data")).unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_facekit")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for snippet in &commands {
        let command = match plan(&snippet.text) {
            Plan::Run(command) => command,
            Plan::Skip(why) => {
                println!(
                    "README.md:{}: skipped `{}`: {why}",
                    snippet.line, snippet.text
                );
                continue;
            }
        };
        if needs_onnxruntime(&command) && std::env::var_os("ORT_DYLIB_PATH").is_none() {
            require::skip(
                "onnxruntime",
                &format!("README.md:{}", snippet.line),
                "ORT_DYLIB_PATH is not set",
            );
            continue;
        }
        println!("README.md:{}: {command}", snippet.line);
        let out = Command::new("sh")
            .arg("-c")
            .arg(&command)
            .current_dir(tmp.path())
            .env("PATH", &path)
            .output()
            .expect("sh runs");
        assert!(
            out.status.success(),
            "README.md:{}: `{command}` exited {:?}\nstdout:\n{}\nstderr:\n{}",
            snippet.line,
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn commands_are_extracted_from_sh_blocks_only() {
    let md = "text\n```sh\n# a comment\ncargo run --release -- demo\n\nfacekit search --gallery a \\\n    --probes b\n```\n```rust\nfn main() {}\n```\n```\nplain\n```\n```bash\n$ cargo test --release\n```\n";
    let found = sh_commands(md);
    assert_eq!(
        found,
        vec![
            Snippet {
                line: 4,
                text: "cargo run --release -- demo".into()
            },
            Snippet {
                line: 6,
                text: "facekit search --gallery a --probes b".into()
            },
            Snippet {
                line: 16,
                text: "cargo test --release".into()
            },
        ]
    );
    assert_eq!(plan(&found[0].text), Plan::Run("facekit demo".into()));
    assert_eq!(plan(&found[1].text), Plan::Run(found[1].text.clone()));
    assert!(matches!(plan(&found[2].text), Plan::Skip(_)));
    assert!(matches!(plan("cargo install --path ."), Plan::Skip(_)));
    assert!(matches!(plan("cargo xtask bench evaluate"), Plan::Skip(_)));
}
