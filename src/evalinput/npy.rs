//! NumPy `.npy` arrays of embeddings: float32 or float16, little-endian,
//! C order, two dimensions. The header is a Python dict literal
//! (`{'descr': '<f4', 'fortran_order': False, 'shape': (N, D), }`), parsed
//! here by hand: the format is small and fixed (numpy's `format.py`).

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

const MAGIC: &[u8] = b"\x93NUMPY";

#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a .npy file ({reason})")]
    Format { path: PathBuf, reason: String },
    #[error("{path}: dtype {descr} is not supported (float32 '<f4' or float16 '<f2' only)")]
    Dtype { path: PathBuf, descr: String },
    #[error("{path}: the array is in Fortran order; save it in C order (numpy.ascontiguousarray)")]
    FortranOrder { path: PathBuf },
    #[error("{path}: shape {shape:?} is not two-dimensional [N, D]")]
    Shape { path: PathBuf, shape: Vec<usize> },
    #[error("{path}: the data is {found} bytes, the header announces {expected}")]
    Truncated {
        path: PathBuf,
        found: u64,
        expected: u64,
    },
}

/// The element type of an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F16,
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 => 2,
        }
    }
}

/// What the header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub dtype: Dtype,
    pub rows: usize,
    pub cols: usize,
}

/// A two-dimensional array read as f32, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub dtype: Dtype,
    pub data: Vec<f32>,
}

impl Matrix {
    /// Row `i` (panics past the last row, as slice indexing does).
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// Reads a float32 / float16 [N, D] C-order array, converting to f32.
pub fn read_matrix(path: &Path) -> Result<Matrix, NpyError> {
    read_rows(path, 0..usize::MAX)
}

/// Reads the rows `rows` (clamped to the array), and only those: a part of
/// a split evaluation reads its share. The whole file's length is checked
/// against the header all the same.
pub(crate) fn read_rows(path: &Path, rows: Range<usize>) -> Result<Matrix, NpyError> {
    let (header, mut reader) = open(path)?;
    let io_err = |source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let (first, end) = (rows.start.min(header.rows), rows.end.min(header.rows));
    let size = header.dtype.size();
    let skip = (first * header.cols * size) as i64;
    reader.seek_relative(skip).map_err(io_err)?;
    let len = end.saturating_sub(first) * header.cols;
    let mut data = Vec::with_capacity(len);
    let mut buf = vec![0u8; 1 << 20];
    while data.len() < len {
        let want = ((len - data.len()) * size).min(buf.len());
        let chunk = &mut buf[..want];
        reader.read_exact(chunk).map_err(io_err)?;
        decode(header.dtype, chunk, &mut data);
    }
    Ok(Matrix {
        rows: end.saturating_sub(first),
        cols: header.cols,
        dtype: header.dtype,
        data,
    })
}

/// Reads the rows listed (ascending, each below the array's row count),
/// in that order: a sample of rows scattered over the file.
pub(crate) fn read_row_list(path: &Path, rows: &[usize]) -> Result<Matrix, NpyError> {
    let (header, mut reader) = open(path)?;
    let io_err = |source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let row_bytes = header.cols * header.dtype.size();
    let mut data = Vec::with_capacity(rows.len() * header.cols);
    let mut buf = vec![0u8; row_bytes];
    let mut at = 0;
    for &r in rows {
        if r < at || r >= header.rows {
            return Err(io_err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "row {r} is not after row {at} within the {} rows",
                    header.rows
                ),
            )));
        }
        reader
            .seek_relative(((r - at) * row_bytes) as i64)
            .map_err(io_err)?;
        reader.read_exact(&mut buf).map_err(io_err)?;
        decode(header.dtype, &buf, &mut data);
        at = r + 1;
    }
    Ok(Matrix {
        rows: rows.len(),
        cols: header.cols,
        dtype: header.dtype,
        data,
    })
}

/// Little-endian values of `dtype` as f32, appended to `out`.
fn decode(dtype: Dtype, bytes: &[u8], out: &mut Vec<f32>) {
    match dtype {
        Dtype::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        Dtype::F16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
        ),
    }
}

/// The shape and type of the array at `path`, its length checked; the
/// data is not read.
pub fn shape(path: &Path) -> Result<Header, NpyError> {
    open(path).map(|(header, _)| header)
}

