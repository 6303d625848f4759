//! `examples.csv`: the hardest probes of a search, bounded, with the paths
//! of their images, so the report's explorer can show the faces that fail
//! at any threshold: the non-mated probes nearest to someone enrolled (the
//! first false accepts as the threshold falls) and the mated probes first
//! missed as it rises.

use std::collections::{HashMap, HashSet};

use crate::compare::{Hardest, PairScore, ProbeResult};
use crate::evaldir::{
    ExampleRow, EXAMPLE_GENUINE, EXAMPLE_IMPOSTOR, EXAMPLE_MATED, EXAMPLE_NON_MATED,
};
use crate::evalinput::pairs::Pair;

use super::tables::ProbeContext;

/// How many probes of each kind `examples.csv` keeps: enough for several
/// pages of faces, few enough that the report stays small.
pub(crate) const PER_KIND: usize = 60;

/// The `per_kind` non-mated probes with the highest nearest-gallery score,
/// highest first, then the `per_kind` mated probes most easily missed:
/// those whose mate is not first (missed at any threshold), then by mate
/// score, lowest first. Ties keep probe order.
pub(crate) fn example_rows(
    results: &[ProbeResult],
    ctx: &ProbeContext<'_>,
    per_kind: usize,
) -> Vec<ExampleRow> {
    let mut non_mated: Vec<(usize, f32)> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.mate_score.is_none())
        .filter_map(|(i, r)| r.top.first().map(|c| (i, c.score)))
        .collect();
    non_mated.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut mated: Vec<(usize, bool, f32)> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.mate_score.map(|s| (i, r.mate_rank == Some(1), s)))
        .collect();
    mated.sort_by(|a, b| a.1.cmp(&b.1).then(a.2.total_cmp(&b.2)));

    // A mate's face: the best-scoring image of the identity among the
    // candidates, else the identity's first gallery image (found in one
    // pass over the gallery, for those identities alone).
    let mated: Vec<(usize, f32, Option<usize>)> = mated
        .iter()
        .take(per_kind)
        .map(|&(i, _, score)| {
            let identity = ctx.identity[ctx.rows[i]].as_str();
            let candidate = results[i]
                .top
                .iter()
                .find(|c| ctx.identity[ctx.gallery_rows[c.index as usize]] == identity)
                .map(|c| c.index as usize);
            (i, score, candidate)
        })
        .collect();
    let wanted: HashSet<&str> = mated
        .iter()
        .filter(|m| m.2.is_none())
        .map(|m| ctx.identity[ctx.rows[m.0]].as_str())
        .collect();
    let mut first_image: HashMap<&str, usize> = HashMap::with_capacity(wanted.len());
    for (g, &row) in ctx.gallery_rows.iter().enumerate() {
        if first_image.len() == wanted.len() {
            break;
        }
        let name = ctx.identity[row].as_str();
        if wanted.contains(name) {
            first_image.entry(name).or_insert(g);
        }
    }
    let gallery_path = |g: usize| ctx.path.map(|p| p[ctx.gallery_rows[g]].clone());
    let row = |i: usize, kind: &str, gallery: usize, score: f32| {
        let r = &results[i];
        let probe_row = ctx.rows[i];
        let top1 = r.top.first();
        ExampleRow {
            kind: kind.into(),
            probe: probe_row as u64,
            identity: ctx.identity[probe_row].clone(),
            path: ctx.path.map(|p| p[probe_row].clone()),
            gallery_identity: ctx.identity[ctx.gallery_rows[gallery]].clone(),
            gallery_path: gallery_path(gallery),
            score: score as f64,
            mate_rank: r.mate_rank,
            top1_identity: top1.map(|c| ctx.identity[ctx.gallery_rows[c.index as usize]].clone()),
            top1_score: top1.map(|c| c.score as f64),
        }
    };
    let mut rows: Vec<ExampleRow> = non_mated
        .iter()
        .take(per_kind)
        .map(|&(i, score)| {
            row(
                i,
                EXAMPLE_NON_MATED,
                results[i].top[0].index as usize,
                score,
            )
        })
        .collect();
    for (i, score, candidate) in mated {
        let identity = ctx.identity[ctx.rows[i]].as_str();
        // A mated probe has a gallery image of its identity by definition.
        if let Some(g) = candidate.or_else(|| first_image.get(identity).copied()) {
            rows.push(row(i, EXAMPLE_MATED, g, score));
        }
    }
    rows
}

