//! Verification pairs drawn from an evaluation set: seeded, balanced
//! genuine/impostor pairs, each side constrained by a selection, no pair
//! repeated in either orientation. Pure functions; `cmd::pairs` does the I/O.
//!
//! Draws are uniform over the ordered candidates (first image in the first
//! selection, second image in the second) of each kind; a pair already
//! taken, in either orientation, is drawn again. When more than half of
//! the distinct candidates are asked for, they are listed and shuffled
//! instead, so the request is met without long rejection runs.

use std::collections::{BTreeMap, HashSet};

use chacha20::ChaCha8Rng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

use crate::kface::{Attributes, Selection};

/// One image of the evaluation set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalImage {
    /// Path relative to `eval/`: `19082641/S001/L1/E01/C4.jpg`.
    pub path: String,
    pub identity: String,
    pub attrs: Attributes,
}

/// What to draw.
#[derive(Debug, Clone)]
pub struct PairRequest {
    pub positives: usize,
    pub negatives: usize,
    pub first: Selection,
    pub second: Selection,
    pub seed: u64,
}

/// A pair of images (indices into the image list), first then second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pair {
    pub first: usize,
    pub second: usize,
    pub genuine: bool,
}

/// How many distinct pairs (orientation ignored) the selections allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Available {
    pub genuine: u64,
    pub impostor: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PairsError {
    #[error("only {available} distinct {kind} pairs exist for these selections, {wanted} were asked for")]
    NotEnough {
        kind: &'static str,
        available: u64,
        wanted: usize,
    },
}

/// Distinct unordered pairs {a, b}, a != b, with one of them in F and the
/// other in S: |F||S| ordered, less the diagonal |I| (I = F ∩ S), less one
/// orientation of each pair inside I.
fn distinct(f: u64, s: u64, i: u64) -> u64 {
    f * s - i - i * i.saturating_sub(1) / 2
}

/// The candidates, grouped by identity.
struct Pool {
    /// Per identity: members of F and of S, sorted.
    groups: Vec<(Vec<usize>, Vec<usize>)>,
    /// All of S, identity by identity, and each identity's block in it.
    s_all: Vec<usize>,
    s_block: Vec<(usize, usize)>,
    /// Every image of F: the image, its identity's group, and its own
    /// position in that identity's block of S (when it is in S).
    f_all: Vec<(usize, usize, Option<usize>)>,
    in_first: Vec<bool>,
    in_second: Vec<bool>,
    /// Position of each image in (identity, path) order, so that choices
    /// do not depend on the order the images came in.
    rank: Vec<usize>,
}

