//! The standard library's integration modules (`stdlib/modules/*.flow`, the directory
//! `flow-stdlib` embeds): each checks clean with the compiler, declares one documented
//! integration named after its file and follows the stdlib's declaration conventions
//! (`docs/integrations.md`); the examples check clean against them; and the catalogue in
//! `docs/integrations.md` is the one generated from the modules
//! (`FLOW_UPDATE_DOCS=1 cargo test --test stdlib` rewrites it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use flow_grammar::ast::{
    Action, ActionClauseKind, Arg, Event, EventClauseKind, Expr, ExprKind, Integration,
    IntegrationMember, IntegrationSetting, Item, Module, Param, SettingValue, StringPart,
};
use flow_grammar::render::Renderer;
use flow_grammar::{SourceMap, Span, parse};

/// The integrations the runtime implements itself; they need no connection.
const BUILT_IN: &[&str] = &["approval", "console", "file", "http"];
/// Integration-level settings a declaration may use.
const SETTINGS: &[&str] = &[
    "base_url",
    "auth",
    "headers",
    "rate_limit",
    "health",
    "notify",
    "idempotency_header",
    "form_style",
];
/// The fewest real actions a connected integration declares.
const MIN_ACTIONS: usize = 4;
const CATALOGUE_START: &str = "<!-- catalogue:start -->";
const CATALOGUE_END: &str = "<!-- catalogue:end -->";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `*.flow` files of a directory, sorted by name, as (stem, text).
fn flow_files(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "flow"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// One parsed module with its source text.
struct Parsed {
    name: String,
    text: String,
    module: Module,
}

impl Parsed {
    fn src(&self, span: Span) -> &str {
        &self.text[span.range()]
    }

    fn integration(&self) -> &Integration {
        match self.module.items.as_slice() {
            [Item::Integration(i)] => i,
            _ => panic!(
                "{}: a stdlib module holds exactly one integration",
                self.name
            ),
        }
    }
}

/// Parses files, failing with the rendered diagnostics when any file has one.
fn parse_all(files: Vec<(String, String)>, prefix: &str) -> Vec<Parsed> {
    let mut sources = SourceMap::new();
    let mut parsed = Vec::new();
    let mut problems = String::new();
    for (name, text) in files {
        let id = sources.add(format!("{prefix}/{name}.flow"), text.clone());
        let (module, diagnostics) = parse(id, &text);
        let mut renderer = Renderer::new(&sources, false);
        for d in &diagnostics {
            problems.push_str(&renderer.terminal(d));
        }
        parsed.push(Parsed { name, text, module });
    }
    assert!(problems.is_empty(), "diagnostics:\n{problems}");
    parsed
}

fn stdlib() -> Vec<Parsed> {
    parse_all(flow_files(&repo().join("stdlib/modules")), "<stdlib>")
}

fn settings(i: &Integration) -> impl Iterator<Item = &IntegrationSetting> {
    i.members.iter().filter_map(|m| match m {
        IntegrationMember::Setting(s) => Some(s),
        _ => None,
    })
}

fn setting<'a>(i: &'a Integration, name: &str) -> Option<&'a IntegrationSetting> {
    settings(i).find(|s| s.name.name == name)
}

fn actions(i: &Integration) -> impl Iterator<Item = &Action> {
    i.members.iter().filter_map(|m| match m {
        IntegrationMember::Action(a) => Some(a),
        _ => None,
    })
}

fn events(i: &Integration) -> impl Iterator<Item = &Event> {
    i.members.iter().filter_map(|m| match m {
        IntegrationMember::Event(e) => Some(e),
        _ => None,
    })
}

/// Every expression node under `e`, `e` included.
fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    out.push(e);
    for c in e.children() {
        walk(c, out);
    }
}

