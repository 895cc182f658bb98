//! Completion and signature help. Both work on text that is being typed and so often does
//! not parse: the context comes from the tokens before the cursor, and the names from
//! the syntax trees of the document (the last version of each item that parsed) and of
//! the standard library's modules.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

mod signature;
mod typed;

pub use signature::signature_help;
use typed::{receiver_type, typed_members};

use super::world::Snapshot;
use flow_compiler::expr::{catalogue, method_result, methods_of};
use flow_grammar::ast::*;
use flow_grammar::tokens::{Token, TokenKind, lex};
use flow_grammar::{FileId, parse};
use flow_ir::types::Type;
use tower_lsp_server::ls_types::{
    CompletionItem, CompletionItemKind, Documentation, InsertTextFormat, MarkupContent, MarkupKind,
    ParameterInformation, ParameterLabel, SignatureHelp, SignatureInformation,
};

/// The statements a workflow body can hold, with the snippet each inserts.
const STATEMENTS: &[(&str, &str)] = &[
    ("step", "step ${1:name} = ${2:integration}.${3:action}($0)"),
    ("let", "let ${1:name} = $0"),
    ("if", "if ${1:condition} {\n  $0\n}"),
    ("for", "for ${1:item} in ${2:list} {\n  $0\n}"),
    ("try", "try {\n  $1\n} catch ${2:err} {\n  $0\n}"),
    ("wait", "wait ${1:10m}"),
    ("notify", "notify ${1:slack} \"${2:#channel}\" \"$0\""),
    ("return", "return $0"),
    ("fail", "fail \"$0\""),
    ("log", "log $0"),
    ("on", "on ${1:schedule}(\"$0\")"),
    ("settings", "settings {\n  $0\n}"),
];

const ITEMS: &[(&str, &str)] = &[
    ("import", "import $0"),
    ("type", "type ${1:Name} = { $0 }"),
    ("const", "const ${1:NAME} = $0"),
    ("workflow", "workflow ${1:name} {\n  $0\n}"),
    (
        "integration",
        "integration ${1:name} {\n  base_url = \"$0\"\n}",
    ),
    ("test", "test \"${1:what it checks}\" {\n  $0\n}"),
];

const MODIFIERS: &[&str] = &["after", "retry", "timeout", "cache", "idempotency_key"];
const DURATIONS: &[&str] = &[
    "250ms", "1s", "5s", "10s", "30s", "1m", "5m", "10m", "30m", "1h", "1h30m", "1d",
];
const DURATION_KEYWORDS: &[&str] = &["timeout", "delay", "max_delay", "cache", "wait"];

/// The parsed standard library, once per process.
fn stdlib() -> &'static HashMap<&'static str, Module> {
    static STDLIB: OnceLock<HashMap<&'static str, Module>> = OnceLock::new();
    STDLIB.get_or_init(|| {
        flow_stdlib::MODULES
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name, parse(FileId(10_000 + i as u32), m.source).0))
            .collect()
    })
}

/// What a document declares, gathered from its current items and, for items that do not
/// parse right now, from the last version that did.
pub struct Names<'a> {
    items: Vec<&'a Item>,
    /// Integration name (or import alias) to its declaration.
    integrations: BTreeMap<String, &'a Integration>,
    /// The latest analysis of the document, for the static types of names in scope.
    typed: Option<Typed<'a>>,
}

/// The document's latest analysis, which may be a few keystrokes older than the text.
struct Typed<'a> {
    snapshot: &'a Snapshot,
    /// Offsets before this one are the same in the analysed text and the current one.
    same_until: usize,
}

