//! The selection notation of the K-Face literature: one token per
//! attribute, ranges and lists, e.g. `"S1-2 L1-6,8-30 E1-3 C4-10"`.
//! `~` is accepted for ranges as the MIX configs write them (`l1~6,8~30`),
//! codes may carry their zero padding (`S001`, `E01`), and a missing token
//! means "all" of that attribute.

use std::fmt;
use std::str::FromStr;

use super::Attributes;

/// A set of accepted codes per attribute, as bit masks (bit n = code n).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    accessory: u64,
    light: u64,
    expression: u64,
    camera: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad selection {spec:?}: token {index} {token:?}: {reason}")]
pub struct SelectError {
    pub spec: String,
    /// 1-based position of the token in the spec.
    pub index: usize,
    pub token: String,
    pub reason: String,
}

fn all_of(max: u8) -> u64 {
    ((1u64 << (max as u32 + 1)) - 1) & !1
}

impl Selection {
    /// Every image.
    pub fn all() -> Selection {
        Selection {
            accessory: all_of(Attributes::ACCESSORIES),
            light: all_of(Attributes::LIGHTS),
            expression: all_of(Attributes::EXPRESSIONS),
            camera: all_of(Attributes::CAMERAS),
        }
    }

    /// facekit's default: everything but L7, the 0-lux light.
    pub(crate) fn default_training() -> Selection {
        let mut s = Selection::all();
        s.light &= !(1 << 7);
        s
    }

    pub fn contains(&self, a: &Attributes) -> bool {
        self.accessory >> a.accessory & 1 == 1
            && self.light >> a.light & 1 == 1
            && self.expression >> a.expression & 1 == 1
            && self.camera >> a.camera & 1 == 1
    }

    pub fn accessories(&self) -> Vec<u8> {
        codes(self.accessory)
    }
    pub fn lights(&self) -> Vec<u8> {
        codes(self.light)
    }
    pub fn expressions(&self) -> Vec<u8> {
        codes(self.expression)
    }
    pub fn cameras(&self) -> Vec<u8> {
        codes(self.camera)
    }
}

fn codes(mask: u64) -> Vec<u8> {
    (1..64)
        .filter(|n| mask >> n & 1 == 1)
        .map(|n| n as u8)
        .collect()
}

/// Writes the compact notation back, e.g. `S1-2 L1-6,8-30 E1-3 C4-10`.
impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [
            ('S', self.accessory),
            ('L', self.light),
            ('E', self.expression),
            ('C', self.camera),
        ];
        for (i, (letter, mask)) in parts.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{letter}")?;
            let list = codes(*mask);
            let mut runs: Vec<String> = Vec::new();
            let mut j = 0;
            while j < list.len() {
                let start = list[j];
                while j + 1 < list.len() && list[j + 1] == list[j] + 1 {
                    j += 1;
                }
                let end = list[j];
                runs.push(if start == end {
                    start.to_string()
                } else {
                    format!("{start}-{end}")
                });
                j += 1;
            }
            f.write_str(&runs.join(","))?;
        }
        Ok(())
    }
}

impl FromStr for Selection {
    type Err = SelectError;

