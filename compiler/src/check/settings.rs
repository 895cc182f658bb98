//! Values known when compiling: literal folding (through constants), workflow
//! `settings`, cron expressions and time zones, durations and limits.

use flow_grammar::ast::{self, ExprKind, SettingEntry, UnaryOp};
use flow_grammar::{Diagnostic, Span, codes};

use super::{Checker, ModIdx, Symbol};
use flow_ir::program::{self as ir, ConstOr, Nanos, Priority};

/// A folded constant.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ConstVal {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    String(String),
    Duration(i64),
    /// A bare word that names nothing (`priority = high`).
    Word(String),
    Record(Vec<(String, ConstVal, Span)>),
}

impl ConstVal {
    fn kind(&self) -> &'static str {
        match self {
            ConstVal::Null => "null",
            ConstVal::Bool(_) => "a bool",
            ConstVal::Int(_) | ConstVal::UInt(_) => "an integer",
            ConstVal::Double(_) => "a double",
            ConstVal::String(_) => "a string",
            ConstVal::Duration(_) => "a duration",
            ConstVal::Word(_) => "a name",
            ConstVal::Record(_) => "a record",
        }
    }
}

const FOLD_DEPTH: u32 = 16;

pub(crate) const WORKFLOW_SETTINGS: &[&str] = &[
    "timeout",
    "priority",
    "concurrency",
    "retry",
    "catch_up",
    "catch_up_within",
    "overlap",
];
/// The settings that govern an `on schedule(...)` trigger.
pub(crate) const SCHEDULE_SETTINGS: &[&str] = &["catch_up", "catch_up_within", "overlap"];
/// A missed tick's catch-up window when `catch_up = all` names none: a day.
const DEFAULT_CATCH_UP_WITHIN: Nanos = 86_400_000_000_000;
const RETRY_FIELDS: &[&str] = &["attempts", "delay", "backoff", "max_delay", "jitter"];

