//! Pairwise comparison of embeddings: one engine interface, two engines
//! (the CPU engine is the reference; the CUDA engine must give the same
//! counts and top-k).
//!
//! An engine never materialises the probe × gallery matrix. It computes
//! cosine scores tile by tile and folds each tile at once into
//! * every genuine (same-identity) score, exactly;
//! * impostor counts in fine histogram bins, plus an exact store of the
//!   highest impostor scores, enough to place thresholds exactly down to
//!   FMR = 1 / impostor count;
//! * per probe: the top-k gallery rows, the best mate score and its rank.
//!
//! Memory is bounded by the tile size and the result sizes, not by N².

pub mod cpu;
mod order;

use std::fmt;
use std::ops::Range;

pub(crate) use order::{
    descending_key, score_of_descending_key, sort_descending, sorted_keys, split_by_sizes,
};

pub mod cuda;
pub mod select;

/// Row-major embeddings, each row L2-normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    rows: usize,
    dim: usize,
    data: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EmbeddingError {
    #[error("{len} values do not make rows of {dim}")]
    Shape { len: usize, dim: usize },
    #[error("row {row} holds a NaN or infinite value")]
    NotFinite { row: usize },
    #[error("row {row} is all zeros")]
    Zero { row: usize },
}

impl EmbeddingError {
    fn row(&self) -> usize {
        match self {
            EmbeddingError::Shape { .. } => 0,
            EmbeddingError::NotFinite { row } | EmbeddingError::Zero { row } => *row,
        }
    }
}

/// Scales one row to unit length, or says why it cannot be.
fn normalize_row(row: usize, chunk: &mut [f32]) -> Result<(), EmbeddingError> {
    // Accumulate in f64: a 512-d sum of squares loses digits in f32. Eight
    // running sums, added in a fixed order at the end: the same result on
    // every machine, without a chain of 512 dependent additions.
    let mut lanes = [0f64; 8];
    let mut octets = chunk.chunks_exact(8);
    for octet in &mut octets {
        for (lane, &v) in lanes.iter_mut().zip(octet) {
            *lane += (v as f64) * (v as f64);
        }
    }
    for (lane, &v) in lanes.iter_mut().zip(octets.remainder()) {
        *lane += (v as f64) * (v as f64);
    }
    let sum: f64 = lanes.iter().sum();
    // A square of any finite f32 is finite in f64: only a value that is
    // not finite makes the sum so.
    if !sum.is_finite() {
        return Err(EmbeddingError::NotFinite { row });
    }
    let norm = sum.sqrt();
    if norm == 0.0 {
        return Err(EmbeddingError::Zero { row });
    }
    for v in chunk.iter_mut() {
        *v = (*v as f64 / norm) as f32;
    }
    Ok(())
}

impl Embeddings {
    /// Takes raw rows and L2-normalises each one. Non-finite and all-zero
    /// rows are refused, naming the row.
    pub fn normalized(mut data: Vec<f32>, dim: usize) -> Result<Embeddings, EmbeddingError> {
        use rayon::prelude::*;
        if dim == 0 || !data.len().is_multiple_of(dim) {
            return Err(EmbeddingError::Shape {
                len: data.len(),
                dim,
            });
        }
        // Rows in parallel (a 10^5 × 512 gallery is 5·10^7 values); the
        // error names the first bad row whatever the schedule.
        let first_error = data
            .par_chunks_mut(dim)
            .enumerate()
            .filter_map(|(row, chunk)| normalize_row(row, chunk).err())
            .min_by_key(|e| e.row());
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok(Embeddings {
            rows: data.len() / dim,
            dim,
            data,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn dim(&self) -> usize {
        self.dim
    }
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
    /// Every row, borrowed.
    pub fn view(&self) -> EmbeddingRows<'_> {
        self.view_rows(0..self.rows)
    }
    /// Rows `range`, borrowed: a block of a gallery costs no copy.
    pub fn view_rows(&self, range: Range<usize>) -> EmbeddingRows<'_> {
        EmbeddingRows {
            rows: range.len(),
            dim: self.dim,
            data: &self.data[range.start * self.dim..range.end * self.dim],
        }
    }
    /// The rows whose indices are given, in that order (copied).
    pub fn select(&self, indices: &[usize]) -> Embeddings {
        self.view().select(indices)
    }
}

/// Consecutive rows of an [`Embeddings`], borrowed: what a comparison job
/// reads.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddingRows<'a> {
    rows: usize,
    dim: usize,
    data: &'a [f32],
}

