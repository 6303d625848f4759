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

use crate::compare::{
    BandCounts, Candidate, HistogramSpec, PairScore, ProbeResult, ScoreBand, MAX_BAND_VALUES,
};

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
        self.band_counts(&s.band_counts);
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
        let runs = || {
            tail.chunk_by(|a, b| a.to_bits() == b.to_bits())
                .map(|run| (run[0], run.len() as u64))
        };
        self.runs(tail.len() as u64, runs().count(), runs());
    }

    /// The band counts as one TAIL, from the highest band down.
    fn band_counts(&mut self, bands: &[BandCounts]) {
        let (total, distinct) = bands
            .iter()
            .flat_map(BandCounts::runs)
            .fold((0, 0), |(total, n), (_, count)| (total + count, n + 1));
        self.runs(
            total,
            distinct,
            bands.iter().rev().flat_map(BandCounts::runs),
        );
    }

    /// `n` distinct values, descending, with their counts (TAIL).
    fn runs(&mut self, total: u64, n: usize, runs: impl Iterator<Item = (f32, u64)>) {
        self.u64(total);
        self.u64(n as u64);
        let mut previous = 1u64 << 32;
        for (value, count) in runs {
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

/// A TAIL being read: each distinct value and its count, highest first,
/// then the check that the counts add up to the total announced.
struct Runs<'r, 'a> {
    r: &'r mut Reader<'a>,
    total: u64,
    left: usize,
    key: u64,
    sum: u64,
}

impl Runs<'_, '_> {
    fn next(&mut self) -> Result<Option<(f32, u64)>, String> {
        if self.left == 0 {
            return match self.sum == self.total {
                true => Ok(None),
                false => Err(format!("{} of the {} tail scores", self.sum, self.total)),
            };
        }
        self.left -= 1;
        let step = self.r.varint()?;
        let count = self.r.varint()?;
        if step == 0 || step > self.key || count == 0 {
            return Err(format!(
                "a tail that does not descend at byte {}",
                self.r.at
            ));
        }
        self.sum = self.sum.saturating_add(count);
        if self.sum > self.total {
            return Err(format!(
                "more than the {} tail scores announced",
                self.total
            ));
        }
        self.key -= step;
        Ok(Some((score_of_key(self.key as u32), count)))
    }
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
    #[inline]
    fn varint(&mut self) -> Result<u64, String> {
        // Counts and steps are mostly below 128: one byte.
        if let Some(&b) = self.bytes.get(self.at).filter(|&&b| b < 0x80) {
            self.at += 1;
            return Ok(u64::from(b));
        }
        let mut v = 0u64;
        for (i, &b) in self.bytes[self.at..].iter().take(10).enumerate() {
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.at += i + 1;
                return Ok(v);
            }
        }
        Err(format!(
            "a truncated or overlong number at byte {}",
            self.at
        ))
    }

    fn tail(&mut self) -> Result<Vec<f32>, String> {
        let mut runs = self.runs()?;
        if runs.total > TAIL_LIMIT {
            return Err(format!("a tail of {} scores", runs.total));
        }
        let mut tail = Vec::with_capacity(runs.total as usize);
        while let Some((value, count)) = runs.next()? {
            tail.resize(tail.len() + count as usize, value);
        }
        Ok(tail)
    }

    /// TAIL, read a run at a time.
    fn runs(&mut self) -> Result<Runs<'_, 'a>, String> {
        let total = self.u64()?;
        let left = self.count(2)?;
        Ok(Runs {
            r: self,
            total,
            left,
            key: 1 << 32,
            sum: 0,
        })
    }

    /// The band counts of `bands` in a histogram of `bins` bins: counters
    /// for every value of each band (their number checked first), filled
    /// from a TAIL whose every value lies in a band.
    fn band_counts(&mut self, bands: &[ScoreBand], bins: u32) -> Result<Vec<BandCounts>, String> {
        let spec = HistogramSpec { bins };
        let width: u64 = bands.iter().map(|b| b.values(spec)).sum();
        if width > MAX_BAND_VALUES {
            return Err(format!("score bands of {width} values"));
        }
        let mut counts: Vec<BandCounts> = bands.iter().map(|&b| BandCounts::new(b, spec)).collect();
        // Values descend, so the band that holds them does too.
        let mut below = counts.len();
        let mut runs = self.runs()?;
        while let Some((value, count)) = runs.next()? {
            loop {
                let Some(band) = below.checked_sub(1).map(|b| &mut counts[b]) else {
                    return Err(format!("a band score {value} outside the score bands"));
                };
                if band.add(value, count) {
                    break;
                }
                below -= 1;
            }
        }
        Ok(counts)
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
        let bands: Vec<ScoreBand> = (0..n_bands)
            .map(|_| {
                let (low, high) = (self.u32()?, self.u32()?);
                if low >= high || high as usize > bins {
                    return Err(format!("a score band of bins {low}..{high} of {bins}"));
                }
                Ok(ScoreBand { low, high })
            })
            .collect::<Result<_, String>>()?;
        if bands.windows(2).any(|w| w[0].high > w[1].low) {
            return Err("score bands out of order".into());
        }
        let band_counts = self.band_counts(&bands, bins as u32)?;
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
    use super::super::partial::Exact;
    use super::*;

    #[test]
    fn a_partial_reads_back_as_written_and_damage_is_named() {
        let note = "fp32 ran instead of bf16: …";
        let spec = HistogramSpec::DEFAULT;
        let mut impostor_hist = vec![0; spec.bins as usize];
        for s in [0.6, -0.25, 0.5, 0.4, 0.4, 0.0, -0.5, -1.0] {
            impostor_hist[spec.bin(s)] += 1;
        }
        // Two bands, the higher with two values met, the lower with one.
        let at = |s: f32| spec.bin(s) as u32;
        let bands = vec![
            ScoreBand {
                low: at(-0.25),
                high: at(-0.25) + 1,
            },
            ScoreBand {
                low: at(0.5),
                high: at(0.5) + 2,
            },
        ];
        let mut band_counts: Vec<BandCounts> =
            bands.iter().map(|&b| BandCounts::new(b, spec)).collect();
        assert!(band_counts[0].add(-0.25, 1 << 40));
        assert!(band_counts[1].add(0.5, 3));
        assert!(band_counts[1].add(0.5f32.next_up(), 1));
        let scores = Scores {
            genuine: vec![0.9, 0.5],
            subjects: vec![3, 1],
            impostor_hist,
            impostor_tail: vec![0.6, 0.4, 0.4, 0.0, -0.0, -0.0, -0.5, f32::NEG_INFINITY],
            capacity: 8,
            bands,
            band_counts,
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
        assert_eq!(decode(&encode(&listed)), Ok(listed.clone()));
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
        // Bands too wide to hold counters for are refused before any are
        // allocated.
        let wide = Partial {
            verification: Verification::Scored(Scores::empty(
                spec.bins as usize,
                &Exact {
                    capacity: 0,
                    bands: vec![ScoreBand {
                        low: 0,
                        high: spec.bins,
                    }],
                },
            )),
            ..listed
        };
        let problem = decode(&encode(&wide)).unwrap_err();
        assert!(problem.contains("score bands of"), "{problem}");
    }
}