impl Checker<'_> {
    /// The value of a literal, or of a constant bound to one (through other constants).
    pub(crate) fn fold(&self, m: ModIdx, expr: &ast::Expr) -> Option<ConstVal> {
        self.fold_depth(m, expr, FOLD_DEPTH, false)
    }

    /// Like [`Checker::fold`], but a bare word that names nothing is a value (`priority = high`).
    fn fold_setting(&self, m: ModIdx, expr: &ast::Expr) -> Option<ConstVal> {
        self.fold_depth(m, expr, FOLD_DEPTH, true)
    }

    fn fold_depth(&self, m: ModIdx, expr: &ast::Expr, depth: u32, words: bool) -> Option<ConstVal> {
        if depth == 0 {
            return None;
        }
        Some(match &expr.kind {
            ExprKind::Null => ConstVal::Null,
            ExprKind::Bool(b) => ConstVal::Bool(*b),
            ExprKind::Int(i) => ConstVal::Int(*i),
            ExprKind::UInt(u) => ConstVal::UInt(*u),
            ExprKind::Double(d) => ConstVal::Double(*d),
            ExprKind::String(s) => ConstVal::String(s.clone()),
            ExprKind::Duration(d) => ConstVal::Duration(*d),
            ExprKind::Interpolated(parts)
                if parts.iter().all(|p| matches!(p, ast::StringPart::Text(_))) =>
            {
                ConstVal::String(
                    parts
                        .iter()
                        .map(|p| match p {
                            ast::StringPart::Text(t) => t.as_str(),
                            ast::StringPart::Expr(_) => "",
                        })
                        .collect(),
                )
            }
            ExprKind::Unary {
                op: UnaryOp::Neg,
                operand,
            } => match self.fold_depth(m, operand, depth - 1, words)? {
                ConstVal::Int(i) => ConstVal::Int(i.checked_neg()?),
                ConstVal::Double(d) => ConstVal::Double(-d),
                ConstVal::Duration(d) => ConstVal::Duration(d.checked_neg()?),
                _ => return None,
            },
            ExprKind::Ident { name, root: false } => match self.lookup(m, name).map(|e| e.sym) {
                Some(Symbol::Const(c)) => {
                    let def = self.consts.get(c)?;
                    self.fold_depth(def.module, &def.decl.value, depth - 1, words)?
                }
                Some(_) => return None,
                None if words => ConstVal::Word(name.clone()),
                None => return None,
            },
            ExprKind::Record(fields) => ConstVal::Record(
                fields
                    .iter()
                    .map(|f| {
                        Some((
                            f.name.name.clone(),
                            self.fold_depth(m, &f.value, depth - 1, words)?,
                            f.span,
                        ))
                    })
                    .collect::<Option<Vec<_>>>()?,
            ),
            _ => return None,
        })
    }

    fn not_constant(&mut self, span: Span, what: &str) {
        self.report(
            Diagnostic::new(
                codes::NOT_CONSTANT,
                span,
                format!("{what} must be known when compiling"),
            )
            .with_label("this is computed at run time")
            .with_help("write a literal, or a `const` bound to one"),
        );
    }

    fn wrong_kind(&mut self, span: Span, what: &str, expected: &str, found: &ConstVal) {
        self.report(
            Diagnostic::new(
                codes::INVALID_SETTING,
                span,
                format!("{what} must be {expected}, found {}", found.kind()),
            )
            .with_label(format!("expected {expected}")),
        );
    }

    /// A positive duration, checked from a folded value.
    pub(crate) fn positive_duration(
        &mut self,
        value: &ConstVal,
        span: Span,
        what: &str,
    ) -> Option<Nanos> {
        match value {
            ConstVal::Duration(d) if *d > 0 => Some(*d),
            ConstVal::Duration(_) => {
                self.report(
                    Diagnostic::new(
                        codes::NON_POSITIVE_DURATION,
                        span,
                        format!("{what} must be a positive duration"),
                    )
                    .with_label("zero or negative")
                    .with_help("write a duration such as `30s` or `5m`"),
                );
                None
            }
            other => {
                let other = other.clone();
                self.wrong_kind(span, what, "a duration (such as `30s`)", &other);
                None
            }
        }
    }

    /// An integer in `[min, max]`, checked from a folded value.
    pub(crate) fn int_in_range(
        &mut self,
        value: &ConstVal,
        span: Span,
        what: &str,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let n = match value {
            ConstVal::Int(i) => *i,
            ConstVal::UInt(u) => i64::try_from(*u).unwrap_or(i64::MAX),
            other => {
                let other = other.clone();
                self.wrong_kind(span, what, "an integer", &other);
                return None;
            }
        };
        if n < min || n > max {
            self.report(
                Diagnostic::new(
                    codes::VALUE_OUT_OF_RANGE,
                    span,
                    format!("{what} must be between {min} and {max}, found {n}"),
                )
                .with_label("out of range"),
            );
            return None;
        }
        Some(n)
    }

    /// A backoff factor: a number of at least 1.
    pub(crate) fn backoff_factor(&mut self, value: &ConstVal, span: Span) -> Option<f64> {
        let f = match value {
            ConstVal::Double(d) => *d,
            ConstVal::Int(i) => *i as f64,
            ConstVal::UInt(u) => *u as f64,
            other => {
                let other = other.clone();
                self.wrong_kind(span, "`backoff`", "a number", &other);
                return None;
            }
        };
        if !(1.0..=100.0).contains(&f) {
            self.report(
                Diagnostic::new(
                    codes::VALUE_OUT_OF_RANGE,
                    span,
                    format!("`backoff` must be between 1.0 and 100.0, found {f}"),
                )
                .with_label("out of range")
                .with_note("1.0 retries at a constant delay; 2.0 doubles the delay each time"),
            );
            return None;
        }
        Some(f)
    }

    /// `settings { ... }` of a workflow.
    pub(crate) fn workflow_settings(
        &mut self,
        m: ModIdx,
        entries: &[&SettingEntry],
    ) -> ir::Settings {
        let mut settings = ir::Settings::default();
        let mut seen: Vec<(&str, Span)> = Vec::new();
        let mut catch_up: Option<(&str, Span)> = None;
        let mut within: Option<(Nanos, Span)> = None;
        for entry in entries {
            let name = entry.name.name.as_str();
            if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
                let first = *first;
                self.report(
                    Diagnostic::new(
                        codes::DUPLICATE_SETTING,
                        entry.name.span,
                        format!("setting `{name}` is given twice"),
                    )
                    .with_label("given again here")
                    .with_secondary(first, "first given here"),
                );
                continue;
            }
            seen.push((name, entry.name.span));
            if !WORKFLOW_SETTINGS.contains(&name) {
                self.report(
                    Diagnostic::new(
                        codes::UNKNOWN_SETTING,
                        entry.name.span,
                        format!("unknown setting `{name}`"),
                    )
                    .with_label("not a workflow setting")
                    .with_suggestion(name, WORKFLOW_SETTINGS.iter().copied())
                    .with_note(
                        "workflow settings are `timeout`, `priority`, `concurrency`, `retry`, and for schedules `catch_up`, `catch_up_within` and `overlap`",
                    ),
                );
                continue;
            }
            let Some(value) = self.fold_setting(m, &entry.value) else {
                self.not_constant(entry.value.span, &format!("setting `{name}`"));
                continue;
            };
            let span = entry.value.span;
            match name {
                "timeout" => settings.timeout = self.positive_duration(&value, span, "`timeout`"),
                "concurrency" => {
                    settings.concurrency = self
                        .int_in_range(&value, span, "`concurrency`", 1, i64::from(u32::MAX))
                        .map(|n| n as u32)
                }
                "priority" => {
                    if let Some(w) = self.one_of(
                        &value,
                        span,
                        "`priority`",
                        "a priority",
                        &["low", "normal", "high"],
                    ) {
                        settings.priority = match w {
                            "low" => Priority::Low,
                            "high" => Priority::High,
                            _ => Priority::Normal,
                        };
                    }
                }
                "catch_up" => {
                    if let Some(w) = self.one_of(
                        &value,
                        span,
                        "`catch_up`",
                        "a catch-up policy",
                        &["latest", "none", "all"],
                    ) {
                        catch_up = Some((w, span));
                    }
                }
                "catch_up_within" => {
                    within = self
                        .positive_duration(&value, span, "`catch_up_within`")
                        .map(|d| (d, span));
                }
                "overlap" => {
                    if let Some(w) = self.one_of(
                        &value,
                        span,
                        "`overlap`",
                        "an overlap policy",
                        &["skip", "buffer", "allow", "cancel"],
                    ) {
                        settings.overlap = match w {
                            "buffer" => ir::Overlap::Buffer,
                            "allow" => ir::Overlap::Allow,
                            "cancel" => ir::Overlap::Cancel,
                            _ => ir::Overlap::Skip,
                        };
                    }
                }
                "retry" => settings.retry = self.settings_retry(&value, span),
                _ => {}
            }
        }
        settings.catch_up = match catch_up {
            Some(("none", _)) => ir::CatchUp::None,
            Some(("all", _)) => ir::CatchUp::All {
                within: within.map_or(DEFAULT_CATCH_UP_WITHIN, |(d, _)| d),
            },
            _ => ir::CatchUp::Latest,
        };
        if let (Some((_, span)), false) = (within, matches!(catch_up, Some(("all", _)))) {
            self.report(
                Diagnostic::new(
                    codes::INVALID_SETTING,
                    span,
                    "`catch_up_within` applies only to `catch_up = all`",
                )
                .with_label("no window to apply")
                .with_help("add `catch_up = all`, or remove `catch_up_within`"),
            );
        }
        settings
    }

    /// A setting that must be one of `words`, bare (`priority = high`) or as a string.
    fn one_of<'w>(
        &mut self,
        value: &ConstVal,
        span: Span,
        what: &str,
        noun: &str,
        words: &[&'w str],
    ) -> Option<&'w str> {
        let word = match value {
            ConstVal::Word(w) | ConstVal::String(w) => Some(w.as_str()),
            _ => None,
        };
        if let Some(found) = word.and_then(|w| words.iter().find(|k| **k == w)) {
            return Some(found);
        }
        let shown = match value {
            ConstVal::Word(w) | ConstVal::String(w) => format!("`{w}`"),
            other => other.kind().to_owned(),
        };
        let list = match words {
            [] => String::new(),
            [only] => format!("`{only}`"),
            [init @ .., last] => format!(
                "{} or `{last}`",
                init.iter()
                    .map(|w| format!("`{w}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let d = Diagnostic::new(
            codes::INVALID_SETTING,
            span,
            format!("{what} must be {list}, found {shown}"),
        )
        .with_label(format!("not {noun}"));
        let d = match word {
            Some(w) => d.with_suggestion(w, words.iter().copied()),
            None => d,
        };
        self.report(d);
        None
    }

    fn settings_retry(&mut self, value: &ConstVal, span: Span) -> Option<ir::Retry> {
        let ConstVal::Record(fields) = value else {
            let value = value.clone();
            self.wrong_kind(
                span,
                "`retry`",
                "a record such as `{ attempts: 3, delay: 2s }`",
                &value,
            );
            return None;
        };
        let mut retry = ir::Retry {
            retries: ConstOr::Const(0),
            delay: ConstOr::Const(DEFAULT_RETRY_DELAY),
            backoff: ConstOr::Const(1.0),
            max_delay: None,
            jitter: false,
            from_settings: true,
        };
        let mut has_attempts = false;
        for (name, v, fspan) in fields {
            match name.as_str() {
                "attempts" => {
                    has_attempts = true;
                    if let Some(n) = self.int_in_range(v, *fspan, "`attempts`", 0, MAX_RETRIES) {
                        retry.retries = ConstOr::Const(n as u32);
                    }
                }
                "delay" => {
                    if let Some(d) = self.positive_duration(v, *fspan, "`delay`") {
                        retry.delay = ConstOr::Const(d);
                    }
                }
                "backoff" => {
                    if let Some(f) = self.backoff_factor(v, *fspan) {
                        retry.backoff = ConstOr::Const(f);
                    }
                }
                "max_delay" => {
                    retry.max_delay = self
                        .positive_duration(v, *fspan, "`max_delay`")
                        .map(ConstOr::Const);
                }
                "jitter" => match v {
                    ConstVal::Bool(b) => retry.jitter = *b,
                    other => {
                        let other = other.clone();
                        self.wrong_kind(*fspan, "`jitter`", "`true` or `false`", &other);
                    }
                },
                other => {
                    self.report(
                        Diagnostic::new(codes::UNKNOWN_SETTING, *fspan, format!("unknown retry field `{other}`"))
                            .with_label("not a retry field")
                            .with_suggestion(other, RETRY_FIELDS.iter().copied())
                            .with_note("retry fields are `attempts`, `delay`, `backoff`, `max_delay` and `jitter`"),
                    );
                }
            }
        }
        if !has_attempts {
            self.report(
                Diagnostic::new(codes::INVALID_SETTING, span, "`retry` needs `attempts`")
                    .with_label("how many times to retry is missing")
                    .with_help("add `attempts: 3`"),
            );
            return None;
        }
        Some(retry)
    }

    /// Parses a cron expression; returns whether it has a seconds field.
    pub(crate) fn validate_cron(&mut self, cron: &str, span: Span) -> Option<bool> {
        let fields = cron.split_whitespace().count();
        let nickname = cron.trim_start().starts_with('@');
        if !nickname && !(fields == 5 || fields == 6) {
            self.report(
                Diagnostic::new(
                    codes::INVALID_CRON,
                    span,
                    format!("a cron expression has 5 fields (or 6 with seconds), found {fields}"),
                )
                .with_label("not a cron expression")
                .with_note(
                    "fields: minute hour day-of-month month day-of-week, e.g. `0 6 * * 1-5`",
                ),
            );
            return None;
        }
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .year(croner::parser::Year::Disallowed)
            .build();
        match parser.parse(cron) {
            Ok(_) => Some(fields == 6),
            Err(e) => {
                self.report(
                    Diagnostic::new(
                        codes::INVALID_CRON,
                        span,
                        format!("invalid cron expression: {e}"),
                    )
                    .with_label("croner cannot parse this")
                    .with_note("fields: [second] minute hour day-of-month month day-of-week"),
                );
                None
            }
        }
    }

    pub(crate) fn validate_time_zone(&mut self, zone: &str, span: Span) -> bool {
        if zone.parse::<chrono_tz::Tz>().is_ok() {
            return true;
        }
        let d = Diagnostic::new(
            codes::UNKNOWN_TIME_ZONE,
            span,
            format!("unknown time zone `{zone}`"),
        )
        .with_label("not an IANA time zone name");
        let d = d.with_suggestion(zone, chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()));
        let d = if d.help.is_none() {
            d.with_help("use a name such as `UTC` or `Europe/London`")
        } else {
            d
        };
        self.report(d);
        false
    }
}

/// Delay before the first retry when a policy gives none.
pub(crate) const DEFAULT_RETRY_DELAY: Nanos = 1_000_000_000;
/// The most retries a policy may ask for.
pub(crate) const MAX_RETRIES: i64 = 100;