impl<'a> EmbeddingRows<'a> {
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn dim(&self) -> usize {
        self.dim
    }
    pub fn as_slice(&self) -> &'a [f32] {
        self.data
    }
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
    /// The rows whose indices are given, in that order (copied in
    /// parallel: a 10^5-row gallery is 200 MB).
    pub fn select(&self, indices: &[usize]) -> Embeddings {
        use rayon::prelude::*;
        let mut data = vec![0f32; indices.len() * self.dim];
        data.par_chunks_mut(self.dim)
            .zip(indices)
            .for_each(|(dst, &i)| dst.copy_from_slice(self.row(i)));
        Embeddings {
            rows: indices.len(),
            dim: self.dim,
            data,
        }
    }
}

/// The dot product of two rows in float64: what the engines' sampled score
/// errors are measured against.
pub fn dot_f64(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// SplitMix64, a small deterministic generator: sample positions and
/// synthetic benchmark rows, not statistics.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1), on a grid of 2^-23.
    pub fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Fine, equal-width bins over the cosine range [-1, 1]. Engines must bin
/// with exactly [`HistogramSpec::bin`]'s arithmetic so their counts agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramSpec {
    pub bins: u32,
}

impl HistogramSpec {
    /// 2^16 bins: a width of about 3.1e-5 in cosine.
    pub const DEFAULT: HistogramSpec = HistogramSpec { bins: 1 << 16 };

    /// The bin of a score: `floor((s + 1) * bins / 2)` in f32, clamped, so
    /// scores a rounding error outside [-1, 1] land in the end bins.
    #[inline]
    pub fn bin(&self, score: f32) -> usize {
        let scaled = (score + 1.0) * (self.bins as f32 * 0.5);
        // Clamped in f32 before the cast (bins - 1 is exact in f32, NaN
        // goes to 0): the same bin as flooring first, but a cast to u32 is
        // a few instructions where one to usize is a branchy sequence, and
        // this runs once per comparison.
        scaled.max(0.0).min((self.bins - 1) as f32) as u32 as usize
    }

    /// The lower edge of bin `i`: every score counted in it is >= this.
    pub(crate) fn lower_edge(&self, i: usize) -> f64 {
        i as f64 * 2.0 / self.bins as f64 - 1.0
    }
}

/// The arithmetic of an engine's products (fp32 sums in every case but
/// fp16 on the GPU's tensor cores, which sum in fp32 too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Fp32,
    /// fp32 operands rounded to 10-bit mantissas by the GPU's tensor cores.
    Tf32,
    Bf16,
    Fp16,
}

impl Precision {
    /// The name `--precision` takes and `summary.json` records.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        }
    }
}

/// Rows (probes) and columns (gallery rows) of one score tile. Each engine
/// has its own default: `TileShape::CPU_DEFAULT`, `TileShape::CUDA_DEFAULT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileShape {
    pub rows: usize,
    pub cols: usize,
}

/// Which comparisons a job makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pairing {
    /// Every unordered pair {i, j}, i != j, of the probe set, which is also
    /// the gallery (verification over all distinct pairs). Each probe's
    /// candidates are the other rows.
    AllDistinct,
    /// Every probe row against every gallery row.
    ProbeGallery,
}

