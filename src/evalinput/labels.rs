//! The label table of an embeddings file: one row per embedding row, with
//! an `identity`, an optional `role` (gallery / probe), an optional `path`
//! and any further attribute columns (`camera`, `light`, ...). CSV or
//! Parquet; convert's `eval/manifest.parquet` is one.

use std::path::{Path, PathBuf};

use rayon::slice::ParallelSliceMut;

use polars::prelude::*;

#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    #[error("{path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: cannot write: {message}")]
    Write { path: PathBuf, message: String },
    #[error("{path}: no `identity` column (found: {found})")]
    NoIdentity { path: PathBuf, found: String },
    #[error("{path}: row {row} has an empty identity")]
    EmptyIdentity { path: PathBuf, row: usize },
    #[error("{path}: row {row} has role {value:?}; expected gallery or probe")]
    Role {
        path: PathBuf,
        row: usize,
        value: String,
    },
}

/// Where an embedding belongs in an identification experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Gallery,
    Probe,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Labels {
    pub identity: Vec<String>,
    pub role: Option<Vec<Role>>,
    pub path: Option<Vec<String>>,
    /// Every other column, as text (empty for missing cells), in file order.
    pub attributes: Vec<(String, Vec<String>)>,
}

impl Labels {
    pub fn len(&self) -> usize {
        self.identity.len()
    }
    pub fn is_empty(&self) -> bool {
        self.identity.is_empty()
    }

    /// An attribute column by name (also `identity`, `role`, `path`).
    pub fn column(&self, name: &str) -> Option<Vec<String>> {
        match name {
            "identity" => Some(self.identity.clone()),
            "path" => self.path.clone(),
            "role" => self.role.as_ref().map(|r| {
                r.iter()
                    .map(|r| {
                        if *r == Role::Gallery {
                            "gallery"
                        } else {
                            "probe"
                        }
                        .to_string()
                    })
                    .collect()
            }),
            _ => self
                .attributes
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone()),
        }
    }

    /// Names of every column, for messages.
    pub(crate) fn column_names(&self) -> Vec<String> {
        let mut names = vec!["identity".to_string()];
        if self.role.is_some() {
            names.push("role".into());
        }
        if self.path.is_some() {
            names.push("path".into());
        }
        names.extend(self.attributes.iter().map(|(n, _)| n.clone()));
        names
    }

    /// Dense identity indices (by sorted name, so they do not depend on row
    /// order) and the names they index.
    pub(crate) fn identity_indices(&self) -> (Vec<u32>, Vec<String>) {
        // Rows sorted by name, then numbered run by run: a sort of row
        // numbers, not a tree of names searched once per row.
        let id = &self.identity;
        let mut order: Vec<u32> = (0..id.len() as u32).collect();
        order.par_sort_unstable_by(|&a, &b| id[a as usize].cmp(&id[b as usize]));
        let mut indices = vec![0u32; id.len()];
        let mut names = Vec::new();
        for run in order.chunk_by(|&a, &b| id[a as usize] == id[b as usize]) {
            for &row in run {
                indices[row as usize] = names.len() as u32;
            }
            names.push(id[run[0] as usize].clone());
        }
        (indices, names)
    }
}

/// Writes a label table of text columns, by extension: `.parquet` or CSV
/// (anything else); the file appears only when complete.
pub(crate) fn write_table(
    path: &Path,
    columns: &[(String, Vec<String>)],
) -> Result<(), LabelsError> {
    let err = |message: String| LabelsError::Write {
        path: path.to_path_buf(),
        message,
    };
    let mut file = crate::output::AtomicFile::create(path).map_err(|e| err(e.to_string()))?;
    if is_parquet(path) {
        let series: Vec<Column> = columns
            .iter()
            .map(|(name, values)| Column::new(name.as_str().into(), values))
            .collect();
        let mut df = DataFrame::new_infer_height(series).map_err(|e| err(e.to_string()))?;
        ParquetWriter::new(&mut file)
            .finish(&mut df)
            .map_err(|e| err(e.to_string()))?;
    } else {
        let mut csv = csv::Writer::from_writer(&mut file);
        let rows = columns.first().map_or(0, |(_, v)| v.len());
        csv.write_record(columns.iter().map(|(name, _)| name))
            .map_err(|e| err(e.to_string()))?;
        for row in 0..rows {
            csv.write_record(columns.iter().map(|(_, values)| &values[row]))
                .map_err(|e| err(e.to_string()))?;
        }
        csv.flush().map_err(|e| err(e.to_string()))?;
    }
    file.commit().map_err(|e| err(e.to_string()))
}

