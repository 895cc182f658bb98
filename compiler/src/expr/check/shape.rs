//! Types of literals while they are joined: an empty list's element, an empty map's key
//! and value, and `optional.none()`'s value are free, and take the type of whatever they
//! are joined with, at any depth (CEL gives them fresh type variables).

use flow_ir::types::{Type, unify};

/// A [`Type`] with free parts. The checker keeps one for each node whose type has a
/// free part; every other node's shape is its type.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Shape {
    /// Not constrained yet; `dyn` if nothing constrains it.
    Free,
    Known(Type),
    List(Box<Shape>),
    Map(Box<Shape>, Box<Shape>),
    /// CEL's `optional_type(T)`.
    Optional(Box<Shape>),
}

impl Shape {
    pub(super) fn has_free(&self) -> bool {
        match self {
            Shape::Free => true,
            Shape::Known(_) => false,
            Shape::List(e) | Shape::Optional(e) => e.has_free(),
            Shape::Map(k, v) => k.has_free() || v.has_free(),
        }
    }

    /// The type a node gets: free parts are `dyn`.
    pub(super) fn to_type(&self) -> Type {
        match self {
            Shape::Free => Type::Dyn,
            Shape::Known(t) => t.clone(),
            Shape::List(e) => Type::list(e.to_type()),
            Shape::Map(k, v) => Type::map(k.to_type(), v.to_type()),
            Shape::Optional(e) => Type::CelOptional(Box::new(e.to_type())),
        }
    }

    /// The most precise shape both fit, as [`unify`] does for types, a free part taking
    /// the other side.
    pub(super) fn unify(a: &Shape, b: &Shape) -> Option<Shape> {
        use Shape as S;
        Some(match (a, b) {
            (S::Free, x) | (x, S::Free) => x.clone(),
            (S::Known(x), S::Known(y)) => S::Known(unify(x, y)?),
            (S::List(x), S::List(y)) => S::List(Box::new(Shape::unify(x, y)?)),
            (S::Optional(x), S::Optional(y)) => S::Optional(Box::new(Shape::unify(x, y)?)),
            (S::Map(xk, xv), S::Map(yk, yv)) => S::Map(
                Box::new(Shape::unify(xk, yk)?),
                Box::new(Shape::unify(xv, yv)?),
            ),
            (S::Known(t), s) | (s, S::Known(t)) => match (t, s) {
                (Type::List(e), S::List(x)) => {
                    S::List(Box::new(Shape::unify(&S::Known((**e).clone()), x)?))
                }
                (Type::CelOptional(e), S::Optional(x)) => {
                    S::Optional(Box::new(Shape::unify(&S::Known((**e).clone()), x)?))
                }
                (Type::Map(k, v), S::Map(x, y)) => S::Map(
                    Box::new(Shape::unify(&S::Known((**k).clone()), x)?),
                    Box::new(Shape::unify(&S::Known((**v).clone()), y)?),
                ),
                (Type::Error, s) => s.clone(),
                // `dyn`, and the types that only unify with a free part's default.
                _ => S::Known(unify(t, &s.to_type())?),
            },
            _ => return None,
        })
    }

    /// [`Shape::unify`], or `dyn` when the two have no common type (the element type of
    /// CEL's heterogeneous list and map literals).
    pub(super) fn join(a: &Shape, b: &Shape) -> Shape {
        Shape::unify(a, b).unwrap_or(Shape::Known(Type::Dyn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(e: Shape) -> Shape {
        Shape::List(Box::new(e))
    }

    #[test]
    fn free_parts_take_the_other_side_at_any_depth() {
        let int_list = Shape::Known(Type::list(Type::Int));
        assert_eq!(
            Shape::join(&list(Shape::Free), &int_list).to_type(),
            Type::list(Type::Int)
        );
        let deep = list(list(Shape::Free));
        assert_eq!(
            Shape::join(&list(Shape::Free), &deep),
            list(list(Shape::Free))
        );
        assert_eq!(
            Shape::join(&deep, &list(int_list.clone())).to_type(),
            Type::list(Type::list(Type::Int))
        );
    }

    #[test]
    fn a_bound_free_part_does_not_widen() {
        let bound = Shape::join(&list(Shape::Free), &Shape::Known(Type::list(Type::Int)));
        let double_list = Shape::Known(Type::list(Type::Double));
        assert_eq!(Shape::join(&bound, &double_list), Shape::Known(Type::Dyn));
        let dyn_list = Shape::Known(Type::list(Type::Dyn));
        assert_eq!(
            Shape::join(&bound, &dyn_list).to_type(),
            Type::list(Type::Dyn)
        );
    }

    #[test]
    fn different_kinds_join_to_dyn() {
        let empty_map = Shape::Map(Box::new(Shape::Free), Box::new(Shape::Free));
        assert_eq!(
            Shape::join(&list(Shape::Free), &empty_map),
            Shape::Known(Type::Dyn)
        );
        let none = Shape::Optional(Box::new(Shape::Free));
        assert_eq!(
            Shape::join(&none, &Shape::Known(Type::Int)),
            Shape::Known(Type::Dyn)
        );
    }
}
