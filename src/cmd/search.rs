use crate::cli::SearchArgs;

pub fn run(_args: &SearchArgs) -> anyhow::Result<()> {
    anyhow::bail!("`facekit search` is not built yet")
}
