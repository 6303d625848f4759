use crate::cli::PairsArgs;

pub fn run(_args: &PairsArgs) -> anyhow::Result<()> {
    anyhow::bail!("`facekit pairs` is not built yet")
}
