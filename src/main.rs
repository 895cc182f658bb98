//! `flow`: check, compile, run and inspect Flow workflows.

mod cli;

use std::process::ExitCode;

/// mimalloc instead of the system allocator: glibc's malloc serialises threads that
/// free what another thread allocated (the HTTP client, the executor and the parser
/// all do), and mimalloc is faster on the many small allocations of parsing and
/// decoding. Figures in docs/performance.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::main()
}