/// Reads a label table, by extension: `.parquet` or CSV (anything else).
pub fn read_labels(path: &Path) -> Result<Labels, LabelsError> {
    let columns = if is_parquet(path) {
        read_parquet_text(path)?
    } else {
        // Hand-made CSVs pad their cells.
        read_csv_text(path, true)?
    };
    from_columns(path, columns)
}

/// Reads a table `write_table` wrote, exactly: every column as text, in
/// file order, cells untrimmed (`merge` writes them again).
pub(crate) fn read_table(path: &Path) -> Result<Vec<(String, Vec<String>)>, LabelsError> {
    if is_parquet(path) {
        read_parquet_text(path)
    } else {
        read_csv_text(path, false)
    }
}

pub(crate) fn is_parquet(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq"))
}

fn from_columns(path: &Path, columns: Vec<(String, Vec<String>)>) -> Result<Labels, LabelsError> {
    let mut identity = None;
    let mut role = None;
    let mut file_path = None;
    let mut attributes = Vec::new();
    let found = columns
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    for (name, values) in columns {
        match name.as_str() {
            "identity" => identity = Some(values),
            "role" => role = Some(values),
            "path" => file_path = Some(values),
            _ => attributes.push((name, values)),
        }
    }
    let identity = identity.ok_or_else(|| LabelsError::NoIdentity {
        path: path.to_path_buf(),
        found,
    })?;
    if let Some(row) = identity.iter().position(|s| s.trim().is_empty()) {
        return Err(LabelsError::EmptyIdentity {
            path: path.to_path_buf(),
            row,
        });
    }
    let role = role
        .map(|values| {
            values
                .iter()
                .enumerate()
                .map(|(row, v)| match v.trim().to_ascii_lowercase().as_str() {
                    "gallery" => Ok(Role::Gallery),
                    "probe" => Ok(Role::Probe),
                    _ => Err(LabelsError::Role {
                        path: path.to_path_buf(),
                        row,
                        value: v.clone(),
                    }),
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok(Labels {
        identity,
        role,
        path: file_path,
        attributes,
    })
}

/// Every column of a CSV file as text; with `trim`, header and cells lose
/// their surrounding whitespace (as the csv crate's `Trim::All` does,
/// without rebuilding each record).
fn read_csv_text(path: &Path, trim: bool) -> Result<Vec<(String, Vec<String>)>, LabelsError> {
    let err = |e: csv::Error| LabelsError::Read {
        path: path.to_path_buf(),
        message: super::one_line(&e),
    };
    let text = |field: &str| if trim { field.trim() } else { field }.to_string();
    let mut reader = csv::ReaderBuilder::new().from_path(path).map_err(err)?;
    let names: Vec<String> = reader.headers().map_err(err)?.iter().map(text).collect();
    let mut values: Vec<Vec<String>> = vec![Vec::new(); names.len()];
    // One record reused: a row costs its fields' strings alone.
    let mut record = csv::StringRecord::new();
    for row in 0.. {
        if !reader.read_record(&mut record).map_err(err)? {
            break;
        }
        if record.len() != names.len() {
            return Err(LabelsError::Read {
                path: path.to_path_buf(),
                message: format!(
                    "row {row} has {} fields, the header {}",
                    record.len(),
                    names.len()
                ),
            });
        }
        for (column, field) in values.iter_mut().zip(record.iter()) {
            column.push(text(field));
        }
    }
    Ok(names.into_iter().zip(values).collect())
}

/// Every column of a Parquet file as text.
fn read_parquet_text(path: &Path) -> Result<Vec<(String, Vec<String>)>, LabelsError> {
    let err = |e: PolarsError| LabelsError::Read {
        path: path.to_path_buf(),
        message: super::one_line(&e),
    };
    let file = std::fs::File::open(path).map_err(|e| LabelsError::Read {
        path: path.to_path_buf(),
        message: super::one_line(&e),
    })?;
    let df = ParquetReader::new(file).finish().map_err(err)?;
    let mut columns = Vec::with_capacity(df.width());
    for column in df.columns() {
        let text = column.cast(&DataType::String).map_err(err)?;
        let text = text.str().map_err(err)?;
        let values = text
            .iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect();
        columns.push((column.name().to_string(), values));
    }
    Ok(columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_labels_with_roles_and_attributes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.csv");
        std::fs::write(&path, "path,identity,role,camera\na.jpg,19062421,gallery,C7\nb.jpg,19062421,probe,C4\nc.jpg,0012,Probe,C4\n")
            .unwrap();
        let labels = read_labels(&path).unwrap();
        assert_eq!(labels.identity, ["19062421", "19062421", "0012"]);
        assert_eq!(
            labels.role,
            Some(vec![Role::Gallery, Role::Probe, Role::Probe])
        );
        assert_eq!(labels.column("camera").unwrap(), ["C7", "C4", "C4"]);
        assert_eq!(
            labels.identity_indices(),
            (
                vec![1, 1, 0],
                vec!["0012".to_string(), "19062421".to_string()]
            )
        );

        std::fs::write(&path, "identity,role\na,gallery\nb,enrol\n").unwrap();
        let e = read_labels(&path).unwrap_err().to_string();
        assert!(e.contains("row 1") && e.contains("enrol"), "{e}");
        std::fs::write(&path, "name,role\na,gallery\n").unwrap();
        assert!(read_labels(&path)
            .unwrap_err()
            .to_string()
            .contains("no `identity` column"));
        std::fs::write(&path, "identity,camera\na,C1\n,C2\n").unwrap();
        assert!(read_labels(&path)
            .unwrap_err()
            .to_string()
            .contains("row 1 has an empty identity"));
    }

    #[test]
    fn parquet_labels_read_as_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.parquet");
        let mut df = DataFrame::new(
            2,
            vec![
                Column::new("path".into(), ["x/1.jpg", "x/2.jpg"]),
                Column::new("identity".into(), [19062421i64, 19062422]),
                Column::new("role".into(), ["gallery", "probe"]),
                Column::new("in_db".into(), [true, false]),
                Column::new("light".into(), ["L1", "L3"]),
            ],
        )
        .unwrap();
        ParquetWriter::new(std::fs::File::create(&path).unwrap())
            .finish(&mut df)
            .unwrap();
        let labels = read_labels(&path).unwrap();
        assert_eq!(labels.identity, ["19062421", "19062422"]);
        assert_eq!(labels.path.as_deref().unwrap(), ["x/1.jpg", "x/2.jpg"]);
        assert_eq!(labels.column("in_db").unwrap(), ["true", "false"]);
        assert_eq!(labels.column("light").unwrap(), ["L1", "L3"]);
    }

    #[test]
    fn tables_read_back_exactly_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let table = vec![
            (
                "path".to_string(),
                vec![" a b.jpg".to_string(), "c,\"d\".png".into()],
            ),
            (
                "Role".to_string(),
                vec!["Gallery ".to_string(), String::new()],
            ),
        ];
        for name in ["t.csv", "t.parquet"] {
            let path = dir.path().join(name);
            write_table(&path, &table).unwrap();
            assert_eq!(read_table(&path).unwrap(), table, "{name}");
        }
    }
}
