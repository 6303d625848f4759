//! From decoded pixels to the model's input tensor: the layout (NCHW as
//! torch2onnx exports, or NHWC), the channel order (RGB unless `--bgr`),
//! the normalisation ((x − 127.5)/127.5 as arcface_torch trains, raw 0–255
//! for a model that normalises itself, or the user's mean and std), and the
//! horizontal mirror of insightface's test-time flip. Pure functions.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How pixel values are scaled before the model sees them: `(x − mean)/std`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalisation {
    pub mean: f32,
    pub std: f32,
}

impl Normalisation {
    /// arcface_torch's training transform, `(x/255 − 0.5)/0.5`.
    pub(crate) const ARCFACE: Normalisation = Normalisation {
        mean: 127.5,
        std: 127.5,
    };
    /// Raw 0–255, for a model that subtracts and scales itself.
    pub(crate) const RAW: Normalisation = Normalisation {
        mean: 0.0,
        std: 1.0,
    };
}

impl fmt::Display for Normalisation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Normalisation::ARCFACE {
            f.write_str("arcface")
        } else if *self == Normalisation::RAW {
            f.write_str("raw")
        } else {
            write!(f, "{},{}", self.mean, self.std)
        }
    }
}

/// `arcface`, `raw` or `MEAN,STD`, as `--input-norm` takes it.
impl FromStr for Normalisation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "arcface" => Ok(Normalisation::ARCFACE),
            "raw" => Ok(Normalisation::RAW),
            other => {
                let parse = |v: &str| v.trim().parse::<f32>().ok().filter(|v| v.is_finite());
                match other.split_once(',') {
                    Some((m, s)) => match (parse(m), parse(s)) {
                        (Some(mean), Some(std)) if std != 0.0 => Ok(Normalisation { mean, std }),
                        _ => Err(format!("{other:?}: expected MEAN,STD with a non-zero STD")),
                    },
                    None => Err(format!(
                        "{other:?}: expected arcface, raw or MEAN,STD (e.g. 127.5,128)"
                    )),
                }
            }
        }
    }
}

/// Where the channel axis sits in the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum Layout {
    Nchw,
    Nhwc,
}

/// Everything that turns pixels into one image's slice of the input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Preprocess {
    pub size: u32,
    pub layout: Layout,
    pub bgr: bool,
    pub norm: Normalisation,
}

impl Preprocess {
    /// Floats per image.
    pub(crate) fn len(&self) -> usize {
        3 * self.size as usize * self.size as usize
    }

    /// Writes one RGB image (`size`×`size`, row-major, 3 bytes a pixel) into
    /// `out`, mirrored left to right when `mirror`.
    pub(crate) fn write(&self, rgb: &[u8], mirror: bool, out: &mut [f32]) {
        let side = self.size as usize;
        debug_assert_eq!(rgb.len(), side * side * 3);
        debug_assert_eq!(out.len(), self.len());
        let scale = 1.0 / self.norm.std;
        let mean = self.norm.mean;
        let plane = side * side;
        for y in 0..side {
            let row = &rgb[y * side * 3..(y + 1) * side * 3];
            for x in 0..side {
                let src = if mirror { side - 1 - x } else { x };
                let px = &row[src * 3..src * 3 + 3];
                for c in 0..3 {
                    let channel = if self.bgr { 2 - c } else { c };
                    let value = (f32::from(px[channel]) - mean) * scale;
                    let at = match self.layout {
                        Layout::Nchw => c * plane + y * side + x,
                        Layout::Nhwc => (y * side + x) * 3 + c,
                    };
                    out[at] = value;
                }
            }
        }
    }
}

/// L2-normalises a row in place; false when its norm is 0 or not finite
/// (a model that produced NaN or a zero vector: that row cannot be compared).
pub(crate) fn normalise_row(row: &mut [f32]) -> bool {
    let norm = row
        .iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt();
    if !(norm.is_finite() && norm > 0.0) {
        return false;
    }
    for v in row {
        *v = (f64::from(*v) / norm) as f32;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Vec<u8> {
        // 2x2: red, green / blue, white.
        vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255]
    }

    #[test]
    fn nchw_rgb_arcface() {
        let p = Preprocess {
            size: 2,
            layout: Layout::Nchw,
            bgr: false,
            norm: Normalisation::ARCFACE,
        };
        let mut out = vec![0.0; p.len()];
        p.write(&image(), false, &mut out);
        // R plane, G plane, B plane; 255 -> 1, 0 -> -1.
        assert_eq!(out, [1., -1., -1., 1., -1., 1., -1., 1., -1., -1., 1., 1.]);
        p.write(&image(), true, &mut out);
        assert_eq!(&out[..4], [-1., 1., 1., -1.], "mirrored R plane");
    }

    #[test]
    fn nhwc_bgr_raw() {
        let p = Preprocess {
            size: 2,
            layout: Layout::Nhwc,
            bgr: true,
            norm: Normalisation::RAW,
        };
        let mut out = vec![0.0; p.len()];
        p.write(&image(), false, &mut out);
        assert_eq!(&out[..6], [0., 0., 255., 0., 255., 0.]);
    }

    #[test]
    fn input_norm_parses_and_prints() {
        assert_eq!("arcface".parse(), Ok(Normalisation::ARCFACE));
        assert_eq!("raw".parse(), Ok(Normalisation::RAW));
        let custom: Normalisation = "127.5, 128".parse().unwrap();
        assert_eq!(
            custom,
            Normalisation {
                mean: 127.5,
                std: 128.0
            }
        );
        assert_eq!(custom.to_string(), "127.5,128");
        assert!("1,0".parse::<Normalisation>().is_err());
        assert!("bgr".parse::<Normalisation>().is_err());
    }

    #[test]
    fn zero_and_nan_rows_are_refused() {
        let mut row = [3.0, 4.0];
        assert!(normalise_row(&mut row));
        assert_eq!(row, [0.6, 0.8]);
        assert!(!normalise_row(&mut [0.0, 0.0]));
        assert!(!normalise_row(&mut [f32::NAN, 1.0]));
    }
}
