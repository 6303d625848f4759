//! Which identities are kept out of training, and the role each held-out
//! image plays in the evaluation set: the gallery (enrolment) images of
//! in-DB identities, and probes, some of whose identities are in no
//! gallery at all (out-of-DB) so that open-set thresholds can be tuned.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use chacha20::ChaCha8Rng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::{Attributes, Selection};

/// The 30 test identities of the K-Face literature (MIX / insightKface
/// `kface-test-identity30.txt`), available as `--holdout kface30`.
pub(crate) const KFACE30: &str = include_str!("../../data/kface-test-identity30.txt");

/// What `--holdout` named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HoldoutSpec {
    /// These identities.
    List(Vec<String>),
    /// This many identities, chosen by seed.
    Count(usize),
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum HoldoutError {
    #[error("--holdout {0:?} is neither a file of IDs, a count, nor `kface30`")]
    Unrecognised(String),
    #[error("{path}: cannot read the holdout list: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}: the holdout list names no identity")]
    EmptyList(String),
    #[error("--holdout {wanted} asks for more identities than the {found} found")]
    TooMany { wanted: usize, found: usize },
    #[error("--out-of-db-share {0} is not between 0 and 1")]
    Share(f64),
}

/// Roles of a source image in the converted output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Split {
    Train,
    Gallery,
    Probe,
}

fn parse_id_list(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

impl HoldoutSpec {
    /// `kface30`, a file of IDs (one per line, `#` comments), or a count.
    pub fn parse(arg: &str) -> Result<HoldoutSpec, HoldoutError> {
        if arg.eq_ignore_ascii_case("kface30") {
            return Ok(HoldoutSpec::List(parse_id_list(KFACE30)));
        }
        let path = Path::new(arg);
        if path.is_file() {
            let text = fs::read_to_string(path).map_err(|source| HoldoutError::Read {
                path: arg.to_string(),
                source,
            })?;
            let ids = parse_id_list(&text);
            if ids.is_empty() {
                return Err(HoldoutError::EmptyList(arg.to_string()));
            }
            return Ok(HoldoutSpec::List(ids));
        }
        arg.parse::<usize>()
            .map(HoldoutSpec::Count)
            .map_err(|_| HoldoutError::Unrecognised(arg.to_string()))
    }
}

/// The held-out identities and which of them are out-of-DB.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HoldoutPlan {
    pub held_out: BTreeSet<String>,
    pub out_of_db: BTreeSet<String>,
    /// Listed identities that the sources do not contain.
    pub missing: Vec<String>,
}

