use crate::cli::ReportArgs;

pub fn run(_args: &ReportArgs) -> anyhow::Result<()> {
    anyhow::bail!("`facekit report` is not built yet")
}
