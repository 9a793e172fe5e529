//! The `tessera` binary: everything lives in the library, so tests can drive it; this only runs the CLI.

fn main() -> std::process::ExitCode {
    tessera::cli::run()
}
