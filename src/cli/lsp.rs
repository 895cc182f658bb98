//! `flow lsp`: the language server, speaking the Language Server Protocol on standard
//! input and output for editors (VS Code, Neovim, Helix, ...).

use std::process::ExitCode;

use clap::Args;

use super::EXIT_USAGE;

#[derive(Args)]
pub struct LspArgs {
    /// Accepted for editors that pass it; standard input and output are the only transport.
    #[arg(long)]
    pub stdio: bool,
}

pub fn run(_args: LspArgs) -> miette::Result<ExitCode> {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the language server: {e}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    runtime.block_on(flow_editor::lsp::serve_stdio());
    Ok(ExitCode::SUCCESS)
}
