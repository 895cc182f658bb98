//! Loading: parse the root file, follow its imports (files through the loader, stdlib
//! modules from `flow-stdlib`), load the prelude, and report import cycles.

use std::collections::HashMap;
use std::sync::Arc;

use flow_grammar::ast::{ImportTarget, Item};
use flow_grammar::{Diagnostic, FileId, Span, codes, decode_source, parse, parse_incremental};

use super::{Checker, ImportRec, ModIdx, Module};
use crate::loader::{LoadError, Loader};

impl Checker<'_> {
    pub(super) fn load(&mut self, root: FileId, loader: &mut dyn Loader) {
        let root_name = self
            .sources
            .get(root)
            .map(|f| f.name.clone())
            .unwrap_or_default();
        // Checking a stdlib module's own file (`flow check stdlib/modules/http.flow`)
        // checks it as the module it is.
        let stem = root_name
            .rsplit('/')
            .next()
            .and_then(|n| n.strip_suffix(".flow"))
            .unwrap_or_default();
        let embedded = flow_stdlib::module(stem)
            .filter(|m| self.sources.get(root).is_some_and(|f| f.text == m.source))
            .map(|m| m.name.to_owned());
        let key = match &embedded {
            Some(name) => format!("std:{name}"),
            None => root_name,
        };
        self.root = self.add_module(key, root, embedded);
        let mut by_key: HashMap<String, ModIdx> = HashMap::new();
        by_key.insert(self.modules[self.root].key.clone(), self.root);
        for name in flow_stdlib::PRELUDE {
            self.stdlib_module(name, &mut by_key);
        }
        let mut next = 0;
        while next < self.modules.len() {
            let m = next;
            next += 1;
            let ast = Arc::clone(&self.modules[m].ast);
            for item in &ast.items {
                let Item::Import(import) = item else { continue };
                let (target, default_alias) = match &import.target {
                    ImportTarget::Module(name) => {
                        let target = self.stdlib_module(&name.name, &mut by_key);
                        if target.is_none() {
                            let d = Diagnostic::new(
                                codes::UNKNOWN_MODULE,
                                name.span,
                                format!("no standard-library module `{}`", name.name),
                            )
                            .with_label("not in the standard library")
                            .with_suggestion(&name.name, flow_stdlib::names());
                            let d = if d.help.is_none() {
                                d.with_help("to import a file of your own, write its path in quotes: `import \"./name.flow\"`")
                            } else {
                                d
                            };
                            self.report(d);
                        }
                        (target, Some(name.name.clone()))
                    }
                    ImportTarget::File { path, span } => {
                        let from = self.modules[m].key.clone();
                        (
                            self.file_module(&from, path, *span, loader, &mut by_key),
                            None,
                        )
                    }
                };
                let alias = import
                    .alias
                    .as_ref()
                    .map(|a| a.name.clone())
                    .or(default_alias);
                self.modules[m].imports.push(ImportRec {
                    target,
                    alias,
                    span: import.span,
                    used: std::cell::Cell::new(false),
                    prelude: false,
                });
            }
        }
        self.report_import_cycles();
    }

    fn add_module(&mut self, key: String, file: FileId, stdlib: Option<String>) -> ModIdx {
        let text = self.sources.get(file).map_or("", |f| f.text.as_str());
        let (ast, diagnostics) = match self.parse_cache.as_deref_mut() {
            Some(cache) => parse_incremental(file, text, cache),
            None => parse(file, text),
        };
        let syntax_errors = flow_grammar::has_errors(&diagnostics);
        self.diagnostics.extend(diagnostics);
        self.modules.push(Module {
            syntax_errors,
            key,
            ast: Arc::new(ast),
            stdlib,
            own: HashMap::new(),
            names: HashMap::new(),
            imports: Vec::new(),
        });
        self.modules.len() - 1
    }

    fn stdlib_module(
        &mut self,
        name: &str,
        by_key: &mut HashMap<String, ModIdx>,
    ) -> Option<ModIdx> {
        let key = format!("std:{name}");
        if let Some(&m) = by_key.get(&key) {
            return Some(m);
        }
        let module = flow_stdlib::module(name)?;
        let file = self.sources.add(module.display_name(), module.source);
        let m = self.add_module(key.clone(), file, Some(name.to_owned()));
        by_key.insert(key, m);
        Some(m)
    }

    fn file_module(
        &mut self,
        from: &str,
        path: &str,
        span: Span,
        loader: &mut dyn Loader,
        by_key: &mut HashMap<String, ModIdx>,
    ) -> Option<ModIdx> {
        match loader.load(from, path) {
            Ok(loaded) => {
                if let Some(&m) = by_key.get(&loaded.name) {
                    return Some(m);
                }
                let provisional =
                    FileId(u32::try_from(self.sources.files().count()).unwrap_or(u32::MAX));
                let (text, problem) = match decode_source(provisional, &loaded.bytes) {
                    Ok(text) => (text, None),
                    Err((lossy, d)) => (lossy, Some(d)),
                };
                let file = self.sources.add(loaded.name.clone(), text);
                if let Some(d) = problem {
                    self.report(d);
                }
                let m = self.add_module(loaded.name.clone(), file, None);
                by_key.insert(loaded.name, m);
                Some(m)
            }
            Err(e) => {
                let label = match &e {
                    LoadError::NotFound(_) => "no such file",
                    LoadError::Unreadable { .. } => "cannot be read",
                };
                self.report(
                    Diagnostic::new(
                        codes::IMPORT_NOT_FOUND,
                        span,
                        format!("cannot import `{path}`: {e}"),
                    )
                    .with_label(label)
                    .with_note("a file import is relative to the importing file's directory"),
                );
                None
            }
        }
    }

    /// Reports each cycle of file imports once, at the import that closes it.
    fn report_import_cycles(&mut self) {
        let n = self.modules.len();
        // 0 = unvisited, 1 = on the stack, 2 = done.
        let mut state = vec![0u8; n];
        let mut stack: Vec<(ModIdx, Span)> = Vec::new();
        let mut found = Vec::new();
        fn visit(
            checker: &Checker<'_>,
            m: ModIdx,
            state: &mut [u8],
            stack: &mut Vec<(ModIdx, Span)>,
            found: &mut Vec<Vec<(ModIdx, Span)>>,
        ) {
            state[m] = 1;
            for import in &checker.modules[m].imports {
                let Some(t) = import.target else { continue };
                if checker.modules[t].stdlib.is_some() && checker.modules[m].stdlib.is_none() {
                    continue;
                }
                stack.push((m, import.span));
                match state[t] {
                    0 => visit(checker, t, state, stack, found),
                    1 => {
                        let start = stack.iter().position(|(x, _)| *x == t).unwrap_or(0);
                        found.push(stack[start..].to_vec());
                    }
                    _ => {}
                }
                stack.pop();
            }
            state[m] = 2;
        }
        for m in 0..n {
            if state[m] == 0 {
                visit(self, m, &mut state, &mut stack, &mut found);
            }
        }
        for cycle in found {
            let Some(&(last_module, closing)) = cycle.last() else {
                continue;
            };
            let name = |c: &Checker<'_>, m: ModIdx| c.modules[m].key.clone();
            let mut chain: Vec<String> = cycle.iter().map(|(m, _)| name(self, *m)).collect();
            chain.push(name(self, cycle[0].0));
            let mut d = Diagnostic::new(
                codes::IMPORT_CYCLE,
                closing,
                format!(
                    "modules import each other in a cycle: {}",
                    chain.join(" → ")
                ),
            )
            .with_label(format!(
                "`{}` imports back into the cycle here",
                name(self, last_module)
            ));
            for (m, span) in &cycle[..cycle.len() - 1] {
                d = d.with_secondary(
                    *span,
                    format!("`{}` imports the next module here", name(self, *m)),
                );
            }
            self.report(
                d.with_help("move what the modules share into a module that imports neither"),
            );
        }
    }
}
