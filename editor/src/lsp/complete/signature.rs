//! Signature help: inside `integration.action(`, the action's signature, its doc and the
//! parameter being written.

use super::*;

pub fn signature_help(text: &str, offset: usize, names: &Names<'_>) -> Option<SignatureHelp> {
    let cx = Context::new(text, offset);
    let open = cx.open_call()?;
    let callee = cx.callee(open);
    let [integration, action] = callee.as_slice() else {
        return None;
    };
    let (i, a) = names.action(integration, action)?;
    let label = action_signature(&i.name.name, a);
    let mut parameters = Vec::new();
    let mut cursor = label.find('(').map_or(0, |p| p + 1);
    for p in &a.params {
        let text = param_text(p);
        let start = label[cursor..].find(&text).map_or(cursor, |s| cursor + s);
        let end = start + text.len();
        parameters.push(ParameterInformation {
            label: ParameterLabel::LabelOffsets([
                utf16_len(&label[..start]),
                utf16_len(&label[..end]),
            ]),
            documentation: p
                .doc
                .clone()
                .map(|d| Documentation::MarkupContent(markup(d))),
        });
        cursor = end;
    }
    // The active parameter: the named argument being written, else by position.
    let mut depth = 0i32;
    let mut commas = 0usize;
    let mut current_name: Option<&str> = None;
    for i in open + 1..cx.before.len() {
        match cx.before.get(i).map(|t| t.kind) {
            Some(TokenKind::LParen | TokenKind::LBracket | TokenKind::LBrace) => depth += 1,
            Some(TokenKind::RParen | TokenKind::RBracket | TokenKind::RBrace) => depth -= 1,
            Some(TokenKind::Comma) if depth == 0 => {
                commas += 1;
                current_name = None;
            }
            Some(TokenKind::Colon) if depth == 0 => {
                current_name = i.checked_sub(1).map(|n| cx.word(n))
            }
            _ => {}
        }
    }
    let active = match current_name {
        Some(name) => a.params.iter().position(|p| p.name.name == name),
        None => Some(commas.min(a.params.len().saturating_sub(1))),
    };
    Some(SignatureHelp {
        signatures: vec![SignatureInformation {
            label,
            documentation: a
                .doc
                .clone()
                .map(|d| Documentation::MarkupContent(markup(d))),
            parameters: Some(parameters),
            active_parameter: active.and_then(|a| u32::try_from(a).ok()),
        }],
        active_signature: Some(0),
        active_parameter: active.and_then(|a| u32::try_from(a).ok()),
    })
}
