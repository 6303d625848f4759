use crate::cli::InspectArgs;

pub fn run(args: &InspectArgs) -> anyhow::Result<()> {
    if args
        .path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("bin"))
    {
        return super::inspect_bin::run(&args.path, &args.output);
    }
    anyhow::bail!("`facekit inspect` is not built yet")
}