impl HoldoutPlan {
    /// Chooses the held-out and out-of-DB identities among `identities`.
    /// Random choices use a ChaCha8 stream of `seed`, over the sorted
    /// identities, so the plan depends on nothing but its inputs.
    pub fn new(
        spec: &HoldoutSpec,
        identities: &BTreeSet<String>,
        out_of_db_share: f64,
        seed: u64,
    ) -> Result<HoldoutPlan, HoldoutError> {
        if !(0.0..=1.0).contains(&out_of_db_share) {
            return Err(HoldoutError::Share(out_of_db_share));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (held_out, missing): (BTreeSet<String>, Vec<String>) = match spec {
            HoldoutSpec::List(ids) => {
                let (found, missing): (Vec<&String>, Vec<&String>) =
                    ids.iter().partition(|id| identities.contains(*id));
                (
                    found.into_iter().cloned().collect(),
                    missing.into_iter().cloned().collect(),
                )
            }
            HoldoutSpec::Count(n) => {
                if *n > identities.len() {
                    return Err(HoldoutError::TooMany {
                        wanted: *n,
                        found: identities.len(),
                    });
                }
                let mut all: Vec<&String> = identities.iter().collect();
                all.shuffle(&mut rng);
                (all.into_iter().take(*n).cloned().collect(), Vec::new())
            }
        };
        let mut order: Vec<&String> = held_out.iter().collect();
        order.shuffle(&mut rng);
        let n_out = (out_of_db_share * held_out.len() as f64).round() as usize;
        let out_of_db = order.into_iter().take(n_out).cloned().collect();
        Ok(HoldoutPlan {
            held_out,
            out_of_db,
            missing,
        })
    }

    /// The role of an image: training unless its identity is held out;
    /// then gallery for the enrolment images of in-DB identities, probe
    /// for everything else.
    pub fn split(&self, identity: &str, attrs: &Attributes, enroll: &Selection) -> Split {
        if !self.held_out.contains(identity) {
            Split::Train
        } else if !self.out_of_db.contains(identity) && enroll.contains(attrs) {
            Split::Gallery
        } else {
            Split::Probe
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> BTreeSet<String> {
        (0..n).map(|i| format!("190{i:05}")).collect()
    }

    #[test]
    fn kface30_is_the_published_list() {
        let HoldoutSpec::List(list) = HoldoutSpec::parse("kface30").unwrap() else {
            panic!()
        };
        assert_eq!(list.len(), 30);
        assert_eq!(list[0], "19082641");
        assert_eq!(list[29], "19101012");
        assert_eq!(list.iter().collect::<BTreeSet<_>>().len(), 30);
    }

    #[test]
    fn parses_files_counts_and_rejects_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ids.txt");
        fs::write(&file, "19062421\r\n# a comment\n\n19062422  # trailing\n").unwrap();
        assert_eq!(
            HoldoutSpec::parse(file.to_str().unwrap()).unwrap(),
            HoldoutSpec::List(vec!["19062421".into(), "19062422".into()])
        );
        assert_eq!(HoldoutSpec::parse("12").unwrap(), HoldoutSpec::Count(12));
        assert!(matches!(
            HoldoutSpec::parse("twelve"),
            Err(HoldoutError::Unrecognised(_))
        ));
        let empty = dir.path().join("empty.txt");
        fs::write(&empty, "# nothing\n").unwrap();
        assert!(matches!(
            HoldoutSpec::parse(empty.to_str().unwrap()),
            Err(HoldoutError::EmptyList(_))
        ));
    }

    #[test]
    fn count_plans_are_seeded_and_sized() {
        let all = ids(40);
        let a = HoldoutPlan::new(&HoldoutSpec::Count(10), &all, 0.5, 7).unwrap();
        let b = HoldoutPlan::new(&HoldoutSpec::Count(10), &all, 0.5, 7).unwrap();
        let c = HoldoutPlan::new(&HoldoutSpec::Count(10), &all, 0.5, 8).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.held_out, c.held_out);
        assert_eq!(a.held_out.len(), 10);
        assert_eq!(a.out_of_db.len(), 5);
        assert!(a.out_of_db.is_subset(&a.held_out));
        assert!(matches!(
            HoldoutPlan::new(&HoldoutSpec::Count(41), &all, 0.5, 0),
            Err(HoldoutError::TooMany {
                wanted: 41,
                found: 40
            })
        ));
        assert!(matches!(
            HoldoutPlan::new(&HoldoutSpec::Count(1), &all, 1.5, 0),
            Err(HoldoutError::Share(_))
        ));
    }

    #[test]
    fn lists_report_missing_identities_and_roles_follow_enrolment() {
        let all = ids(4);
        let spec = HoldoutSpec::List(vec![
            "19000001".into(),
            "19000002".into(),
            "19999999".into(),
        ]);
        let plan = HoldoutPlan::new(&spec, &all, 0.5, 0).unwrap();
        assert_eq!(plan.missing, vec!["19999999".to_string()]);
        assert_eq!(plan.held_out.len(), 2);
        assert_eq!(plan.out_of_db.len(), 1);
        let in_db = plan
            .held_out
            .difference(&plan.out_of_db)
            .next()
            .unwrap()
            .clone();
        let out_db = plan.out_of_db.iter().next().unwrap().clone();
        let enroll: Selection = "S1 L1 E1 C7".parse().unwrap();
        let frontal = Attributes::new(1, 1, 1, 7).unwrap();
        let side = Attributes::new(1, 1, 1, 4).unwrap();
        assert_eq!(plan.split(&in_db, &frontal, &enroll), Split::Gallery);
        assert_eq!(plan.split(&in_db, &side, &enroll), Split::Probe);
        assert_eq!(plan.split(&out_db, &frontal, &enroll), Split::Probe);
        assert_eq!(plan.split("19000000", &frontal, &enroll), Split::Train);
    }
}
