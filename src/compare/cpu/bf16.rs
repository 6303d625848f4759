//! bf16 products for the CPU engine (`--device cpu --precision bf16`), on
//! AVX-512 BF16: `vdpbf16ps` multiplies 32 bf16 pairs and adds them into 16
//! fp32 sums per instruction, twice the multiply-adds of an fp32 FMA.
//!
//! Each embedding is rounded to bf16 once (nearest, ties to even); a row
//! is stored as `u32` pairs, element `2p` in the low half and `2p + 1` in
//! the high half, which is the operand layout of `vdpbf16ps`. The sums are
//! fp32 and follow the pairs in order, the same for every output element
//! wherever it sits in a tile, so a pair's score does not depend on its
//! tile, and `s(a, b) == s(b, a)` bit for bit (each product of two bf16
//! values is exact in fp32): the engine's two passes agree exactly.
//!
//! Measured on this machine's Zen 4 (one core): about 215 GFLOP/s, against
//! about 110 for matrixmultiply's fp32 sgemm.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Rows per micro-tile: 12 × 2 accumulators, 2 B vectors, of 32 registers.
const MR: usize = 12;
/// Columns per micro-tile: two vectors of 16 fp32 sums.
const NR: usize = 32;
/// Row panels per strip: the strip's scores (48 rows × tile width) stay in
/// the L2 cache for the fold that follows.
const STRIP_PANELS: usize = 4;
/// Rows of scores handed to the fold at once.
pub(crate) const STRIP_ROWS: usize = MR * STRIP_PANELS;

/// Whether this CPU runs the kernel.
pub fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    return is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// In tests: whether the kernel can run here, saying so when it cannot
/// (the test then passes without it, or fails where CI requires it).
#[cfg(test)]
pub(crate) fn testable() -> bool {
    if !supported() {
        crate::require::skip(
            "avx512-bf16",
            &crate::require::this_test(),
            "this CPU lacks AVX-512 BF16",
        );
    }
    supported()
}

/// `u32` pairs per row of `dim` values (an odd `dim` gets a zero last half).
pub fn pairs(dim: usize) -> usize {
    dim.div_ceil(2)
}

/// A bound on |bf16 kernel score − fp32 score| for rows of unit length
/// and `dim` values whose bf16 rounding moves none by more than
/// `max_rounding` (Euclidean; at most u = 2^-8 for a unit row, typically
/// about u/√3). For rows a, b rounded by α, β:
/// |ã·b̃ − a·b| = |a·β + α·b̃| ≤ |β| + |α|(1 + |β|) (Cauchy–Schwarz), and
/// each engine's fp32 sum of `dim` terms (any order, fused or not) adds at
/// most γ·Σ|terms| with γ = dim·2^-24 / (1 − dim·2^-24): γ·(1 + e)² for
/// the bf16 sums, γ for the fp32 ones. Flushed subnormals add less than
/// 2^-100. The total is widened by 0.1% for the f32 arithmetic of the
/// comparisons it guards and for rows a rounding off unit length.
pub(crate) fn fp32_distance_bound(dim: usize, max_rounding: f64) -> f32 {
    let e = max_rounding;
    let n = dim as f64 * 2f64.powi(-24);
    let gamma = n / (1.0 - n);
    let bound = 2.0 * e + e * e + gamma * (1.0 + (1.0 + e) * (1.0 + e)) + 2f64.powi(-100);
    (bound * 1.001) as f32
}

/// The largest Euclidean distance between a row of `values` (rows of
/// `dim`) and its bf16 rounding (rows in parallel).
pub(crate) fn max_rounding(values: &[f32], dim: usize) -> f64 {
    use rayon::prelude::*;
    values
        .par_chunks_exact(dim)
        .map(|row| {
            row.iter()
                .map(|&v| {
                    let d = (from_bf16(to_bf16(v)) - v) as f64;
                    d * d
                })
                .sum::<f64>()
                .sqrt()
        })
        .reduce(|| 0.0, f64::max)
}

/// Rounds to the nearest bf16, ties to even. Finite inputs only (the
/// engine's rows are checked finite); NaN is not preserved.
pub(crate) fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounding = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