impl<'a> Names<'a> {
    pub fn new(current: &'a Module, last_good: &'a [Item]) -> Names<'a> {
        let mut items: Vec<&Item> = current.items.iter().collect();
        let present: HashSet<String> = items.iter().map(|i| item_key(i)).collect();
        items.extend(last_good.iter().filter(|i| !present.contains(&item_key(i))));
        let mut integrations = BTreeMap::new();
        let library = stdlib();
        for prelude in flow_stdlib::PRELUDE {
            if let Some(i) = library.get(prelude).and_then(|m| first_integration(m)) {
                integrations.insert((*prelude).to_owned(), i);
            }
        }
        for item in &items {
            match item {
                Item::Import(Import {
                    target: ImportTarget::Module(name),
                    alias,
                    ..
                }) => {
                    if let Some(i) = library
                        .get(name.name.as_str())
                        .and_then(|m| first_integration(m))
                    {
                        let shown = alias.as_ref().unwrap_or(name);
                        integrations.insert(shown.name.clone(), i);
                    }
                }
                Item::Integration(i) => {
                    integrations.insert(i.name.name.clone(), i);
                }
                _ => {}
            }
        }
        Names {
            items,
            integrations,
            typed: None,
        }
    }

    /// Reads static types from `snapshot`, an analysis of this document (of `text` or of
    /// an earlier version of it).
    pub fn with_analysis(mut self, snapshot: Option<&'a Snapshot>, text: &str) -> Names<'a> {
        self.typed = snapshot.map(|snapshot| {
            let same_until = snapshot
                .text()
                .bytes()
                .zip(text.bytes())
                .take_while(|(a, b)| a == b)
                .count();
            Typed {
                snapshot,
                same_until,
            }
        });
        self
    }

    /// The static type of the name `name` as seen at `offset` of the current text.
    fn type_of(&self, name: &str, offset: usize) -> Option<Type> {
        let typed = self.typed.as_ref()?;
        let offset = offset.min(typed.same_until);
        typed
            .snapshot
            .compilation
            .analysis
            .name_at(typed.snapshot.root, offset, name)
            .map(|n| n.ty.clone())
    }

    fn workflow(&self, name: &str) -> Option<&'a Workflow> {
        self.items.iter().find_map(|i| match i {
            Item::Workflow(w) if w.name.name == name => Some(w),
            _ => None,
        })
    }

    fn type_decl(&self, name: &str) -> Option<&'a TypeDecl> {
        self.items.iter().find_map(|i| match i {
            Item::Type(t) if t.name.name == name => Some(t),
            _ => None,
        })
    }

    fn action(&self, integration: &str, action: &str) -> Option<(&'a Integration, &'a Action)> {
        let i = self.integrations.get(integration)?;
        i.members.iter().find_map(|m| match m {
            IntegrationMember::Action(a) if a.name.name == action => Some((*i, a)),
            _ => None,
        })
    }
}

/// Items that are the same declaration across edits share a key.
pub fn item_key(item: &Item) -> String {
    match item {
        Item::Import(i) => match &i.target {
            ImportTarget::Module(m) => format!("import {}", m.name),
            ImportTarget::File { path, .. } => format!("import {path}"),
        },
        Item::Type(t) => format!("type {}", t.name.name),
        Item::Const(c) => format!("const {}", c.name.name),
        Item::Integration(i) => format!("integration {}", i.name.name),
        Item::Workflow(w) => format!("workflow {}", w.name.name),
        Item::Test(t) => format!("test {}", t.name),
    }
}

fn first_integration(module: &Module) -> Option<&Integration> {
    module.items.iter().find_map(|i| match i {
        Item::Integration(i) => Some(i),
        _ => None,
    })
}

/// The tokens before the cursor, without trivia, and the word being typed.
struct Context<'t> {
    text: &'t str,
    before: Vec<Token>,
    /// The identifier the cursor is at the end of, if any.
    prefix: Option<Token>,
}

impl<'t> Context<'t> {
    fn new(text: &'t str, offset: usize) -> Context<'t> {
        let offset = offset.min(text.len());
        let mut before: Vec<Token> = lex(&text[..offset])
            .into_iter()
            .filter(|t| !t.kind.is_trivia())
            .collect();
        // Inside a comment or a string nothing is completed.
        let prefix = match before.last() {
            Some(t) if t.kind == TokenKind::Ident && t.end == offset => before.pop(),
            _ => None,
        };
        Context {
            text,
            before,
            prefix,
        }
    }

    fn word(&self, i: usize) -> &'t str {
        self.before
            .get(i)
            .map_or("", |t| &self.text[t.start..t.end])
    }

