//! The path grammar of K-Face files: which image or annotation a path names.
//!
//! Two forms are recognised, at the end of a path whatever folders sit above
//! it (a Korean-named download folder, `Middle_Resolution/middle/`, …):
//!
//! * nested, as the official tools and AI Hub ship it:
//!   `<ID>/S001/L1/E01/C7.jpg` (and `C7.txt` beside it);
//! * flat, as the K-Face README describes it: `19062421_S001_L1_E01_C7.jpg`.
//!
//! Codes are matched without regard to case or zero padding (`s1`, `S01`,
//! `L01`, `E1`, `C07`), and `.jpg`, `.jpeg` and `.JPG` are all images. The
//! identity is any run of ASCII digits: identities are found, not assumed.

use std::ffi::OsStr;
use std::path::{Component, Path};

use super::{Attributes, ImageKey};

/// What a K-Face file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum FileRole {
    /// A JPEG photograph.
    Image,
    /// The `Cn.txt` landmark and box annotation beside it.
    Annotation,
}

/// Which of the two spellings a path used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    Nested,
    Flat,
}

/// A recognised K-Face path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathMatch {
    pub key: ImageKey,
    pub role: FileRole,
    pub form: Form,
}

/// What discovery makes of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Classified {
    /// A K-Face image or annotation.
    Match(PathMatch),
    /// An image file whose name in the grammar's part of the path is not
    /// valid UTF-8, so its conditions cannot be read; `identity` is the ID
    /// when a readable component names one.
    Undecodable { identity: Option<String> },
    /// Anything else: stray files, other data, images outside the grammar.
    Stray,
}

/// Parses a code such as `S001`, `l1` or `C07` for `letter`, within `1..=max`.
fn code(text: &str, letter: char, max: u8) -> Option<u8> {
    let mut chars = text.chars();
    if !chars.next()?.eq_ignore_ascii_case(&letter) {
        return None;
    }
    let digits = chars.as_str();
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u8 = digits.parse().ok()?;
    (1..=max).contains(&n).then_some(n)
}