/// The value of a bf16.
pub(crate) fn from_bf16(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// Rows of `dim` f32 values as rows of bf16 pairs (rows in parallel).
pub fn rows(values: &[f32], dim: usize) -> Vec<u32> {
    use rayon::prelude::*;
    let width = pairs(dim);
    let mut out = vec![0u32; values.len() / dim * width];
    out.par_chunks_mut(width)
        .zip(values.par_chunks_exact(dim))
        .for_each(|(dst, src)| {
            for (k, &v) in src.iter().enumerate() {
                dst[k / 2] |= u32::from(to_bf16(v)) << (16 * (k % 2));
            }
        });
    out
}

/// The buffers one worker reuses from product to product.
#[derive(Debug, Default)]
pub struct Scratch {
    packed_b: Vec<u32>,
    scores: Vec<f32>,
    /// A row of zeros: the rows of a micro-tile past the last row.
    zeros: Vec<u32>,
}

/// Panels of `w` rows of `b`, pair-major inside a panel: `out[panel][p][j]` is
/// pair `p` of row `panel * w + j`, zero past the last row. Written in
/// order, reading the panel's `w` rows side by side (they stay in L1).
fn pack(src: &[u32], width: usize, w: usize, out: &mut Vec<u32>) {
    let rows = src.len() / width;
    out.clear();
    out.resize(rows.div_ceil(w) * width * w, 0);
    for (panel, dst) in out.chunks_exact_mut(width * w).enumerate() {
        let first = panel * w;
        let count = w.min(rows - first);
        let block = &src[first * width..(first + count) * width];
        for (p, dst) in dst.chunks_exact_mut(w).enumerate() {
            for (j, d) in dst[..count].iter_mut().enumerate() {
                *d = block[j * width + p];
            }
        }
    }
}

/// The scores of every row of `a` with every row of `b` (bf16 pair rows,
/// `width` pairs each), handed to `emit(first_row, scores)` a strip of at
/// most [`STRIP_ROWS`] rows at a time, `scores` row-major over all of `b`.
///
/// Panics if the CPU lacks AVX-512 BF16: the engine checks [`supported`]
/// before it is built.
pub fn products(
    a: &[u32],
    b: &[u32],
    width: usize,
    scratch: &mut Scratch,
    emit: &mut dyn FnMut(usize, &[f32]),
) {
    assert!(supported(), "the bf16 kernel needs AVX-512 BF16");
    assert!(
        width > 0 && a.len().is_multiple_of(width) && b.len().is_multiple_of(width),
        "bf16 product shapes"
    );
    let (m, n) = (a.len() / width, b.len() / width);
    if m == 0 || n == 0 {
        return;
    }
    pack(b, width, NR, &mut scratch.packed_b);
    scratch.zeros.resize(width, 0);
    for first in (0..m).step_by(STRIP_ROWS) {
        let rows = STRIP_ROWS.min(m - first);
        scratch.scores.resize(rows * n, 0.0);
        for j in 0..n.div_ceil(NR) {
            let panel_b = &scratch.packed_b[j * width * NR..(j + 1) * width * NR];
            for r0 in (0..rows).step_by(MR) {
                // The rows of `a` are read in place, a pair at a time.
                let a_rows: [&[u32]; MR] = std::array::from_fn(|i| {
                    let r = first + r0 + i;
                    if r0 + i < rows {
                        &a[r * width..(r + 1) * width]
                    } else {
                        &scratch.zeros[..]
                    }
                });
                let c0 = j * NR;
                // SAFETY: the CPU has the features (asserted above); every
                // row holds `width` pairs and the panel `width` × NR; the
                // block written is rows r0.. < rows and columns c0.. < n
                // of the rows × n scores.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    micro(
                        &a_rows,
                        panel_b,
                        width,
                        &mut scratch.scores[r0 * n + c0..],
                        n,
                        MR.min(rows - r0),
                        NR.min(n - c0),
                    )
                }
            }
        }
        emit(first, &scratch.scores);
    }
}

