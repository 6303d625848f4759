//! The ImageFolder layout (`--format folder`): one folder per class, named so
//! that Python's `sorted()` (code-point order, what torchvision's
//! `ImageFolder` uses to number classes) puts them in label order: the label
//! zero-padded to one width, then the identity (`0007_19062421`).

use std::fs;
use std::io;
use std::path::PathBuf;

use crate::output::write_atomic;

/// Where each class's images go under `root`.
#[derive(Debug, Clone)]
pub(crate) struct FolderLayout {
    root: PathBuf,
    label_width: usize,
}

impl FolderLayout {
    /// A layout for labels `0..num_classes`.
    pub fn new(root: impl Into<PathBuf>, num_classes: u64) -> FolderLayout {
        let label_width = num_classes.saturating_sub(1).to_string().len();
        FolderLayout {
            root: root.into(),
            label_width,
        }
    }

    /// `<label, zero-padded>_<identity>`; characters other than ASCII letters,
    /// digits, `-` and `.` in the identity become `_`, so the name is a single
    /// path component on every platform.
    pub(crate) fn class_name(&self, label: u64, identity: &str) -> String {
        let identity: String = identity
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{label:0width$}_{identity}", width = self.label_width)
    }

    pub(crate) fn class_dir(&self, label: u64, identity: &str) -> PathBuf {
        self.root.join(self.class_name(label, identity))
    }

    /// Writes one image file into its class folder (created on demand),
    /// atomically: a temporary name, renamed when complete.
    pub(crate) fn write_image(
        &self,
        label: u64,
        identity: &str,
        file_name: &str,
        bytes: &[u8],
    ) -> io::Result<PathBuf> {
        let dir = self.class_dir(label, identity);
        fs::create_dir_all(&dir)?;
        let path = dir.join(file_name);
        write_atomic(&path, bytes)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_label_order() {
        for num_classes in [1u64, 9, 10, 11, 100, 101, 1000, 12345] {
            let layout = FolderLayout::new("out", num_classes);
            // Identities chosen to sort against the labels: "z…" first, "0…" last.
            let names: Vec<String> = (0..num_classes)
                .map(|label| {
                    layout.class_name(label, &format!("{}", (num_classes - label) * 37 % 991))
                })
                .collect();
            let mut sorted = names.clone();
            sorted.sort(); // Rust's str order is code-point order, as Python's sorted()
            assert_eq!(sorted, names, "{num_classes} classes");
        }
        assert_eq!(
            FolderLayout::new("out", 400).class_name(7, "19062421"),
            "007_19062421"
        );
        assert_eq!(
            FolderLayout::new("out", 10).class_name(3, "a/b c\u{d55c}"),
            "3_a_b_c_"
        );
    }

    #[test]
    fn writes_into_class_folders() {
        let dir = tempfile::tempdir().unwrap();
        let layout = FolderLayout::new(dir.path(), 12);
        let path = layout
            .write_image(3, "19062421", "000001.jpg", b"jpeg")
            .unwrap();
        assert_eq!(path, dir.path().join("03_19062421").join("000001.jpg"));
        assert_eq!(fs::read(&path).unwrap(), b"jpeg");
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
    }
}