impl Pool {
    fn new(images: &[EvalImage], first: &Selection, second: &Selection) -> Pool {
        let in_first: Vec<bool> = images.iter().map(|im| first.contains(&im.attrs)).collect();
        let in_second: Vec<bool> = images.iter().map(|im| second.contains(&im.attrs)).collect();
        let mut by_identity: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, im) in images.iter().enumerate() {
            by_identity.entry(&im.identity).or_default().push(i);
        }
        let mut pool = Pool {
            groups: Vec::new(),
            s_all: Vec::new(),
            s_block: Vec::new(),
            f_all: Vec::new(),
            in_first,
            in_second,
            rank: vec![0; images.len()],
        };
        let mut next_rank = 0;
        for mut members in by_identity.into_values() {
            members.sort_by(|&a, &b| images[a].path.cmp(&images[b].path).then(a.cmp(&b)));
            for &m in &members {
                pool.rank[m] = next_rank;
                next_rank += 1;
            }
            let g = pool.groups.len();
            let (mut f, mut s) = (Vec::new(), Vec::new());
            for &i in &members {
                let own_position = pool.in_second[i].then_some(s.len());
                if pool.in_second[i] {
                    s.push(i);
                }
                if pool.in_first[i] {
                    f.push(i);
                    pool.f_all.push((i, g, own_position));
                }
            }
            pool.s_block
                .push((pool.s_all.len(), pool.s_all.len() + s.len()));
            pool.s_all.extend(&s);
            pool.groups.push((f, s));
        }
        pool
    }

    fn both(&self, i: usize) -> bool {
        self.in_first[i] && self.in_second[i]
    }

    fn available(&self) -> Available {
        let mut genuine = 0;
        let (mut f, mut s, mut i) = (0u64, 0u64, 0u64);
        for (gf, gs) in &self.groups {
            let gi = gf.iter().filter(|&&x| self.both(x)).count() as u64;
            genuine += distinct(gf.len() as u64, gs.len() as u64, gi);
            f += gf.len() as u64;
            s += gs.len() as u64;
            i += gi;
        }
        Available {
            genuine,
            impostor: distinct(f, s, i) - genuine,
        }
    }

    /// Valid partners of the F image at `f_all[k]`.
    fn partners(&self, k: usize, genuine: bool) -> u64 {
        let (_, g, own_position) = self.f_all[k];
        let (lo, hi) = self.s_block[g];
        let own = (hi - lo) as u64;
        if genuine {
            own - u64::from(own_position.is_some())
        } else {
            self.s_all.len() as u64 - own
        }
    }

    /// The `j`-th valid partner of the F image at `f_all[k]`.
    fn partner(&self, k: usize, j: usize, genuine: bool) -> usize {
        let (_, g, own_position) = self.f_all[k];
        let (lo, hi) = self.s_block[g];
        if genuine {
            self.s_all[lo
                + match own_position {
                    Some(p) if j >= p => j + 1,
                    _ => j,
                }]
        } else if j < lo {
            self.s_all[j]
        } else {
            self.s_all[j + (hi - lo)]
        }
    }

    /// Every distinct pair of one kind, each in one orientation.
    fn enumerate(&self, genuine: bool) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for k in 0..self.f_all.len() {
            let a = self.f_all[k].0;
            for j in 0..self.partners(k, genuine) as usize {
                let b = self.partner(k, j, genuine);
                // Both orientations are candidates when both images are in
                // both selections: keep the one whose first image ranks first.
                if !(self.in_first[b] && self.in_second[a]) || self.rank[a] < self.rank[b] {
                    out.push((a, b));
                }
            }
        }
        out
    }

    fn draw(&self, n: usize, genuine: bool, available: u64, rng: &mut ChaCha8Rng) -> Vec<Pair> {
        let pair = |(first, second)| Pair {
            first,
            second,
            genuine,
        };
        if n as u64 * 2 > available {
            let mut all = self.enumerate(genuine);
            all.shuffle(rng);
            return all.into_iter().take(n).map(pair).collect();
        }
        let mut cumulative = Vec::with_capacity(self.f_all.len());
        let mut total = 0u64;
        for k in 0..self.f_all.len() {
            total += self.partners(k, genuine);
            cumulative.push(total);
        }
        let mut taken = HashSet::with_capacity(n);
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let r = rng.random_range(0..total);
            let k = cumulative.partition_point(|&c| c <= r);
            let before = if k == 0 { 0 } else { cumulative[k - 1] };
            let a = self.f_all[k].0;
            let b = self.partner(k, (r - before) as usize, genuine);
            if taken.insert((a.min(b), a.max(b))) {
                out.push(pair((a, b)));
            }
        }
        out
    }
}

/// Distinct pairs the selections allow.
#[cfg(test)]
pub(crate) fn available(images: &[EvalImage], first: &Selection, second: &Selection) -> Available {
    Pool::new(images, first, second).available()
}

