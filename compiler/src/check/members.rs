//! An integration's actions and events looked up by name, with the one diagnostic for a
//! name the integration does not declare.

use flow_grammar::{Diagnostic, Span, codes};

use super::{Checker, IntegIdx};

/// Which of an integration's tables a name is looked up in.
#[derive(Clone, Copy)]
pub(super) enum Member {
    Action,
    Event,
}

/// Beyond this many names the diagnostic lists none (the did-you-mean still applies).
const LISTED_NAMES: usize = 12;

impl Checker<'_> {
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