    fn last_word(&self) -> &'t str {
        self.before
            .len()
            .checked_sub(1)
            .map_or("", |i| self.word(i))
    }

    fn last_kind(&self) -> Option<TokenKind> {
        self.before.last().map(|t| t.kind)
    }

    /// `a.b.c.` right before the cursor: the names before the last dot.
    fn dotted_chain(&self) -> Option<Vec<&'t str>> {
        if !matches!(
            self.last_kind(),
            Some(TokenKind::Dot | TokenKind::QuestionDot)
        ) {
            return None;
        }
        let mut names = Vec::new();
        let mut i = self.before.len() - 1;
        loop {
            let name = i.checked_sub(1)?;
            if self.before.get(name)?.kind != TokenKind::Ident {
                return None;
            }
            names.push(self.word(name));
            match name
                .checked_sub(1)
                .and_then(|p| self.before.get(p))
                .map(|t| t.kind)
            {
                Some(TokenKind::Dot | TokenKind::QuestionDot) => i = name - 1,
                _ => break,
            }
        }
        names.reverse();
        Some(names)
    }

    /// The innermost `(` still open before the cursor, and the index of its token.
    fn open_call(&self) -> Option<usize> {
        let mut depth = 0i32;
        for (i, t) in self.before.iter().enumerate().rev() {
            match t.kind {
                TokenKind::RParen | TokenKind::RBracket | TokenKind::RBrace => depth += 1,
                TokenKind::LBracket | TokenKind::LBrace if depth > 0 => depth -= 1,
                TokenKind::LBracket | TokenKind::LBrace => return None,
                TokenKind::LParen if depth > 0 => depth -= 1,
                TokenKind::LParen => return Some(i),
                _ => {}
            }
        }
        None
    }

    /// The dotted name right before token `i` (`slack.post_message` before its `(`).
    fn callee(&self, i: usize) -> Vec<&'t str> {
        let mut names = Vec::new();
        let mut j = i;
        while let Some(k) = j.checked_sub(1) {
            if self.before.get(k).map(|t| t.kind) != Some(TokenKind::Ident) {
                break;
            }
            names.push(self.word(k));
            match k
                .checked_sub(1)
                .and_then(|p| self.before.get(p))
                .map(|t| t.kind)
            {
                Some(TokenKind::Dot) => j = k - 1,
                _ => break,
            }
        }
        names.reverse();
        names
    }

    /// The workflow the cursor is in: the last `workflow NAME` before it.
    fn enclosing_workflow(&self) -> Option<&'t str> {
        (0..self.before.len()).rev().find_map(|i| {
            (self.word(i) == "workflow" && self.before.get(i + 1)?.kind == TokenKind::Ident)
                .then(|| self.word(i + 1))
        })
    }

    /// The index of the enclosing workflow's `workflow` keyword.
    fn workflow_start(&self) -> Option<usize> {
        (0..self.before.len()).rev().find(|&i| {
            self.word(i) == "workflow"
                && self
                    .before
                    .get(i + 1)
                    .is_some_and(|t| t.kind == TokenKind::Ident)
        })
    }

    /// The enclosing workflow's header (name, parameters, result), parsed on its own: it
    /// stays known while the body is being edited and does not parse.
    fn workflow_header(&self) -> Option<Workflow> {
        let start = self.workflow_start()?;
        let open = (start..self.before.len()).find(|&i| {
            self.before
                .get(i)
                .is_some_and(|t| t.kind == TokenKind::LBrace)
                && self.before.get(i.saturating_sub(1)).is_some_and(|t| {
                    matches!(
                        t.kind,
                        TokenKind::Ident
                            | TokenKind::RParen
                            | TokenKind::Gt
                            | TokenKind::RBrace
                            | TokenKind::Question
                    )
                })
                && self.paren_depth(start, i) == 0
        })?;
        let (from, to) = (self.before.get(start)?.start, self.before.get(open)?.end);
        let header = format!("{}}}", self.text.get(from..to)?);
        let module = parse(FileId(0), &header).0;
        module.items.into_iter().find_map(|i| match i {
            Item::Workflow(w) => Some(w),
            _ => None,
        })
    }

    fn paren_depth(&self, from: usize, to: usize) -> i32 {
        let mut depth = 0;
        for t in self.before.get(from..to).into_iter().flatten() {
            match t.kind {
                TokenKind::LParen | TokenKind::LBrace | TokenKind::LBracket => depth += 1,
                TokenKind::RParen | TokenKind::RBrace | TokenKind::RBracket => depth -= 1,
                _ => {}
            }
        }
        depth
    }

    /// `step NAME = a.b(` and `step NAME = run w(` written in the enclosing workflow
    /// before the cursor, read from the tokens (the body may not parse yet).
    fn step_calls(&self) -> Vec<(String, Vec<String>)> {
        let Some(start) = self.workflow_start() else {
            return Vec::new();
        };
        let mut steps = Vec::new();
        for i in start..self.before.len() {
            if self.word(i) != "step"
                || self.before.get(i + 2).map(|t| t.kind) != Some(TokenKind::Eq)
            {
                continue;
            }
            let mut target = Vec::new();
            let mut j = i + 3;
            if self.word(j) == "run" {
                target.push("run".to_owned());
                j += 1;
            }
            while self
                .before
                .get(j)
                .is_some_and(|t| t.kind == TokenKind::Ident)
            {
                target.push(self.word(j).to_owned());
                if self.before.get(j + 1).map(|t| t.kind) != Some(TokenKind::Dot) {
                    break;
                }
                j += 2;
            }
            steps.push((self.word(i + 1).to_owned(), target));
        }
        steps
    }

    /// Brace depth at the cursor.
    fn depth(&self) -> usize {
        let mut depth = 0usize;
        for t in &self.before {
            match t.kind {
                TokenKind::LBrace => depth += 1,
                TokenKind::RBrace => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        depth
    }

    /// Whether the cursor starts a new line's first word.
    fn at_line_start(&self, offset: usize) -> bool {
        let start = self.prefix.map_or(offset, |p| p.start);
        self.text[..start.min(self.text.len())]
            .rsplit('\n')
            .next()
            .is_some_and(|l| l.trim().is_empty())
    }
}

pub fn completion(text: &str, offset: usize, names: &Names<'_>) -> Vec<CompletionItem> {
    let cx = Context::new(text, offset);
    let in_trivia = lex(&text[..offset.min(text.len())])
        .last()
        .is_some_and(|t| {
            matches!(
                t.kind,
                TokenKind::LineComment
                    | TokenKind::DocComment
                    | TokenKind::UnterminatedBlockComment
                    | TokenKind::UnterminatedString
            ) || (t.kind == TokenKind::String && t.end == offset)
        });
    if in_trivia {
        return Vec::new();
    }
    let mut items = Vec::new();

    let integration_first = cx
        .dotted_chain()
        .is_some_and(|chain| chain.len() == 1 && names.integrations.contains_key(chain[0]));
    if !integration_first && let Some(ty) = receiver_type(&cx, names, offset) {
        typed_members(&ty, &mut items);
        return items;
    }
    if let Some(chain) = cx.dotted_chain() {
        members(&cx, &chain, names, &mut items);
        return items;
    }
    if cx.last_word() == "on" && cx.last_kind() == Some(TokenKind::Ident) {
        triggers(names, &mut items);
        return items;
    }
    if cx.last_word() == "import" {
        for m in flow_stdlib::MODULES {
            items.push(simple(m.name, CompletionItemKind::MODULE, "stdlib module"));
        }
        return items;
    }
    // `step x = wait ▮`: a step waits for a signal or an event, not for a duration.
    let step_wait = cx.last_word() == "wait"
        && cx
            .before
            .len()
            .checked_sub(2)
            .and_then(|i| cx.before.get(i))
            .is_some_and(|t| t.kind == TokenKind::Eq);
    if step_wait {
        let mut item = snippet_item("signal", "signal(\"${1:name}\") as ${2:dyn}");
        item.detail = Some("wait for a signal sent to the run (`flow signal RUN NAME`)".into());
        item.sort_text = Some("0signal".into());
        items.push(item);
        // Or for a delivery of an integration's event.
        events(names, &mut items);
        return items;
    }
    if DURATION_KEYWORDS.contains(&cx.last_word()) {
        for (i, d) in DURATIONS.iter().enumerate() {
            let mut item = simple(d, CompletionItemKind::VALUE, "duration");
            item.sort_text = Some(format!("{i:02}"));
            items.push(item);
        }
        if cx.last_word() == "wait" {
            items.push(simple(
                "until",
                CompletionItemKind::KEYWORD,
                "wait until a time",
            ));
        }
        return items;
    }
    let header = cx.workflow_header();
    let workflow = cx
        .enclosing_workflow()
        .and_then(|w| names.workflow(w))
        .or(header.as_ref());
    if after_list(&cx) {
        for (step, call) in scope_steps(&cx, workflow) {
            items.push(simple(
                &step,
                CompletionItemKind::VARIABLE,
                &format!("step = {call}"),
            ));
        }
        return items;
    }
    if let Some(open) = cx.open_call() {
        let callee = cx.callee(open);
        let at_name = matches!(cx.last_kind(), Some(TokenKind::LParen | TokenKind::Comma));
        if at_name
            && let [integration, action] = callee.as_slice()
            && let Some((_, a)) = names.action(integration, action)
        {
            let given = given_arguments(&cx, open);
            for p in a
                .params
                .iter()
                .filter(|p| !given.contains(p.name.name.as_str()))
            {
                let ty = type_text(&p.ty);
                let mut item = simple(&format!("{}:", p.name.name), CompletionItemKind::FIELD, &ty);
                item.insert_text = Some(format!("{}: ", p.name.name));
                item.sort_text = Some(format!("0{}", if p.default.is_some() { 1 } else { 0 }));
                item.documentation = p.doc.clone().map(markdown);
                items.push(item);
            }
        }
    }
    let depth = cx.depth();
    if cx.at_line_start(offset) {
        if depth == 0 {
            for (word, snippet) in ITEMS {
                items.push(snippet_item(word, snippet));
            }
            return items;
        }
        if workflow.is_some() {
            for (word, snippet) in STATEMENTS {
                items.push(snippet_item(word, snippet));
            }
            for m in MODIFIERS {
                items.push(simple(m, CompletionItemKind::KEYWORD, "step modifier"));
            }
        }
    }
    // Names in scope.
    for (step, call) in scope_steps(&cx, workflow) {
        items.push(simple(
            &step,
            CompletionItemKind::VARIABLE,
            &format!("step = {call}"),
        ));
    }
    if let Some(w) = workflow {
        for p in &w.params {
            items.push(simple(
                &p.name.name,
                CompletionItemKind::VARIABLE,
                &type_text(&p.ty),
            ));
        }
        for name in lets_of(&w.body) {
            items.push(simple(&name, CompletionItemKind::VARIABLE, "let"));
        }
    }
    for item in &names.items {
        match item {
            Item::Const(c) => {
                items.push(simple(&c.name.name, CompletionItemKind::CONSTANT, "const"))
            }
            Item::Type(t) => items.push(simple(
                &t.name.name,
                CompletionItemKind::STRUCT,
                &type_text(&t.ty),
            )),
            Item::Workflow(w) => items.push(simple(
                &w.name.name,
                CompletionItemKind::FUNCTION,
                "workflow",
            )),
            _ => {}
        }
    }
    for (name, integration) in &names.integrations {
        let mut item = simple(name, CompletionItemKind::MODULE, "integration");
        item.documentation = integration.doc.clone().map(markdown);
        items.push(item);
    }
    for f in catalogue::functions() {
        for signature in f.signatures {
            let Some((name, _)) = signature.split_once('(') else {
                continue;
            };
            if name.contains('.') || !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
                continue;
            }
            let mut item = simple(name, CompletionItemKind::FUNCTION, signature);
            item.documentation = Some(markdown(f.doc.to_owned()));
            items.push(item);
            break;
        }
    }
    for word in ["true", "false", "null"] {
        items.push(simple(word, CompletionItemKind::KEYWORD, "literal"));
    }
    dedup(items)
}

