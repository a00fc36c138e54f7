//! The `sluice` binary: parse arguments, run, map errors to an exit code.

fn main() -> std::process::ExitCode {
    sluice::main()
}