fn is_identity(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// Splits `C7.jpg` into its stem and role by extension (any case).
fn split_name(name: &str) -> Option<(&str, FileRole)> {
    let (stem, ext) = name.rsplit_once('.')?;
    let role = if ext.eq_ignore_ascii_case("jpg") || ext.eq_ignore_ascii_case("jpeg") {
        FileRole::Image
    } else if ext.eq_ignore_ascii_case("txt") {
        FileRole::Annotation
    } else {
        return None;
    };
    Some((stem, role))
}

fn is_image_name(name: &str) -> bool {
    matches!(split_name(name), Some((_, FileRole::Image)))
}

fn attributes(s: &str, l: &str, e: &str, c: &str) -> Option<Attributes> {
    Attributes::new(
        code(s, 'S', Attributes::ACCESSORIES)?,
        code(l, 'L', Attributes::LIGHTS)?,
        code(e, 'E', Attributes::EXPRESSIONS)?,
        code(c, 'C', Attributes::CAMERAS)?,
    )
}

/// Parses the four condition components inside an identity:
/// `["S001", "L1", "E01", "C7.jpg"]`. This is also the form of the members
/// of a per-identity zip (`S001/L1/E01/C7.jpg`).
pub(crate) fn parse_in_identity(components: &[&str]) -> Option<(Attributes, FileRole)> {
    let [s, l, e, file] = components else {
        return None;
    };
    let (stem, role) = split_name(file)?;
    Some((attributes(s, l, e, stem)?, role))
}

/// Parses a flat file name: `19062421_S001_L1_E01_C7.jpg`.
pub(crate) fn parse_flat(name: &str) -> Option<PathMatch> {
    let (stem, role) = split_name(name)?;
    let parts: Vec<&str> = stem.split('_').collect();
    let [id, s, l, e, c] = parts[..] else {
        return None;
    };
    if !is_identity(id) {
        return None;
    }
    let attrs = attributes(s, l, e, c)?;
    Some(PathMatch {
        key: ImageKey {
            identity: id.to_string(),
            attrs,
        },
        role,
        form: Form::Flat,
    })
}

/// Parses the end of a path given as its components, outermost first: the
/// nested form needs the last five, the flat form only the file name.
pub(crate) fn parse_components(components: &[&str]) -> Option<PathMatch> {
    let file = components.last()?;
    if let Some(found) = parse_flat(file) {
        return Some(found);
    }
    let tail = components.get(components.len().checked_sub(5)?..)?;
    if !is_identity(tail[0]) {
        return None;
    }
    let (attrs, role) = parse_in_identity(&tail[1..])?;
    Some(PathMatch {
        key: ImageKey {
            identity: tail[0].to_string(),
            attrs,
        },
        role,
        form: Form::Nested,
    })
}

/// Classifies a file found below a source root. Only the last five
/// components are read by the grammar, so a non-UTF-8 folder higher up (a
/// CP949 name on a Linux mount) does no harm.
pub(crate) fn classify(path: &Path) -> Classified {
    let parts: Vec<&OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part),
            _ => None,
        })
        .collect();
    let tail = &parts[parts.len().saturating_sub(5)..];
    let decoded: Option<Vec<&str>> = tail.iter().map(|p| p.to_str()).collect();
    if let Some(decoded) = decoded {
        return match parse_components(&decoded) {
            Some(found) => Classified::Match(found),
            None => Classified::Stray,
        };
    }
    let lossy: Vec<String> = tail
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let Some(name) = lossy.last() else {
        return Classified::Stray;
    };
    if !is_image_name(name) {
        return Classified::Stray;
    }
    let flat_id = name
        .split('_')
        .next()
        .filter(|id| is_identity(id) && *id != name.as_str());
    let identity = flat_id
        .or_else(|| {
            lossy
                .iter()
                .rev()
                .skip(1)
                .find(|c| is_identity(c))
                .map(String::as_str)
        })
        .map(str::to_string);
    Classified::Undecodable { identity }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, s: u8, l: u8, e: u8, c: u8) -> ImageKey {
        ImageKey {
            identity: id.into(),
            attrs: Attributes::new(s, l, e, c).unwrap(),
        }
    }

    fn matched(path: &str) -> PathMatch {
        match classify(Path::new(path)) {
            Classified::Match(m) => m,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn nested_paths_below_any_root() {
        let m = matched("/data/한국인 안면 이미지/Middle_Resolution/19062421/S001/L1/E01/C7.jpg");
        assert_eq!(m.key, key("19062421", 1, 1, 1, 7));
        assert_eq!((m.role, m.form), (FileRole::Image, Form::Nested));
        let m = matched("Middle_Resolution/middle/19101513/S006/L30/E03/C20.txt");
        assert_eq!(m.key, key("19101513", 6, 30, 3, 20));
        assert_eq!(m.role, FileRole::Annotation);
        assert_eq!(
            matched("19062421/S002/L8/E02/C13.jpg").key,
            key("19062421", 2, 8, 2, 13)
        );
    }

    #[test]
    fn case_and_padding_variants() {
        assert_eq!(
            matched("x/19062421/s1/l01/e1/c07.JPG").key,
            key("19062421", 1, 1, 1, 7)
        );
        assert_eq!(
            matched("19062421/S01/L030/E003/C7.jpeg").key,
            key("19062421", 1, 30, 3, 7)
        );
        assert_eq!(
            matched("a/19062421/S001/L1/E01/C7.TXT").role,
            FileRole::Annotation
        );
    }

    #[test]
    fn flat_names() {
        let m = matched("some/where/19062421_S001_L1_E01_C7.jpg");
        assert_eq!((m.key, m.form), (key("19062421", 1, 1, 1, 7), Form::Flat));
        let m = matched("19062421_s003_l12_e2_c10.txt");
        assert_eq!(
            (m.key, m.role),
            (key("19062421", 3, 12, 2, 10), FileRole::Annotation)
        );
    }

    #[test]
    fn members_of_an_identity_zip() {
        let (attrs, role) = parse_in_identity(&["S001", "L1", "E01", "C7.jpg"]).unwrap();
        assert_eq!(
            (attrs, role),
            (Attributes::new(1, 1, 1, 7).unwrap(), FileRole::Image)
        );
        assert!(parse_in_identity(&["S001", "L1", "E01"]).is_none());
    }

    #[test]
    fn strays_are_not_images() {
        for path in [
            "README.txt",
            "19062421/S001/L1/E01/C7.png",
            "19062421/S001/L1/E01/Thumbs.db",
            "19062421/S007/L1/E01/C7.jpg",
            "19062421/S001/L31/E01/C7.jpg",
            "19062421/S001/L0/E01/C7.jpg",
            "19062421/S001/L1/E04/C7.jpg",
            "19062421/S001/L1/E01/C21.jpg",
            "19062421/S001/L1/E01/C7",
            "abc/S001/L1/E01/C7.jpg",
            "19062421/S001/L1/C7.jpg",
            "19062421/S001/L1/E01/x/C7.jpg",
            "19062421/S001/L1/E01/C7.jpg.bak",
            "19062421/S0001/L1/E01/C7.jpg",
            "19062421_S001_L1_E01.jpg",
            "x_S001_L1_E01_C7.jpg",
            "19062421/S001/L1/E01/C+7.jpg",
        ] {
            assert_eq!(classify(Path::new(path)), Classified::Stray, "{path}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_names() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        use std::path::PathBuf;
        // A CP949 folder above the identity: harmless.
        let mut above = PathBuf::from(OsString::from_vec(b"\xc7\xd1\xb1\xb9".to_vec()));
        above.push("19062421/S001/L1/E01/C7.jpg");
        assert!(matches!(classify(&above), Classified::Match(_)));
        // A broken name inside the grammar: undecodable, identity kept.
        let mut inside = PathBuf::from("19062421/S001/L1");
        inside.push(OsString::from_vec(b"E\xff01".to_vec()));
        inside.push("C7.jpg");
        assert_eq!(
            classify(&inside),
            Classified::Undecodable {
                identity: Some("19062421".into())
            }
        );
        let flat = PathBuf::from(OsString::from_vec(
            b"19062421_S001_L1_E01_C\xff.jpg".to_vec(),
        ));
        assert_eq!(
            classify(&flat),
            Classified::Undecodable {
                identity: Some("19062421".into())
            }
        );
        let unknown = PathBuf::from(OsString::from_vec(b"\xff.jpg".to_vec()));
        assert_eq!(
            classify(&unknown),
            Classified::Undecodable { identity: None }
        );
        let not_image = PathBuf::from(OsString::from_vec(b"\xff.dat".to_vec()));
        assert_eq!(classify(&not_image), Classified::Stray);
    }
}
