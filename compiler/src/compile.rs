//! The compiler's entry point: a root file in, the typed IR, diagnostics and the editor
//! index out.

use flow_grammar::{Diagnostic, FileId, ParseCache, SourceMap, has_errors};

use crate::analysis::Analysis;
use crate::loader::Loader;
use flow_ir::program::Program;

/// What compiling a file produced. `program` is complete and runnable only when
/// [`Compilation::has_errors`] is false; with errors it holds what could be lowered.
#[derive(Debug)]
pub struct Compilation {
    pub program: Program,
    /// Every problem found, in the root file, the files it imports and the stdlib
    /// modules it uses, in the order found.
    pub diagnostics: Vec<Diagnostic>,
    pub analysis: Analysis,
}

impl Compilation {
    pub fn has_errors(&self) -> bool {
        has_errors(&self.diagnostics)
    }
}

/// Compiles the file `root` (already in `sources`): loads what it imports (files through
/// `loader`, which adds them to `sources`; stdlib modules from `flow-stdlib`), resolves
/// names, checks types, builds dependency graphs and lowers to the IR. Never fails:
/// problems are diagnostics.
pub fn compile(sources: &mut SourceMap, root: FileId, loader: &mut dyn Loader) -> Compilation {
    let checked = crate::check::check_program(sources, root, loader, None);
    Compilation {
        program: checked.program,
        diagnostics: checked.diagnostics,
        analysis: checked.analysis,
    }
}

/// [`compile`] for callers that compile the same program again and again (the language
/// server after each edit, watchers): every file's items whose text is unchanged since
/// the previous compilation with this cache are reused instead of parsed. Ends a round
/// of the cache, so it keeps only what this compilation used.
pub fn compile_incremental(
    sources: &mut SourceMap,
    root: FileId,
    loader: &mut dyn Loader,
    cache: &mut ParseCache,
) -> Compilation {
    let checked = crate::check::check_program(sources, root, loader, Some(&mut *cache));
    cache.end_round();
    Compilation {
        program: checked.program,
        diagnostics: checked.diagnostics,
        analysis: checked.analysis,
    }
}

/// Compiles a single text with no file imports (for tests, `flow eval`-like tools and
/// benchmarks): a file import is reported as not found.
pub fn compile_source(name: &str, text: &str) -> (SourceMap, Compilation) {
    let mut sources = SourceMap::new();
    let root = sources.add(name, text);
    let mut loader = crate::loader::MemoryLoader::new();
    let compilation = compile(&mut sources, root, &mut loader);
    (sources, compilation)
}

/// Compiles the embedded standard-library module `name` on its own, as `flow
/// integrations`, `flow connect` and `flow health` present it. `None`: no such module.
pub fn compile_stdlib_module(name: &str) -> Option<Compilation> {
    let module = flow_stdlib::module(name)?;
    Some(compile_source(&module.display_name(), module.source).1)
}
