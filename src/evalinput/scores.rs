//! Scores computed elsewhere: a CSV or Parquet table with columns `score`
//! and `genuine`, or the whitespace-separated text formats of bob:
//! bob.measure's 2 columns (`label score`, label 1 / -1 or 1 / 0),
//! bob.bio.base's 4 columns (`claimed_id real_id test_label score`) and
//! 5 columns (`claimed_id model_label real_id test_label score`); in the
//! last two a score is genuine iff `claimed_id == real_id`. Every score must
//! be a finite number within float32 range (the precision scores are kept
//! in): a NaN, an infinity, a value that would round to one, or a word is
//! refused naming the file, the row and the value, since any of them would
//! silently change every rate.
//! The rows of one `test_label` are one search (for identification, as
//! bob.bio.base groups them).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use polars::prelude::*;

#[derive(Debug, thiserror::Error)]
pub enum ScoresError {
    #[error("{path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: no `{column}` column (found: {found}); expected `score` and `genuine`")]
    Column {
        path: PathBuf,
        column: &'static str,
        found: String,
    },
    #[error("{path}: line {line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: row {row}: {message}")]
    Row {
        path: PathBuf,
        row: usize,
        message: String,
    },
}

/// Genuine and impostor scores, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scores {
    pub genuine: Vec<f32>,
    pub impostor: Vec<f32>,
    /// Which format the file was read as, for the summary.
    pub format: &'static str,
    /// bob's 4- and 5-column files: every scored row as a comparison of a
    /// search (`test_label`) with a gallery model, both numbered in order of
    /// first appearance; empty for the other formats.
    pub searches: Vec<crate::metrics::identification::Comparison>,
    /// Gallery models (5 columns: `model_label`; 4: `claimed_id`) and their
    /// identities (`claimed_id`) in `searches`.
    pub models: u64,
    pub gallery_identities: u64,
}

/// Numbers names in order of first appearance.
#[derive(Default)]
struct Numbering(HashMap<String, u32>);

impl Numbering {
    fn of(&mut self, name: &str) -> u32 {
        let next = self.0.len() as u32;
        *self.0.entry(name.to_string()).or_insert(next)
    }
}

impl Scores {
    fn push(&mut self, score: f32, genuine: bool) {
        if genuine {
            self.genuine.push(score);
        } else {
            self.impostor.push(score);
        }
    }
}

/// A score read as `text`, as the float32 it is kept in; the reason when it
/// is not a usable one.
fn parse_score(text: &str) -> Result<f32, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("score {text:?} is not a number"))?;
    check_score(value, text)
}

/// `value` (shown as `text`) as a float32 score, if it is a usable one.
fn check_score(value: f64, text: &str) -> Result<f32, String> {
    if value.is_nan() {
        return Err(format!(
            "score {text:?} is not a number (leave out a comparison that failed)"
        ));
    }
    if value.is_infinite() || value.abs() > f64::from(f32::MAX) {
        return Err(format!(
            "score {text:?} is beyond the float32 range (±3.4e38) scores are kept in"
        ));
    }
    Ok(value as f32)
}

/// Reads a score file: Parquet by extension; otherwise a CSV with a header
/// naming `score` and `genuine`, or one of bob's text formats, told apart by
/// the first line.
pub fn read_scores(path: &Path) -> Result<Scores, ScoresError> {
    if super::labels::is_parquet(path) {
        return read_table(path, true);
    }
    let file = std::fs::File::open(path).map_err(|e| read_err(path, e))?;
    let mut first = String::new();
    BufReader::new(file)
        .read_line(&mut first)
        .map_err(|e| read_err(path, e))?;
    let names: Vec<String> = first
        .trim()
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .collect();
    if names.iter().any(|n| n == "score") {
        read_table(path, false)
    } else {
        read_bob(path)
    }
}

fn read_err(path: &Path, e: impl ToString) -> ScoresError {
    ScoresError::Read {
        path: path.to_path_buf(),
        message: super::one_line(&e),
    }
}

