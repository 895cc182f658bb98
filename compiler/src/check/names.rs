//! Names: what each module declares, what it sees (own items, imports, the prelude),
//! resolving dotted paths (`slack.post_message`, `common.Customer`), and named types.

use std::collections::HashMap;
use std::sync::Arc;

use flow_grammar::ast::{self, IntegrationMember, Item, Path, TypeExpr, TypeExprKind};
use flow_grammar::{Diagnostic, Span, codes};

use super::{
    Checker, ConstDef, ConstIdx, Entry, ImportRec, IntegDef, IntegIdx, ModIdx, State, TestDef,
    TypeDef, TypeIdx, WfDef, WfIdx,
};
use crate::type_expr::type_from_ast;
use flow_ir::types::{Type, builtin_type};

/// What a name denotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Symbol {
    Type(TypeIdx),
    Const(ConstIdx),
    Integration(IntegIdx),
    Workflow(WfIdx),
    /// A module imported with an alias (`import "./x.flow" as m`), or a stdlib module
    /// that declares no single integration.
    Module(ModIdx),
}

impl Symbol {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Symbol::Type(_) => "a type",
            Symbol::Const(_) => "a constant",
            Symbol::Integration(_) => "an integration",
            Symbol::Workflow(_) => "a workflow",
            Symbol::Module(_) => "a module",
        }
    }
}

/// Why a path did not resolve.
pub(crate) struct PathError {
    /// Index of the segment that failed.
    pub segment: usize,
    pub candidates: Vec<String>,
    /// The symbol before the failing segment, when there is one.
    pub parent: Option<Symbol>,
}