/// After `on `: the built-in triggers, then every event of the integrations in scope.
fn triggers(names: &Names<'_>, items: &mut Vec<CompletionItem>) {
    let builtin = [
        (
            "schedule",
            "schedule(\"${1:0 9 * * 1-5}\", tz: \"${2:UTC}\")",
            "trigger: a cron schedule -> { scheduled_at: timestamp }",
        ),
        (
            "webhook",
            "webhook(\"/${1:path}\") as ${2:dyn}",
            "trigger: an HTTP delivery to /hooks/PATH",
        ),
    ];
    for (i, (word, snippet, detail)) in builtin.iter().enumerate() {
        let mut item = snippet_item(word, snippet);
        item.detail = Some((*detail).to_owned());
        item.kind = Some(CompletionItemKind::EVENT);
        item.sort_text = Some(format!("0{i}"));
        items.push(item);
    }
    events(names, items);
}

/// Every event of the integrations in scope, as `integration.event(...)`.
fn events(names: &Names<'_>, items: &mut Vec<CompletionItem>) {
    for (name, integration) in &names.integrations {
        for member in &integration.members {
            let IntegrationMember::Event(e) = member else {
                continue;
            };
            let label = format!("{name}.{}", e.name.name);
            let mut item = simple(
                &label,
                CompletionItemKind::EVENT,
                &format!("event -> {}", type_text(&e.result)),
            );
            item.documentation = e.doc.clone().map(markdown);
            item.insert_text = Some(format!("{label}($0)"));
            item.insert_text_format = Some(InsertTextFormat::SNIPPET);
            item.sort_text = Some(format!("1{label}"));
            items.push(item);
        }
    }
}