/// The hardest verification pairs: the impostor pairs with the highest
/// scores, then the genuine pairs with the lowest, each as it is listed
/// (rows of the labels, pairs in their tie order).
pub(crate) fn pair_rows(
    impostors: &[PairScore],
    genuine: &[PairScore],
    identity: &[String],
    path: Option<&[String]>,
) -> Vec<ExampleRow> {
    let row = |kind: &str, p: &PairScore| {
        let (a, b) = (p.probe as usize, p.gallery as usize);
        ExampleRow {
            kind: kind.into(),
            probe: a as u64,
            identity: identity[a].clone(),
            path: path.map(|p| p[a].clone()),
            gallery_identity: identity[b].clone(),
            gallery_path: path.map(|p| p[b].clone()),
            score: p.score as f64,
            mate_rank: None,
            top1_identity: None,
            top1_score: None,
        }
    };
    impostors
        .iter()
        .map(|p| row(EXAMPLE_IMPOSTOR, p))
        .chain(genuine.iter().map(|p| row(EXAMPLE_GENUINE, p)))
        .collect()
}

/// The hardest pairs of a `--pairs` list and their scores: (impostors,
/// genuine), `per_kind` of each.
pub(crate) fn hardest_listed(
    listed: &[(Pair, f32)],
    per_kind: usize,
) -> (Vec<PairScore>, Vec<PairScore>) {
    let (mut impostors, mut genuine) = (Vec::new(), Vec::new());
    for &(pair, score) in listed {
        let p = PairScore {
            score,
            probe: pair.first as u32,
            gallery: pair.second as u32,
        };
        if pair.same {
            genuine.push(p);
        } else {
            impostors.push(p);
        }
    }
    Hardest::Highest.keep(&mut impostors, per_kind);
    Hardest::Lowest.keep(&mut genuine, per_kind);
    (impostors, genuine)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(top: &[(u32, f32)], mate: Option<(f32, u64)>) -> ProbeResult {
        ProbeResult::of(top, mate)
    }

    #[test]
    fn listed_pairs_hardest_first() {
        let pair = |first, second, same| Pair {
            first,
            second,
            same,
        };
        let listed = [
            (pair(0, 1, true), 0.9),
            (pair(2, 3, false), 0.7),
            (pair(4, 5, true), 0.2),
            (pair(6, 7, false), 0.1),
            (pair(8, 9, false), 0.7),
        ];
        let (impostors, genuine) = hardest_listed(&listed, 2);
        let rows = |v: &[PairScore]| v.iter().map(|p| (p.probe, p.gallery)).collect::<Vec<_>>();
        assert_eq!(rows(&impostors), [(2, 3), (8, 9)]);
        assert_eq!(rows(&genuine), [(4, 5), (0, 1)]);
        let identity: Vec<String> = (0..10).map(|i| format!("id{}", i / 2)).collect();
        let out = pair_rows(&impostors, &genuine, &identity, None);
        let kinds: Vec<&str> = out.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                EXAMPLE_IMPOSTOR,
                EXAMPLE_IMPOSTOR,
                EXAMPLE_GENUINE,
                EXAMPLE_GENUINE
            ]
        );
        assert_eq!(
            (out[0].identity.as_str(), out[0].gallery_identity.as_str()),
            ("id1", "id1")
        );
    }

    #[test]
    fn hardest_first_with_the_faces_they_are_shown_against() {
        // Gallery rows 0 (a), 1 (b); probes rows 2.. below.
        let identity: Vec<String> = ["a", "b", "x", "y", "a", "b", "z"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let path: Vec<String> = (0..7).map(|i| format!("img{i}.jpg")).collect();
        let results = vec![
            result(&[(0, 0.3)], None),           // x, stranger, near a
            result(&[(1, 0.9)], None),           // y, stranger, very near b
            result(&[(0, 0.8)], Some((0.8, 1))), // a, found
            result(&[(0, 0.6)], Some((0.5, 2))), // b, mate second: missed
            result(&[(1, -0.1)], None),          // z, far from all
        ];
        let ctx = ProbeContext {
            rows: &[2, 3, 4, 5, 6],
            gallery_rows: &[0, 1],
            identity: &identity,
            path: Some(&path),
        };
        let rows = example_rows(&results, &ctx, 2);
        let got: Vec<(&str, &str, &str, f64)> = rows
            .iter()
            .map(|r| {
                (
                    r.kind.as_str(),
                    r.identity.as_str(),
                    r.gallery_identity.as_str(),
                    r.score,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (EXAMPLE_NON_MATED, "y", "b", 0.9f32 as f64),
                (EXAMPLE_NON_MATED, "x", "a", 0.3f32 as f64),
                (EXAMPLE_MATED, "b", "b", 0.5),
                (EXAMPLE_MATED, "a", "a", 0.8f32 as f64),
            ]
        );
        // The missed b's mate was not among the candidates: its first image.
        assert_eq!(rows[2].gallery_path.as_deref(), Some("img1.jpg"));
        assert_eq!(rows[2].top1_identity.as_deref(), Some("a"));
        assert_eq!(rows[0].path.as_deref(), Some("img3.jpg"));
    }
}
