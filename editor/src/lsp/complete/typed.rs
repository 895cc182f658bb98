//! Completion from static types: the receiver before the cursor's `.` followed from its
//! first name (its type from the latest analysis) through fields, indexes and calls, and
//! the fields, methods and macros that type takes.

use super::*;

impl<'t> Context<'t> {
    /// The receiver of the `.` right before the cursor as a chain of selections, from its
    /// first name on: `issues.`, `open[0].title.`, `items.filter(i, i.ok).`.
    fn receiver_chain(&self) -> Option<Vec<Link<'t>>> {
        if !matches!(
            self.last_kind(),
            Some(TokenKind::Dot | TokenKind::QuestionDot)
        ) {
            return None;
        }
        let mut links = Vec::new();
        let mut end = self.before.len().checked_sub(2)?;
        loop {
            let start = match self.before.get(end)?.kind {
                TokenKind::RBracket => {
                    let open = self.opener_of(end)?;
                    links.push(Link::Index);
                    end = open.checked_sub(1)?;
                    continue;
                }
                TokenKind::RParen => {
                    let open = self.opener_of(end)?;
                    let name = open.checked_sub(1)?;
                    if self.before.get(name)?.kind != TokenKind::Ident {
                        return None;
                    }
                    links.push(Link::Call(self.word(name)));
                    name
                }
                TokenKind::Ident => {
                    links.push(Link::Name(self.word(end)));
                    end
                }
                _ => return None,
            };
            match start
                .checked_sub(1)
                .and_then(|p| self.before.get(p))
                .map(|t| t.kind)
            {
                Some(TokenKind::Dot | TokenKind::QuestionDot) => end = start.checked_sub(2)?,
                _ => break,
            }
        }
        links.reverse();
        Some(links)
    }

    /// The index of the bracket that opens the one closing at `close`.
    fn opener_of(&self, close: usize) -> Option<usize> {
        let mut depth = 0i32;
        for i in (0..=close).rev() {
            match self.before.get(i)?.kind {
                TokenKind::RParen | TokenKind::RBracket | TokenKind::RBrace => depth += 1,
                TokenKind::LParen | TokenKind::LBracket | TokenKind::LBrace => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(i);
                    }
                }
                _ => {}
            }
        }
        None
    }
}

/// One selection in a receiver chain.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Link<'t> {
    Name(&'t str),
    Index,
    Call(&'t str),
}

/// The static type of the receiver before the cursor's `.`, from the analysis.
pub(super) fn receiver_type(cx: &Context<'_>, names: &Names<'_>, offset: usize) -> Option<Type> {
    let chain = cx.receiver_chain()?;
    let (Link::Name(first), rest) = chain.split_first()? else {
        return None;
    };
    let mut ty = names.type_of(first, offset)?;
    for link in rest {
        ty = select(&ty, *link)?;
    }
    Some(ty)
}

/// The type of one selection from a value of type `ty`.
fn select(ty: &Type, link: Link<'_>) -> Option<Type> {
    match (ty, link) {
        (Type::Dyn, Link::Name(_) | Link::Index) => Some(Type::Dyn),
        (Type::Optional(inner) | Type::CelOptional(inner), Link::Name(_) | Link::Index) => {
            select(inner, link)
        }
        (Type::Record(r), Link::Name(field)) => r.field(field).map(|(_, t)| t.clone()),
        (Type::Map(_, value), Link::Name(_) | Link::Index) => Some((**value).clone()),
        (Type::List(element), Link::Index) => Some((**element).clone()),
        (_, Link::Call(name)) => method_result(ty, name),
        _ => None,
    }
}

/// The macros a list or map receiver takes, with what they give.
const COLLECTION_MACROS: &[(&str, &str)] = &[
    ("all", "all(x, predicate) -> bool"),
    ("exists", "exists(x, predicate) -> bool"),
    ("exists_one", "exists_one(x, predicate) -> bool"),
    ("filter", "filter(x, predicate) -> same type"),
    ("map", "map(x, expression) -> list"),
    ("sort_by", "sort_by(x, key) -> same type"),
    ("group_by", "group_by(x, key) -> map"),
];

/// After `x.` where `x` has a known static type: the fields of its record type, then
/// exactly the methods and macros that accept that type.
pub(super) fn typed_members(ty: &Type, items: &mut Vec<CompletionItem>) {
    let record = match ty {
        Type::Record(r) => Some(r),
        Type::Optional(inner) => match &**inner {
            Type::Record(r) => Some(r),
            _ => None,
        },
        _ => None,
    };
    for (i, field) in record.iter().flat_map(|r| r.fields.iter()).enumerate() {
        let mut item = simple(
            &field.name,
            CompletionItemKind::FIELD,
            &field.ty.to_string(),
        );
        item.sort_text = Some(format!("0{i:04}"));
        items.push(item);
    }
    if matches!(ty, Type::List(_) | Type::Map(..) | Type::Dyn) {
        for (name, signature) in COLLECTION_MACROS {
            let mut item = simple(
                name,
                CompletionItemKind::METHOD,
                &format!("{ty}.{signature}"),
            );
            item.sort_text = Some(format!("1{name}"));
            items.push(item);
        }
    }
    for method in methods_of(ty) {
        let mut item = simple(&method.name, CompletionItemKind::METHOD, &method.signature);
        item.documentation = Some(markdown(method.doc.to_owned()));
        item.sort_text = Some(format!("1{}", method.name));
        items.push(item);
    }
    let unique = dedup(std::mem::take(items));
    items.extend(unique);
}
