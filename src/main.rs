//! `flow`: check, compile, run and inspect Flow workflows.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
