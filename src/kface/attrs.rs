//! The four capture conditions of a K-Face image and its identity.

use std::fmt;

/// Capture conditions, as the numbers of the K-Face codes: accessory `S001`
/// is 1, light `L7` is 7, expression `E02` is 2, camera `C13` is 13.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Attributes {
    pub accessory: u8,
    pub light: u8,
    pub expression: u8,
    pub camera: u8,
}

impl Attributes {
    pub(crate) const ACCESSORIES: u8 = 6;
    pub(crate) const LIGHTS: u8 = 30;
    pub(crate) const EXPRESSIONS: u8 = 3;
    pub(crate) const CAMERAS: u8 = 20;

    /// `None` when a code is outside the K-Face ranges.
    pub fn new(accessory: u8, light: u8, expression: u8, camera: u8) -> Option<Attributes> {
        let ok = (1..=Self::ACCESSORIES).contains(&accessory)
            && (1..=Self::LIGHTS).contains(&light)
            && (1..=Self::EXPRESSIONS).contains(&expression)
            && (1..=Self::CAMERAS).contains(&camera);
        ok.then_some(Attributes {
            accessory,
            light,
            expression,
            camera,
        })
    }

    pub fn accessory_code(&self) -> String {
        format!("S{:03}", self.accessory)
    }
    pub fn light_code(&self) -> String {
        format!("L{}", self.light)
    }
    pub fn expression_code(&self) -> String {
        format!("E{:02}", self.expression)
    }
    pub fn camera_code(&self) -> String {
        format!("C{}", self.camera)
    }

    /// The relative path inside an identity folder: `S001/L1/E01/C7`.
    pub fn relative_stem(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.accessory_code(),
            self.light_code(),
            self.expression_code(),
            self.camera_code()
        )
    }
}

/// One image of the dataset: who, under which conditions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ImageKey {
    pub identity: String,
    pub attrs: Attributes,
}

impl ImageKey {
    /// The canonical relative path of the K-Face pair lists:
    /// `19062421/S001/L1/E01/C7.jpg`.
    pub(crate) fn relative_path(&self) -> String {
        format!("{}/{}.jpg", self.identity, self.attrs.relative_stem())
    }
}

impl fmt::Display for ImageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.relative_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_spelled_as_shipped() {
        let a = Attributes::new(1, 7, 2, 13).unwrap();
        assert_eq!(a.relative_stem(), "S001/L7/E02/C13");
        let key = ImageKey {
            identity: "19062421".into(),
            attrs: a,
        };
        assert_eq!(key.to_string(), "19062421/S001/L7/E02/C13.jpg");
    }

    #[test]
    fn out_of_range_codes_are_rejected() {
        assert!(Attributes::new(0, 1, 1, 1).is_none());
        assert!(Attributes::new(7, 1, 1, 1).is_none());
        assert!(Attributes::new(1, 31, 1, 1).is_none());
        assert!(Attributes::new(1, 1, 4, 1).is_none());
        assert!(Attributes::new(1, 1, 1, 21).is_none());
    }
}
