//! The order of scores: a u32 key per score whose ascending order is the
//! scores' descending order, and a parallel radix sort on those keys, for
//! the 10^8 exact impostor scores of a large job.

use rayon::prelude::*;

/// A u32 whose ascending order is the descending order of the f32 it came
/// from: flip every bit of a negative number, only the sign bit of a
/// positive one (the usual total-order key), then complement. -0.0 is keyed
/// as 0.0, so equal scores have equal keys.
#[inline]
pub(crate) fn descending_key(s: f32) -> u32 {
    let bits = (s + 0.0).to_bits();
    let ascending = if bits >> 31 == 1 {
        !bits
    } else {
        bits | 0x8000_0000
    };
    !ascending
}

/// The score of a [`descending_key`].
#[inline]
pub(crate) fn score_of_descending_key(key: u32) -> f32 {
    let ascending = !key;
    let bits = if ascending >> 31 == 1 {
        ascending & 0x7fff_ffff
    } else {
        !ascending
    };
    f32::from_bits(bits)
}

/// The scores' [`descending_key`]s sorted ascending (the scores
/// descending), and the sizes of the consecutive buckets of keys that
/// share their top bits (one bucket when few), the unit of parallel work
/// for a caller that walks the result.
///
/// A radix sort shaped for 10^7–10^8 scores, on rayon's current pool: one
/// pass over memory scatters the keys by their top 11 bits (sign, exponent
/// and two mantissa bits of a cosine), then each bucket is sorted on its
/// low 21 bits in two cache-resident passes, buckets in parallel. Several
/// times faster than a comparison sort.
pub(crate) fn sorted_keys(scores: Vec<f32>) -> (Vec<u32>, Vec<usize>) {
    if scores.len() < PARALLEL_FROM {
        let mut keys: Vec<u32> = scores.into_iter().map(descending_key).collect();
        keys.sort_unstable();
        let n = keys.len();
        return (keys, vec![n]);
    }
    let mut bucket_sizes = vec![0usize; 1 << TOP_BITS];
    let mut keys: Vec<u32> = scores
        .into_iter()
        .map(|s| {
            let k = descending_key(s);
            bucket_sizes[(k >> LOW_BITS) as usize] += 1;
            k
        })
        .collect();
    let mut cursor = Vec::with_capacity(bucket_sizes.len());
    let mut sum = 0;
    for &size in &bucket_sizes {
        cursor.push(sum);
        sum += size;
    }
    let mut by_top = vec![0u32; keys.len()];
    for &k in &keys {
        let b = (k >> LOW_BITS) as usize;
        by_top[cursor[b]] = k;
        cursor[b] += 1;
    }
    // Each bucket sorted on its low bits, `keys` now scratch space.
    split_by_sizes(&mut by_top, &bucket_sizes)
        .into_par_iter()
        .zip(split_by_sizes(&mut keys, &bucket_sizes))
        .for_each(|(bucket, scratch)| sort_low_bits(bucket, scratch));
    (by_top, bucket_sizes)
}

/// The scores, highest first (-0.0 as 0.0), by [`sorted_keys`].
pub(crate) fn sort_descending(scores: Vec<f32>) -> Vec<f32> {
    let (keys, _) = sorted_keys(scores);
    keys.into_par_iter().map(score_of_descending_key).collect()
}

/// Below this many scores a comparison sort is as fast as the radix sort.
const PARALLEL_FROM: usize = 1 << 16;
/// Bits of the key that the first (most significant) radix pass sorts on.
const TOP_BITS: u32 = 11;
const LOW_BITS: u32 = 32 - TOP_BITS;
/// Bits per pass when a bucket is sorted on its low bits (two passes).
const LOW_DIGIT_BITS: u32 = 11;

/// The slice cut into consecutive parts of the given sizes.
pub(crate) fn split_by_sizes<'a, T>(mut rest: &'a mut [T], sizes: &[usize]) -> Vec<&'a mut [T]> {
    let mut parts = Vec::with_capacity(sizes.len());
    for &size in sizes {
        let (part, tail) = std::mem::take(&mut rest).split_at_mut(size);
        parts.push(part);
        rest = tail;
    }
    parts
}

/// Sorts keys that share their top bits, by their low bits: two LSD radix
/// passes through `scratch` (same length), or a comparison sort when few.
fn sort_low_bits(keys: &mut [u32], scratch: &mut [u32]) {
    if keys.len() < 256 {
        keys.sort_unstable();
        return;
    }
    const BUCKETS: usize = 1 << LOW_DIGIT_BITS;
    let mask = BUCKETS - 1;
    let mut low = [0usize; BUCKETS];
    let mut high = [0usize; BUCKETS];
    for &k in keys.iter() {
        low[k as usize & mask] += 1;
        high[(k >> LOW_DIGIT_BITS) as usize & mask] += 1;
    }
    let scatter = |from: &[u32], to: &mut [u32], counts: &[usize; BUCKETS], shift: u32| {
        let mut offsets = [0usize; BUCKETS];
        let mut sum = 0;
        for (o, &c) in offsets.iter_mut().zip(counts) {
            *o = sum;
            sum += c;
        }
        for &k in from {
            let d = (k >> shift) as usize & mask;
            to[offsets[d]] = k;
            offsets[d] += 1;
        }
    };
    scatter(keys, scratch, &low, 0);
    scatter(scratch, keys, &high, LOW_DIGIT_BITS);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_radix_sort_orders_like_a_comparison_sort() {
        let mut rng = super::super::SplitMix(11);
        for n in [0, 5, 1000, PARALLEL_FROM + 12_345] {
            let scores: Vec<f32> = (0..n)
                .map(|i| match i % 7 {
                    0 => 0.25,
                    1 => -0.0,
                    _ => rng.uniform(),
                })
                .collect();
            let mut want: Vec<f32> = scores.iter().map(|&s| s + 0.0).collect();
            want.sort_by(|a, b| b.total_cmp(a));
            let got = sort_descending(scores);
            assert_eq!(got.len(), want.len());
            assert!(got
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }
}