/// After `a.b.`: the actions (and events) of an integration, or the fields of a record.
fn members(cx: &Context<'_>, chain: &[&str], names: &Names<'_>, items: &mut Vec<CompletionItem>) {
    if let [integration] = chain
        && let Some(i) = names.integrations.get(*integration)
    {
        let in_trigger = cx
            .before
            .iter()
            .rev()
            .take(4)
            .any(|t| &cx.text[t.start..t.end] == "on");
        for member in &i.members {
            match member {
                IntegrationMember::Action(a) if !in_trigger => {
                    let mut item = simple(
                        &a.name.name,
                        CompletionItemKind::METHOD,
                        &action_signature(&i.name.name, a),
                    );
                    item.documentation = a.doc.clone().map(markdown);
                    item.insert_text = Some(format!("{}($0)", a.name.name));
                    item.insert_text_format = Some(InsertTextFormat::SNIPPET);
                    items.push(item);
                }
                IntegrationMember::Event(e) if in_trigger => {
                    let mut item = simple(
                        &e.name.name,
                        CompletionItemKind::EVENT,
                        &format!("event -> {}", type_text(&e.result)),
                    );
                    item.documentation = e.doc.clone().map(markdown);
                    items.push(item);
                }
                IntegrationMember::Type(t) => {
                    items.push(simple(
                        &t.name.name,
                        CompletionItemKind::STRUCT,
                        &type_text(&t.ty),
                    ));
                }
                _ => {}
            }
        }
        return;
    }
    let header = cx.workflow_header();
    let workflow = cx
        .enclosing_workflow()
        .and_then(|w| names.workflow(w))
        .or(header.as_ref());
    let steps = cx.step_calls();
    if let Some(fields) = resolve_chain(chain, workflow, &steps, names) {
        for f in fields {
            let mut item = simple(&f.name.name, CompletionItemKind::FIELD, &type_text(&f.ty));
            item.documentation = f.doc.clone().map(markdown);
            items.push(item);
        }
    }
    for f in catalogue::functions() {
        for signature in f.signatures {
            let Some((receiver_and_name, _)) = signature.split_once('(') else {
                continue;
            };
            let Some((_, name)) = receiver_and_name.rsplit_once('.') else {
                continue;
            };
            let mut item = simple(name, CompletionItemKind::METHOD, signature);
            item.documentation = Some(markdown(f.doc.to_owned()));
            item.sort_text = Some(format!("z{name}"));
            items.push(item);
            break;
        }
    }
    let unique = dedup(std::mem::take(items));
    items.extend(unique);
}

