use crate::cli::DemoArgs;

pub fn run(_args: &DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("`facekit demo` is not built yet")
}
