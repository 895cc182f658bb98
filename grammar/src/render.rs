//! Presenting diagnostics: ariadne reports for terminals and one JSON object per
//! diagnostic for programs (`--format json`).

use std::collections::HashMap;
use std::fmt;

use ariadne::{Color, Config, IndexType, Label, Report, ReportKind, Source};
use serde::Serialize;

use crate::diagnostic::{Diagnostic, Severity};
use crate::span::{FileId, SourceMap, Span};

/// Renders diagnostics against a [`SourceMap`], indexing each file once.
pub struct Renderer<'a> {
    sources: &'a SourceMap,
    cache: SourceCache<'a>,
    color: bool,
}

struct SourceCache<'a> {
    map: &'a SourceMap,
    loaded: HashMap<FileId, Source<&'a str>>,
    empty: Source<&'a str>,
}

impl<'a> ariadne::Cache<FileId> for SourceCache<'a> {
    type Storage = &'a str;

    fn fetch(&mut self, id: &FileId) -> Result<&Source<&'a str>, impl fmt::Debug> {
        let map = self.map;
        let source = match map.get(*id) {
            Some(file) => self
                .loaded
                .entry(*id)
                .or_insert_with(|| Source::from(file.text.as_str())),
            None => &self.empty,
        };
        Ok::<_, String>(source)
    }

    fn display<'b>(&self, id: &'b FileId) -> Option<impl fmt::Display + 'b> {
        self.map.get(*id).map(|f| f.name.clone())
    }
}

impl<'a> Renderer<'a> {
    /// `color`: whether to use ANSI colours (callers decide from TTY and `NO_COLOR`).
    pub fn new(sources: &'a SourceMap, color: bool) -> Renderer<'a> {
        Renderer {
            sources,
            cache: SourceCache {
                map: sources,
                loaded: HashMap::new(),
                empty: Source::from(""),
            },
            color,
        }
    }

    /// The report as the terminal shows it: code, message, source excerpt with labels, notes, help.
    pub fn terminal(&mut self, diagnostic: &Diagnostic) -> String {
        let kind = match diagnostic.severity {
            Severity::Error => ReportKind::Error,
            Severity::Warning => ReportKind::Warning,
        };
        let primary_color = match diagnostic.severity {
            Severity::Error => Color::Red,
            Severity::Warning => Color::Yellow,
        };
        let span = self.clamp(diagnostic.span);
        let mut report = Report::build(kind, (span.file, span.range()))
            .with_config(
                Config::default()
                    .with_color(self.color)
                    .with_index_type(IndexType::Byte),
            )
            .with_code(diagnostic.code.id)
            .with_message(&diagnostic.message);
        let mut primary = Label::new((span.file, span.range()))
            .with_color(primary_color)
            .with_order(0);
        // ariadne draws no underline for a label without a message: every primary
        // label gets one, the code's meaning when the diagnostic names none.
        primary =
            primary.with_message(diagnostic.label.as_deref().unwrap_or(diagnostic.code.title));
        report = report.with_label(primary);
        for (i, label) in diagnostic.labels.iter().enumerate() {
            let s = self.clamp(label.span);
            report = report.with_label(
                Label::new((s.file, s.range()))
                    .with_message(&label.message)
                    .with_color(Color::Blue)
                    .with_order(i32::try_from(i + 1).unwrap_or(i32::MAX)),
            );
        }
        for note in &diagnostic.notes {
            report = report.with_note(note);
        }
        if let Some(help) = &diagnostic.help {
            report = report.with_help(help);
        }
        let mut out = Vec::new();
        if report.finish().write(&mut self.cache, &mut out).is_err() {
            return self.plain(diagnostic);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// A one-line form: `file:line:column: error[E0002]: message`.
    pub fn plain(&self, diagnostic: &Diagnostic) -> String {
        let (name, line, column) = match self.sources.get(diagnostic.span.file) {
            Some(file) => {
                let lc = file.line_column(diagnostic.span.start as usize);
                (file.name.as_str(), lc.line, lc.column)
            }
            None => ("<unknown>", 1, 1),
        };
        format!(
            "{name}:{line}:{column}: {}[{}]: {}",
            diagnostic.severity.as_str(),
            diagnostic.code.id,
            diagnostic.message
        )
    }

    /// The JSON object `--format json` prints for one diagnostic.
    pub fn json(&self, diagnostic: &Diagnostic) -> serde_json::Value {
        let primary = self.location(diagnostic.span);
        let labels: Vec<JsonLabel> = diagnostic
            .labels
            .iter()
            .map(|l| JsonLabel {
                message: l.message.clone(),
                location: self.location(l.span),
            })
            .collect();
        let json = JsonDiagnostic {
            code: diagnostic.code.id,
            severity: diagnostic.severity,
            message: &diagnostic.message,
            location: primary,
            label: diagnostic.label.as_deref(),
            labels,
            notes: &diagnostic.notes,
            help: diagnostic.help.as_deref(),
        };
        serde_json::to_value(json).unwrap_or(serde_json::Value::Null)
    }

    fn location(&self, span: Span) -> JsonLocation {
        match self.sources.get(span.file) {
            Some(file) => {
                let start = file.line_column(span.start as usize);
                let end = file.line_column(span.end as usize);
                JsonLocation {
                    file: file.name.clone(),
                    line: start.line,
                    column: start.column,
                    end_line: end.line,
                    end_column: end.column,
                }
            }
            None => JsonLocation {
                file: String::new(),
                line: 1,
                column: 1,
                end_line: 1,
                end_column: 1,
            },
        }
    }

    /// Keeps a span inside its file and on character boundaries, so ariadne never
    /// indexes out of range or into the middle of a character.
    fn clamp(&self, span: Span) -> Span {
        let Some(file) = self.sources.get(span.file) else {
            return Span::new(span.file, 0, 0);
        };
        let text = file.text.as_str();
        let mut start = (span.start as usize).min(text.len());
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (span.end as usize).clamp(start, text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        Span::new(span.file, start, end)
    }
}

#[derive(Serialize)]
struct JsonLocation {
    file: String,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
}

#[derive(Serialize)]
struct JsonLabel {
    message: String,
    #[serde(flatten)]
    location: JsonLocation,
}

#[derive(Serialize)]
struct JsonDiagnostic<'d> {
    code: &'static str,
    severity: Severity,
    message: &'d str,
    #[serde(flatten)]
    location: JsonLocation,
    label: Option<&'d str>,
    labels: Vec<JsonLabel>,
    notes: &'d [String],
    help: Option<&'d str>,
}
