//! The `sluice` binary: parse arguments, run, map errors to an exit code.

/// Rendering allocates millions of small strings and maps; mimalloc makes that markedly
/// cheaper than the system allocator (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sluice::main()
}