    fn from_str(spec: &str) -> Result<Selection, SelectError> {
        let mut sel = Selection::all();
        let mut seen = [false; 4];
        for (i, token) in spec.split_whitespace().enumerate() {
            let fail = |reason: String| SelectError {
                spec: spec.to_string(),
                index: i + 1,
                token: token.to_string(),
                reason,
            };
            let mut chars = token.chars();
            let letter = chars.next().map(|c| c.to_ascii_uppercase());
            let (slot, max) = match letter {
                Some('S') => (0, Attributes::ACCESSORIES),
                Some('L') => (1, Attributes::LIGHTS),
                Some('E') => (2, Attributes::EXPRESSIONS),
                Some('C') => (3, Attributes::CAMERAS),
                _ => return Err(fail(
                    "unknown attribute (expected S accessory, L light, E expression or C camera)"
                        .into(),
                )),
            };
            if seen[slot] {
                return Err(fail("attribute given twice".into()));
            }
            seen[slot] = true;
            let body = chars.as_str();
            if body.is_empty() {
                return Err(fail("no codes after the letter".into()));
            }
            let mut mask = 0u64;
            for item in body.split(',') {
                let (lo, hi) = match item.split_once(['-', '~']) {
                    Some((a, b)) => (a, b),
                    None => (item, item),
                };
                let parse = |s: &str| -> Result<u8, SelectError> {
                    let s =
                        s.trim_start_matches(|c: char| c.eq_ignore_ascii_case(&letter.unwrap()));
                    s.parse::<u8>()
                        .map_err(|_| fail(format!("{item:?} is not a number or range")))
                };
                let (lo, hi) = (parse(lo)?, parse(hi)?);
                if lo == 0 || hi > max {
                    return Err(fail(format!("{item:?} is outside 1-{max}")));
                }
                if lo > hi {
                    return Err(fail(format!("range {item:?} runs backwards")));
                }
                for n in lo..=hi {
                    mask |= 1 << n;
                }
            }
            match slot {
                0 => sel.accessory = mask,
                1 => sel.light = mask,
                2 => sel.expression = mask,
                _ => sel.camera = mask,
            }
        }
        Ok(sel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: u8, l: u8, e: u8, c: u8) -> Attributes {
        Attributes::new(s, l, e, c).unwrap()
    }

    #[test]
    fn parses_the_literature_notation() {
        let sel: Selection = "S1-2 L1-6,8-30 E1-3 C4-10".parse().unwrap();
        assert_eq!(sel.accessories(), vec![1, 2]);
        assert_eq!(sel.lights().len(), 29);
        assert!(!sel.lights().contains(&7));
        assert_eq!(sel.cameras(), (4..=10).collect::<Vec<_>>());
        assert!(sel.contains(&a(2, 8, 3, 4)));
        assert!(!sel.contains(&a(3, 8, 3, 4)));
        assert_eq!(sel.to_string(), "S1-2 L1-6,8-30 E1-3 C4-10");
    }

    #[test]
    fn accepts_mix_style_and_padding() {
        let sel: Selection = "s1~2 l1~2,8,12 e1 c4~10".parse().unwrap();
        assert_eq!(sel.lights(), vec![1, 2, 8, 12]);
        let padded: Selection = "S001-002 E01".parse().unwrap();
        assert_eq!(padded.accessories(), vec![1, 2]);
        assert_eq!(padded.expressions(), vec![1]);
    }

    #[test]
    fn missing_tokens_mean_all_and_default_drops_l7() {
        let sel: Selection = "C7".parse().unwrap();
        assert!(sel.contains(&a(6, 7, 3, 7)));
        assert!(!Selection::default_training().contains(&a(1, 7, 1, 7)));
        assert!(Selection::default_training().contains(&a(6, 30, 3, 20)));
        assert_eq!("".parse::<Selection>().unwrap(), Selection::all());
    }

    #[test]
    fn errors_point_at_the_bad_token() {
        let err = "S1-2 X3".parse::<Selection>().unwrap_err();
        assert_eq!((err.index, err.token.as_str()), (2, "X3"));
        let err = "S1 L0-3".parse::<Selection>().unwrap_err();
        assert_eq!(err.index, 2);
        assert!(err.to_string().contains("outside 1-30"), "{err}");
        assert_eq!("C10-4".parse::<Selection>().unwrap_err().index, 1);
        assert_eq!("S1 S2".parse::<Selection>().unwrap_err().index, 2);
        assert_eq!("E1,x".parse::<Selection>().unwrap_err().index, 1);
        assert_eq!("C".parse::<Selection>().unwrap_err().index, 1);
    }
}
