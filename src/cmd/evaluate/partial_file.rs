//! `partial.bin`, a part's [`Partial`] on disk: little-endian, versioned,
//! every length checked against the bytes left before anything is
//! allocated.
//!
//! ```text
//! "FKEVPART"  u32 version (2)
//! u64 comparisons   u8 has_error   f64 score_error
//! u8 has_note, (u32 n, n bytes UTF-8 precision note)
//! u8 verification: 0 scored → SCORES | 1 listed → u64 n, n × f32
//! u64 probes, each: u32 k, k × (u32 gallery index, f32 score),
//!                   u8 mated, f32 mate score, u64 mate rank
//! u32 group flags, each: u32 groups, each: SCORES
//! SCORES: u64 capacity, u64 n, n × f32 genuine, u8 has_subjects,
//!         (n × u32 subjects), u32 bins, u64 m, m × (u32 bin, u64 count)
//!         (the non-empty bins), TAIL, PAIRS (lowest genuine),
//!         PAIRS (highest impostor), u32 b, b × (u32 low, u32 high) score
//!         bands, TAIL (every impostor score in the bands, as counts)
//! PAIRS:  u64 n, n × (f32 score, u32 row, u32 row)
//! TAIL:   u64 t scores, u64 r runs, r × (varint key step, varint count):
//!         the tail's distinct values, highest first, each as the step down
//!         from the previous one's order-preserving u32 key (the first
//!         from 2^32), and how often it occurs. A tail of 10^8 scores near
//!         one another takes about 2 bytes per distinct value instead of 4
//!         per score.
//! ```

use std::path::{Path, PathBuf};

use crate::compare::{Candidate, PairScore, ProbeResult, ScoreBand};

use super::partial::{Partial, Scores, Verification};

/// The file name inside a part directory.
pub(crate) const PARTIAL_BIN: &str = "partial.bin";
const MAGIC: &[u8; 8] = b"FKEVPART";
const VERSION: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub(crate) enum PartialFileError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a facekit evaluate part ({problem})", path.display())]
    Format { path: PathBuf, problem: String },
}

pub fn encode(p: &Partial) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    w.0.extend_from_slice(MAGIC);
    w.u32(VERSION);
    w.u64(p.comparisons);
    w.u8(p.score_error.is_some() as u8);
    w.f64(p.score_error.unwrap_or(0.0));
    w.u8(p.precision_note.is_some() as u8);
    if let Some(note) = &p.precision_note {
        w.u32(note.len() as u32);
        w.0.extend_from_slice(note.as_bytes());
    }
    match &p.verification {
        Verification::Scored(s) => {
            w.u8(0);
            w.scores(s);
        }
        Verification::Listed(scores) => {
            w.u8(1);
            w.f32s(scores);
        }
    }
    w.u64(p.probes.len() as u64);
    for r in &p.probes {
        w.u32(r.top.len() as u32);
        for c in &r.top {
            w.u32(c.index);
            w.f32(c.score);
        }
        w.u8(r.mate_score.is_some() as u8);
        w.f32(r.mate_score.unwrap_or(0.0));
        w.u64(r.mate_rank.unwrap_or(0));
    }
    w.u32(p.groups.len() as u32);
    for flag in &p.groups {
        w.u32(flag.len() as u32);
        for s in flag {
            w.scores(s);
        }
    }
    w.0
}

pub fn write(dir: &Path, p: &Partial) -> Result<(), PartialFileError> {
    let path = dir.join(PARTIAL_BIN);
    crate::output::write_atomic(&path, &encode(p))
        .map_err(|source| PartialFileError::Io { path, source })
}

pub fn read(dir: &Path) -> Result<Partial, PartialFileError> {
    let path = dir.join(PARTIAL_BIN);
    let bytes = std::fs::read(&path).map_err(|source| PartialFileError::Io {
        path: path.clone(),
        source,
    })?;
    decode(&bytes).map_err(|problem| PartialFileError::Format { path, problem })
}