/// A type and the integration whose names it is written with (`None`: the user's file).
type Scoped<'a, 't> = (&'t TypeExpr, Option<&'a Integration>);

/// The record fields reached by `chain` (`contact`, `issue.fields`), when the names can be
/// followed from the syntax alone: a parameter, a step (through its action's result
/// type) or a `let` with a declared type, then field after field.
fn resolve_chain(
    chain: &[&str],
    workflow: Option<&Workflow>,
    steps: &[(String, Vec<String>)],
    names: &Names<'_>,
) -> Option<Vec<FieldType>> {
    let (first, rest) = chain.split_first()?;
    let param = workflow.and_then(|w| w.params.iter().find(|p| p.name.name == *first));
    let step = workflow.and_then(|w| find_step(&w.body, first));
    let written = steps
        .iter()
        .find(|(name, _)| name == first)
        .map(|(_, t)| t.as_slice());
    let mut current: (TypeExpr, Option<&Integration>) = if let Some(p) = param {
        (p.ty.clone(), None)
    } else if let Some(step) = step {
        match &step.call {
            StepCall::Action { target, .. } => {
                let [integration, action] = target.segments.as_slice() else {
                    return None;
                };
                let (i, a) = names.action(&integration.name, &action.name)?;
                (a.result.clone()?, Some(i))
            }
            StepCall::Workflow { target, .. } => {
                let w = names.workflow(&target.segments.first()?.name)?;
                (w.result.clone()?, None)
            }
            // A signal's payload is what its `as T` says.
            StepCall::Wait { as_type, .. } => (as_type.clone()?, None),
        }
    } else if let Some([integration, action]) = written {
        let (i, a) = names.action(integration, action)?;
        (a.result.clone()?, Some(i))
    } else if let Some(ty) = workflow.and_then(|w| find_let_type(&w.body, first)) {
        (ty.clone(), None)
    } else {
        return None;
    };
    for segment in rest {
        let fields = record_fields((&current.0, current.1), names)?;
        let field = fields.into_iter().find(|f| f.name.name == *segment)?;
        current = (field.ty.clone(), current.1);
    }
    record_fields((&current.0, current.1), names)
}

