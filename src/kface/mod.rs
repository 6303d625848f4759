//! What the AI Hub K-Face data is: the condition codes of an image, the
//! selection notation of the K-Face literature, and (in later modules) the
//! path grammar, the annotation format and archive reading.

pub mod annotation;
pub mod archive;
pub mod attrs;
pub mod holdout;
pub mod landmarks;
pub mod path;
pub mod select;
pub mod source;

pub use attrs::Attributes;
pub(crate) use attrs::ImageKey;
pub(crate) use holdout::{HoldoutPlan, HoldoutSpec, Split};
pub use select::Selection;