pub fn decode(bytes: &[u8]) -> Result<Partial, String> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(8)? != MAGIC {
        return Err("no FKEVPART magic".into());
    }
    let version = r.u32()?;
    if version != VERSION {
        return Err(format!(
            "format version {version}; this facekit reads {VERSION}"
        ));
    }
    let comparisons = r.u64()?;
    let has_error = r.u8()? != 0;
    let error = r.f64()?;
    let precision_note = if r.u8()? != 0 {
        let n = r.count_u32(1)?;
        let bytes = r.take(n)?;
        Some(String::from_utf8(bytes.to_vec()).map_err(|_| "a precision note not UTF-8")?)
    } else {
        None
    };
    let verification = match r.u8()? {
        0 => Verification::Scored(r.scores()?),
        1 => Verification::Listed(r.f32s()?),
        k => return Err(format!("verification kind {k}")),
    };
    let n = r.count(4 + 1 + 4 + 8)?;
    let mut probes = Vec::with_capacity(n);
    for _ in 0..n {
        let k = r.count_u32(8)?;
        let mut top = Vec::with_capacity(k);
        for _ in 0..k {
            top.push(Candidate {
                index: r.u32()?,
                score: r.f32()?,
            });
        }
        let mated = r.u8()? != 0;
        let (score, rank) = (r.f32()?, r.u64()?);
        probes.push(ProbeResult {
            top,
            mate_score: mated.then_some(score),
            mate_rank: mated.then_some(rank),
        });
    }
    let flags = r.count_u32(4)?;
    let mut groups = Vec::with_capacity(flags);
    for _ in 0..flags {
        let n = r.count_u32(1)?;
        let mut flag = Vec::with_capacity(n);
        for _ in 0..n {
            flag.push(r.scores()?);
        }
        groups.push(flag);
    }
    if r.at != bytes.len() {
        return Err(format!("{} bytes after the end", bytes.len() - r.at));
    }
    Ok(Partial {
        verification,
        probes,
        groups,
        score_error: has_error.then_some(error),
        precision_note,
        comparisons,
    })
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f32(&mut self, v: f32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f32s(&mut self, v: &[f32]) {
        self.u64(v.len() as u64);
        self.0.reserve(v.len() * 4);
        for &x in v {
            self.f32(x);
        }
    }
    fn scores(&mut self, s: &Scores) {
        self.u64(s.capacity as u64);
        self.f32s(&s.genuine);
        let subjects = !s.subjects.is_empty();
        self.u8(subjects as u8);
        if subjects {
            for &x in &s.subjects {
                self.u32(x);
            }
        }
        self.u32(s.impostor_hist.len() as u32);
        let filled: Vec<(usize, u64)> = s
            .impostor_hist
            .iter()
            .copied()
            .enumerate()
            .filter(|&(_, n)| n > 0)
            .collect();
        self.u64(filled.len() as u64);
        for (bin, n) in filled {
            self.u32(bin as u32);
            self.u64(n);
        }
        self.tail(&s.impostor_tail);
        self.pairs(&s.hardest_genuine);
        self.pairs(&s.hardest_impostors);
        self.u32(s.bands.len() as u32);
        for b in &s.bands {
            self.u32(b.low);
            self.u32(b.high);
        }
        self.runs(&s.band_counts);
    }

    fn pairs(&mut self, pairs: &[PairScore]) {
        self.u64(pairs.len() as u64);
        for p in pairs {
            self.f32(p.score);
            self.u32(p.probe);
            self.u32(p.gallery);
        }
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn tail(&mut self, tail: &[f32]) {
        let runs: Vec<(f32, u64)> = tail
            .chunk_by(|a, b| a.to_bits() == b.to_bits())
            .map(|run| (run[0], run.len() as u64))
            .collect();
        self.runs(&runs);
    }

    /// Distinct values, descending, with their counts (TAIL).
    fn runs(&mut self, runs: &[(f32, u64)]) {
        self.u64(runs.iter().map(|r| r.1).sum());
        self.u64(runs.len() as u64);
        let mut previous = 1u64 << 32;
        for &(value, count) in runs {
            let key = u64::from(order_key(value));
            self.varint(previous - key);
            self.varint(count);
            previous = key;
        }
    }
}

/// A u32 whose order is the scores' `total_cmp` order.
fn order_key(s: f32) -> u32 {
    let bits = s.to_bits();
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | 1 << 31
    }
}

fn score_of_key(key: u32) -> f32 {
    f32::from_bits(if key >> 31 == 1 {
        key & !(1 << 31)
    } else {
        !key
    })
}

