//! The layout engine: a document of text, line breaks, indentation and groups (in the
//! style of Wadler's "prettier printer"), and the renderer that chooses, group by group,
//! whether it fits on one line or breaks.
//!
//! Comments get two kinds of their own: a trailing comment is a line suffix (kept at the
//! end of the line it was on, after anything else printed on that line), and an own-line
//! comment always sits on a line of its own. Both force every enclosing group to break,
//! so a comment never swallows the code after it.

/// Columns a line may use before a group breaks.
pub const WIDTH: usize = 100;
/// One level of indentation.
pub const INDENT: &str = "  ";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    /// Nothing when flat, a newline when broken.
    Soft,
    /// A space when flat, a newline when broken.
    Space,
    /// Always a newline.
    Hard,
}

#[derive(Clone, Debug)]
pub enum Doc {
    Text(String),
    Line(LineKind),
    /// An empty line, when printed at the start of a line in a broken group and the line
    /// before is not already empty. Never forces a break.
    BlankLine,
    /// A trailing comment: printed at the end of the current line.
    LineSuffix(String),
    /// A comment on a line of its own; whatever follows starts on a new line.
    OwnLine(String),
    Indent(Vec<Doc>),
    Group {
        docs: Vec<Doc>,
        broken: bool,
    },
    IfBreak {
        broken: Vec<Doc>,
        flat: Vec<Doc>,
    },
    Seq(Vec<Doc>),
    /// Printed as a sequence; but when a group before it measures whether it fits, this
    /// part counts at its flat width. A result type after a parameter list uses it, so
    /// the parameters break before the result type does.
    FlatInRest(Vec<Doc>),
}

impl Doc {
    pub fn text(s: impl Into<String>) -> Doc {
        Doc::Text(s.into())
    }

    /// A group; it is broken from the start when anything inside forces a break.
    pub fn group(docs: Vec<Doc>) -> Doc {
        let broken = docs.iter().any(Doc::forces_break);
        Doc::Group { docs, broken }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Doc::Text(s) => s.is_empty(),
            Doc::Seq(docs) | Doc::Indent(docs) | Doc::FlatInRest(docs) => {
                docs.iter().all(Doc::is_empty)
            }
            _ => false,
        }
    }

    /// Whether this document contains a hard line or a comment, which break every
    /// group around them.
    fn forces_break(&self) -> bool {
        match self {
            Doc::Line(LineKind::Hard) | Doc::LineSuffix(_) | Doc::OwnLine(_) => true,
            Doc::Group { broken, .. } => *broken,
            Doc::Seq(docs) | Doc::Indent(docs) | Doc::FlatInRest(docs) => {
                docs.iter().any(Doc::forces_break)
            }
            Doc::IfBreak { flat, .. } => flat.iter().any(Doc::forces_break),
            Doc::Text(_) | Doc::Line(_) | Doc::BlankLine => false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Flat,
    Break,
}

struct Command<'d> {
    indent: usize,
    mode: Mode,
    doc: &'d Doc,
}

/// Renders a document. The result ends with exactly one newline (or is empty) and has no
/// trailing whitespace on any line.
#[cfg(test)]
pub fn render(doc: &Doc) -> String {
    render_checked(doc).0
}

/// Renders a document and says whether it holds trailing comments, whose placement may
/// change what formatting the result again does (a comment that broke a group moves to
/// the end of a line outside it; several comments that meet on one line go to lines of
/// their own): the formatter then formats again until the text is stable.
pub fn render_checked(doc: &Doc) -> (String, bool) {
    let mut out = Renderer::default();
    let mut commands = vec![Command {
        indent: 0,
        mode: Mode::Break,
        doc,
    }];
    while let Some(Command { indent, mode, doc }) = commands.pop() {
        match doc {
            Doc::Text(text) => out.text(indent, text),
            Doc::Seq(docs) | Doc::FlatInRest(docs) => push_all(&mut commands, indent, mode, docs),
            Doc::Indent(docs) => push_all(&mut commands, indent + 1, mode, docs),
            Doc::Group { docs, broken } => {
                let mode =
                    if !broken && (mode == Mode::Flat || fits(docs, &commands, out.remaining())) {
                        Mode::Flat
                    } else {
                        Mode::Break
                    };
                push_all(&mut commands, indent, mode, docs);
            }
            Doc::IfBreak { broken, flat } => {
                push_all(
                    &mut commands,
                    indent,
                    mode,
                    if mode == Mode::Break { broken } else { flat },
                );
            }
            Doc::Line(kind) => match (mode, kind) {
                (Mode::Flat, LineKind::Soft) => {}
                (Mode::Flat, LineKind::Space) => out.text(indent, " "),
                _ => out.newline(indent),
            },
            Doc::BlankLine => {
                if mode == Mode::Break {
                    if out.need_newline {
                        out.newline(indent);
                    }
                    out.blank_line();
                }
            }
            Doc::LineSuffix(comment) => {
                // A trailing comment breaks the groups around it, then ends up at the end
                // of a line that may lie outside them: formatting again can lay the
                // groups out differently, so the formatter checks for a fixpoint.
                out.moved_comments = true;
                out.suffixes.push(comment.clone());
            }
            Doc::OwnLine(comment) => out.own_line(indent, comment),
        }
    }
    let moved = out.moved_comments;
    (out.finish(), moved)
}