/// One MR × NR block of scores: `out[i * ld + j]` for i < `rows`,
/// j < `cols` (the rest of the block, zero padding, is dropped).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn micro(
    a: &[&[u32]; MR],
    b: &[u32],
    width: usize,
    out: &mut [f32],
    ld: usize,
    rows: usize,
    cols: usize,
) {
    debug_assert!(a.iter().all(|r| r.len() == width) && b.len() == width * NR);
    debug_assert!(out.len() >= (rows - 1) * ld + cols);
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    let a = a.map(|r| r.as_ptr());
    let b = b.as_ptr();
    for p in 0..width {
        // SAFETY: p < width, so the rows and the panel are read inside
        // their length.
        let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(p * NR).cast()));
        let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(p * NR + 16).cast()));
        for (acc, row) in acc.iter_mut().zip(&a) {
            let ai: __m512bh = std::mem::transmute(_mm512_set1_epi32(*row.add(p) as i32));
            acc[0] = _mm512_dpbf16_ps(acc[0], ai, b0);
            acc[1] = _mm512_dpbf16_ps(acc[1], ai, b1);
        }
    }
    let mut block = [0f32; NR];
    for (i, acc) in acc.iter().enumerate().take(rows) {
        let dst = &mut out[i * ld..];
        if cols == NR {
            _mm512_storeu_ps(dst.as_mut_ptr(), acc[0]);
            _mm512_storeu_ps(dst.as_mut_ptr().add(16), acc[1]);
        } else {
            _mm512_storeu_ps(block.as_mut_ptr(), acc[0]);
            _mm512_storeu_ps(block.as_mut_ptr().add(16), acc[1]);
            dst[..cols].copy_from_slice(&block[..cols]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(a: &[u32], b: &[u32], width: usize) -> Vec<f32> {
        let n = b.len() / width;
        let mut all = vec![f32::NAN; a.len() / width * n];
        products(a, b, width, &mut Scratch::default(), &mut |first, s| {
            all[first * n..first * n + s.len()].copy_from_slice(s)
        });
        all
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to the even 1.
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(to_bf16(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(to_bf16(-0.5), 0xbf00);
        assert_eq!(from_bf16(to_bf16(0.15625)), 0.15625);
        let x = 0.123_456_f32;
        assert!((from_bf16(to_bf16(x)) - x).abs() <= x * 2f32.powi(-8));
    }

    /// Every score is the pairs' bf16 products summed in fp32, whatever the
    /// shapes (edges of micro-tiles and strips, odd dims); the reference
    /// adds a pair's two products exactly, so it bounds the rounding.
    #[test]
    fn products_match_a_scalar_reference_at_every_shape() {
        if !testable() {
            return;
        }
        let mut state = 7u64;
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        for (m, n, dim) in [(1, 1, 1), (13, 33, 7), (49, 65, 512), (100, 3, 130)] {
            let av: Vec<f32> = (0..m * dim).map(|_| next()).collect();
            let bv: Vec<f32> = (0..n * dim).map(|_| next()).collect();
            let (a, b) = (rows(&av, dim), rows(&bv, dim));
            let got = collect(&a, &b, pairs(dim));
            for r in 0..m {
                for c in 0..n {
                    let exact: f64 = (0..dim)
                        .map(|k| {
                            from_bf16(to_bf16(av[r * dim + k])) as f64
                                * from_bf16(to_bf16(bv[c * dim + k])) as f64
                        })
                        .sum();
                    let s = got[r * n + c] as f64;
                    assert!(
                        (s - exact).abs() <= 1e-6 * (1.0 + exact.abs()) * dim as f64,
                        "{m}x{n}x{dim} at ({r}, {c}): {s} vs {exact}"
                    );
                }
            }
        }
    }

    /// The engine's rescoring rests on this bound: over unit rows (random,
    /// one-hot, constant, and values just off bf16 rounding midpoints),
    /// bf16 scores stay within it of the fp32 engine's scores.
    #[test]
    fn scores_stay_within_the_bound_of_fp32() {
        if !testable() {
            return;
        }
        let mut state = 11u64;
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        for dim in [1, 2, 7, 128, 512, 1024] {
            let mut rows_f32: Vec<Vec<f32>> = (0..40)
                .map(|_| (0..dim).map(|_| next()).collect())
                .collect();
            rows_f32.push((0..dim).map(|k| if k == 0 { 1.0 } else { 0.0 }).collect());
            rows_f32.push(vec![1.0; dim]);
            // Halfway between two bf16 values, nudged: the worst rounding.
            rows_f32.push(
                (0..dim)
                    .map(|k| from_bf16(0x3f80 + k as u16 % 64) * (1.0 + 1.0 / 256.0) + 1e-7)
                    .collect(),
            );
            let data: Vec<f32> = rows_f32.concat();
            let e = crate::compare::Embeddings::normalized(data, dim).unwrap();
            let bf = rows(e.as_slice(), dim);
            let scores = collect(&bf, &bf, pairs(dim));
            let mut fp32 = vec![0f32; e.rows() * e.rows()];
            crate::compare::cpu::products(e.as_slice(), e.as_slice(), dim, &mut fp32);
            let bound = fp32_distance_bound(dim, max_rounding(e.as_slice(), dim));
            let worst = scores
                .iter()
                .zip(&fp32)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst <= bound, "dim {dim}: {worst} > {bound}");
            assert!(worst > 0.0 || dim == 1, "dim {dim}: no rounding at all?");
        }
        // The worst case for unit rows (every value half an ulp off).
        let worst = fp32_distance_bound(512, 2f64.powi(-8));
        assert!((worst - 0.0079).abs() < 1e-4, "{worst}");
    }

    #[test]
    fn a_score_does_not_depend_on_its_place() {
        if !testable() {
            return;
        }
        let dim = 512;
        let values: Vec<f32> = (0..70 * dim)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 97.0)
            .collect();
        let all = rows(&values, dim);
        let width = pairs(dim);
        let full = collect(&all, &all, width);
        for (p, q) in [(0, 1), (13, 69), (69, 5), (48, 47)] {
            let one = collect(
                &all[p * width..(p + 1) * width],
                &all[q * width..(q + 1) * width],
                width,
            );
            assert_eq!(one[0].to_bits(), full[p * 70 + q].to_bits());
            assert_eq!(
                full[p * 70 + q].to_bits(),
                full[q * 70 + p].to_bits(),
                "symmetric"
            );
        }
    }
}
