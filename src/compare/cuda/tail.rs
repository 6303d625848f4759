//! The impostor tail store's size, and a host-side model of its logic
//! (`kernels/tail.cu` and the fold's tail pass) over tiles given by their
//! impostor histograms, with the band that the products' margin adds below
//! the bound: what the store would hold after each step, for tile
//! sequences far too large to run or emulate (10^6 × 10^6 all pairs).

#[cfg(test)]
use super::params::TailState;

/// Spare places beyond three times the wanted scores: room for the ties
/// of the bound's bin.
const SLACK: usize = 1 << 20;

/// Places in the tail store for `want` scores. The store never needs more
/// than want + (impostors in the bound's bin and in the margin's band below
/// it) places (`tail.cu`); 2·want + 2^20 of them are for those.
pub(crate) fn store_capacity(want: usize) -> usize {
    if want == 0 {
        0
    } else {
        3 * want + SLACK
    }
}

/// The count above which the store is compacted after a tile.
pub(crate) fn high_water(want: usize) -> usize {
    want + (store_capacity(want) - want) / 2
}

/// The store's logic on per-bin counts: the fused pass appends a tile's
/// impostors in bins >= the bound less the band, the maintenance raises
/// the bound with a running count, drops and redoes a tile that
/// overflowed, and compacts.
#[cfg(test)]
#[derive(Debug, Clone)]
pub(crate) struct TailModel {
    want: u64,
    /// Bins below the bound that the margin keeps too (twice the margin in
    /// bins, rounded up).
    band: usize,
    cap: u64,
    high_water: u64,
    /// Every impostor folded so far, per bin.
    hist: Vec<u64>,
    /// What the store holds, per bin.
    stored: Vec<u64>,
    pub state: TailState,
    /// The largest number of entries the store held at once.
    pub peak: u64,
}

#[cfg(test)]
impl TailModel {
    pub fn new(want: usize, bins: usize, band: usize) -> TailModel {
        TailModel {
            want: want as u64,
            band,
            cap: store_capacity(want) as u64,
            high_water: high_water(want) as u64,
            hist: vec![0; bins],
            stored: vec![0; bins],
            state: TailState::default(),
            peak: 0,
        }
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.cap
    }

    /// One tile, in the engine's four launches.
    pub(crate) fn fold_tile(&mut self, tile: &[u64]) {
        for (h, t) in self.hist.iter_mut().zip(tile) {
            *h += t;
        }
        self.append(tile);
        self.maintain(tile, false);
        if self.state.redo != 0 {
            self.append(tile);
        }
        self.maintain(tile, true);
    }

    /// The tail pass: counts every impostor in bins >= the bound, stores
    /// those that fit.
    fn append(&mut self, tile: &[u64]) {
        let from = self.kept_from();
        let n: u64 = tile[from..].iter().sum();
        if self.state.redo == 0 {
            self.state.fresh += tile[self.state.bin as usize..].iter().sum::<u64>();
        }
        self.state.count += n;
        if self.state.count <= self.cap {
            self.peak = self.peak.max(self.state.count);
        }
        for (s, t) in self.stored[from..].iter_mut().zip(&tile[from..]) {
            *s += t;
        }
    }

    fn maintain(&mut self, tile: &[u64], after_redo: bool) {
        let st = &mut self.state;
        if after_redo && st.redo == 0 {
            return;
        }
        let mut compact = st.count > self.high_water;
        if !after_redo {
            let old = st.bin as usize;
            st.above += std::mem::take(&mut st.fresh);
            let mut b = old;
            while b < self.hist.len() - 1 && st.above - self.hist[b] >= self.want {
                st.above -= self.hist[b];
                b += 1;
            }
            st.bin = b as i32;
            st.redo = (st.count > self.cap) as i32;
            st.redone += st.redo;
            if st.redo != 0 {
                // The tile's entries go; it is appended again.
                let old = old.saturating_sub(self.band);
                for (s, t) in self.stored[old..].iter_mut().zip(&tile[old..]) {
                    *s -= t;
                }
                st.count = st.tile_start;
                compact = true;
            }
        } else {
            st.redo = 0;
            if st.count > self.cap {
                st.overflow = 1;
            }
        }
        if compact {
            let from = (st.bin as usize).saturating_sub(self.band);
            self.stored[..from].iter_mut().for_each(|s| *s = 0);
            st.count = self.stored.iter().sum();
        }
        st.tile_start = st.count;
    }

    /// The lowest bin the store keeps: the bound less the band.
    pub(crate) fn kept_from(&self) -> usize {
        (self.state.bin as usize).saturating_sub(self.band)
    }