fn read_table(path: &Path, parquet: bool) -> Result<Scores, ScoresError> {
    let err = |e: PolarsError| read_err(path, e);
    let df = if parquet {
        let file = std::fs::File::open(path).map_err(|e| read_err(path, e))?;
        ParquetReader::new(file).finish().map_err(err)?
    } else {
        CsvReadOptions::default()
            .with_has_header(true)
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .map_err(err)?
            .finish()
            .map_err(err)?
    };
    let found = df
        .get_column_names()
        .iter()
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let column = |name: &'static str| {
        df.column(name).map_err(|_| ScoresError::Column {
            path: path.to_path_buf(),
            column: name,
            found: found.clone(),
        })
    };
    let score = column("score")?;
    let genuine = genuine_flags(path, column("genuine")?)?;
    let mut scores = Scores {
        format: if parquet { "parquet" } else { "csv" },
        ..Scores::default()
    };
    let row_err = |row, message| ScoresError::Row {
        path: path.to_path_buf(),
        row,
        message,
    };
    let empty = |row| row_err(row, "empty score".to_string());
    if score.dtype().is_primitive_numeric() {
        let numbers = score.cast(&DataType::Float64).map_err(err)?;
        for (row, (s, g)) in numbers.f64().map_err(err)?.iter().zip(genuine).enumerate() {
            let s = s.ok_or_else(|| empty(row))?;
            let s = check_score(s, &format!("{s:e}")).map_err(|m| row_err(row, m))?;
            scores.push(s, g);
        }
    } else {
        // A column of text: one cell is not a number (polars read it so).
        let text = score.cast(&DataType::String).map_err(err)?;
        for (row, (s, g)) in text.str().map_err(err)?.iter().zip(genuine).enumerate() {
            let s = s.ok_or_else(|| empty(row))?;
            scores.push(parse_score(s).map_err(|m| row_err(row, m))?, g);
        }
    }
    Ok(scores)
}

/// The `genuine` column as booleans: bool, numbers 1 / 0, or the words
/// true / false (any case) and 1 / 0.
fn genuine_flags(path: &Path, column: &Column) -> Result<Vec<bool>, ScoresError> {
    let polars_err = |e: PolarsError| read_err(path, e);
    let row_err = |row, message: String| ScoresError::Row {
        path: path.to_path_buf(),
        row,
        message,
    };
    if column.dtype() == &DataType::Boolean {
        let flags = column.bool().map_err(polars_err)?;
        return flags
            .iter()
            .enumerate()
            .map(|(row, v)| v.ok_or_else(|| row_err(row, "empty genuine cell".into())))
            .collect();
    }
    if column.dtype().is_primitive_numeric() {
        let numbers = column.cast(&DataType::Float64).map_err(polars_err)?;
        let numbers = numbers.f64().map_err(polars_err)?;
        return numbers
            .iter()
            .enumerate()
            .map(|(row, v)| match v {
                Some(1.0) => Ok(true),
                Some(0.0) => Ok(false),
                other => Err(row_err(
                    row,
                    format!("genuine is {other:?}; expected 1 or 0"),
                )),
            })
            .collect();
    }
    let text = column.cast(&DataType::String).map_err(polars_err)?;
    let text = text.str().map_err(polars_err)?;
    text.iter()
        .enumerate()
        .map(
            |(row, v)| match v.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
                Some("true" | "1") => Ok(true),
                Some("false" | "0") => Ok(false),
                other => Err(row_err(
                    row,
                    format!("genuine is {other:?}; expected true/false or 1/0"),
                )),
            },
        )
        .collect()
}