/// Opens the array at `path`, checks that the file holds the data its
/// header announces, and leaves the reader at the data.
fn open(path: &Path) -> Result<(Header, BufReader<File>), NpyError> {
    let io_err = |source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let file_len = file.metadata().map_err(io_err)?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let (header, header_len) = read_header(&mut reader, path)?;
    let expected = (header.rows as u64)
        .checked_mul(header.cols as u64)
        .and_then(|n| n.checked_mul(header.dtype.size() as u64))
        .ok_or_else(|| NpyError::Format {
            path: path.to_path_buf(),
            reason: "shape too large".into(),
        })?;
    let found = file_len.saturating_sub(header_len as u64);
    if found != expected {
        return Err(NpyError::Truncated {
            path: path.to_path_buf(),
            found,
            expected,
        });
    }
    Ok((header, reader))
}

/// Parses the magic, version and header dict; returns the header and the
/// offset of the data.
fn read_header(reader: &mut impl Read, path: &Path) -> Result<(Header, usize), NpyError> {
    let format = |reason: &str| NpyError::Format {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let mut prefix = [0u8; 8];
    reader
        .read_exact(&mut prefix)
        .map_err(|_| format("shorter than a header"))?;
    if &prefix[..6] != MAGIC {
        return Err(format("no \\x93NUMPY magic"));
    }
    let (dict_len, offset) = match prefix[6] {
        1 => {
            let mut len = [0u8; 2];
            reader
                .read_exact(&mut len)
                .map_err(|_| format("truncated header"))?;
            (u16::from_le_bytes(len) as usize, 10)
        }
        2 | 3 => {
            let mut len = [0u8; 4];
            reader
                .read_exact(&mut len)
                .map_err(|_| format("truncated header"))?;
            (u32::from_le_bytes(len) as usize, 12)
        }
        v => return Err(format(&format!("format version {v}"))),
    };
    if dict_len > 1 << 20 {
        return Err(format("header longer than 1 MiB"));
    }
    let mut dict = vec![0u8; dict_len];
    reader
        .read_exact(&mut dict)
        .map_err(|_| format("truncated header"))?;
    let dict = String::from_utf8(dict).map_err(|_| format("header is not text"))?;
    let header = parse_dict(&dict).map_err(|e| match e {
        DictError::Malformed(reason) => format(&reason),
        DictError::Dtype(descr) => NpyError::Dtype {
            path: path.to_path_buf(),
            descr,
        },
        DictError::Fortran => NpyError::FortranOrder {
            path: path.to_path_buf(),
        },
        DictError::Shape(shape) => NpyError::Shape {
            path: path.to_path_buf(),
            shape,
        },
    })?;
    Ok((header, offset + dict_len))
}

#[derive(Debug, PartialEq)]
enum DictError {
    Malformed(String),
    Dtype(String),
    Fortran,
    Shape(Vec<usize>),
}

/// The value text following `'key':` in the dict, up to the next top-level
/// comma or the closing brace.
fn dict_value<'a>(dict: &'a str, key: &str) -> Option<&'a str> {
    let start = dict
        .find(&format!("'{key}'"))
        .or_else(|| dict.find(&format!("\"{key}\"")))?;
    let rest = &dict[start + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(rest[..i].trim()),
            _ => {}
        }
    }
    Some(rest.trim())
}

fn parse_dict(dict: &str) -> Result<Header, DictError> {
    let malformed = |what: &str| DictError::Malformed(format!("header has no valid '{what}'"));
    let descr = dict_value(dict, "descr").ok_or_else(|| malformed("descr"))?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let dtype = match descr {
        "<f4" => Dtype::F32,
        "<f2" => Dtype::F16,
        other => return Err(DictError::Dtype(other.to_string())),
    };
    match dict_value(dict, "fortran_order").ok_or_else(|| malformed("fortran_order"))? {
        "False" => {}
        "True" => return Err(DictError::Fortran),
        _ => return Err(malformed("fortran_order")),
    }
    let shape = dict_value(dict, "shape").ok_or_else(|| malformed("shape"))?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| malformed("shape"))?;
    let dims = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| malformed("shape"))?;
    match dims[..] {
        [rows, cols] => Ok(Header { dtype, rows, cols }),
        _ => Err(DictError::Shape(dims)),
    }
}