/// One comparison job. Identity labels are dense indices; a probe is mated
/// when some gallery row carries its label.
#[derive(Debug, Clone, Copy)]
pub struct CompareJob<'a> {
    pub probes: EmbeddingRows<'a>,
    pub probe_labels: &'a [u32],
    pub gallery: EmbeddingRows<'a>,
    pub gallery_labels: &'a [u32],
    pub pairing: Pairing,
    /// Candidates kept per probe (0: none).
    pub top_k: usize,
    pub histogram: HistogramSpec,
    /// How many of the highest impostor scores to keep exactly.
    pub tail_capacity: usize,
    /// How many of the hardest pairs to name ([`CompareResult::hardest_genuine`],
    /// [`CompareResult::hardest_impostors`]; 0: none).
    pub examples: usize,
    /// Histogram bins whose impostor scores are wanted as themselves
    /// ([`CompareResult::band_counts`]), sorted ascending and disjoint.
    pub bands: &'a [ScoreBand],
    /// Gallery rows outside `gallery` that hold mates of the probes, with
    /// their labels: a job over one block of a gallery split into blocks.
    /// They count toward each probe's mate score, so that its rank counts
    /// this block's non-mates at or above the whole gallery's mate score
    /// (ranks of blocks then add up); they are compared with nothing else
    /// (no genuine score, candidate or impostor). Probe × gallery only.
    pub mates_elsewhere: Option<(EmbeddingRows<'a>, &'a [u32])>,
}

/// The histogram bins `[low, high)` of a job whose impostor scores it keeps
/// exactly, beside the exact tail: where a threshold below the tail falls
/// (`evaluate` places them from a sample of the job's scores).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ScoreBand {
    pub low: u32,
    pub high: u32,
}

impl ScoreBand {
    /// Whether bin `b` is in the band.
    #[inline]
    pub fn holds(&self, b: usize) -> bool {
        self.low as usize <= b && b < self.high as usize
    }

    /// The highest and the lowest f32 whose bin by `spec` is in the band.
    /// Scores a rounding error outside [-1, 1] fall in the end bins; the
    /// range reaches 64 ulps past either end (a score beyond leaves its
    /// bin's count unmatched, and the bin stays a count).
    pub(crate) fn score_range(&self, spec: HistogramSpec) -> (f32, f32) {
        let inside = |s: f32| self.holds(spec.bin(s));
        // From a score at the band's edge: the last score inside, going out.
        let last_inside = |mut s: f32, out: fn(f32) -> f32, back: fn(f32) -> f32| {
            while !inside(s) {
                s = back(s);
            }
            while inside(out(s)) {
                s = out(s);
            }
            s
        };
        let beyond = |s: f32, out: fn(f32) -> f32| (0..64).fold(s, |s, _| out(s));
        let edge = |b: u32| spec.lower_edge(b as usize) as f32;
        let high = if self.high >= spec.bins {
            beyond(1.0, f32::next_up)
        } else {
            last_inside(edge(self.high), f32::next_up, f32::next_down)
        };
        let low = if self.low == 0 {
            beyond(-1.0, f32::next_down)
        } else {
            last_inside(edge(self.low), f32::next_down, f32::next_up)
        };
        (high, low)
    }

    /// How many f32 values the band spans: the counters an engine keeps
    /// for it.
    pub fn values(&self, spec: HistogramSpec) -> u64 {
        let (high, low) = self.score_range(spec);
        u64::from(descending_key(low) - descending_key(high)) + 1
    }
}

/// The impostor scores of one [`ScoreBand`] by exact value: a counter per
/// f32 value of its score range, from the highest down. Counts are sums,
/// so the counts of disjoint comparisons add up exactly; dense, because a
/// band is placed where scores crowd (most of its values are met), and
/// adding in place allocates nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct BandCounts {
    /// The [`descending_key`] of the band's highest value: counter `i`
    /// holds the value whose key is `first + i`.
    first: u32,
    counts: Vec<u64>,
}

