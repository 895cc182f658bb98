//! Between Flow's byte spans and diagnostics and the protocol's UTF-16 positions.

use flow_grammar::span::SourceFile;
use flow_grammar::{Diagnostic, Severity, SourceMap, Span};
use tower_lsp_server::ls_types::{
    self as lsp, DiagnosticRelatedInformation, Location, NumberOrString, Position, Range, Uri,
};

/// The protocol position of a byte offset.
pub fn position(file: &SourceFile, offset: usize) -> Position {
    let (line, character) = file.utf16_position(offset);
    Position::new(clamp(line), clamp(character))
}

/// The byte offset of a protocol position (clamped to the text).
pub fn offset(file: &SourceFile, position: Position) -> usize {
    file.offset_of_utf16(position.line as usize, position.character as usize)
}

pub fn range(file: &SourceFile, span: Span) -> Range {
    Range::new(
        position(file, span.start as usize),
        position(file, span.end as usize),
    )
}

fn clamp(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A diagnostic as the editor shows it: the message `flow check` prints, its code, the
/// primary label, notes and help on the lines below, secondary labels as related
/// locations.
pub fn diagnostic(
    sources: &SourceMap,
    file: &SourceFile,
    d: &Diagnostic,
    uri_of: &dyn Fn(&str) -> Option<Uri>,
) -> lsp::Diagnostic {
    let mut message = d.message.clone();
    if let Some(label) = &d.label
        && !label.is_empty()
    {
        message.push_str(&format!("\n{label}"));
    }
    for note in &d.notes {
        message.push_str(&format!("\nnote: {note}"));
    }
    if let Some(help) = &d.help {
        message.push_str(&format!("\nhelp: {help}"));
    }
    let related: Vec<DiagnosticRelatedInformation> = d
        .labels
        .iter()
        .filter_map(|label| {
            let target = sources.get(label.span.file)?;
            Some(DiagnosticRelatedInformation {
                location: Location::new(uri_of(&target.name)?, range(target, label.span)),
                message: label.message.clone(),
            })
        })
        .collect();
    lsp::Diagnostic {
        range: range(file, d.span),
        severity: Some(match d.severity {
            Severity::Error => lsp::DiagnosticSeverity::ERROR,
            Severity::Warning => lsp::DiagnosticSeverity::WARNING,
        }),
        code: Some(NumberOrString::String(d.code.id.to_owned())),
        source: Some("flow".to_owned()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        ..lsp::Diagnostic::default()
    }
}
