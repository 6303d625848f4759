use crate::cli::ConvertArgs;

pub fn run(_args: &ConvertArgs) -> anyhow::Result<()> {
    anyhow::bail!("`facekit convert` is not built yet")
}