impl BandCounts {
    /// No scores yet, in `band` of a histogram by `spec`.
    pub fn new(band: ScoreBand, spec: HistogramSpec) -> BandCounts {
        let (high, _) = band.score_range(spec);
        BandCounts {
            first: descending_key(high),
            counts: vec![0; band.values(spec) as usize],
        }
    }

    /// The highest and the lowest value counted.
    pub(crate) fn range(&self) -> (f32, f32) {
        let last = self.first + self.counts.len().saturating_sub(1) as u32;
        (
            score_of_descending_key(self.first),
            score_of_descending_key(last),
        )
    }

    /// Counts `n` scores of value `s`; false, counting nothing, when `s` is
    /// outside the band.
    #[inline]
    pub fn add(&mut self, s: f32, n: u64) -> bool {
        let at = descending_key(s).wrapping_sub(self.first) as usize;
        match self.counts.get_mut(at) {
            Some(c) => {
                *c += n;
                true
            }
            None => false,
        }
    }

    /// Adds the counts of the same band's scores elsewhere; false, adding
    /// nothing, when `other` counts another band.
    pub(crate) fn add_counts(&mut self, other: &BandCounts) -> bool {
        if other.first != self.first || other.counts.len() != self.counts.len() {
            return false;
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        true
    }

    /// The values met and their counts, highest first.
    pub fn runs(&self) -> impl Iterator<Item = (f32, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|&(_, &n)| n > 0)
            .map(|(i, &n)| (score_of_descending_key(self.first + i as u32), n))
    }

    /// How many counters the band has.
    pub(crate) fn width(&self) -> usize {
        self.counts.len()
    }
}

/// The most f32 values a job's bands may span together (8 MiB of counters
/// per 2^20): bands near cosine 0, where f32 values crowd, are refused.
pub(crate) const MAX_BAND_VALUES: u64 = 1 << 23;

/// The counts of `scores` in each of `bands` (scores outside them left
/// out): what an engine's [`CompareResult::band_counts`] must be.
#[cfg(test)]
pub(crate) fn band_counts_of(
    bands: &[ScoreBand],
    spec: HistogramSpec,
    scores: &[f32],
) -> Vec<BandCounts> {
    let mut out: Vec<BandCounts> = bands.iter().map(|&b| BandCounts::new(b, spec)).collect();
    for &s in scores {
        for (band, counts) in bands.iter().zip(&mut out) {
            if band.holds(spec.bin(s)) {
                assert!(
                    counts.add(s, 1),
                    "{s} in bin {} but not in its band's range",
                    spec.bin(s)
                );
            }
        }
    }
    out
}

/// One compared pair: a probe row, a gallery row and their score. For all
/// distinct pairs the lower row is the probe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairScore {
    pub score: f32,
    pub probe: u32,
    pub gallery: u32,
}

/// Which end of the scores a list of hardest pairs keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hardest {
    /// Genuine pairs: the lowest scores, lowest first.
    Lowest,
    /// Impostor pairs: the highest scores, highest first.
    Highest,
}

impl Hardest {
    /// Cuts `pairs` to the `n` hardest, in this end's order, ties by lower
    /// (probe, gallery): the same pairs whatever order they came in, so
    /// lists of disjoint sets of pairs merge exactly by appending and
    /// cutting again.
    pub fn keep(self, pairs: &mut Vec<PairScore>, n: usize) {
        let key = |a: &PairScore, b: &PairScore| {
            let by_score = match self {
                Hardest::Lowest => a.score.total_cmp(&b.score),
                Hardest::Highest => b.score.total_cmp(&a.score),
            };
            by_score.then((a.probe, a.gallery).cmp(&(b.probe, b.gallery)))
        };
        if pairs.len() > n && n > 0 {
            pairs.select_nth_unstable_by(n - 1, key);
        }
        pairs.truncate(n);
        pairs.sort_unstable_by(key);
    }