impl Checker<'_> {
    /// Phase 2: record every module's own declarations.
    pub(super) fn declare(&mut self) {
        for m in 0..self.modules.len() {
            let ast = Arc::clone(&self.modules[m].ast);
            for (item_index, item) in ast.items.iter().enumerate() {
                match item {
                    Item::Import(_) => {}
                    Item::Type(t) => {
                        let idx = self.types.len();
                        self.types.push(TypeDef {
                            module: m,
                            integration: None,
                            display: t.name.name.clone(),
                            doc: t.doc.clone(),
                            span: t.name.span,
                            expr: t.ty.clone(),
                            ty: Type::Error,
                            state: State::Todo,
                        });
                        self.declare_own(m, &t.name, Symbol::Type(idx));
                    }
                    Item::Const(c) => {
                        let idx = self.consts.len();
                        self.consts.push(ConstDef {
                            module: m,
                            name: c.name.name.clone(),
                            doc: c.doc.clone(),
                            span: c.name.span,
                            decl: c.clone(),
                            ty: Type::Error,
                            state: State::Todo,
                            order: 0,
                        });
                        self.declare_own(m, &c.name, Symbol::Const(idx));
                    }
                    Item::Integration(i) => {
                        let idx = self.integrations.len();
                        let builtin = self.modules[m]
                            .stdlib
                            .as_deref()
                            .is_some_and(|s| flow_stdlib::PRELUDE.contains(&s) && s == i.name.name);
                        let mut types = HashMap::new();
                        for member in &i.members {
                            if let IntegrationMember::Type(t) = member {
                                if let Some(&prev) = types.get(&t.name.name) {
                                    let prev_span = self
                                        .types
                                        .get(prev)
                                        .map(|d: &TypeDef| d.span)
                                        .unwrap_or_default();
                                    self.report(duplicate(&t.name, prev_span));
                                    continue;
                                }
                                let tidx = self.types.len();
                                self.types.push(TypeDef {
                                    module: m,
                                    integration: Some(idx),
                                    display: format!("{}.{}", i.name.name, t.name.name),
                                    doc: t.doc.clone(),
                                    span: t.name.span,
                                    expr: t.ty.clone(),
                                    ty: Type::Error,
                                    state: State::Todo,
                                });
                                types.insert(t.name.name.clone(), tidx);
                            }
                        }
                        self.integrations.push(IntegDef {
                            module: m,
                            name: i.name.name.clone(),
                            doc: i.doc.clone(),
                            span: i.name.span,
                            ast: Arc::new(i.clone()),
                            types,
                            actions: Vec::new(),
                            events: Vec::new(),
                            notify: None,
                            builtin,
                            ir: None,
                        });
                        self.declare_own(m, &i.name, Symbol::Integration(idx));
                    }
                    Item::Workflow(w) => {
                        let idx = self.workflows.len();
                        self.workflows.push(WfDef {
                            module: m,
                            name: w.name.name.clone(),
                            doc: w.doc.clone(),
                            module_ast: Arc::clone(&ast),
                            item: item_index,
                            params: Arc::from(Vec::new()),
                            result: None,
                            ir: None,
                            webhook: None,
                        });
                        self.declare_own(m, &w.name, Symbol::Workflow(idx));
                    }
                    Item::Test(t) => self.tests.push(TestDef {
                        module: m,
                        ast: t.clone(),
                        ir: None,
                    }),
                }
            }
        }
    }

    fn declare_own(&mut self, m: ModIdx, name: &ast::Ident, sym: Symbol) {
        if let Some(prev) = self.modules[m].own.get(&name.name) {
            let prev = prev.span;
            self.report(duplicate(name, prev));
            return;
        }
        self.modules[m].own.insert(
            name.name.clone(),
            Entry {
                sym,
                span: name.span,
                via_import: None,
            },
        );
    }

    /// Phase 3: each module's namespace: own items, then imports, then the prelude
    /// (which anything of the same name hides).
    pub(super) fn build_namespaces(&mut self) {
        for m in 0..self.modules.len() {
            let mut names = self.modules[m].own.clone();
            let imports: Vec<(Option<ModIdx>, Option<String>, Span)> = self.modules[m]
                .imports
                .iter()
                .map(|i| (i.target, i.alias.clone(), i.span))
                .collect();
            for (i, (target, alias, span)) in imports.into_iter().enumerate() {
                let Some(target) = target else { continue };
                match alias {
                    Some(alias) => {
                        let sym = match self.modules[target].stdlib {
                            // A stdlib module stands for the integration it declares; one
                            // that declares none (or several) is a namespace.
                            Some(_) => match self.module_integration(target) {
                                Some(integ) => Symbol::Integration(integ),
                                None => Symbol::Module(target),
                            },
                            None => Symbol::Module(target),
                        };
                        let entry = Entry {
                            sym,
                            span,
                            via_import: Some(i),
                        };
                        if let Some(prev) = names.get(&alias) {
                            if prev.sym != sym {
                                let prev_span = prev.span;
                                self.report(
                                    Diagnostic::new(
                                        codes::DUPLICATE_NAME,
                                        span,
                                        format!(
                                            "`{alias}` is imported here and also declared elsewhere"
                                        ),
                                    )
                                    .with_label(format!("this import binds `{alias}`"))
                                    .with_secondary(prev_span, "first declared here")
                                    .with_help("import it under another name with `as`"),
                                );
                            }
                            continue;
                        }
                        names.insert(alias, entry);
                    }
                    None => {
                        let items: Vec<(String, Entry)> = self.modules[target]
                            .own
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        let mut items = items;
                        items.sort_by(|a, b| a.0.cmp(&b.0));
                        for (name, entry) in items {
                            if let Some(prev) = names.get(&name) {
                                if prev.sym != entry.sym {
                                    let prev_span = prev.span;
                                    self.report(
                                        Diagnostic::new(
                                            codes::DUPLICATE_NAME,
                                            span,
                                            format!("this import brings in `{name}`, which is already declared"),
                                        )
                                        .with_label(format!("brings `{name}` into scope"))
                                        .with_secondary(prev_span, format!("`{name}` is declared here"))
                                        .with_help("import the file with an alias (`as m`) and write `m.NAME`"),
                                    );
                                }
                                continue;
                            }
                            names.insert(
                                name,
                                Entry {
                                    sym: entry.sym,
                                    span: entry.span,
                                    via_import: Some(i),
                                },
                            );
                        }
                    }
                }
            }
            for prelude in flow_stdlib::PRELUDE {
                if names.contains_key(*prelude) {
                    continue;
                }
                let Some(target) = self
                    .modules
                    .iter()
                    .position(|x| x.stdlib.as_deref() == Some(*prelude))
                else {
                    continue;
                };
                if target == m {
                    continue;
                }
                if let Some(integ) = self.module_integration(target) {
                    let idx = self.modules[m].imports.len();
                    self.modules[m].imports.push(ImportRec {
                        target: Some(target),
                        alias: Some((*prelude).to_owned()),
                        span: Span::default(),
                        used: std::cell::Cell::new(false),
                        prelude: true,
                    });
                    let span = self.integrations[integ].span;
                    names.insert(
                        (*prelude).to_owned(),
                        Entry {
                            sym: Symbol::Integration(integ),
                            span,
                            via_import: Some(idx),
                        },
                    );
                }
            }
            self.modules[m].names = names;
        }
    }

    /// The integration a stdlib module stands for: the one it declares, or the one
    /// named like the module when it declares several.
    pub(crate) fn module_integration(&self, m: ModIdx) -> Option<IntegIdx> {
        let declared: Vec<IntegIdx> = (0..self.integrations.len())
            .filter(|&i| self.integrations[i].module == m)
            .collect();
        match declared.as_slice() {
            [one] => Some(*one),
            _ => {
                let name = self.modules[m].stdlib.as_deref()?;
                declared
                    .into_iter()
                    .find(|&i| self.integrations[i].name == name)
            }
        }
    }

    /// Looks a single name up in a module's namespace, marking the import it came through as used.
    pub(crate) fn lookup(&self, m: ModIdx, name: &str) -> Option<Entry> {
        let entry = self.modules.get(m)?.names.get(name)?.clone();
        if let Some(i) = entry.via_import
            && let Some(rec) = self.modules[m].imports.get(i)
        {
            rec.used.set(true);
        }
        Some(entry)
    }

    /// The names a symbol holds as members (`slack.X`, `m.X`).
    fn member(&self, sym: Symbol, name: &str) -> Option<(Symbol, Span)> {
        match sym {
            Symbol::Integration(i) => {
                let integ = self.integrations.get(i)?;
                if let Some(&t) = integ.types.get(name) {
                    return Some((Symbol::Type(t), self.types[t].span));
                }
                let own = &self.modules[integ.module].own;
                own.get(name)
                    .filter(|e| e.sym != sym)
                    .map(|e| (e.sym, e.span))
            }
            Symbol::Module(m) => self.modules.get(m)?.own.get(name).map(|e| (e.sym, e.span)),
            _ => None,
        }
    }

    fn member_names(&self, sym: Symbol) -> Vec<String> {
        match sym {
            Symbol::Integration(i) => {
                let integ = &self.integrations[i];
                let mut v: Vec<String> = integ.types.keys().cloned().collect();
                v.extend(integ.actions.iter().map(|a| a.name.clone()));
                v.extend(integ.events.iter().map(|e| e.name.clone()));
                v.extend(self.modules[integ.module].own.keys().cloned());
                v
            }
            Symbol::Module(m) => self.modules[m].own.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// Resolves a dotted path to a symbol. Within an integration, its own types are
    /// visible unqualified.
    pub(crate) fn resolve_path(
        &self,
        m: ModIdx,
        integration: Option<IntegIdx>,
        segments: &[ast::Ident],
    ) -> Result<(Symbol, Span), PathError> {
        let Some(first) = segments.first() else {
            return Err(PathError {
                segment: 0,
                candidates: Vec::new(),
                parent: None,
            });
        };
        let mut current = None;
        if let Some(i) = integration
            && let Some(&t) = self.integrations[i].types.get(&first.name)
        {
            current = Some((Symbol::Type(t), self.types[t].span));
        }
        if current.is_none() {
            current = self.lookup(m, &first.name).map(|e| (e.sym, e.span));
        }
        let Some(mut current) = current else {
            let mut candidates: Vec<String> = self.modules[m].names.keys().cloned().collect();
            if let Some(i) = integration {
                candidates.extend(self.integrations[i].types.keys().cloned());
            }
            return Err(PathError {
                segment: 0,
                candidates,
                parent: None,
            });
        };
        for (k, seg) in segments.iter().enumerate().skip(1) {
            match self.member(current.0, &seg.name) {
                Some(next) => current = next,
                None => {
                    return Err(PathError {
                        segment: k,
                        candidates: self.member_names(current.0),
                        parent: Some(current.0),
                    });
                }
            }
        }
        Ok(current)
    }

    /// "add `import jira`" when an unknown first segment names a stdlib module.
    pub(crate) fn import_hint(&self, name: &str) -> Option<String> {
        flow_stdlib::module(name).map(|_| format!("add `import {name}` at the top of the file"))
    }

    /// Reports an unresolved path with the best help available.
    pub(crate) fn unknown_path(
        &mut self,
        code: flow_grammar::Code,
        what: &str,
        path: &[ast::Ident],
        err: PathError,
    ) {
        let Some(seg) = path.get(err.segment) else {
            return;
        };
        let shown: Vec<&str> = path[..=err.segment]
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        let shown = shown.join(".");
        let mut d = Diagnostic::new(code, seg.span, format!("unknown {what} `{shown}`"));
        d = match err.parent {
            Some(parent) => d.with_label(format!(
                "{} has no `{}`",
                match parent {
                    Symbol::Integration(i) =>
                        format!("integration `{}`", self.integrations[i].name),
                    Symbol::Module(mm) => format!("module `{}`", self.modules[mm].key),
                    other => other.describe().to_owned(),
                },
                seg.name
            )),
            None => d.with_label("not declared or imported here"),
        };
        let d = d.with_suggestion(&seg.name, err.candidates.iter().map(String::as_str));
        let d = match (&d.help, err.segment) {
            (None, 0) => match self.import_hint(&seg.name) {
                Some(hint) => d.with_help(hint),
                None => d,
            },
            _ => d,
        };
        self.report(d);
    }

    /// Phase 4: resolve every named type declaration.
    pub(super) fn resolve_types(&mut self) {
        for t in 0..self.types.len() {
            let ty = self.resolve_typedef(t);
            let def = &self.types[t];
            let (span, name, doc) = (def.span, def.display.clone(), def.doc.clone());
            let shown = definition_text(&ty);
            self.analysis.reference_with(
                span,
                span,
                crate::analysis::SymbolKind::Type,
                &name,
                format!("type {name} = {shown}"),
                doc,
            );
        }
    }

    fn resolve_typedef(&mut self, t: TypeIdx) -> Type {
        match self.types[t].state {
            State::Done => return self.types[t].ty.clone(),
            State::InProgress => {
                let span = self.types[t].span;
                let name = self.types[t].display.clone();
                self.report(
                    Diagnostic::new(
                        codes::RECURSIVE_TYPE,
                        span,
                        format!("type `{name}` refers to itself"),
                    )
                    .with_label("defined in terms of itself")
                    .with_note("Flow types are plain data (JSON-like) and cannot be recursive")
                    .with_help("break the cycle with `dyn` or a list of ids"),
                );
                return Type::Error;
            }
            State::Todo => {}
        }
        self.types[t].state = State::InProgress;
        let (m, integ, expr) = (
            self.types[t].module,
            self.types[t].integration,
            self.types[t].expr.clone(),
        );
        let mut ty = self.type_of(m, integ, &expr);
        if let Type::Record(r) = &ty {
            let mut r = (**r).clone();
            r.name = Some(self.types[t].display.clone());
            ty = Type::Record(std::sync::Arc::new(r));
        }
        self.types[t].ty = ty.clone();
        self.types[t].state = State::Done;
        ty
    }

    /// Converts a written type, resolving named types (and reporting unknown ones).
    pub(crate) fn type_of(&mut self, m: ModIdx, integ: Option<IntegIdx>, expr: &TypeExpr) -> Type {
        // Resolve every name first (this may recurse into other declarations), then
        // convert with the expression engine's rules.
        let mut resolved: HashMap<String, Type> = HashMap::new();
        let mut paths = Vec::new();
        collect_named(expr, &mut paths);
        for path in paths {
            if path.segments.len() == 1 && builtin_type(&path.segments[0].name).is_some() {
                continue;
            }
            let key = path.dotted();
            if resolved.contains_key(&key) {
                continue;
            }
            let ty = match self.resolve_path(m, integ, &path.segments) {
                Ok((Symbol::Type(t), def)) => {
                    self.analysis.reference(
                        path.span,
                        def,
                        crate::analysis::SymbolKind::Type,
                        &key,
                        self.types[t].doc.clone(),
                    );
                    let ty = self.resolve_typedef(t);
                    if let Some(a) = self.analysis.references.last_mut()
                        && a.span == path.span
                        && a.hover.is_empty()
                    {
                        a.hover = format!("type {key} = {}", definition_text(&ty));
                    }
                    ty
                }
                Ok((other, _)) => {
                    self.report(
                        Diagnostic::new(
                            codes::NOT_A_TYPE,
                            path.span,
                            format!("`{key}` is {}, not a type", other.describe()),
                        )
                        .with_label("a type is expected here"),
                    );
                    Type::Error
                }
                Err(err) => {
                    let mut err = err;
                    if err.segment == 0 {
                        err.candidates.extend(
                            flow_ir::types::BUILTIN_TYPE_NAMES
                                .iter()
                                .map(|s| (*s).to_owned()),
                        );
                    }
                    self.unknown_path(codes::UNKNOWN_TYPE, "type", &path.segments, err);
                    Type::Error
                }
            };
            resolved.insert(key, ty);
        }
        let mut diagnostics = Vec::new();
        let ty = type_from_ast(
            expr,
            &|p: &Path| Some(resolved.get(&p.dotted()).cloned().unwrap_or(Type::Error)),
            &mut diagnostics,
        );
        self.diagnostics.extend(diagnostics);
        ty
    }

    /// Warns about imports nothing uses (the prelude excepted).
    pub(super) fn report_unused_imports(&mut self) {
        let mut found = Vec::new();
        for module in &self.modules {
            if module.stdlib.is_some() || module.syntax_errors {
                continue;
            }
            for import in &module.imports {
                if import.prelude || import.used.get() || import.target.is_none() {
                    continue;
                }
                found.push(import.span);
            }
        }
        for span in found {
            self.report(
                Diagnostic::new(codes::UNUSED_IMPORT, span, "this import is never used")
                    .with_label("nothing here refers to it")
                    .with_help("remove the import"),
            );
        }
    }
}

pub(crate) fn duplicate(name: &ast::Ident, previous: Span) -> Diagnostic {
    Diagnostic::new(
        codes::DUPLICATE_NAME,
        name.span,
        format!("`{}` is declared twice", name.name),
    )
    .with_label("declared again here")
    .with_secondary(previous, "first declared here")
    .with_help("rename one of them")
}

fn collect_named<'a>(expr: &'a TypeExpr, out: &mut Vec<&'a Path>) {
    match &expr.kind {
        TypeExprKind::Named(p) => out.push(p),
        TypeExprKind::List(t) | TypeExprKind::Optional(t) => collect_named(t, out),
        TypeExprKind::Map(k, v) => {
            collect_named(k, out);
            collect_named(v, out);
        }
        TypeExprKind::Record(fields) => {
            for f in fields {
                collect_named(&f.ty, out);
            }
        }
    }
}

/// A named type's definition as hover shows it: a named record displays as its name
/// elsewhere, so its fields are spelled out here.
fn definition_text(ty: &Type) -> String {
    match ty {
        Type::Record(r) => {
            let fields: Vec<String> = r
                .fields
                .iter()
                .map(|f| format!("{}: {}", f.name, f.ty))
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
        other => other.to_string(),
    }
}
