//! The `Cn.txt` annotation beside a K-Face image: seven landmark points
//! (nose, eyeR, eyeL, mouthR, mouthL, earR, earL; "right" is the subject's
//! right, on the image's left), then 5–7 `x y w h` boxes, face box first,
//! the count depending on the camera.
//!
//! The parser is lenient where the shipped files vary (spec §4.5): fields
//! split on any run of tabs, spaces, commas or semicolons; CRLF or LF; a
//! byte-order mark; blank lines anywhere; integers, or decimals as a
//! fallback; boxes beyond the camera's count ignored. Every other defect
//! is an [`AnnotationError`] naming the line, never a panic.

/// Annotation lines that give the five ArcFace points in insightface order
/// (eye on the image-left, eye on the image-right, nose, mouth corner
/// image-left, mouth corner image-right).
pub(crate) const ARCFACE_ORDER: [usize; 5] = [1, 2, 0, 3, 4];

/// A box as the file writes it: top-left corner, width, height, in pixels
/// of the image beside the file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundingBox {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

/// A parsed annotation.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    /// The seven points `[x, y]`, in file order (see [`POINT_NAMES`]).
    pub points: [[f32; 2]; 7],
    /// The face box.
    pub face: BoundingBox,
    /// The part boxes that follow it, at most the camera's count.
    pub parts: Vec<BoundingBox>,
}

impl Annotation {
    /// The five points for the ArcFace template, in insightface order.
    pub(crate) fn arcface_points(&self) -> [[f32; 2]; 5] {
        ARCFACE_ORDER.map(|i| self.points[i])
    }
}

/// Why an annotation could not be used. Line numbers are 1-based, as an
/// editor shows them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    #[error("annotation: {0}")]
    Unreadable(String),
    #[error("annotation is not UTF-8 text")]
    NotText,
    #[error("annotation is empty")]
    Empty,
    #[error("annotation has {found} point lines, expected 7")]
    TooFewPoints { found: usize },
    #[error("annotation has no face box after the 7 points")]
    NoFaceBox,
    #[error("annotation line {line}: expected {expected} numbers, found {found}")]
    FieldCount {
        line: usize,
        expected: usize,
        found: usize,
    },
    #[error("annotation line {line}: {text:?} is not a number")]
    NotANumber { line: usize, text: String },
    #[error("annotation line {line}: box width and height must be positive")]
    EmptyBox { line: usize },
}

/// Boxes the annotation tool writes for a camera: face, eyes, nose, mouth,
/// and the ears visible from it (KF-BBTOOL `findAnnotationFlag`).
pub(crate) fn expected_boxes(camera: u8) -> usize {
    match camera {
        7 | 16 => 7,
        1 | 2 | 12 | 13 => 5,
        _ => 6,
    }
}

fn number(text: &str, line: usize) -> Result<f32, AnnotationError> {
    let bad = || AnnotationError::NotANumber {
        line,
        text: text.to_string(),
    };
    if let Ok(n) = text.parse::<i32>() {
        return Ok(n as f32);
    }
    let x = text.parse::<f32>().map_err(|_| bad())?;
    if x.is_finite() {
        Ok(x)
    } else {
        Err(bad())
    }
}

fn fields<const N: usize>(text: &str, line: usize) -> Result<[f32; N], AnnotationError> {
    let tokens: Vec<&str> = text
        .split(|c: char| c == ' ' || c == '\t' || c == ',' || c == ';')
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.len() != N {
        return Err(AnnotationError::FieldCount {
            line,
            expected: N,
            found: tokens.len(),
        });
    }
    let mut out = [0.0; N];
    for (slot, token) in out.iter_mut().zip(tokens) {
        *slot = number(token, line)?;
    }
    Ok(out)
}

fn bounding_box(text: &str, line: usize) -> Result<BoundingBox, AnnotationError> {
    let [x, y, w, h] = fields::<4>(text, line)?;
    if w <= 0.0 || h <= 0.0 {
        return Err(AnnotationError::EmptyBox { line });
    }
    Ok(BoundingBox { x, y, w, h })
}

/// Parses the bytes of an annotation file of a `camera`.
pub(crate) fn parse_bytes(bytes: &[u8], camera: u8) -> Result<Annotation, AnnotationError> {
    let text = std::str::from_utf8(bytes).map_err(|_| AnnotationError::NotText)?;
    parse(text, camera)
}

