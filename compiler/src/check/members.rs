//! Integrations, and their actions and events, looked up by name, with the one
//! diagnostic for a name that is not there.

use flow_grammar::ast::Ident;
use flow_grammar::{Diagnostic, Span, codes};

use super::{Checker, IntegIdx, ModIdx, Symbol};
use crate::analysis::SymbolKind;

/// Which of an integration's tables a name is looked up in.
#[derive(Clone, Copy)]
pub(super) enum Member {
    Action,
    Event,
}

/// Beyond this many names the diagnostic lists none (the did-you-mean still applies).
const LISTED_NAMES: usize = 12;

impl Checker<'_> {
    /// The integration `head` (`github`, `lib.github`) names in module `m`, recorded for
    /// the editor; when it names something else or nothing, the diagnostic is reported
    /// (labelled `label`, on `whole`, the path with its action) and `None` returned.
    pub(super) fn find_integration(
        &mut self,
        m: ModIdx,
        head: &[Ident],
        whole: Span,
        label: &str,
    ) -> Option<IntegIdx> {
        let last = head.last()?;
        match self.resolve_path(m, None, head) {
            Ok((Symbol::Integration(i), def)) => {
                let name = self.integrations[i].name.clone();
                let doc = self.integrations[i].doc.clone();
                self.analysis.reference_with(
                    last.span,
                    def,
                    SymbolKind::Integration,
                    &name,
                    format!("integration {name}"),
                    doc,
                );
                Some(i)
            }
            Ok((Symbol::Workflow(_) | Symbol::Module(_), _)) if head.len() == 1 => {
                self.report(
                    Diagnostic::new(
                        codes::NOT_AN_INTEGRATION,
                        last.span,
                        format!("`{}` is not an integration", last.name),
                    )
                    .with_label(label),
                );
                None
            }
            Ok((other, _)) => {
                let written: Vec<&str> = head.iter().map(|s| s.name.as_str()).collect();
                self.report(
                    Diagnostic::new(
                        codes::NOT_AN_INTEGRATION,
                        whole,
                        format!(
                            "`{}` is {}, not an integration",
                            written.join("."),
                            other.describe()
                        ),
                    )
                    .with_label(label),
                );
                None
            }
            Err(e) => {
                self.unknown_path(codes::UNKNOWN_NAME, "integration", head, e);
                None
            }
        }
    }

    /// The index of `integ`'s action or event called `name`; when it declares none, the
    /// unknown-name diagnostic is reported at `span` and `None` returned.
    pub(super) fn find_member(
        &mut self,
        integ: IntegIdx,
        member: Member,
        name: &str,
        span: Span,
    ) -> Option<usize> {
        let names = self.names_of(integ, member);
        if let Some(found) = names.iter().position(|n| n == name) {
            return Some(found);
        }
        self.report_unknown_member(integ, member, name, span);
        None
    }

    /// Reports `name` as an action or event `integ` does not declare: a did-you-mean
    /// when one is close, else the integration's names when there are few.
    pub(super) fn report_unknown_member(
        &mut self,
        integ: IntegIdx,
        member: Member,
        name: &str,
        span: Span,
    ) {
        let names = self.names_of(integ, member);
        let (code, word, plural) = match member {
            Member::Action => (codes::UNKNOWN_ACTION, "action", "actions"),
            Member::Event => (codes::UNKNOWN_EVENT, "event", "events"),
        };
        let integration = self.integrations.get(integ).map_or("", |i| i.name.as_str());
        let d = Diagnostic::new(
            code,
            span,
            format!("integration `{integration}` has no {word} `{name}`"),
        )
        .with_label(format!("unknown {word}"))
        .with_suggestion(name, names.iter().map(String::as_str));
        let d = if d.help.is_none() && !names.is_empty() && names.len() <= LISTED_NAMES {
            d.with_note(format!("its {plural}: {}", names.join(", ")))
        } else {
            d
        };
        self.report(d);
    }

    fn names_of(&self, integ: IntegIdx, member: Member) -> Vec<String> {
        let Some(i) = self.integrations.get(integ) else {
            return Vec::new();
        };
        match member {
            Member::Action => i.actions.iter().map(|a| a.name.clone()).collect(),
            Member::Event => i.events.iter().map(|e| e.name.clone()).collect(),
        }
    }
}
