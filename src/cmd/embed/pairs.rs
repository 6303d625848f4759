//! `pairs.txt` of `.bin` inputs: the pairs whose two images were both
//! embedded, in file order (so arcface_torch's ten folds stay), paths
//! global (`kface.bin#<index>` in the whole file) whichever part wrote them.
//!
//! A part owns the pairs whose first image is among its faces. A pair
//! whose second image lies in another part (a `.bin` pair is two
//! neighbouring images, so at most the last pair of a part) cannot be
//! decided there: the part records it as open, the part holding the second
//! image records whether it embedded it, and `merge` decides.

use std::collections::HashMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::embed::source::Faces;

/// A pair begun in one part whose second image is in another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OpenPair {
    /// The `pairs.txt` line, written if the second image was embedded.
    pub line: String,
    /// The second image's index in the whole input list.
    pub second: usize,
}

/// Whether a part embedded an image that another part's pair needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SecondImage {
    pub face: usize,
    pub embedded: bool,
}

/// One part's share of the pair list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PartPairs {
    /// The decided lines, each ending in a newline.
    pub text: String,
    pub written: usize,
    pub dropped: usize,
    pub open: Vec<OpenPair>,
    pub seconds: Vec<SecondImage>,
}

/// The line of one pair; tabs when a path has a space, as the pair reader
/// splits on tabs then.
fn line(a: &str, b: &str, same: bool) -> String {
    let sep = if a.contains(' ') || b.contains(' ') {
        '\t'
    } else {
        ' '
    };
    format!("{a}{sep}{b}{sep}{}\n", u8::from(same))
}

/// The pairs of the faces in `part` (indices into `faces.faces`), given
/// which of them were embedded (`embedded[i]` for face `part.start + i`);
/// `None` when the inputs have no pairs.
pub(crate) fn of_part(faces: &Faces, part: Range<usize>, embedded: &[bool]) -> Option<PartPairs> {
    if faces.pairs.is_empty() {
        return None;
    }
    let done = |face: usize| embedded[face - part.start];
    let mut out = PartPairs::default();
    for pair in &faces.pairs {
        let (first_here, second_here) = (part.contains(&pair.first), part.contains(&pair.second));
        if !first_here {
            if second_here {
                out.seconds.push(SecondImage {
                    face: pair.second,
                    embedded: done(pair.second),
                });
            }
            continue;
        }
        let text = line(
            &faces.faces[pair.first].values[0],
            &faces.faces[pair.second].values[0],
            pair.same,
        );
        if !done(pair.first) || (second_here && !done(pair.second)) {
            out.dropped += 1;
        } else if second_here {
            out.text.push_str(&text);
            out.written += 1;
        } else {
            out.open.push(OpenPair {
                line: text,
                second: pair.second,
            });
        }
    }
    Some(out)
}

/// The parts' pairs joined in part order, the open ones decided by the
/// other parts' second images. Fails with the face of an open pair's
/// second image that no part reports (the parts do not fit together).
pub(crate) fn join(parts: &[PartPairs]) -> Result<PartPairs, usize> {
    let status: HashMap<usize, bool> = parts
        .iter()
        .flat_map(|p| &p.seconds)
        .map(|s| (s.face, s.embedded))
        .collect();
    let mut out = PartPairs::default();
    for part in parts {
        out.text.push_str(&part.text);
        out.written += part.written;
        out.dropped += part.dropped;
        for open in &part.open {
            match status.get(&open.second) {
                Some(true) => {
                    out.text.push_str(&open.line);
                    out.written += 1;
                }
                Some(false) => out.dropped += 1,
                None => return Err(open.second),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::source::{Face, FacePair, ImageRef};
    use crate::partition::ShardSpec;

    /// Ten images in five pairs, as a `.bin` holds them.
    fn bin() -> Faces {
        Faces {
            columns: vec!["path".into(), "identity".into()],
            faces: (0..10)
                .map(|i| Face {
                    image: ImageRef::File(format!("{i}").into()),
                    values: vec![format!("k.bin#{i}"), "x".into()],
                })
                .collect(),
            pairs: (0..5)
                .map(|i| FacePair {
                    first: 2 * i,
                    second: 2 * i + 1,
                    same: i % 2 == 0,
                })
                .collect(),
            inputs: Vec::new(),
        }
    }

    #[test]
    fn parts_joined_give_the_whole_list_whatever_fails() {
        let faces = bin();
        for failed in [vec![], vec![3], vec![4, 9], vec![0, 5, 6]] {
            let embedded: Vec<bool> = (0..10).map(|i| !failed.contains(&i)).collect();
            let whole = of_part(&faces, 0..10, &embedded).unwrap();
            assert_eq!(whole.written + whole.dropped, 5);
            assert!(whole.open.is_empty() && whole.seconds.is_empty());
            for n in [1u32, 2, 3, 7, 12] {
                let parts: Vec<PartPairs> = (0..n)
                    .map(|i| {
                        let r = ShardSpec::new(i, n).unwrap().range(10);
                        of_part(&faces, r.clone(), &embedded[r]).unwrap()
                    })
                    .collect();
                assert_eq!(
                    join(&parts),
                    Ok(whole.clone()),
                    "{n} parts, {failed:?} failed"
                );
            }
        }
    }

    #[test]
    fn an_open_pair_without_its_second_image_is_refused() {
        let faces = bin();
        let first = of_part(&faces, 0..5, &[true; 5]).unwrap();
        assert_eq!(first.open.len(), 1);
        assert_eq!(first.text.lines().next(), Some("k.bin#0 k.bin#1 1"));
        assert_eq!(join(&[first]), Err(5));
        assert_eq!(of_part(&Faces::default(), 0..0, &[]), None);
    }
}
