//! Finding and loading `.flow` files named on the command line.

use std::path::{Path, PathBuf};

use flow_grammar::{Diagnostic, FileId, SourceMap, decode_source};
use miette::{IntoDiagnostic, WrapErr, miette};

/// Expands each path: a file is taken as is, a directory is searched recursively for
/// `*.flow` files (sorted, hidden directories and `target/` skipped).
pub fn collect_flow_files(paths: &[PathBuf]) -> miette::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path)
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot read `{}`", path.display()))?;
        if meta.is_dir() {
            let before = files.len();
            walk(path, &mut files).wrap_err_with(|| format!("cannot list `{}`", path.display()))?;
            files[before..].sort();
        } else {
            files.push(path.clone());
        }
    }
    if files.is_empty() {
        return Err(miette!(
            "no `.flow` files found in {}",
            paths
                .iter()
                .map(|p| format!("`{}`", p.display()))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(files)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> miette::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .into_diagnostic()?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let file_type = entry.file_type().into_diagnostic()?;
        if file_type.is_dir() {
            if !name.starts_with('.') && name != "target" && name != "node_modules" {
                walk(&path, out)?;
            }
        } else if name.ends_with(".flow") {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads a file into the source map. Invalid UTF-8 is not an I/O error: the file is
/// added (lossily decoded, so it can be shown) together with its diagnostic.
pub fn load(sources: &mut SourceMap, path: &Path) -> miette::Result<(FileId, Option<Diagnostic>)> {
    let bytes = std::fs::read(path)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot read `{}`", path.display()))?;
    let name = path.display().to_string();
    let provisional = FileId(sources.files().count() as u32);
    match decode_source(provisional, &bytes) {
        Ok(text) => Ok((sources.add(name, text), None)),
        Err((lossy, diagnostic)) => Ok((sources.add(name, lossy), Some(diagnostic))),
    }
}

/// Reads imported files from the file system, relative to the importing file.
pub struct FsLoader;

impl flow_compiler::Loader for FsLoader {
    fn load(
        &mut self,
        from: &str,
        path: &str,
    ) -> Result<flow_compiler::LoadedFile, flow_compiler::LoadError> {
        let name = flow_compiler::loader::join_relative(from, path);
        match std::fs::read(&name) {
            Ok(bytes) => Ok(flow_compiler::LoadedFile { name, bytes }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(flow_compiler::LoadError::NotFound(name))
            }
            Err(e) => Err(flow_compiler::LoadError::Unreadable {
                path: name,
                reason: e.to_string(),
            }),
        }
    }
}

/// Loads and compiles one root file. Returns `None` (with the diagnostic) when the file
/// is not valid UTF-8.
pub fn compile_file(
    sources: &mut SourceMap,
    path: &Path,
) -> miette::Result<(FileId, Result<flow_compiler::Compilation, Diagnostic>)> {
    let (file, encoding_problem) = load(sources, path)?;
    if let Some(d) = encoding_problem {
        return Ok((file, Err(d)));
    }
    Ok((
        file,
        Ok(flow_compiler::compile(sources, file, &mut FsLoader)),
    ))
}