fn push_all<'d>(commands: &mut Vec<Command<'d>>, indent: usize, mode: Mode, docs: &'d [Doc]) {
    commands.extend(docs.iter().rev().map(|doc| Command { indent, mode, doc }));
}

/// Whether `docs`, printed flat, and what follows them up to the next line break fit in
/// `width` columns.
fn fits(docs: &[Doc], rest: &[Command<'_>], width: usize) -> bool {
    let mut width = width as isize;
    let mut stack: Vec<(Mode, &Doc)> = docs.iter().rev().map(|d| (Mode::Flat, d)).collect();
    let mut rest = rest.iter().rev();
    loop {
        let (mode, doc) = match stack.pop() {
            Some(entry) => entry,
            None => match rest.next() {
                Some(command) => (command.mode, command.doc),
                None => return true,
            },
        };
        match doc {
            Doc::Text(text) => {
                let first_line = text.split('\n').next().unwrap_or("");
                width -= first_line.chars().count() as isize;
                if width < 0 {
                    return false;
                }
                if text.contains('\n') {
                    return true;
                }
            }
            Doc::Seq(docs) | Doc::Indent(docs) => {
                stack.extend(docs.iter().rev().map(|d| (mode, d)))
            }
            Doc::FlatInRest(docs) => stack.extend(docs.iter().rev().map(|d| (Mode::Flat, d))),
            Doc::Group { docs, broken } => {
                let mode = if *broken { Mode::Break } else { mode };
                stack.extend(docs.iter().rev().map(|d| (mode, d)));
            }
            Doc::IfBreak { broken, flat } => {
                let docs = if mode == Mode::Break { broken } else { flat };
                stack.extend(docs.iter().rev().map(|d| (mode, d)));
            }
            Doc::Line(kind) => match (mode, kind) {
                (Mode::Flat, LineKind::Soft) => {}
                (Mode::Flat, LineKind::Space) => width -= 1,
                _ => return true,
            },
            Doc::OwnLine(_) => return true,
            Doc::BlankLine | Doc::LineSuffix(_) => {}
        }
    }
}

#[derive(Default)]
struct Renderer {
    out: String,
    /// Characters on the current line so far.
    column: usize,
    /// Trailing comments waiting for the end of the line.
    suffixes: Vec<String>,
    /// Set after an own-line comment: the next text starts a new line.
    need_newline: bool,
    /// Whether a trailing comment was placed (see [`render_checked`]).
    moved_comments: bool,
}

impl Renderer {
    fn remaining(&self) -> usize {
        WIDTH.saturating_sub(self.column)
    }

    fn at_line_start(&self) -> bool {
        let line = self.out.rsplit('\n').next().unwrap_or("");
        line.trim().is_empty()
    }

    fn text(&mut self, indent: usize, text: &str) {
        let mut text = text;
        if self.need_newline {
            self.newline(indent);
            text = text.trim_start_matches(' ');
        } else if self.at_line_start() && self.column > 0 {
            // Nothing but indentation so far: a space here would only double it.
            text = text.trim_start_matches(' ');
        }
        if text.is_empty() || (text == " " && self.out.ends_with(' ')) {
            return;
        }
        self.out.push_str(text);
        match text.rfind('\n') {
            Some(i) => self.column = text[i + 1..].chars().count(),
            None => self.column += text.chars().count(),
        }
    }

    /// Writes the pending trailing comments: the first at the end of the current line,
    /// any others (several comments moved to one line) each on a line of its own at
    /// `indent`, where the code that follows them will start.
    fn flush_suffixes(&mut self, indent: usize) {
        for (i, comment) in std::mem::take(&mut self.suffixes).into_iter().enumerate() {
            self.trim_trailing_spaces();
            if i > 0 {
                self.moved_comments = true;
                self.out.push('\n');
                for _ in 0..indent {
                    self.out.push_str(INDENT);
                }
            } else if !self.at_line_start() {
                self.out.push(' ');
            }
            self.out.push_str(&comment);
        }
    }

    fn trim_trailing_spaces(&mut self) {
        let kept = self.out.trim_end_matches([' ', '\t']).len();
        self.out.truncate(kept);
    }

    fn newline(&mut self, indent: usize) {
        self.flush_suffixes(indent);
        self.trim_trailing_spaces();
        if !self.out.is_empty() {
            self.out.push('\n');
        }
        for _ in 0..indent {
            self.out.push_str(INDENT);
        }
        self.column = indent * INDENT.len();
        self.need_newline = false;
    }

    /// Turns the current (still empty) line into an empty line followed by a new one at
    /// the same indentation; never two empty lines in a row, never one at the top.
    fn blank_line(&mut self) {
        if !self.at_line_start() {
            return;
        }
        let indent_len = self.out.len() - self.out.trim_end_matches(' ').len();
        let before = &self.out[..self.out.len() - indent_len];
        if before.is_empty() || before.ends_with("\n\n") || !before.ends_with('\n') {
            return;
        }
        let indentation = self.out[before.len()..].to_owned();
        self.out.truncate(before.len());
        self.out.push('\n');
        self.out.push_str(&indentation);
    }

    fn own_line(&mut self, indent: usize, comment: &str) {
        if !self.at_line_start() || self.need_newline {
            self.newline(indent);
        }
        self.text(indent, comment);
        self.need_newline = true;
    }

    fn finish(mut self) -> String {
        self.flush_suffixes(0);
        let kept = self.out.trim_end().len();
        self.out.truncate(kept);
        if !self.out.is_empty() {
            self.out.push('\n');
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Doc {
        let mut inner = vec![Doc::Line(LineKind::Soft)];
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                inner.push(Doc::text(","));
                inner.push(Doc::Line(LineKind::Space));
            }
            inner.push(Doc::text(*item));
        }
        inner.push(Doc::IfBreak {
            broken: vec![Doc::text(",")],
            flat: vec![],
        });
        Doc::group(vec![
            Doc::text("f("),
            Doc::Indent(inner),
            Doc::Line(LineKind::Soft),
            Doc::text(")"),
        ])
    }

    #[test]
    fn a_group_that_fits_stays_flat() {
        assert_eq!(render(&list(&["a", "b"])), "f(a, b)\n");
    }

    #[test]
    fn a_group_too_wide_breaks_with_a_trailing_comma() {
        let long = "x".repeat(60);
        let out = render(&list(&[&long, &long]));
        assert_eq!(out, format!("f(\n  {long},\n  {long},\n)\n"));
    }

    #[test]
    fn a_trailing_comment_stays_at_the_end_of_its_line_and_breaks_the_group() {
        let doc = Doc::group(vec![
            Doc::text("f("),
            Doc::Indent(vec![
                Doc::Line(LineKind::Soft),
                Doc::text("a"),
                Doc::LineSuffix("// why".into()),
                Doc::IfBreak {
                    broken: vec![Doc::text(",")],
                    flat: vec![],
                },
            ]),
            Doc::Line(LineKind::Soft),
            Doc::text(")"),
        ]);
        assert_eq!(render(&doc), "f(\n  a, // why\n)\n");
    }

    #[test]
    fn an_own_line_comment_gets_its_own_line() {
        let doc = Doc::Seq(vec![
            Doc::text("a ="),
            Doc::OwnLine("// note".into()),
            Doc::text(" b"),
        ]);
        assert_eq!(render(&doc), "a =\n// note\nb\n");
    }

    #[test]
    fn blank_lines_collapse_to_one() {
        let doc = Doc::Seq(vec![
            Doc::text("a"),
            Doc::Line(LineKind::Hard),
            Doc::BlankLine,
            Doc::BlankLine,
            Doc::text("b"),
        ]);
        assert_eq!(render(&doc), "a\n\nb\n");
    }
}
