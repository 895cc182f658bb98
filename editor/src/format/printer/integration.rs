//! Laying out integration declarations: settings, actions and their clauses, events.

use super::*;

impl<'s> Printer<'s> {
    pub(super) fn integration(&mut self, integration: &Integration) -> R<Doc> {
        let mut docs = vec![
            self.token("integration")?,
            sp(),
            self.ident(&integration.name)?,
            sp(),
        ];
        docs.push(self.block_of(&integration.members, |p, member| {
            Ok(Doc::Seq(vec![
                p.integration_member(member)?,
                p.skip_separators(&[";"]),
            ]))
        })?);
        Ok(Doc::Seq(docs))
    }

    pub(super) fn integration_member(&mut self, member: &IntegrationMember) -> R<Doc> {
        match member {
            // Only a file without syntax errors is formatted.
            IntegrationMember::Error(_) => Err(self.mismatch("a member")),
            IntegrationMember::Setting(setting) => {
                let mut docs = vec![self.ident(&setting.name)?, sp(), self.token("=")?, sp()];
                match &setting.value {
                    SettingValue::Expr(e) => docs.push(self.expr(e)?),
                    SettingValue::RateLimit { count, per } => {
                        docs.extend([
                            self.expr(count)?,
                            sp(),
                            self.token("per")?,
                            sp(),
                            self.expr(per)?,
                        ]);
                    }
                    SettingValue::Endpoint { method, path } => {
                        docs.extend([self.ident(method)?, sp(), self.expr(path)?]);
                    }
                }
                Ok(Doc::Seq(docs))
            }
            IntegrationMember::Type(t) => self.type_decl(t),
            IntegrationMember::Action(a) => self.action(a),
            IntegrationMember::Event(e) => self.event(e),
        }
    }

    pub(super) fn action(&mut self, action: &Action) -> R<Doc> {
        let mut docs = Vec::new();
        if action.idempotent {
            docs.extend([self.token("idempotent")?, sp()]);
        }
        docs.extend([
            self.token("action")?,
            sp(),
            self.ident(&action.name)?,
            self.params(&action.params)?,
        ]);
        if let Some(result) = &action.result {
            docs.push(self.result_type(result)?);
        }
        docs.push(sp());
        docs.push(self.block_of(&action.clauses, |p, clause| p.action_clause(clause))?);
        Ok(Doc::Seq(docs))
    }

    pub(super) fn keyword_expr(&mut self, keyword: &str, e: &Expr) -> R<Doc> {
        Ok(Doc::Seq(vec![self.token(keyword)?, sp(), self.expr(e)?]))
    }

    pub(super) fn action_clause(&mut self, clause: &ActionClause) -> R<Doc> {
        match &clause.kind {
            ActionClauseKind::Error => Err(self.mismatch("a clause")),
            ActionClauseKind::Request { method, path } => {
                Ok(Doc::Seq(vec![self.ident(method)?, sp(), self.expr(path)?]))
            }
            ActionClauseKind::Query(e) => self.keyword_expr("query", e),
            ActionClauseKind::Headers(e) => self.keyword_expr("headers", e),
            ActionClauseKind::Body { kind, value } => Ok(Doc::Seq(vec![
                self.token("body")?,
                sp(),
                self.ident(kind)?,
                sp(),
                self.expr(value)?,
            ])),
            ActionClauseKind::Paginate { kind, args } => {
                let mut docs = vec![self.token("paginate")?, sp(), self.ident(kind)?];
                if self.peek_is("(") {
                    docs.push(self.args(args)?);
                }
                Ok(Doc::Seq(docs))
            }
            ActionClauseKind::ErrorWhen { condition, message } => Ok(Doc::Seq(vec![
                self.token("error_when")?,
                sp(),
                self.expr(condition)?,
                sp(),
                self.token("=>")?,
                sp(),
                self.expr(message)?,
            ])),
            ActionClauseKind::Result(e) => self.keyword_expr("result", e),
            ActionClauseKind::Timeout(e) => self.keyword_expr("timeout", e),
        }
    }

    pub(super) fn event(&mut self, event: &Event) -> R<Doc> {
        let mut docs = vec![self.token("event")?, sp(), self.ident(&event.name)?];
        if self.peek_is("(") {
            docs.push(self.params(&event.params)?);
        }
        docs.push(self.result_type(&event.result)?);
        docs.push(sp());
        docs.push(
            self.block_of(&event.clauses, |p, clause| match &clause.kind {
                EventClauseKind::Error => Err(p.mismatch("a clause")),
                EventClauseKind::Webhook(e) => p.keyword_expr("webhook", e),
                EventClauseKind::Verify { scheme, args } => Ok(Doc::Seq(vec![
                    p.token("verify")?,
                    sp(),
                    p.ident(scheme)?,
                    p.args(args)?,
                ])),
                EventClauseKind::When(e) => p.keyword_expr("when", e),
                EventClauseKind::Result(e) => p.keyword_expr("result", e),
            })?,
        );
        Ok(Doc::Seq(docs))
    }
}
