//! Labels and record keys, from the canonically sorted rows alone: labels
//! are dense 0..K-1 over the training identities (those with at least one
//! converted training image) in sorted order; record keys 0..N-1 are a
//! seeded shuffle of the converted training images, as insightface's flat
//! layout expects (arcface_torch then samples by key).

use std::collections::BTreeMap;

use chacha20::ChaCha8Rng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::manifest::{Row, RowSplit, Status};

/// What the assignment produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assignment {
    /// Training identity → label, and its converted image count.
    pub classes: BTreeMap<String, (u32, u64)>,
    /// Row indices in record-key order: `order[key]` is the row of `key`.
    pub order: Vec<usize>,
}

/// Sets `label` (every row of a training identity) and `record_key` (its
/// converted training rows) on rows sorted canonically.
pub(crate) fn assign(rows: &mut [Row], seed: u64) -> Assignment {
    let is_record = |r: &Row| r.split == RowSplit::Train && r.status == Status::Ok;
    let mut classes: BTreeMap<String, (u32, u64)> = BTreeMap::new();
    for row in rows.iter().filter(|r| is_record(r)) {
        classes.entry(row.identity.clone()).or_insert((0, 0)).1 += 1;
    }
    for (label, entry) in classes.values_mut().enumerate() {
        entry.0 = label as u32;
    }
    let mut order: Vec<usize> = (0..rows.len()).filter(|&i| is_record(&rows[i])).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    for (key, &i) in order.iter().enumerate() {
        rows[i].record_key = Some(key as u64);
    }
    for row in rows.iter_mut() {
        if row.split == RowSplit::Train {
            row.label = classes.get(&row.identity).map(|c| c.0);
        }
    }
    Assignment { classes, order }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kface::Attributes;

    fn row(id: &str, camera: u8, split: RowSplit, status: Status) -> Row {
        let mut r = Row::new(
            format!("{id}/{camera}"),
            id.into(),
            Attributes::new(1, 1, 1, camera),
            split,
        );
        r.status = status;
        r
    }

    fn rows() -> Vec<Row> {
        use RowSplit::*;
        use Status::*;
        vec![
            row("a", 4, Train, Ok),
            row("a", 5, Train, Failed),
            row("a", 6, Train, Ok),
            row("b", 4, Train, Failed),
            row("c", 4, Gallery, Ok),
            row("d", 4, Train, Ok),
            row("d", 5, Excluded, Skipped),
        ]
    }

    #[test]
    fn labels_are_dense_over_identities_with_records() {
        let mut rows = rows();
        let a = assign(&mut rows, 0);
        let labels: Vec<_> = a
            .classes
            .iter()
            .map(|(id, c)| (id.as_str(), c.0, c.1))
            .collect();
        assert_eq!(labels, [("a", 0, 2), ("d", 1, 1)]);
        assert_eq!(rows[1].label, Some(0));
        assert_eq!(rows[3].label, None);
        assert_eq!(rows[4].label, None);
        assert_eq!(rows[5].label, Some(1));
        let mut keys: Vec<u64> = rows.iter().filter_map(|r| r.record_key).collect();
        keys.sort();
        assert_eq!(keys, [0, 1, 2]);
        assert!(rows[1].record_key.is_none() && rows[4].record_key.is_none());
        for (key, &i) in a.order.iter().enumerate() {
            assert_eq!(rows[i].record_key, Some(key as u64));
        }
    }

    #[test]
    fn keys_are_a_seeded_shuffle() {
        let many = |seed| {
            let mut rows: Vec<Row> = (1..=20)
                .map(|c| row("a", c, RowSplit::Train, Status::Ok))
                .collect();
            assign(&mut rows, seed).order
        };
        assert_eq!(many(3), many(3));
        assert_ne!(many(3), many(4));
        assert_ne!(many(3), (0..20).collect::<Vec<_>>());
    }
}