    /// Impostors folded so far in bins >= `bin`.
    pub(crate) fn folded_from(&self, bin: usize) -> u64 {
        self.hist[bin..].iter().sum()
    }

    /// Entries the store holds in bins >= `bin`.
    pub(crate) fn stored_from(&self, bin: usize) -> u64 {
        self.stored[bin..].iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::HistogramSpec;

    const BINS: usize = 1 << 16;
    /// The margin's band in bins of 2^-15: fp32 products (2m ≈ 3e-4, the
    /// bound for d = 512) and bf16 ones (2m ≈ 4.8e-3, rows rounded by the
    /// typical 2^-9/√3).
    const BANDS: [usize; 2] = [10, 160];

    /// `count` impostor scores spread over the bins as a logistic
    /// distribution of centre `mu` and scale `s` (about the spread of
    /// 512-d impostor cosines at s = 0.025): integer counts summing to
    /// `count`, from the rounded cumulative distribution.
    fn tile(count: u64, mu: f64, s: f64) -> Vec<u64> {
        let h = HistogramSpec { bins: BINS as u32 };
        let cdf = |i: usize| {
            if i == BINS {
                1.0
            } else {
                1.0 / (1.0 + (-(h.lower_edge(i) - mu) / s).exp())
            }
        };
        let mut out = vec![0; BINS];
        let mut below = 0u64;
        for (i, o) in out.iter_mut().enumerate() {
            let upto = (count as f64 * cdf(i + 1)).round() as u64;
            *o = upto.min(count) - below.min(upto);
            below = below.max(upto);
        }
        out
    }

    /// The store as it was before: each tile appended with the bound of
    /// the tiles before it, no redo, 2·want + 2^20 places. Returns the most
    /// entries it had to hold and its capacity.
    fn old_peak(tiles: &[Vec<u64>], want: u64) -> (u64, u64) {
        let capacity = 2 * want + SLACK as u64;
        let high_water = want + (capacity - want) / 2;
        let mut hist = vec![0u64; BINS];
        let (mut stored, mut bound, mut peak) = (vec![0u64; BINS], 0usize, 0u64);
        for (t, tile) in tiles.iter().enumerate() {
            if t > 0 {
                for (s, x) in stored[bound..].iter_mut().zip(&tile[bound..]) {
                    *s += x;
                }
            }
            hist.iter_mut().zip(tile).for_each(|(h, x)| *h += x);
            // The bound from the top, as the old kernel rescanned it.
            let mut above = 0;
            bound = (0..BINS)
                .rev()
                .find(|&b| {
                    above += hist[b];
                    above >= want
                })
                .unwrap_or(0);
            if t == 0 {
                for (s, x) in stored[bound..].iter_mut().zip(&tile[bound..]) {
                    *s += x;
                }
            }
            peak = peak.max(stored.iter().sum());
            if stored.iter().sum::<u64>() > high_water {
                stored[..bound].iter_mut().for_each(|s| *s = 0);
            }
        }
        (peak, capacity)
    }

    /// Runs the model over `tiles` with a band of `band` bins, checking
    /// after each that the store never held more than its capacity, and
    /// holds every impostor of the bins at or above the bound less the
    /// band (so every pair the exact tail needs is there).
    fn model(tiles: &[Vec<u64>], want: u64, band: usize) -> TailModel {
        let mut m = TailModel::new(want as usize, BINS, band);
        for tile in tiles {
            m.fold_tile(tile);
            let b = m.state.bin as usize;
            let from = m.kept_from();
            assert!(
                m.peak <= m.capacity(),
                "held {} of {}",
                m.peak,
                m.capacity()
            );
            assert_eq!(m.state.overflow, 0);
            assert_eq!(m.state.above, m.folded_from(b), "running count");
            assert_eq!(
                m.stored_from(from),
                m.folded_from(from),
                "store at the bound"
            );
            assert!(m.state.count <= m.capacity());
        }
        m
    }

    /// Upper-triangle pairs of the tile rows [r0, r0 + rows) × columns
    /// [c0, c0 + cols) of an n-row all-distinct job (the pairs it counts).
    fn triangle_pairs(n: u64, r0: u64, rows: u64, c0: u64, cols: u64) -> u64 {
        (r0..(r0 + rows).min(n))
            .map(|i| (c0 + cols).min(n).saturating_sub(c0.max(i + 1)))
            .sum()
    }

    /// 10^6 embeddings, all distinct pairs, FMR down to 1e-5.
    const N: u64 = 1_000_000;
    const WANT: u64 = (N * (N - 1) / 2) / 100_000;

    /// The impostor histograms of the all-distinct tiles (probe block,
    /// column block) of N rows in the engine's 8192 × 16384 tiles.
    fn all_pairs_tiles(blocks: impl Iterator<Item = (u64, u64)>) -> Vec<Vec<u64>> {
        blocks
            .map(|(p, g)| {
                tile(
                    triangle_pairs(N, p * 8192, 8192, g * 16384, 16384),
                    0.0,
                    0.025,
                )
            })
            .collect()
    }

    /// 10^6 embeddings, all distinct pairs, FMR down to 1e-5 (want ≈ 5.0 M)
    /// in the engine's 8192 × 16384 tiles: the first tile lies on the
    /// diagonal (100.7 M pairs against 134.2 M for the next), which
    /// overflowed the old store (11.68 M for 11.06 M places).
    #[test]
    fn diagonal_first_all_pairs_fit() {
        let (n, want) = (N, WANT);
        let tiles =
            all_pairs_tiles((0..2u64).flat_map(|p| (0..n.div_ceil(16384)).map(move |g| (p, g))));
        assert_eq!(triangle_pairs(n, 0, 8192, 0, 16384), 100_659_200);
        let (old, old_capacity) = old_peak(&tiles, want);
        assert!(old > old_capacity, "the old store held {old}");
        for band in BANDS {
            let m = model(&tiles, want, band);
            eprintln!(
                "all pairs, want {want}, band {band}: old store peak {old} of {old_capacity}, \
                 new peak {} of {} places, {} tiles redone",
                m.peak,
                m.capacity(),
                m.state.redone
            );
        }
    }

    /// The triangle's tile order (all distinct pairs, no top-k): each
    /// probe block starts at the column block holding its first row, so
    /// every block begins with a tile on the diagonal, smaller than those
    /// after it. Blocks from the start, the middle and the end of 10^6
    /// rows.
    #[test]
    fn triangle_order_fits() {
        let (n, want) = (N, WANT);
        let tiles = all_pairs_tiles(
            [0u64, 1, 2, 3, 61, 62, 121, 122]
                .into_iter()
                .flat_map(|p| (p * 8192 / 16384..n.div_ceil(16384)).map(move |g| (p, g))),
        );
        assert_eq!(triangle_pairs(n, 8192, 8192, 0, 16384), 33_550_336);
        for band in BANDS {
            let m = model(&tiles, want, band);
            eprintln!(
                "triangle, want {want}, band {band}: peak {} of {} places, {} tiles redone",
                m.peak,
                m.capacity(),
                m.state.redone
            );
        }
    }

    /// A probe × gallery job whose gallery is sorted so that each tile
    /// scores higher than the last: the old store took nearly every
    /// impostor of each tile.
    #[test]
    fn ascending_gallery_fits() {
        let want = 2_000_000;
        let tiles: Vec<Vec<u64>> = (0..10)
            .map(|t| tile(8192 * 16384, -0.2 + 0.05 * t as f64, 0.025))
            .collect();
        let (old, old_capacity) = old_peak(&tiles, want);
        assert!(old > old_capacity, "the old store held {old}");
        for band in BANDS {
            let m = model(&tiles, want, band);
            eprintln!(
                "ascending gallery, band {band}: old peak {old} of {old_capacity}, new peak {} \
                 of {}, {} tiles redone",
                m.peak,
                m.capacity(),
                m.state.redone
            );
            assert!(m.state.redone > 1);
        }
    }

    /// Shuffled data (every tile alike) and a short last tile: no redo
    /// after the first tile.
    #[test]
    fn shuffled_gallery_fits_without_redoing() {
        let want = 5_000_000;
        let mut tiles: Vec<Vec<u64>> = (0..30).map(|_| tile(8192 * 16384, 0.0, 0.025)).collect();
        tiles.push(tile(8192 * 100, 0.0, 0.025));
        for band in BANDS {
            let m = model(&tiles, want, band);
            assert!(
                m.state.redone <= 1,
                "band {band}: {} redone",
                m.state.redone
            );
        }
    }

    /// Ties: the store overflows only when more than 2·want + 2^20
    /// impostors share the bound's bin, and then says so.
    #[test]
    fn ties_overflow_only_beyond_the_slack() {
        let want = 100_000u64;
        let one_bin = |n: u64| {
            let mut t = vec![0; BINS];
            t[40_000] = n;
            t
        };
        let spare = store_capacity(want as usize) as u64 - want;
        let fits = model(&[one_bin(spare / 2), one_bin(spare / 2)], want, BANDS[1]);
        assert_eq!(fits.state.count, spare / 2 * 2);
        let mut m = TailModel::new(want as usize, BINS, BANDS[1]);
        m.fold_tile(&one_bin(spare + want + 1));
        assert_eq!(m.state.overflow, 1);
    }
}
