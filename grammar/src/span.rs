//! Source files, file ids and byte spans, with 1-based line/column lookup.

use serde::Serialize;

pub use flow_ir::span::{FileId, Span};

/// A 1-based line and column; the column counts Unicode scalar values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LineColumn {
    pub line: usize,
    pub column: usize,
}

/// One loaded source file.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub id: FileId,
    /// The name shown to users: a path relative to where the command ran, or `<stdlib>/slack.flow`.
    pub name: String,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(id: FileId, name: impl Into<String>, text: impl Into<String>) -> SourceFile {
        let text = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        SourceFile {
            id,
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// Line and column of a byte offset (clamped to the text, snapped back to a char boundary).
    pub fn line_column(&self, offset: usize) -> LineColumn {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let line_start = self.line_starts[line];
        let column = self.text[line_start..offset].chars().count() + 1;
        LineColumn {
            line: line + 1,
            column,
        }
    }

    /// Byte offset of a 0-based line and a 0-based column counted in UTF-16 units (LSP positions).
    pub fn offset_of_utf16(&self, line: usize, column_utf16: usize) -> usize {
        let Some(&start) = self.line_starts.get(line) else {
            return self.text.len();
        };
        let end = self
            .line_starts
            .get(line + 1)
            .copied()
            .unwrap_or(self.text.len());
        let mut units = 0;
        for (i, c) in self.text[start..end].char_indices() {
            if units >= column_utf16 || c == '\n' {
                return start + i;
            }
            units += c.len_utf16();
        }
        end
    }

    /// 0-based line and UTF-16 column of a byte offset (LSP positions).
    pub fn utf16_position(&self, offset: usize) -> (usize, usize) {
        let lc = self.line_column(offset);
        let line_start = self.line_starts[lc.line - 1];
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let col = self.text[line_start..offset]
            .chars()
            .map(char::len_utf16)
            .sum();
        (lc.line - 1, col)
    }

    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }

    /// The text a span covers (empty when the span does not fit this file).
    pub fn slice(&self, span: Span) -> &str {
        self.text.get(span.range()).unwrap_or("")
    }
}

/// All files of one compilation: the user's files, imported files and stdlib modules.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn new() -> SourceMap {
        SourceMap::default()
    }

    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        let id = FileId(u32::try_from(self.files.len()).unwrap_or(u32::MAX));
        self.files.push(SourceFile::new(id, name, text));
        id
    }

    pub fn get(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize)
    }

    pub fn files(&self) -> impl Iterator<Item = &SourceFile> {
        self.files.iter()
    }

    pub fn find_by_name(&self, name: &str) -> Option<&SourceFile> {
        self.files.iter().find(|f| f.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_chars() {
        let f = SourceFile::new(FileId(0), "a.flow", "ab\nçd\n");
        assert_eq!(f.line_column(0), LineColumn { line: 1, column: 1 });
        assert_eq!(f.line_column(3), LineColumn { line: 2, column: 1 });
        // 'ç' is two bytes; 'd' is the second character of line 2.
        assert_eq!(f.line_column(5), LineColumn { line: 2, column: 2 });
        assert_eq!(f.line_column(100), LineColumn { line: 3, column: 1 });
    }

    #[test]
    fn utf16_positions_round_trip() {
        let f = SourceFile::new(FileId(0), "a.flow", "x = \"😀\"\ny");
        let off = f.text.find('y').unwrap();
        assert_eq!(f.utf16_position(off), (1, 0));
        let quote = f.text.rfind('"').unwrap();
        let (l, c) = f.utf16_position(quote);
        assert_eq!((l, c), (0, 7));
        assert_eq!(f.offset_of_utf16(l, c), quote);
    }
}
