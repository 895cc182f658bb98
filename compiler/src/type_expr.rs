//! Written types (`TypeExpr` in the AST) resolved to the IR's static [`Type`]s.

use flow_grammar::ast::{Path, TypeExpr, TypeExprKind};
use flow_grammar::{Diagnostic, codes};
use flow_ir::types::{BUILTIN_TYPE_NAMES, Type, builtin_type};

/// Converts a written type to a [`Type`]. Builtin names are resolved here; any other
/// name is passed to `named` (the caller's named types and imports), and an unknown
/// name is reported (with a suggestion) and becomes [`Type::Error`].
pub fn type_from_ast(
    ty: &TypeExpr,
    named: &dyn Fn(&Path) -> Option<Type>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Type {
    use TypeExprKind;
    match &ty.kind {
        TypeExprKind::Named(path) => {
            if path.segments.len() == 1
                && let Some(t) = builtin_type(&path.segments[0].name)
            {
                return t;
            }
            match named(path) {
                Some(t) => t,
                None => {
                    let name = path.dotted();
                    diagnostics.push(
                        Diagnostic::new(
                            codes::UNKNOWN_TYPE,
                            path.span,
                            format!("unknown type `{name}`"),
                        )
                        .with_label("no type has this name here")
                        .with_suggestion(&name, BUILTIN_TYPE_NAMES.iter().copied()),
                    );
                    Type::Error
                }
            }
        }
        TypeExprKind::List(elem) => Type::list(type_from_ast(elem, named, diagnostics)),
        TypeExprKind::Map(key, value) => {
            let k = type_from_ast(key, named, diagnostics);
            if !matches!(
                k,
                Type::String | Type::Int | Type::UInt | Type::Bool | Type::Dyn | Type::Error
            ) {
                diagnostics.push(
                    Diagnostic::new(
                        codes::INVALID_MAP_KEY,
                        key.span,
                        format!("`{k}` cannot be a map key"),
                    )
                    .with_label("map keys are `string`, `int`, `uint` or `bool`"),
                );
            }
            Type::map(k, type_from_ast(value, named, diagnostics))
        }
        TypeExprKind::Record(fields) => {
            let mut seen: Vec<&str> = Vec::new();
            let mut out = Vec::with_capacity(fields.len());
            for field in fields {
                if seen.contains(&field.name.name.as_str()) {
                    diagnostics.push(
                        Diagnostic::new(
                            codes::DUPLICATE_FIELD,
                            field.name.span,
                            format!("field `{}` is declared twice", field.name.name),
                        )
                        .with_label("declared again here"),
                    );
                    continue;
                }
                seen.push(&field.name.name);
                out.push((
                    field.name.name.clone(),
                    type_from_ast(&field.ty, named, diagnostics),
                ));
            }
            Type::record(None, out)
        }
        TypeExprKind::Optional(inner) => Type::optional(type_from_ast(inner, named, diagnostics)),
    }
}