/// The version 1 header of a float32 C-order [rows, cols] array, padded so
/// that the data starts on a 64-byte boundary, ending in '\n'.
fn f32_header(rows: usize, cols: usize) -> Vec<u8> {
    let mut dict =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let unpadded = MAGIC.len() + 2 + 2 + dict.len() + 1;
    dict.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    dict.push('\n');
    let mut header = MAGIC.to_vec();
    header.extend_from_slice(&[1, 0]);
    header.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    header.extend_from_slice(dict.as_bytes());
    header
}

/// Writes a float32 C-order [rows, cols] array (fixtures, benchmarks, `embed`).
pub fn write_f32(path: &Path, rows: usize, cols: usize, data: &[f32]) -> io::Result<()> {
    use std::io::Write;
    assert_eq!(data.len(), rows * cols, "data fills the shape");
    let mut file = crate::output::AtomicFile::create(path)?;
    file.write_all(&f32_header(rows, cols))?;
    for chunk in data.chunks(1 << 16) {
        let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
        file.write_all(&bytes)?;
    }
    file.commit()
}

/// Writes the rows of float32 arrays one after another into `path`, as
/// `write_f32` would write them all, a buffer at a time (the arrays are
/// never in memory whole). Arrays without rows join whatever their width.
/// Returns the shape written.
pub(crate) fn concat_f32(path: &Path, parts: &[PathBuf]) -> Result<Header, NpyError> {
    let mut shapes = Vec::with_capacity(parts.len());
    for part in parts {
        let header = shape(part)?;
        if header.dtype != Dtype::F32 {
            return Err(NpyError::Format {
                path: part.clone(),
                reason: "float16; only float32 arrays are joined".into(),
            });
        }
        shapes.push(header);
    }
    let full: Vec<&Header> = shapes.iter().filter(|h| h.rows > 0).collect();
    let cols = full.first().map_or(0, |h| h.cols);
    if let Some((i, h)) = shapes
        .iter()
        .enumerate()
        .find(|(_, h)| h.rows > 0 && h.cols != cols)
    {
        return Err(NpyError::Format {
            path: parts[i].clone(),
            reason: format!("{} columns where the arrays before it have {cols}", h.cols),
        });
    }
    let rows = full.iter().map(|h| h.rows).sum();
    let out_err = |source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = crate::output::AtomicFile::create(path).map_err(out_err)?;
    io::Write::write_all(&mut file, &f32_header(rows, cols)).map_err(out_err)?;
    for part in parts {
        let (_, mut reader) = open(part)?;
        io::copy(&mut reader, &mut file).map_err(|source| NpyError::Io {
            path: part.clone(),
            source,
        })?;
    }
    file.commit().map_err(out_err)?;
    Ok(Header {
        dtype: Dtype::F32,
        rows,
        cols,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_arrays_are_what_one_write_writes() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, rows: usize, cols: usize, first: f32| {
            let path = dir.path().join(name);
            let data: Vec<f32> = (0..rows * cols).map(|i| first + i as f32).collect();
            write_f32(&path, rows, cols, &data).unwrap();
            (path, data)
        };
        let (a, mut all) = write("a.npy", 2, 3, 0.5);
        let (empty, _) = write("empty.npy", 0, 0, 0.0);
        let (b, rest) = write("b.npy", 1, 3, -7.0);
        all.extend(rest);
        let (whole, _) = write("whole.npy", 3, 3, 0.0);
        write_f32(&whole, 3, 3, &all).unwrap();
        let joined = dir.path().join("joined.npy");
        let shape = concat_f32(&joined, &[a.clone(), empty, b]).unwrap();
        assert_eq!((shape.rows, shape.cols), (3, 3));
        assert_eq!(
            std::fs::read(&joined).unwrap(),
            std::fs::read(&whole).unwrap()
        );

        let (narrow, _) = write("narrow.npy", 1, 2, 0.0);
        let e = concat_f32(&joined, &[a, narrow]).unwrap_err().to_string();
        assert!(
            e.contains("narrow.npy: not a .npy file (2 columns where the arrays before it have 3)"),
            "{e}"
        );
    }

    #[test]
    fn header_dicts_parse() {
        let h =
            parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 512), }").unwrap();
        assert_eq!(
            h,
            Header {
                dtype: Dtype::F32,
                rows: 3,
                cols: 512
            }
        );
        let h = parse_dict("{'descr':'<f2','fortran_order':False,'shape':(10,4)}").unwrap();
        assert_eq!(
            h,
            Header {
                dtype: Dtype::F16,
                rows: 10,
                cols: 4
            }
        );
        assert_eq!(
            parse_dict("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }"),
            Err(DictError::Dtype("<f8".into()))
        );
        assert_eq!(
            parse_dict("{'descr': '>f4', 'fortran_order': False, 'shape': (3, 2), }"),
            Err(DictError::Dtype(">f4".into()))
        );
        assert_eq!(
            parse_dict("{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }"),
            Err(DictError::Fortran)
        );
        assert_eq!(
            parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }"),
            Err(DictError::Shape(vec![6]))
        );
        assert!(matches!(
            parse_dict("{'descr': '<f4'}"),
            Err(DictError::Malformed(_))
        ));
    }

    /// Files numpy wrote (scripts/fixtures/evaluate_npy.py).
    #[test]
    fn numpy_files() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/evaluate_npy");
        let expected: Vec<f32> = std::fs::read_to_string(dir.join("values.txt"))
            .unwrap()
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        for (name, dtype) in [("f32.npy", Dtype::F32), ("f16.npy", Dtype::F16)] {
            let m = read_matrix(&dir.join(name)).unwrap();
            assert_eq!((m.rows, m.cols, m.dtype), (3, 4, dtype), "{name}");
            assert_eq!(m.data, expected, "{name}");
        }
        assert!(matches!(
            read_matrix(&dir.join("fortran.npy")),
            Err(NpyError::FortranOrder { .. })
        ));
        assert!(
            matches!(read_matrix(&dir.join("f64.npy")), Err(NpyError::Dtype { descr, .. }) if descr == "<f8")
        );
        assert!(
            matches!(read_matrix(&dir.join("big_endian.npy")), Err(NpyError::Dtype { descr, .. }) if descr == ">f4")
        );
        assert!(
            matches!(read_matrix(&dir.join("one_dim.npy")), Err(NpyError::Shape { shape, .. }) if shape == [12])
        );
    }

    #[test]
    fn written_arrays_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.npy");
        let data: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
        write_f32(&path, 3, 4, &data).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!((bytes.len() - 12 * 4) % 64, 0, "data aligned to 64 bytes");
        let m = read_matrix(&path).unwrap();
        assert_eq!((m.rows, m.cols, m.dtype), (3, 4, Dtype::F32));
        assert_eq!(m.data, data);

        std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
        assert!(matches!(
            read_matrix(&path),
            Err(NpyError::Truncated {
                found: 44,
                expected: 48,
                ..
            })
        ));
        std::fs::write(&path, b"not numpy at all").unwrap();
        assert!(matches!(read_matrix(&path), Err(NpyError::Format { .. })));
    }

    #[test]
    fn a_range_of_rows_reads_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.npy");
        let data: Vec<f32> = (0..12).map(|v| v as f32).collect();
        write_f32(&path, 4, 3, &data).unwrap();
        assert_eq!(
            (shape(&path).unwrap().rows, read_matrix(&path).unwrap().data),
            (4, data.clone())
        );
        let m = read_rows(&path, 1..3).unwrap();
        assert_eq!((m.rows, m.cols), (2, 3));
        assert_eq!(m.data, &data[3..9]);
        let m = read_rows(&path, 3..9).unwrap();
        assert_eq!((m.rows, m.data), (1, data[9..].to_vec()));
        assert_eq!(read_rows(&path, 5..7).unwrap().rows, 0);
        let m = read_row_list(&path, &[0, 2, 3]).unwrap();
        assert_eq!(m.rows, 3);
        assert_eq!(m.data, [&data[..3], &data[6..]].concat());
        assert!(read_row_list(&path, &[2, 1]).is_err());
        assert!(read_row_list(&path, &[4]).is_err());
    }
}