/// Parses the text of an annotation file of a `camera`.
pub fn parse(text: &str, camera: u8) -> Result<Annotation, AnnotationError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_matches(|c: char| c.is_whitespace())))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return Err(AnnotationError::Empty);
    }
    if lines.len() < 7 {
        return Err(AnnotationError::TooFewPoints { found: lines.len() });
    }
    let mut points = [[0.0f32; 2]; 7];
    for (slot, (line, text)) in points.iter_mut().zip(&lines) {
        *slot = fields::<2>(text, *line)?;
    }
    let (face_line, face_text) = *lines.get(7).ok_or(AnnotationError::NoFaceBox)?;
    let face = bounding_box(face_text, face_line)?;
    let parts = lines[8..]
        .iter()
        .take(expected_boxes(camera).saturating_sub(1))
        .map(|(line, text)| bounding_box(text, *line))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Annotation {
        points,
        face,
        parts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const C7: &str = "432\t301\n398\t262\n466\t263\n405\t345\n458\t346\n339\t296\n526\t297\n\
330\t180\t204\t204\n380\t250\t36\t24\n448\t250\t36\t24\n412\t280\t40\t40\n395\t330\t74\t30\n\
320\t270\t38\t60\n510\t270\t38\t60\n";

    #[test]
    fn parses_a_frontal_file() {
        let a = parse(C7, 7).unwrap();
        assert_eq!(a.points[0], [432.0, 301.0]);
        assert_eq!(a.points[6], [526.0, 297.0]);
        assert_eq!(
            a.face,
            BoundingBox {
                x: 330.0,
                y: 180.0,
                w: 204.0,
                h: 204.0
            }
        );
        assert_eq!(a.parts.len(), 6);
        assert_eq!(
            a.arcface_points(),
            [
                [398.0, 262.0],
                [466.0, 263.0],
                [432.0, 301.0],
                [405.0, 345.0],
                [458.0, 346.0]
            ]
        );
    }

    #[test]
    fn separators_line_endings_and_blanks() {
        let spaced = C7.replace('\t', "  ");
        let crlf = C7.replace('\n', "\r\n") + "\r\n\r\n  \r\n";
        let commas = C7.replace('\t', ", ");
        let bom = format!("\u{feff}{C7}");
        let blank_inside = C7.replacen('\n', "\n\n", 3);
        let reference = parse(C7, 7).unwrap();
        for text in [spaced, crlf, commas, bom, blank_inside] {
            assert_eq!(parse(&text, 7).unwrap(), reference, "{text:?}");
        }
    }

    #[test]
    fn decimals_are_a_fallback() {
        let text = C7.replacen("432\t301", "432.5\t301.25", 1);
        assert_eq!(parse(&text, 7).unwrap().points[0], [432.5, 301.25]);
    }

    #[test]
    fn box_count_follows_the_camera_and_extras_are_ignored() {
        assert_eq!(expected_boxes(7), 7);
        assert_eq!(expected_boxes(16), 7);
        assert_eq!(expected_boxes(1), 5);
        assert_eq!(expected_boxes(13), 5);
        assert_eq!(expected_boxes(4), 6);
        assert_eq!(expected_boxes(20), 6);
        assert_eq!(parse(C7, 1).unwrap().parts.len(), 4);
        let extra = format!("{C7}1 2 3 4\nnot a box at all\n");
        assert_eq!(parse(&extra, 7).unwrap().parts.len(), 6);
        let face_only: String = C7.lines().take(8).map(|l| format!("{l}\n")).collect();
        assert!(parse(&face_only, 7).unwrap().parts.is_empty());
    }

    #[test]
    fn defects_are_reasons() {
        use AnnotationError::*;
        assert_eq!(parse_bytes(b"\xff\xfe1 2", 7), Err(NotText));
        assert_eq!(parse("", 7), Err(Empty));
        assert_eq!(parse(" \r\n\n", 7), Err(Empty));
        assert_eq!(parse("1 2\n3 4\n", 7), Err(TooFewPoints { found: 2 }));
        let points: String = C7.lines().take(7).map(|l| format!("{l}\n")).collect();
        assert_eq!(parse(&points, 7), Err(NoFaceBox));
        let three = C7.replacen("398\t262", "398\t262\t5", 1);
        assert_eq!(
            parse(&three, 7),
            Err(FieldCount {
                line: 2,
                expected: 2,
                found: 3
            })
        );
        let word = C7.replacen("466", "x66", 1);
        assert_eq!(
            parse(&word, 7),
            Err(NotANumber {
                line: 3,
                text: "x66".into()
            })
        );
        let nan = C7.replacen("466", "NaN", 1);
        assert!(matches!(parse(&nan, 7), Err(NotANumber { line: 3, .. })));
        let short_box = C7.replacen("330\t180\t204\t204", "330\t180\t204", 1);
        assert_eq!(
            parse(&short_box, 7),
            Err(FieldCount {
                line: 8,
                expected: 4,
                found: 3
            })
        );
        let empty_box = C7.replacen("330\t180\t204\t204", "330\t180\t0\t204", 1);
        assert_eq!(parse(&empty_box, 7), Err(EmptyBox { line: 8 }));
        let bad_part = C7.replacen("412\t280\t40\t40", "412\t280", 1);
        assert!(matches!(
            parse(&bad_part, 7),
            Err(FieldCount { line: 11, .. })
        ));
        for e in [Empty, NoFaceBox, EmptyBox { line: 8 }] {
            assert!(e.to_string().starts_with("annotation"), "{e}");
        }
    }
}