/// Draws the pairs, in [`FOLDS`] blocks of genuine then impostor pairs
/// (see [`fold_order`]). The same images, in any order, and the same
/// request give the same pairs.
pub fn sample(images: &[EvalImage], request: &PairRequest) -> Result<Vec<Pair>, PairsError> {
    let pool = Pool::new(images, &request.first, &request.second);
    let have = pool.available();
    for (kind, available, wanted) in [
        ("genuine", have.genuine, request.positives),
        ("impostor", have.impostor, request.negatives),
    ] {
        if wanted as u64 > available {
            return Err(PairsError::NotEnough {
                kind,
                available,
                wanted,
            });
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(request.seed);
    let genuine = pool.draw(request.positives, true, have.genuine, &mut rng);
    let impostor = pool.draw(request.negatives, false, have.impostor, &mut rng);
    Ok(fold_order(&genuine, &impostor, FOLDS))
}

/// arcface_torch scores a `.bin` with 10 contiguous, unshuffled folds.
pub(crate) const FOLDS: usize = 10;

/// Orders pairs as LFW's list does: `folds` contiguous blocks, each holding
/// its share of the genuine pairs then its share of the impostors (sizes as
/// scikit-learn's `KFold`: the first `n % folds` blocks take one more).
/// Positives-first order would make every arcface_torch fold all-genuine
/// or all-impostor.
pub(crate) fn fold_order(genuine: &[Pair], impostor: &[Pair], folds: usize) -> Vec<Pair> {
    let bounds = |n: usize, i: usize| {
        let (size, extra) = (n / folds, n % folds);
        let start = i * size + i.min(extra);
        start..start + size + usize::from(i < extra)
    };
    (0..folds)
        .flat_map(|i| {
            genuine[bounds(genuine.len(), i)]
                .iter()
                .chain(&impostor[bounds(impostor.len(), i)])
                .copied()
        })
        .collect()
}

/// The K-Face pair-list text: `path1 path2 1|0`, one pair a line.
pub(crate) fn pairs_txt(images: &[EvalImage], pairs: &[Pair]) -> String {
    let mut out = String::new();
    for p in pairs {
        out.push_str(&images[p.first].path);
        out.push(' ');
        out.push_str(&images[p.second].path);
        out.push_str(if p.genuine { " 1\n" } else { " 0\n" });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_hold_both_kinds_like_lfw() {
        let pair = |i: usize, genuine: bool| Pair {
            first: i,
            second: i + 1,
            genuine,
        };
        let genuine: Vec<Pair> = (0..23).map(|i| pair(i, true)).collect();
        let impostor: Vec<Pair> = (100..125).map(|i| pair(i, false)).collect();
        let ordered = fold_order(&genuine, &impostor, 10);
        assert_eq!(ordered.len(), 48);
        // KFold sizes: 23 -> 3,3,3,2,..; 25 -> 3,3,3,3,3,2,...
        let kinds: Vec<bool> = ordered.iter().take(6).map(|p| p.genuine).collect();
        assert_eq!(kinds, [true, true, true, false, false, false]);
        let mut start = 0;
        for i in 0..10 {
            let (g, n) = (2 + usize::from(i < 3), 2 + usize::from(i < 5));
            let block = &ordered[start..start + g + n];
            assert!(block[..g].iter().all(|p| p.genuine), "fold {i}");
            assert!(block[g..].iter().all(|p| !p.genuine), "fold {i}");
            start += g + n;
        }
        let mut firsts: Vec<usize> = ordered.iter().map(|p| p.first).collect();
        firsts.sort();
        assert_eq!(firsts, (0..23).chain(100..125).collect::<Vec<_>>());
    }

    /// `ids` identities, each with every camera of `cameras` under S1 L1 E1
    /// and L2 E1, listed in a scrambled order.
    fn images(ids: usize, cameras: &[u8]) -> Vec<EvalImage> {
        let mut out = Vec::new();
        for id in 0..ids {
            for light in [1, 2] {
                for &c in cameras {
                    let attrs = Attributes::new(1, light, 1, c).unwrap();
                    let identity = format!("1908{:04}", 2641 + id);
                    out.push(EvalImage {
                        path: format!("{identity}/{}.jpg", attrs.relative_stem()),
                        identity,
                        attrs,
                    });
                }
            }
        }
        let n = out.len();
        (0..n).map(|i| out[(i * 7 + 3) % n].clone()).collect()
    }

    fn request(positives: usize, negatives: usize, seed: u64) -> PairRequest {
        PairRequest {
            positives,
            negatives,
            first: Selection::all(),
            second: Selection::all(),
            seed,
        }
    }

    fn check(images: &[EvalImage], req: &PairRequest, pairs: &[Pair]) {
        assert_eq!(pairs.len(), req.positives + req.negatives);
        let mut seen = HashSet::new();
        assert_eq!(pairs.iter().filter(|p| p.genuine).count(), req.positives);
        for p in pairs {
            assert_ne!(p.first, p.second);
            assert!(
                seen.insert((p.first.min(p.second), p.first.max(p.second))),
                "pair repeated: {p:?}"
            );
            let (a, b) = (&images[p.first], &images[p.second]);
            assert_eq!(p.genuine, a.identity == b.identity, "label of {p:?}");
            assert!(req.first.contains(&a.attrs) && req.second.contains(&b.attrs));
        }
    }

    #[test]
    fn counts_of_distinct_pairs_are_exact() {
        // 3 identities × 4 images, no constraint: C(12,2) = 66 pairs, 3 × C(4,2) = 18 genuine.
        let ims = images(3, &[4, 7]);
        let all = Selection::all();
        assert_eq!(
            available(&ims, &all, &all),
            Available {
                genuine: 18,
                impostor: 48
            }
        );
        // First side camera 4, second side camera 7: disjoint sides, 12 × 2 each way... 6 × 6 ordered.
        let c4: Selection = "C4".parse().unwrap();
        let c7: Selection = "C7".parse().unwrap();
        assert_eq!(
            available(&ims, &c4, &c7),
            Available {
                genuine: 3 * 2 * 2,
                impostor: 6 * 6 - 12
            }
        );
        // Brute force agrees on an overlapping constraint.
        let l1: Selection = "L1".parse().unwrap();
        let mut g = HashSet::new();
        let mut m = HashSet::new();
        for a in 0..ims.len() {
            for b in 0..ims.len() {
                if a != b && l1.contains(&ims[a].attrs) && all.contains(&ims[b].attrs) {
                    let key = (a.min(b), a.max(b));
                    if ims[a].identity == ims[b].identity {
                        g.insert(key)
                    } else {
                        m.insert(key)
                    };
                }
            }
        }
        let got = available(&ims, &l1, &all);
        assert_eq!(
            (got.genuine, got.impostor),
            (g.len() as u64, m.len() as u64)
        );
    }

    #[test]
    fn pairs_are_distinct_labelled_and_constrained() {
        let ims = images(5, &[1, 4, 7, 10, 13]);
        for (first, second) in [
            ("S1 L1 E1 C4-10", "C1-20"),
            ("L1", "L2"),
            ("C7", "C7"),
            ("S1", "S1"),
        ] {
            let req = PairRequest {
                first: first.parse().unwrap(),
                second: second.parse().unwrap(),
                ..request(5, 40, 3)
            };
            let pairs = sample(&ims, &req).unwrap();
            check(&ims, &req, &pairs);
        }
    }

    #[test]
    fn asking_for_every_pair_gets_every_pair() {
        let ims = images(3, &[4, 7]);
        let req = request(18, 48, 9);
        let pairs = sample(&ims, &req).unwrap();
        check(&ims, &req, &pairs);
    }

    #[test]
    fn same_seed_same_pairs_whatever_the_input_order() {
        let ims = images(6, &[1, 4, 7, 10]);
        let req = request(30, 30, 42);
        let a = sample(&ims, &req).unwrap();
        let b = sample(&ims, &req).unwrap();
        assert_eq!(pairs_txt(&ims, &a), pairs_txt(&ims, &b));
        let mut reversed = ims.clone();
        reversed.reverse();
        let c = sample(&reversed, &req).unwrap();
        assert_eq!(pairs_txt(&ims, &a), pairs_txt(&reversed, &c));
        let d = sample(&ims, &request(30, 30, 43)).unwrap();
        assert_ne!(pairs_txt(&ims, &a), pairs_txt(&ims, &d));
    }

    #[test]
    fn too_many_pairs_is_a_clear_error() {
        let ims = images(3, &[4, 7]);
        let err = sample(&ims, &request(19, 1, 0)).unwrap_err();
        assert_eq!(
            err,
            PairsError::NotEnough {
                kind: "genuine",
                available: 18,
                wanted: 19
            }
        );
        assert_eq!(
            err.to_string(),
            "only 18 distinct genuine pairs exist for these selections, 19 were asked for"
        );
        let one_identity = images(1, &[4, 7]);
        assert!(matches!(
            sample(&one_identity, &request(1, 1, 0)),
            Err(PairsError::NotEnough {
                kind: "impostor",
                available: 0,
                ..
            })
        ));
    }

    #[test]
    fn pair_lines_use_the_kface_format() {
        let ims = images(2, &[4, 10]);
        let pairs = sample(&ims, &request(1, 1, 0)).unwrap();
        let text = pairs_txt(&ims, &pairs);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with(" 1") && lines[1].ends_with(" 0"));
        let first: Vec<&str> = lines[0].split(' ').collect();
        assert!(
            first[0].starts_with("1908")
                && first[0].ends_with(".jpg")
                && first[0].contains("/S001/L")
        );
    }
}