/// The top-level expressions of an integration declaration.
fn roots(i: &Integration) -> Vec<&Expr> {
    let mut roots = Vec::new();
    for m in &i.members {
        match m {
            IntegrationMember::Setting(s) => match &s.value {
                SettingValue::Expr(e) => roots.push(e),
                SettingValue::RateLimit { count, per } => roots.extend([count, per]),
                SettingValue::Endpoint { path, .. } => roots.push(path),
            },
            IntegrationMember::Error(_) => {}
            IntegrationMember::Action(a) => {
                roots.extend(a.params.iter().filter_map(|p| p.default.as_ref()));
                for c in &a.clauses {
                    match &c.kind {
                        ActionClauseKind::Error => {}
                        ActionClauseKind::Request { path, .. } => roots.push(path),
                        ActionClauseKind::Query(e)
                        | ActionClauseKind::Headers(e)
                        | ActionClauseKind::Result(e)
                        | ActionClauseKind::Timeout(e) => roots.push(e),
                        ActionClauseKind::Body { value, .. } => roots.push(value),
                        ActionClauseKind::Paginate { args, .. } => {
                            roots.extend(args.iter().map(|a| &a.value))
                        }
                        ActionClauseKind::ErrorWhen { condition, message } => {
                            roots.extend([condition, message])
                        }
                    }
                }
            }
            IntegrationMember::Event(ev) => {
                roots.extend(ev.params.iter().filter_map(|p| p.default.as_ref()));
                for c in &ev.clauses {
                    match &c.kind {
                        EventClauseKind::Error => {}
                        EventClauseKind::Webhook(e)
                        | EventClauseKind::When(e)
                        | EventClauseKind::Result(e) => roots.push(e),
                        EventClauseKind::Verify { args, .. } => {
                            roots.extend(args.iter().map(|a| &a.value))
                        }
                    }
                }
            }
            IntegrationMember::Type(_) => {}
        }
    }
    roots
}

/// The names read with `setting("...")` and `secret("...")` anywhere in the declaration.
fn connection_names(i: &Integration) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut nodes = Vec::new();
    for r in roots(i) {
        walk(r, &mut nodes);
    }
    let (mut settings, mut secrets) = (BTreeSet::new(), BTreeSet::new());
    for n in nodes {
        if let ExprKind::Call {
            target: None,
            function,
            args,
            ..
        } = &n.kind
            && let [
                Arg {
                    value:
                        Expr {
                            kind: ExprKind::String(name),
                            ..
                        },
                    ..
                },
            ] = args.as_slice()
        {
            match function.name.as_str() {
                "setting" => settings.insert(name.clone()),
                "secret" => secrets.insert(name.clone()),
                _ => false,
            };
        }
    }
    (settings, secrets)
}

/// The literal text a string expression starts with.
fn leading_text(e: &Expr) -> Option<&str> {
    match &e.kind {
        ExprKind::String(s) => Some(s),
        ExprKind::Interpolated(parts) => match parts.first() {
            Some(StringPart::Text(t)) => Some(t),
            _ => Some(""),
        },
        _ => None,
    }
}

/// A call as `name(arg: value, ...)` in a setting (`notify`, `health`, `auth`).
fn setting_call(s: &IntegrationSetting) -> Option<(&str, &[Arg])> {
    match &s.value {
        SettingValue::Expr(Expr {
            kind:
                ExprKind::Call {
                    target: None,
                    function,
                    args,
                    ..
                },
            ..
        }) => Some((function.name.as_str(), args.as_slice())),
        _ => None,
    }
}

#[test]
fn every_module_declares_one_integration_named_after_its_file() {
    let modules = stdlib();
    assert!(
        modules.len() >= BUILT_IN.len() + 25,
        "the stdlib ships at least 25 connected integrations"
    );
    for m in &modules {
        assert_eq!(
            m.integration().name.name,
            m.name,
            "{}.flow must declare `integration {}`",
            m.name,
            m.name
        );
    }
}

