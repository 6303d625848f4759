//! Verification pair lists in the K-Face / LFW line format
//! `path1 path2 1|0` (1: same identity), as `facekit pairs` writes them.
//! Paths are matched to the `path` column of the labels.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PairsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: line {line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: no pairs")]
    Empty { path: PathBuf },
}

/// One listed pair: row indices into the labels and the listed truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    pub first: usize,
    pub second: usize,
    pub same: bool,
}

/// A path as written in either file: forward slashes, no leading `./`.
fn normalise(path: &str) -> String {
    let p = path.trim().replace('\\', "/");
    p.strip_prefix("./").unwrap_or(&p).to_string()
}

/// Reads a pair list, resolving each path to its row in `label_paths`.
pub(crate) fn read_pairs(path: &Path, label_paths: &[String]) -> Result<Vec<Pair>, PairsError> {
    let mut rows: HashMap<String, usize> = HashMap::with_capacity(label_paths.len());
    for (i, p) in label_paths.iter().enumerate() {
        rows.entry(normalise(p)).or_insert(i);
    }
    let file = std::fs::File::open(path).map_err(|source| PairsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut pairs = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| PairsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let err = |message: String| PairsError::Line {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let fields: Vec<&str> = if line.contains('\t') {
            line.split('\t').collect()
        } else {
            line.split_whitespace().collect()
        };
        if fields.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let [first, second, same] = fields[..] else {
            return Err(err(format!(
                "{} fields; expected `path1 path2 1|0`",
                fields.len()
            )));
        };
        let same = match same.trim() {
            "1" => true,
            "0" => false,
            other => return Err(err(format!("label {other:?}; expected 1 or 0"))),
        };
        let row = |p: &str| {
            rows.get(&normalise(p))
                .copied()
                .ok_or_else(|| err(format!("{p} is not in the labels' path column")))
        };
        pairs.push(Pair {
            first: row(first)?,
            second: row(second)?,
            same,
        });
    }
    if pairs.is_empty() {
        return Err(PairsError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_resolve_to_label_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pairs.txt");
        let labels: Vec<String> = ["a/1.jpg", "a/2.jpg", "b/1.jpg"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        std::fs::write(&path, "a/1.jpg a/2.jpg 1\n./a/1.jpg\tb/1.jpg\t0\n\n").unwrap();
        assert_eq!(
            read_pairs(&path, &labels).unwrap(),
            [
                Pair {
                    first: 0,
                    second: 1,
                    same: true
                },
                Pair {
                    first: 0,
                    second: 2,
                    same: false
                }
            ]
        );
        std::fs::write(&path, "a/1.jpg c/1.jpg 0\n").unwrap();
        let e = read_pairs(&path, &labels).unwrap_err().to_string();
        assert!(
            e.contains("line 1") && e.contains("c/1.jpg is not in the labels"),
            "{e}"
        );
        std::fs::write(&path, "a/1.jpg a/2.jpg yes\n").unwrap();
        assert!(read_pairs(&path, &labels)
            .unwrap_err()
            .to_string()
            .contains("expected 1 or 0"));
        std::fs::write(&path, "").unwrap();
        assert!(matches!(
            read_pairs(&path, &labels),
            Err(PairsError::Empty { .. })
        ));
    }
}
