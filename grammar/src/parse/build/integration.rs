//! Building integration declarations: settings, actions and their clauses, events.

use super::*;

impl<'s> Builder<'s> {
    pub(super) fn integration(&self, p: P<'_>) -> R<Integration> {
        let (span, doc) = (self.span(&p), self.doc(&p));
        let mut inner = p.into_children();
        let name = self.ident(next(&mut inner)?);
        let mut members = Vec::new();
        for member in inner {
            let m = first(member);
            members.push(match m.as_rule() {
                Rule::error_stmt => IntegrationMember::Error(self.span(&m)),
                Rule::type_decl => IntegrationMember::Type(self.type_decl(m)?),
                Rule::action => IntegrationMember::Action(self.action(m)?),
                Rule::event => IntegrationMember::Event(self.event(m)?),
                _ => IntegrationMember::Setting(self.integration_setting(m)?),
            });
        }
        Ok(Integration {
            doc,
            name,
            members,
            span,
        })
    }

    pub(super) fn integration_setting(&self, p: P<'_>) -> R<IntegrationSetting> {
        let (span, doc) = (self.span(&p), self.doc(&p));
        let mut inner = p.into_children();
        let name = self.ident(next(&mut inner)?);
        let value = next(&mut inner)?;
        let value = match value.as_rule() {
            Rule::rate_limit_value => {
                let mut parts = value.into_children();
                let count = self.expr_from_primary(next(&mut parts)?)?;
                let per = self.expr(next(&mut parts)?)?;
                SettingValue::RateLimit { count, per }
            }
            Rule::endpoint_value => {
                let mut parts = value.into_children();
                let method = self.ident(next(&mut parts)?);
                let path = self.expr(next(&mut parts)?)?;
                SettingValue::Endpoint { method, path }
            }
            _ => SettingValue::Expr(self.expr(value)?),
        };
        Ok(IntegrationSetting {
            doc,
            name,
            value,
            span,
        })
    }

    pub(super) fn action(&self, p: P<'_>) -> R<Action> {
        let (span, doc) = (self.span(&p), self.doc(&p));
        let mut idempotent = false;
        let mut name = None;
        let mut params = Vec::new();
        let mut result = None;
        let mut clauses = Vec::new();
        for part in p.into_children() {
            match part.as_rule() {
                Rule::idempotent => idempotent = true,
                Rule::ident => name = Some(self.ident(part)),
                Rule::param_list => params = self.params(part)?,
                Rule::result_type => result = Some(self.type_expr(first(part))?),
                _ => clauses.push(self.action_clause(part)?),
            }
        }
        let name = name.ok_or_else(|| self.error(codes::SYNTAX, span, "an action needs a name"))?;
        Ok(Action {
            doc,
            idempotent,
            name,
            params,
            result,
            clauses,
            span,
        })
    }

    pub(super) fn action_clause(&self, p: P<'_>) -> R<ActionClause> {
        let span = self.span(&p);
        let clause = first(p);
        let rule = clause.as_rule();
        let mut inner = clause.into_children();
        let kind = match rule {
            Rule::error_stmt => ActionClauseKind::Error,
            Rule::request_clause => {
                let method = self.ident(next(&mut inner)?);
                ActionClauseKind::Request {
                    method,
                    path: self.expr(next(&mut inner)?)?,
                }
            }
            Rule::query_clause => ActionClauseKind::Query(self.expr(next(&mut inner)?)?),
            Rule::headers_clause => ActionClauseKind::Headers(self.expr(next(&mut inner)?)?),
            Rule::body_clause => {
                let kind = self.ident(next(&mut inner)?);
                ActionClauseKind::Body {
                    kind,
                    value: self.expr(next(&mut inner)?)?,
                }
            }
            Rule::paginate_clause => {
                let kind = self.ident(next(&mut inner)?);
                let args = inner
                    .next()
                    .map(|a| self.args(a))
                    .transpose()?
                    .unwrap_or_default();
                ActionClauseKind::Paginate { kind, args }
            }
            Rule::error_when_clause => {
                let condition = self.expr(next(&mut inner)?)?;
                ActionClauseKind::ErrorWhen {
                    condition,
                    message: self.expr(next(&mut inner)?)?,
                }
            }
            Rule::result_clause => ActionClauseKind::Result(self.expr(next(&mut inner)?)?),
            _ => ActionClauseKind::Timeout(self.expr(next(&mut inner)?)?),
        };
        Ok(ActionClause { kind, span })
    }

    pub(super) fn event(&self, p: P<'_>) -> R<Event> {
        let (span, doc) = (self.span(&p), self.doc(&p));
        let mut name = None;
        let mut params = Vec::new();
        let mut result = None;
        let mut clauses = Vec::new();
        for part in p.into_children() {
            match part.as_rule() {
                Rule::ident => name = Some(self.ident(part)),
                Rule::param_list => params = self.params(part)?,
                Rule::result_type => result = Some(self.type_expr(first(part))?),
                _ => clauses.push(self.event_clause(part)?),
            }
        }
        let name = name.ok_or_else(|| self.error(codes::SYNTAX, span, "an event needs a name"))?;
        let result = result
            .ok_or_else(|| self.error(codes::SYNTAX, span, "an event needs a result type"))?;
        Ok(Event {
            doc,
            name,
            params,
            result,
            clauses,
            span,
        })
    }

    pub(super) fn event_clause(&self, p: P<'_>) -> R<EventClause> {
        let span = self.span(&p);
        let clause = first(p);
        let rule = clause.as_rule();
        let mut inner = clause.into_children();
        let kind = match rule {
            Rule::error_stmt => EventClauseKind::Error,
            Rule::webhook_clause => EventClauseKind::Webhook(self.expr(next(&mut inner)?)?),
            Rule::verify_clause => {
                let scheme = self.ident(next(&mut inner)?);
                EventClauseKind::Verify {
                    scheme,
                    args: self.args(next(&mut inner)?)?,
                }
            }
            Rule::when_clause => EventClauseKind::When(self.expr(next(&mut inner)?)?),
            _ => EventClauseKind::Result(self.expr(next(&mut inner)?)?),
        };
        Ok(EventClause { kind, span })
    }

    // ------------------------------------------------------------ workflows
}