/// The most scores a tail may hold: a job keeps at most
/// `MAX_EXACT_BUDGET` impostor scores exactly each way.
const TAIL_LIMIT: u64 = super::MAX_EXACT_BUDGET;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("truncated at byte {}", self.at))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("N bytes taken"))
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn f32(&mut self) -> Result<f32, String> {
        Ok(f32::from_le_bytes(self.array()?))
    }
    fn f64(&mut self) -> Result<f64, String> {
        Ok(f64::from_le_bytes(self.array()?))
    }
    /// A u64 count of items of at least `size` bytes each, checked
    /// against the bytes left.
    fn count(&mut self, size: usize) -> Result<usize, String> {
        let n = self.u64()?;
        self.fits(n, size)
    }
    fn count_u32(&mut self, size: usize) -> Result<usize, String> {
        let n = self.u32()? as u64;
        self.fits(n, size)
    }
    fn fits(&self, n: u64, size: usize) -> Result<usize, String> {
        let left = (self.bytes.len() - self.at) as u64;
        if n.saturating_mul(size as u64) > left {
            return Err(format!(
                "a count of {n} at byte {} runs past the end",
                self.at
            ));
        }
        Ok(n as usize)
    }
    fn f32s(&mut self) -> Result<Vec<f32>, String> {
        let n = self.count(4)?;
        Ok(self
            .take(n * 4)?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("an overlong number before byte {}", self.at))
    }

    fn tail(&mut self) -> Result<Vec<f32>, String> {
        let (total, runs) = self.runs()?;
        if total > TAIL_LIMIT {
            return Err(format!("a tail of {total} scores"));
        }
        let mut tail = Vec::with_capacity(total as usize);
        for (value, count) in runs {
            tail.resize(tail.len() + count as usize, value);
        }
        Ok(tail)
    }

    /// TAIL as distinct values and counts, with their total.
    fn runs(&mut self) -> Result<(u64, Vec<(f32, u64)>), String> {
        let total = self.u64()?;
        let n = self.count(2)?;
        let mut runs = Vec::with_capacity(n);
        let (mut key, mut sum) = (1u64 << 32, 0u64);
        for _ in 0..n {
            let step = self.varint()?;
            let count = self.varint()?;
            if step == 0 || step > key || count == 0 {
                return Err(format!("a tail that does not descend at byte {}", self.at));
            }
            sum = sum.saturating_add(count);
            if sum > total {
                return Err(format!("more than the {total} tail scores announced"));
            }
            key -= step;
            runs.push((score_of_key(key as u32), count));
        }
        if sum != total {
            return Err(format!("{sum} of the {total} tail scores"));
        }
        Ok((total, runs))
    }

    fn pairs(&mut self) -> Result<Vec<PairScore>, String> {
        let n = self.count(12)?;
        (0..n)
            .map(|_| {
                Ok(PairScore {
                    score: self.f32()?,
                    probe: self.u32()?,
                    gallery: self.u32()?,
                })
            })
            .collect()
    }

    fn scores(&mut self) -> Result<Scores, String> {
        let capacity = self.u64()?;
        let genuine = self.f32s()?;
        let subjects = if self.u8()? != 0 {
            self.fits(genuine.len() as u64, 4)?;
            (0..genuine.len())
                .map(|_| self.u32())
                .collect::<Result<_, _>>()?
        } else {
            Vec::new()
        };
        let bins = self.u32()? as usize;
        // Bins are those of a histogram spec (2^16 by default): bounded.
        if bins > 1 << 24 {
            return Err(format!("{bins} histogram bins"));
        }
        let mut impostor_hist = vec![0u64; bins];
        let filled = self.count(12)?;
        for _ in 0..filled {
            let (bin, n) = (self.u32()? as usize, self.u64()?);
            let slot = impostor_hist
                .get_mut(bin)
                .ok_or_else(|| format!("bin {bin} of {bins}"))?;
            *slot = n;
        }
        let impostor_tail = self.tail()?;
        let hardest_genuine = self.pairs()?;
        let hardest_impostors = self.pairs()?;
        let n_bands = self.u32()? as u64;
        self.fits(n_bands, 8)?;
        let bands = (0..n_bands)
            .map(|_| {
                let (low, high) = (self.u32()?, self.u32()?);
                if low >= high || high as usize > bins {
                    return Err(format!("a score band of bins {low}..{high} of {bins}"));
                }
                Ok(ScoreBand { low, high })
            })
            .collect::<Result<_, String>>()?;
        let band_counts = self.runs()?.1;
        Ok(Scores {
            bands,
            band_counts,
            genuine,
            subjects,
            impostor_hist,
            impostor_tail,
            hardest_genuine,
            hardest_impostors,
            capacity: usize::try_from(capacity).map_err(|_| "capacity too large".to_string())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_reads_back_as_written_and_damage_is_named() {
        let note = "fp32 ran instead of bf16: …";
        let scores = Scores {
            genuine: vec![0.9, 0.5],
            subjects: vec![3, 1],
            impostor_hist: vec![0, 4, 0, 1],
            impostor_tail: vec![0.4, 0.4, 0.0, -0.0, -0.0, -0.5, f32::NEG_INFINITY],
            capacity: 7,
            bands: vec![ScoreBand { low: 1, high: 3 }],
            band_counts: vec![(0.25, 3), (-0.1, 1 << 40)],
            hardest_genuine: vec![PairScore {
                score: 0.5,
                probe: 1,
                gallery: 4,
            }],
            hardest_impostors: vec![PairScore {
                score: 0.4,
                probe: 0,
                gallery: 9,
            }],
        };
        let p = Partial {
            verification: Verification::Scored(scores.clone()),
            probes: vec![
                ProbeResult::of(&[(2, 0.8), (0, 0.1)], Some((0.8, 1))),
                ProbeResult::of(&[], None),
            ],
            groups: vec![vec![scores.clone(), scores], vec![]],
            score_error: Some(1.5e-3),
            precision_note: Some(note.to_string()),
            comparisons: 12,
        };
        let bytes = encode(&p);
        assert_eq!(decode(&bytes), Ok(p));
        let listed = Partial {
            verification: Verification::Listed(vec![0.25, f32::MIN_POSITIVE]),
            probes: vec![],
            groups: vec![],
            score_error: None,
            precision_note: None,
            comparisons: 2,
        };
        assert_eq!(decode(&encode(&listed)), Ok(listed));
        for cut in [0, 9, 30, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = bytes.clone();
        // The comparisons are at byte 12; the scored set's genuine count
        // comes after them, the error, the note, the kind and the
        // capacity: claim 2^60 of them.
        let at = 12 + 8 + 1 + 8 + 1 + 4 + note.len() + 1 + 8;
        huge[at..at + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(decode(&huge).unwrap_err().contains("runs past the end"));
    }
}
