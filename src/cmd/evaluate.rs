use crate::cli::EvaluateArgs;

pub fn run(_args: &EvaluateArgs) -> anyhow::Result<()> {
    anyhow::bail!("`facekit evaluate` is not built yet")
}
