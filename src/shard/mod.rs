//! Output shards and the files other tools read: the verification `.bin`.

pub mod verification_bin;
