use std::process::ExitCode;

fn main() -> ExitCode {
    facekit::cli::main()
}
