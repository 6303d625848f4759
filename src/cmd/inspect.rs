use crate::cli::InspectArgs;

pub fn run(_args: &InspectArgs) -> anyhow::Result<()> {
    anyhow::bail!("`facekit inspect` is not built yet")
}