    /// Adds a pair to a list being cut to the `n` hardest, cutting it
    /// whenever it has grown by a few thousand (a cut sorts: not once a
    /// pair); the caller's last [`Hardest::keep`] makes it exact. After a
    /// cut, the n-th score: a pair on the easy side of it can no longer
    /// enter, and a caller may skip offering it.
    pub(crate) fn offer(self, list: &mut Vec<PairScore>, n: usize, pair: PairScore) -> Option<f32> {
        if n == 0 {
            return None;
        }
        list.push(pair);
        if list.len() >= n + 4096 {
            self.keep(list, n);
            return list.last().map(|p| p.score);
        }
        None
    }
}

/// A gallery row and its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub index: u32,
    pub score: f32,
}

impl Candidate {
    /// The order of a probe's candidate list: higher score first, ties by
    /// lower index.
    pub(crate) fn best_first(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
        b.score.total_cmp(&a.score).then(a.index.cmp(&b.index))
    }
}

/// Per probe: its candidate list and its mate.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProbeResult {
    /// The `top_k` best gallery rows, by score descending, ties by lower index.
    pub top: Vec<Candidate>,
    /// The best score against a gallery row of the probe's identity.
    pub mate_score: Option<f32>,
    /// 1 + the number of non-mate gallery rows scoring >= the mate score
    /// (ties count against the probe, as in bob.measure and NIST).
    pub mate_rank: Option<u64>,
}

impl ProbeResult {
    /// One probe's results against two blocks of one gallery as its result
    /// against both: candidates (indices in the whole gallery's order)
    /// merged by the same rule and cut to `top_k`, and the ranks' non-mates
    /// added. Each block's mate score is over the whole gallery
    /// ([`CompareJob::mates_elsewhere`]), so both have the same.
    pub(crate) fn with_block(mut self, other: ProbeResult, top_k: usize) -> ProbeResult {
        self.top.extend(other.top);
        self.top.sort_by(Candidate::best_first);
        self.top.truncate(top_k);
        self.mate_score = match (self.mate_score, other.mate_score) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.mate_rank = match (self.mate_rank, other.mate_rank) {
            (Some(a), Some(b)) => Some(a + b - 1),
            (a, b) => a.or(b),
        };
        self
    }
}

#[cfg(test)]
impl ProbeResult {
    /// A hand-made search result for tests: `(gallery index, score)`
    /// candidates and the mate's `(score, rank)`.
    pub fn of(top: &[(u32, f32)], mate: Option<(f32, u64)>) -> ProbeResult {
        ProbeResult {
            top: top
                .iter()
                .map(|&(index, score)| Candidate { index, score })
                .collect(),
            mate_score: mate.map(|m| m.0),
            mate_rank: mate.map(|m| m.1),
        }
    }
}

/// What an engine returns for a job.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareResult {
    /// Every genuine score, in no particular order.
    pub genuine: Vec<f32>,
    /// The identity label of each genuine score (`genuine[i]` compares two
    /// rows of `genuine_subjects[i]`), for subject-bootstrap intervals. An
    /// engine may leave it empty; the FNMR then gets no interval.
    pub genuine_subjects: Vec<u32>,
    /// Impostor counts per bin of the job's histogram.
    pub impostor_hist: Vec<u64>,
    /// The highest impostor scores, exactly, sorted descending; at most
    /// `tail_capacity` of them.
    pub impostor_tail: Vec<f32>,
    /// One per probe row.
    pub probes: Vec<ProbeResult>,
    /// The largest sampled |score − float64 score| of the job, for engines
    /// whose products are not exact float32 sums in a fixed order (the CUDA
    /// engine, the CPU's bf16 kernel). None otherwise. Part of the result,
    /// not of the engine, so that the results of several jobs (the parts of
    /// a split run) carry their own and merge by the maximum.
    pub score_error: Option<f64>,
    /// Why the job ran in another precision than the engine's, when it did
    /// (the CPU engine runs a bf16 job in fp32 where bf16 would be slower).
    pub precision_note: Option<String>,
    /// The job's `examples` lowest genuine pairs ([`Hardest::Lowest`]).
    pub hardest_genuine: Vec<PairScore>,
    /// The job's `examples` highest impostor pairs ([`Hardest::Highest`]),
    /// at most as many as the exact tail holds.
    pub hardest_impostors: Vec<PairScore>,
    /// Every impostor score in the job's bands, a [`BandCounts`] per band
    /// in the job's order; empty from an engine that counts none
    /// ([`Engine::counts_bands`]: those bins then stay counts).
    pub band_counts: Vec<BandCounts>,
}