#[test]
fn every_integration_action_type_and_event_is_documented() {
    let mut missing = Vec::new();
    for m in stdlib() {
        let i = m.integration();
        if i.doc.as_deref().is_none_or(str::is_empty) {
            missing.push(format!("{}: the integration", m.name));
        }
        for member in &i.members {
            let (kind, name, doc) = match member {
                IntegrationMember::Action(a) => ("action", &a.name.name, &a.doc),
                IntegrationMember::Type(t) => ("type", &t.name.name, &t.doc),
                IntegrationMember::Event(e) => ("event", &e.name.name, &e.doc),
                IntegrationMember::Setting(_) | IntegrationMember::Error(_) => continue,
            };
            if doc.as_deref().is_none_or(str::is_empty) {
                missing.push(format!("{}: {kind} {name}", m.name));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "undocumented declarations:\n{}",
        missing.join("\n")
    );
}

#[test]
fn connected_integrations_declare_endpoint_auth_limit_and_health() {
    let mut problems = Vec::new();
    for m in stdlib()
        .iter()
        .filter(|m| !BUILT_IN.contains(&m.name.as_str()))
    {
        let i = m.integration();
        for s in settings(i) {
            if !SETTINGS.contains(&s.name.name.as_str()) {
                problems.push(format!(
                    "{}: unknown integration setting `{}`",
                    m.name, s.name.name
                ));
            }
        }
        match setting(i, "base_url").map(|s| &s.value) {
            Some(SettingValue::Expr(e)) if leading_text(e).is_some() => {}
            _ => problems.push(format!(
                "{}: `base_url = \"https://...\"` is required",
                m.name
            )),
        }
        if setting(i, "auth").is_none() {
            problems.push(format!("{}: `auth` is required", m.name));
        }
        if !matches!(
            setting(i, "rate_limit").map(|s| &s.value),
            Some(SettingValue::RateLimit { .. })
        ) {
            problems.push(format!("{}: `rate_limit = N per D` is required", m.name));
        }
        if setting(i, "health").is_none() {
            problems.push(format!("{}: `health` is required", m.name));
        }
        let count = actions(i).count();
        if count < MIN_ACTIONS {
            problems.push(format!(
                "{}: {count} actions, at least {MIN_ACTIONS} expected",
                m.name
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn actions_and_events_follow_the_declaration_conventions() {
    let mut problems = Vec::new();
    for m in stdlib() {
        let i = m.integration();
        let built_in = BUILT_IN.contains(&m.name.as_str());
        for a in actions(i) {
            let at = format!("{}.{}", m.name, a.name.name);
            if a.result.is_none() {
                problems.push(format!("{at}: declare the result type"));
            }
            if built_in {
                if !a.clauses.is_empty() {
                    problems.push(format!(
                        "{at}: built-in actions are implemented natively and take no clauses"
                    ));
                }
                continue;
            }
            let mut requests = 0;
            let (mut results, mut bodies, mut paginated) = (0, 0, false);
            for c in &a.clauses {
                match &c.kind {
                    ActionClauseKind::Request { method, path } => {
                        requests += 1;
                        match leading_text(path) {
                            Some(p) if p.starts_with('/') || p.starts_with("https://") => {}
                            _ => problems
                                .push(format!("{at}: the path starts with `/` or `https://`")),
                        }
                        if method.name == "GET" && !a.idempotent {
                            problems.push(format!("{at}: a GET action is declared `idempotent`"));
                        }
                    }
                    ActionClauseKind::Result(_) => results += 1,
                    ActionClauseKind::Body { .. } => bodies += 1,
                    ActionClauseKind::Paginate { .. } => paginated = true,
                    _ => {}
                }
            }
            if requests != 1 {
                problems.push(format!("{at}: exactly one request line (`GET \"/path\"`)"));
            }
            if results != 1 {
                problems.push(format!("{at}: exactly one `result` clause"));
            }
            if bodies > 1 {
                problems.push(format!("{at}: at most one `body` clause"));
            }
            if paginated
                && !a
                    .result
                    .as_ref()
                    .is_some_and(|t| m.src(t.span).starts_with("list<"))
            {
                problems.push(format!(
                    "{at}: a paginated action returns a list (pages are concatenated)"
                ));
            }
        }
        for e in events(i) {
            let at = format!("{}.{}", m.name, e.name.name);
            let mut seen = BTreeMap::new();
            for c in &e.clauses {
                let kind = match &c.kind {
                    EventClauseKind::Error => continue,
                    EventClauseKind::Webhook(_) => "webhook",
                    EventClauseKind::Verify { .. } => "verify",
                    EventClauseKind::When(_) => "when",
                    EventClauseKind::Result(_) => "result",
                };
                *seen.entry(kind).or_insert(0) += 1;
            }
            for kind in ["webhook", "verify", "when", "result"] {
                if seen.get(kind) != Some(&1) {
                    problems.push(format!("{at}: exactly one `{kind}` clause"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `{ name: x, "a-b": y }` is a map literal whose first key is the *value* of `name`:
/// one quoted key turns every bare key into an expression. A computed key must be
/// written in parentheses, `{ (name): x }`, so it is visibly meant.
#[test]
fn map_literal_keys_are_quoted_or_parenthesised() {
    let mut problems = Vec::new();
    for m in stdlib() {
        let mut nodes = Vec::new();
        for r in roots(m.integration()) {
            walk(r, &mut nodes);
        }
        for n in nodes {
            let ExprKind::Map(entries) = &n.kind else {
                continue;
            };
            for entry in entries {
                if matches!(
                    entry.key.kind,
                    ExprKind::String(_) | ExprKind::Interpolated(_)
                ) {
                    continue;
                }
                let before = m.text[..entry.key.span.start as usize].trim_end();
                if !before.ends_with('(') {
                    problems.push(format!(
                        "{}: map key `{}` is neither quoted nor parenthesised",
                        m.name,
                        m.src(entry.key.span)
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Compiles a file on its own (stdlib modules and examples import only stdlib modules)
/// and renders every diagnostic it gets.
fn compile_problems(name: &str, text: &str, warnings_too: bool) -> String {
    let (sources, compilation) = flow_compiler::compile_source(name, text);
    let mut renderer = Renderer::new(&sources, false);
    compilation
        .diagnostics
        .iter()
        .filter(|d| warnings_too || d.is_error())
        .map(|d| renderer.terminal(d))
        .collect()
}

#[test]
fn every_module_checks_clean_with_the_compiler() {
    let mut problems = String::new();
    for (name, text) in flow_files(&repo().join("stdlib/modules")) {
        problems.push_str(&compile_problems(
            &format!("stdlib/modules/{name}.flow"),
            &text,
            true,
        ));
    }
    assert!(problems.is_empty(), "diagnostics:\n{problems}");
}

#[test]
fn the_examples_check_clean_against_the_stdlib() {
    let mut problems = String::new();
    for (name, text) in flow_files(&repo().join("examples")) {
        problems.push_str(&compile_problems(
            &format!("examples/{name}.flow"),
            &text,
            false,
        ));
    }
    assert!(problems.is_empty(), "errors:\n{problems}");
}

// ------------------------------------------------------------------ the catalogue

/// Source text on one line: runs of whitespace become one space, trailing commas go.
fn one_line(src: &str) -> String {
    let joined = src.split_whitespace().collect::<Vec<_>>().join(" ");
    joined
        .replace(", }", " }")
        .replace(", )", ")")
        .replace(", ]", "]")
        .replace("( ", "(")
        .replace("[ ", "[")
}

fn doc_paragraph(doc: &Option<String>) -> String {
    doc.as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn signature(m: &Parsed, params: &[Param]) -> String {
    let list: Vec<String> = params
        .iter()
        .map(|p| match &p.default {
            Some(d) => format!(
                "{}: {} = {}",
                p.name.name,
                one_line(m.src(p.ty.span)),
                one_line(m.src(d.span))
            ),
            None => format!("{}: {}", p.name.name, one_line(m.src(p.ty.span))),
        })
        .collect();
    format!("({})", list.join(", "))
}

fn setting_source(m: &Parsed, s: &IntegrationSetting) -> String {
    match &s.value {
        SettingValue::Expr(e) => one_line(m.src(e.span)),
        SettingValue::RateLimit { count, per } => {
            format!("{} per {}", m.src(count.span), m.src(per.span))
        }
        SettingValue::Endpoint { method, path } => format!("{} {}", method.name, m.src(path.span)),
    }
}

/// The catalogue section of docs/integrations.md, generated from the modules.
fn catalogue(modules: &[Parsed]) -> String {
    let mut out = String::new();
    out.push_str(CATALOGUE_START);
    out.push_str("\n\n<!-- Generated from stdlib/modules by `FLOW_UPDATE_DOCS=1 cargo test --test stdlib`. -->\n\n");
    out.push_str("| integration | actions | events | auth | notify |\n|---|---|---|---|---|\n");
    for m in modules {
        let i = m.integration();
        let auth = setting(i, "auth")
            .and_then(setting_call)
            .map(|(k, _)| format!("`{k}`"))
            .unwrap_or("none".into());
        let notify = if setting(i, "notify").is_some() {
            "yes"
        } else {
            ""
        };
        out.push_str(&format!(
            "| [`{0}`](#{0}) | {1} | {2} | {auth} | {notify} |\n",
            m.name,
            actions(i).count(),
            events(i).count()
        ));
    }
    for m in modules {
        let i = m.integration();
        out.push_str(&format!("\n### {}\n\n", m.name));
        for para in i.doc.as_deref().unwrap_or_default().split("\n\n") {
            out.push_str(&para.split_whitespace().collect::<Vec<_>>().join(" "));
            out.push_str("\n\n");
        }
        let (settings_used, secrets_used) = connection_names(i);
        let names = |set: &BTreeSet<String>| {
            set.iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut facts = Vec::new();
        for key in [
            "base_url",
            "auth",
            "headers",
            "rate_limit",
            "health",
            "notify",
            "idempotency_header",
            "form_style",
        ] {
            if let Some(s) = setting(i, key) {
                facts.push(format!(
                    "- `{key}`: `{}`",
                    setting_source(m, s).replace('|', "\\|")
                ));
            }
        }
        if !settings_used.is_empty() {
            facts.push(format!("- connection settings: {}", names(&settings_used)));
        }
        if !secrets_used.is_empty() {
            facts.push(format!("- connection secrets: {}", names(&secrets_used)));
        }
        if !facts.is_empty() {
            out.push_str(&facts.join("\n"));
            out.push_str("\n\n");
        }
        out.push_str("Actions:\n\n");
        for a in actions(i) {
            let result = a
                .result
                .as_ref()
                .map(|t| format!(" -> {}", one_line(m.src(t.span))))
                .unwrap_or_default();
            let idem = if a.idempotent { "idempotent " } else { "" };
            out.push_str(&format!(
                "- `{idem}{}{}{result}`: {}\n",
                a.name.name,
                signature(m, &a.params),
                doc_paragraph(&a.doc)
            ));
        }
        let evs: Vec<&Event> = events(i).collect();
        if !evs.is_empty() {
            out.push_str("\nEvents:\n\n");
            for e in evs {
                out.push_str(&format!(
                    "- `{}{} -> {}`: {}\n",
                    e.name.name,
                    signature(m, &e.params),
                    one_line(m.src(e.result.span)),
                    doc_paragraph(&e.doc)
                ));
            }
        }
        let types: Vec<_> = i
            .members
            .iter()
            .filter_map(|mm| match mm {
                IntegrationMember::Type(t) => Some(t),
                _ => None,
            })
            .collect();
        if !types.is_empty() {
            out.push_str("\nTypes:\n\n");
            for t in types {
                out.push_str(&format!(
                    "- `{}.{} = {}`: {}\n",
                    m.name,
                    t.name.name,
                    one_line(m.src(t.ty.span)),
                    doc_paragraph(&t.doc)
                ));
            }
        }
    }
    out.push('\n');
    out.push_str(CATALOGUE_END);
    out
}

#[test]
fn the_catalogue_in_docs_is_generated_from_the_modules() {
    let path = repo().join("docs/integrations.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (Some(start), Some(end)) = (doc.find(CATALOGUE_START), doc.find(CATALOGUE_END)) else {
        panic!("docs/integrations.md has no `{CATALOGUE_START}` ... `{CATALOGUE_END}` section");
    };
    let expected = catalogue(&stdlib());
    let current = &doc[start..end + CATALOGUE_END.len()];
    if current == expected {
        return;
    }
    if std::env::var_os("FLOW_UPDATE_DOCS").is_some() {
        let updated = format!(
            "{}{expected}{}",
            &doc[..start],
            &doc[end + CATALOGUE_END.len()..]
        );
        std::fs::write(&path, updated).unwrap();
        return;
    }
    let line = current
        .lines()
        .zip(expected.lines())
        .position(|(a, b)| a != b)
        .unwrap_or(0);
    panic!(
        "docs/integrations.md's catalogue is out of date (first difference at catalogue line {}):\n  doc:      {}\n  expected: {}\nrun `FLOW_UPDATE_DOCS=1 cargo test --test stdlib` to regenerate it",
        line + 1,
        current.lines().nth(line).unwrap_or(""),
        expected.lines().nth(line).unwrap_or("")
    );
}