fn record_fields(ty: Scoped<'_, '_>, names: &Names<'_>) -> Option<Vec<FieldType>> {
    let (ty, scope) = ty;
    match &ty.kind {
        TypeExprKind::Record(fields) => Some(fields.clone()),
        TypeExprKind::Optional(inner) => record_fields((inner, scope), names),
        TypeExprKind::Named(path) => match path.segments.as_slice() {
            [name] => {
                if let Some(i) = scope {
                    let decl = i.members.iter().find_map(|m| match m {
                        IntegrationMember::Type(t) if t.name.name == name.name => Some(t),
                        _ => None,
                    })?;
                    record_fields((&decl.ty, Some(i)), names)
                } else {
                    let decl = names.type_decl(&name.name)?;
                    record_fields((&decl.ty, None), names)
                }
            }
            [integration, name] => {
                let i = names.integrations.get(&integration.name)?;
                let decl = i.members.iter().find_map(|m| match m {
                    IntegrationMember::Type(t) if t.name.name == name.name => Some(t),
                    _ => None,
                })?;
                record_fields((&decl.ty, Some(*i)), names)
            }
            _ => None,
        },
        _ => None,
    }
}

fn each_statement<'a>(block: &'a Block, f: &mut dyn FnMut(&'a Statement)) {
    for s in &block.statements {
        f(s);
        match &s.kind {
            StatementKind::If {
                branches,
                otherwise,
            } => {
                for b in branches {
                    each_statement(&b.body, f);
                }
                if let Some(o) = otherwise {
                    each_statement(o, f);
                }
            }
            StatementKind::For { body, .. } => each_statement(body, f),
            StatementKind::Try { body, handler, .. } => {
                each_statement(body, f);
                each_statement(handler, f);
            }
            _ => {}
        }
    }
}

fn find_step<'a>(block: &'a Block, name: &str) -> Option<&'a Step> {
    let mut found = None;
    each_statement(block, &mut |s| {
        if let StatementKind::Step(step) = &s.kind
            && step.name.name == name
        {
            found = Some(step);
        }
    });
    found
}

fn find_let_type<'a>(block: &'a Block, name: &str) -> Option<&'a TypeExpr> {
    let mut found = None;
    each_statement(block, &mut |s| {
        if let StatementKind::Let {
            name: n,
            ty: Some(ty),
            ..
        } = &s.kind
            && n.name == name
        {
            found = Some(ty);
        }
    });
    found
}

fn steps_of(block: &Block) -> Vec<(String, String)> {
    let mut steps = Vec::new();
    each_statement(block, &mut |s| {
        if let StatementKind::Step(step) = &s.kind {
            let call = match &step.call {
                StepCall::Action { target, .. } => target.dotted(),
                StepCall::Workflow { target, .. } => format!("run {}", target.dotted()),
                StepCall::Wait { target, .. } => format!("wait {}", target.dotted()),
            };
            steps.push((step.name.name.clone(), call));
        }
    });
    steps
}

/// The steps of the enclosing workflow: from its syntax tree, plus those written in the
/// text before the cursor.
fn scope_steps(cx: &Context<'_>, workflow: Option<&Workflow>) -> Vec<(String, String)> {
    let mut steps = workflow.map(|w| steps_of(&w.body)).unwrap_or_default();
    for (name, target) in cx.step_calls() {
        if !steps.iter().any(|(n, _)| *n == name) {
            steps.push((name, target.join(".").replacen("run.", "run ", 1)));
        }
    }
    steps
}