impl CompareResult {
    pub fn impostor_count(&self) -> u64 {
        self.impostor_hist.iter().sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("probe and gallery dimensions differ ({probe} vs {gallery})")]
    Dimension { probe: usize, gallery: usize },
    #[error("{what}: {labels} labels for {rows} rows")]
    Labels {
        what: &'static str,
        labels: usize,
        rows: usize,
    },
    #[error("the score bands span {0} f32 values, more than {MAX_BAND_VALUES}")]
    Bands(u64),
    #[error("{0}")]
    Device(String),
}

/// An engine that runs comparison jobs: the CPU engine (`cpu`) and the CUDA
/// engine (`cuda`).
pub trait Engine: Send + Sync {
    /// What ran the job, for summaries: "cpu (2 threads)", "cuda:0 NVIDIA H200".
    fn description(&self) -> String;
    /// Whether the engine counts the scores of a job's bands
    /// ([`CompareJob::bands`]); one that does not leaves them empty.
    fn counts_bands(&self) -> bool;
    fn compare(&self, job: &CompareJob<'_>) -> Result<CompareResult, CompareError>;
}

impl fmt::Debug for dyn Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description())
    }
}

impl CompareJob<'_> {
    /// Checks the shapes every engine relies on.
    pub(crate) fn validate(&self) -> Result<(), CompareError> {
        if self.probes.dim() != self.gallery.dim() {
            return Err(CompareError::Dimension {
                probe: self.probes.dim(),
                gallery: self.gallery.dim(),
            });
        }
        if self.probe_labels.len() != self.probes.rows() {
            return Err(CompareError::Labels {
                what: "probes",
                labels: self.probe_labels.len(),
                rows: self.probes.rows(),
            });
        }
        if self.gallery_labels.len() != self.gallery.rows() {
            return Err(CompareError::Labels {
                what: "gallery",
                labels: self.gallery_labels.len(),
                rows: self.gallery.rows(),
            });
        }
        if let Some((rows, labels)) = self.mates_elsewhere {
            if self.pairing == Pairing::AllDistinct {
                return Err(CompareError::Device(
                    "mates outside the gallery need probe × gallery".into(),
                ));
            }
            if rows.dim() != self.probes.dim() {
                return Err(CompareError::Dimension {
                    probe: self.probes.dim(),
                    gallery: rows.dim(),
                });
            }
            if labels.len() != rows.rows() {
                return Err(CompareError::Labels {
                    what: "mates outside the gallery",
                    labels: labels.len(),
                    rows: rows.rows(),
                });
            }
        }
        let values: u64 = self.bands.iter().map(|b| b.values(self.histogram)).sum();
        if values > MAX_BAND_VALUES {
            return Err(CompareError::Bands(values));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_normalised_and_bad_rows_named() {
        let e = Embeddings::normalized(vec![3.0, 4.0, 0.0, 2.0], 2).unwrap();
        assert_eq!(e.row(0), &[0.6, 0.8]);
        assert_eq!(e.row(1), &[0.0, 1.0]);
        assert_eq!(
            Embeddings::normalized(vec![1.0, 0.0, 0.0, 0.0], 2),
            Err(EmbeddingError::Zero { row: 1 })
        );
        assert_eq!(
            Embeddings::normalized(vec![1.0, f32::NAN], 2),
            Err(EmbeddingError::NotFinite { row: 0 })
        );
        assert!(matches!(
            Embeddings::normalized(vec![1.0; 3], 2),
            Err(EmbeddingError::Shape { .. })
        ));
    }

    #[test]
    fn hardest_pairs_merge_in_any_order() {
        let pair = |score, probe, gallery| PairScore {
            score,
            probe,
            gallery,
        };
        let all = vec![
            pair(0.5, 3, 4),
            pair(0.9, 0, 1),
            pair(0.5, 1, 2),
            pair(0.1, 2, 9),
            pair(0.5, 0, 7),
        ];
        let mut whole = all.clone();
        Hardest::Highest.keep(&mut whole, 3);
        assert_eq!(whole, [pair(0.9, 0, 1), pair(0.5, 0, 7), pair(0.5, 1, 2)]);
        let (mut a, mut b) = (all[..2].to_vec(), all[2..].to_vec());
        Hardest::Highest.keep(&mut a, 3);
        Hardest::Highest.keep(&mut b, 3);
        b.extend(a);
        Hardest::Highest.keep(&mut b, 3);
        assert_eq!(b, whole);
        let mut low = all;
        Hardest::Lowest.keep(&mut low, 2);
        assert_eq!(low, [pair(0.1, 2, 9), pair(0.5, 0, 7)]);
    }

    #[test]
    fn a_band_spans_the_scores_of_its_bins() {
        let spec = HistogramSpec { bins: 64 };
        for band in [
            ScoreBand { low: 40, high: 45 },
            ScoreBand { low: 0, high: 3 },
            ScoreBand { low: 60, high: 64 },
        ] {
            let (high, low) = band.score_range(spec);
            if band.high < spec.bins {
                assert!(band.holds(spec.bin(high)) && !band.holds(spec.bin(high.next_up())));
            }
            if band.low > 0 {
                assert!(band.holds(spec.bin(low)) && !band.holds(spec.bin(low.next_down())));
            }
            assert_eq!(
                band.values(spec),
                u64::from(descending_key(low) - descending_key(high)) + 1
            );
        }
        // Bins of 1/32 in [0.25, 0.5) hold 2^23 / 8 values each, and a
        // few below the edge that (s + 1) * 32 rounds into the bin.
        let values = ScoreBand { low: 40, high: 41 }.values(spec);
        assert!((1 << 20..(1 << 20) + 8).contains(&values), "{values}");
    }

    #[test]
    fn bins_cover_the_cosine_range() {
        let h = HistogramSpec { bins: 4 };
        assert_eq!(h.bin(-1.0), 0);
        assert_eq!(h.bin(-1.5), 0);
        assert_eq!(h.bin(-0.5), 1);
        assert_eq!(h.bin(0.0), 2);
        assert_eq!(h.bin(0.999), 3);
        assert_eq!(h.bin(1.0), 3);
        assert_eq!(h.bin(1.0001), 3);
        assert_eq!(h.lower_edge(2), 0.0);
        for s in [-0.7f32, -0.1, 0.3, 0.93] {
            assert!(h.lower_edge(h.bin(s)) <= s as f64);
        }
    }

    #[test]
    fn bins_equal_floor_then_clamp() {
        let spec = HistogramSpec::DEFAULT;
        let reference = |s: f32| {
            let scaled = (s + 1.0) * (spec.bins as f32 * 0.5);
            (scaled.max(0.0) as usize).min(spec.bins as usize - 1)
        };
        let specials = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -1.0,
            1.0,
            0.0,
            -0.0,
            1.0f32.next_up(),
            -3.0,
            7.5,
        ];
        let sweep = (0..=2_000_000).map(|i| -1.01 + i as f32 * 1.01e-6);
        for s in specials.into_iter().chain(sweep) {
            assert_eq!(spec.bin(s), reference(s), "score {s}");
        }
    }
}