fn read_bob(path: &Path) -> Result<Scores, ScoresError> {
    let file = std::fs::File::open(path).map_err(|e| read_err(path, e))?;
    let mut scores = Scores::default();
    let mut columns = None;
    let (mut probes, mut models, mut identities) = (
        Numbering::default(),
        Numbering::default(),
        Numbering::default(),
    );
    for (i, line) in BufReader::with_capacity(1 << 20, file).lines().enumerate() {
        let line = line.map_err(|e| read_err(path, e))?;
        let line_no = i + 1;
        let err = |message: String| ScoresError::Line {
            path: path.to_path_buf(),
            line: line_no,
            message,
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let n = *columns.get_or_insert(fields.len());
        if fields.len() != n {
            return Err(err(format!(
                "{} fields, the first line has {n}",
                fields.len()
            )));
        }
        let score = parse_score(fields[n - 1]).map_err(err)?;
        let genuine = match n {
            2 => match fields[0] {
                "1" | "1.0" | "+1" => true,
                "-1" | "0" | "-1.0" | "0.0" => false,
                other => return Err(err(format!("label {other:?}; expected 1 or -1 (or 0)"))),
            },
            4 => fields[0] == fields[1],
            5 => fields[0] == fields[2],
            _ => {
                return Err(err(format!(
                    "{n} fields: not a score table with `score`,`genuine` columns nor a bob score file (2, 4 or 5 columns)"
                )))
            }
        };
        if (n == 4 || n == 5) && !score.is_nan() {
            identities.of(fields[0]);
            scores
                .searches
                .push(crate::metrics::identification::Comparison {
                    probe: probes.of(fields[n - 2]),
                    model: models.of(fields[n - 4]),
                    score: score as f32,
                    mated: genuine,
                });
        }
        scores.push(score, genuine);
    }
    scores.models = models.0.len() as u64;
    scores.gallery_identities = identities.0.len() as u64;
    scores.format = match columns {
        Some(2) => "bob 2-column",
        Some(4) => "bob 4-column",
        Some(5) => "bob 5-column",
        _ => return Err(read_err(path, "no scores")),
    };
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn text_formats_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let s = read_scores(&write(
            d,
            "a.csv",
            "score,genuine\n0.9,true\n0.1,0\n0.7,1\n",
        ))
        .unwrap();
        assert_eq!(
            (s.genuine, s.impostor, s.format),
            (vec![0.9, 0.7], vec![0.1], "csv")
        );
        let s = read_scores(&write(d, "b.txt", "alice alice p1 0.8\nalice bob p2 0.3\n")).unwrap();
        assert_eq!(
            (s.genuine, s.impostor, s.format),
            (vec![0.8], vec![0.3], "bob 4-column")
        );
        let s = read_scores(&write(
            d,
            "c.txt",
            "alice m1 alice p1 0.8\nalice m1 bob p2 0.3\n",
        ))
        .unwrap();
        assert_eq!((s.genuine, s.impostor), (vec![0.8], vec![0.3]));
        let s = read_scores(&write(d, "d.txt", "1 0.8\n-1 0.3\n")).unwrap();
        assert_eq!((s.genuine, s.impostor), (vec![0.8], vec![0.3]));

        let e = read_scores(&write(d, "e.txt", "a a p 0.8\na b p\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("3 fields"), "{e}");
        let e = read_scores(&write(d, "f.txt", "a a p x\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("not a number"), "{e}");
        let e = read_scores(&write(d, "g.csv", "score,label\n0.5,1\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no `genuine` column"), "{e}");
        let e = read_scores(&write(d, "h.csv", "score,genuine\n0.5,maybe\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 0"), "{e}");
    }

    #[test]
    fn unusable_scores_are_refused_with_row_and_value() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (value, says) in [
            ("inf", "beyond the float32 range"),
            ("-inf", "beyond the float32 range"),
            ("3.5e38", "beyond the float32 range"),
            ("NaN", "not a number"),
            ("abc", "not a number"),
        ] {
            let csv = format!("score,genuine\n0.9,1\n0.1,0\n{value},1\n");
            let e = read_scores(&write(d, "s.csv", &csv))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("s.csv: row 2") && e.contains(&format!("{value:?}")) && e.contains(says),
                "{e}"
            );
            let bob = format!("a a p 0.8\na b p {value}\n");
            let e = read_scores(&write(d, "s.txt", &bob))
                .unwrap_err()
                .to_string();
            assert!(e.contains("s.txt: line 2") && e.contains(says), "{e}");
        }
        let s = read_scores(&write(d, "max.csv", "score,genuine\n3.4e38,1\n-3.4e38,0\n")).unwrap();
        assert_eq!((s.genuine, s.impostor), (vec![3.4e38], vec![-3.4e38]));
    }

    #[test]
    fn parquet_scores() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.parquet");
        let mut df = DataFrame::new(
            3,
            vec![
                Column::new("score".into(), [0.5f32, -0.25, 0.75]),
                Column::new("genuine".into(), [true, false, true]),
            ],
        )
        .unwrap();
        ParquetWriter::new(std::fs::File::create(&path).unwrap())
            .finish(&mut df)
            .unwrap();
        let s = read_scores(&path).unwrap();
        assert_eq!(
            (s.genuine, s.impostor, s.format),
            (vec![0.5, 0.75], vec![-0.25], "parquet")
        );
    }
}