fn lets_of(block: &Block) -> Vec<String> {
    let mut lets = Vec::new();
    each_statement(block, &mut |s| {
        if let StatementKind::Let { name, .. } = &s.kind {
            lets.push(name.name.clone());
        }
    });
    lets
}

/// Whether the cursor is in an `after a, b` list.
fn after_list(cx: &Context<'_>) -> bool {
    let mut i = cx.before.len();
    loop {
        let Some(j) = i.checked_sub(1) else {
            return false;
        };
        match cx.before.get(j).map(|t| t.kind) {
            Some(TokenKind::Comma) => {
                let Some(k) = j.checked_sub(1) else {
                    return false;
                };
                if cx.before.get(k).map(|t| t.kind) != Some(TokenKind::Ident) {
                    return false;
                }
                i = k;
            }
            Some(TokenKind::Ident) => return cx.word(j) == "after",
            _ => return false,
        }
    }
}

/// Argument names already written in the call whose `(` is token `open`.
fn given_arguments<'t>(cx: &Context<'t>, open: usize) -> HashSet<&'t str> {
    let mut given = HashSet::new();
    let mut depth = 0i32;
    for i in open + 1..cx.before.len() {
        match cx.before.get(i).map(|t| t.kind) {
            Some(TokenKind::LParen | TokenKind::LBracket | TokenKind::LBrace) => depth += 1,
            Some(TokenKind::RParen | TokenKind::RBracket | TokenKind::RBrace) => depth -= 1,
            Some(TokenKind::Colon) if depth == 0 => {
                if let Some(name) = i.checked_sub(1) {
                    given.insert(cx.word(name));
                }
            }
            _ => {}
        }
    }
    given
}

fn utf16_len(s: &str) -> u32 {
    u32::try_from(s.encode_utf16().count()).unwrap_or(u32::MAX)
}

fn param_text(p: &Param) -> String {
    match &p.default {
        Some(_) => format!("{}: {} = …", p.name.name, type_text(&p.ty)),
        None => format!("{}: {}", p.name.name, type_text(&p.ty)),
    }
}

pub fn action_signature(integration: &str, a: &Action) -> String {
    let params: Vec<String> = a.params.iter().map(param_text).collect();
    let result = a
        .result
        .as_ref()
        .map(|r| format!(" -> {}", type_text(r)))
        .unwrap_or_default();
    format!(
        "{integration}.{}({}){result}",
        a.name.name,
        params.join(", ")
    )
}

/// A type as written, in canonical spacing.
pub fn type_text(ty: &TypeExpr) -> String {
    match &ty.kind {
        TypeExprKind::Named(path) => path.dotted(),
        TypeExprKind::List(t) => format!("list<{}>", type_text(t)),
        TypeExprKind::Map(k, v) => format!("map<{}, {}>", type_text(k), type_text(v)),
        TypeExprKind::Record(fields) => {
            let fields: Vec<String> = fields
                .iter()
                .map(|f| format!("{}: {}", f.name.name, type_text(&f.ty)))
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
        TypeExprKind::Optional(t) => format!("{}?", type_text(t)),
    }
}

fn markup(text: String) -> MarkupContent {
    MarkupContent {
        kind: MarkupKind::Markdown,
        value: text,
    }
}

fn markdown(text: String) -> Documentation {
    Documentation::MarkupContent(markup(text))
}

fn simple(label: &str, kind: CompletionItemKind, detail: &str) -> CompletionItem {
    CompletionItem {
        label: label.to_owned(),
        kind: Some(kind),
        detail: (!detail.is_empty()).then(|| detail.to_owned()),
        ..CompletionItem::default()
    }
}

fn snippet_item(word: &str, snippet: &str) -> CompletionItem {
    CompletionItem {
        label: word.to_owned(),
        kind: Some(CompletionItemKind::KEYWORD),
        insert_text: Some(snippet.to_owned()),
        insert_text_format: Some(InsertTextFormat::SNIPPET),
        ..CompletionItem::default()
    }
}

fn dedup(items: Vec<CompletionItem>) -> Vec<CompletionItem> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|i| seen.insert(i.label.clone()))
        .collect()
}
