//! Integrations as compiled declarations: what `flow integrations` lists (actions with
//! signatures, events, auth), and what a connection needs (the settings and secrets the
//! declaration reads).

use std::collections::BTreeSet;
use std::sync::Arc;

use flow_ir::expr::{Const, ExprArena, NodeKind};
use flow_ir::program::{Action, AuthKind, Integration, Param, Program};
use serde::Serialize;

/// A compiled standard-library integration: the program holding it and its index.
#[derive(Clone)]
pub struct Compiled {
    pub program: Arc<Program>,
    pub index: u32,
}

impl Compiled {
    /// The integration `name` of a compiled program (a standard-library module compiled
    /// on its own: the binary compiles them, this crate links no compiler).
    pub fn find(program: Program, name: &str) -> Option<Compiled> {
        let index = program.integrations.iter().position(|i| i.name == name)?;
        Some(Compiled {
            program: Arc::new(program),
            index: u32::try_from(index).ok()?,
        })
    }

    pub fn integration(&self) -> Option<&Integration> {
        self.program.integrations.get(self.index as usize)
    }
}

fn collect(arena: &ExprArena, settings: &mut BTreeSet<String>, secrets: &mut BTreeSet<String>) {
    for n in &arena.nodes {
        match &n.kind {
            NodeKind::Secret(s) => {
                secrets.insert(s.clone());
            }
            NodeKind::Setting(s) => {
                settings.insert(s.clone());
            }
            _ => {}
        }
    }
}

/// The settings and secrets a connection to `integ` needs. An OAuth2 connection also
/// needs the grant's `refresh_token` (or an `access_token`).
pub fn needs(integ: &Integration) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut settings, mut secrets) = (BTreeSet::new(), BTreeSet::new());
    collect(&integ.exprs, &mut settings, &mut secrets);
    for a in &integ.actions {
        collect(&a.exprs, &mut settings, &mut secrets);
    }
    for e in &integ.events {
        collect(&e.exprs, &mut settings, &mut secrets);
    }
    if let Some(n) = &integ.notify {
        collect(&n.exprs, &mut settings, &mut secrets);
    }
    if integ
        .auth
        .as_ref()
        .is_some_and(|a| a.kind == AuthKind::OAuth2)
    {
        secrets.insert("refresh_token".into());
    }
    (settings, secrets)
}

fn default_text(arena: &ExprArena, p: &Param) -> Option<String> {
    let d = p.default?;
    Some(match &arena.node(d)?.kind {
        NodeKind::Const(Const::Null) => "null".into(),
        NodeKind::Const(Const::Bool(b)) => b.to_string(),
        NodeKind::Const(Const::Int(i)) => i.to_string(),
        NodeKind::Const(Const::UInt(u)) => format!("{u}u"),
        NodeKind::Const(Const::Double(x)) => x.to_string(),
        NodeKind::Const(Const::String(s)) => format!("{s:?}"),
        NodeKind::List { items, .. } if items.is_empty() => "[]".into(),
        NodeKind::Map { entries } if entries.is_empty() => "{}".into(),
        _ => "…".into(),
    })
}

/// `name(param: type = default, ...) -> result`.
pub fn signature(a: &Action) -> String {
    let params: Vec<String> = a
        .params
        .iter()
        .map(|p| match default_text(&a.exprs, p) {
            Some(d) => format!("{}: {} = {d}", p.name, p.ty),
            None => format!("{}: {}", p.name, p.ty),
        })
        .collect();
    format!("{}({}) -> {}", a.name, params.join(", "), a.result)
}

/// One line of a doc comment: its first sentence-paragraph.
pub fn summary(doc: &Option<String>) -> String {
    doc.as_deref()
        .unwrap_or("")
        .split("\n\n")
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Serialize)]
pub struct ActionInfo {
    pub name: String,
    pub idempotent: bool,
    pub signature: String,
    pub doc: String,
}

#[derive(Serialize)]
pub struct EventInfo {
    pub name: String,
    pub signature: String,
    pub doc: String,
}

/// What `flow integrations` shows of an integration.
#[derive(Serialize)]
pub struct Info {
    pub name: String,
    pub doc: String,
    pub auth: Option<String>,
    pub settings: Vec<String>,
    pub secrets: Vec<String>,
    pub notify: Option<String>,
    pub actions: Vec<ActionInfo>,
    pub events: Vec<EventInfo>,
}

pub fn info(integ: &Integration) -> Info {
    let (settings, secrets) = needs(integ);
    Info {
        name: integ.name.clone(),
        doc: summary(&integ.doc),
        auth: integ.auth.as_ref().map(|a| {
            serde_json::to_value(a.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        }),
        settings: settings.into_iter().collect(),
        secrets: secrets.into_iter().collect(),
        notify: integ
            .notify
            .as_ref()
            .and_then(|n| integ.actions.get(n.action as usize))
            .map(|a| a.name.clone()),
        actions: integ
            .actions
            .iter()
            .map(|a| ActionInfo {
                name: a.name.clone(),
                idempotent: a.idempotent,
                signature: signature(a),
                doc: summary(&a.doc),
            })
            .collect(),
        events: integ
            .events
            .iter()
            .map(|e| EventInfo {
                name: e.name.clone(),
                signature: format!(
                    "{}({}) -> {}",
                    e.name,
                    e.params
                        .iter()
                        .map(|p| format!("{}: {}", p.name, p.ty))
                        .collect::<Vec<_>>()
                        .join(", "),
                    e.result
                ),
                doc: summary(&e.doc),
            })
            .collect(),
    }
}
