//! A character cursor that tracks `line:col` as it moves.

use crate::value::Span;

/// Walks the text one Unicode scalar value at a time; every read is bounds-checked.
pub(crate) struct Cursor {
    chars: Vec<char>,
    pos: usize,
    line: u32,
    col: u32,
}

impl Cursor {
    pub(crate) fn new(text: &str) -> Self {
        Self {
            chars: text.chars().collect(),
            pos: 0,
            line: 1,
            col: 1,
        }
    }

    /// The position of the next character.
    pub(crate) fn span(&self) -> Span {
        Span::new(self.line, self.col)
    }

    /// The index of the next character, for [`Cursor::run_from`].
    pub(crate) fn index(&self) -> usize {
        self.pos
    }

    /// The characters from index `start` to index `end`.
    pub(crate) fn slice(&self, start: usize, end: usize) -> String {
        self.chars
            .get(start..end)
            .map(|chars| chars.iter().collect())
            .unwrap_or_default()
    }

    pub(crate) fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    pub(crate) fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos.checked_add(ahead)?).copied()
    }

    pub(crate) fn peek_is(&self, test: impl Fn(char) -> bool) -> bool {
        self.peek().is_some_and(test)
    }

    pub(crate) fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos = self.pos.saturating_add(1);
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else {
            self.col = self.col.saturating_add(1);
        }
        Some(c)
    }

    pub(crate) fn bump_n(&mut self, n: usize) {
        for _ in 0..n {
            self.bump();
        }
    }

    pub(crate) fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.bump();
            true
        } else {
            false
        }
    }

    pub(crate) fn starts_with(&self, s: &str) -> bool {
        s.chars()
            .enumerate()
            .all(|(i, c)| self.peek_at(i) == Some(c))
    }

    /// At a line feed, a CR LF pair, or the end of the text.
    pub(crate) fn at_eol(&self) -> bool {
        match self.peek() {
            None | Some('\n') => true,
            Some('\r') => self.peek_at(1) == Some('\n'),
            _ => false,
        }
    }

    /// Consumes one line ending; false at anything else (including the end of the text).
    pub(crate) fn eat_eol(&mut self) -> bool {
        if self.starts_with("\r\n") {
            self.bump_n(2);
            true
        } else {
            self.eat('\n')
        }
    }

    /// At `#` or `//`.
    pub(crate) fn at_comment(&self) -> bool {
        self.peek() == Some('#') || self.starts_with("//")
    }

    /// Skips spaces and tabs; true if it skipped any.
    pub(crate) fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while self.peek_is(|c| c == ' ' || c == '\t') {
            self.bump();
        }
        self.pos > start
    }

    /// Skips to the end of the line, leaving the line ending in place.
    pub(crate) fn skip_comment(&mut self) {
        while !self.at_eol() {
            self.bump();
        }
    }

    /// The characters from `start` up to the cursor's line end, cut at a separator or a
    /// comment, trimmed: the text a user meant as one value, for an "unquoted string" hint.
    pub(crate) fn run_from(&self, start: usize) -> String {
        let mut out = String::new();
        let mut i = start;
        while let Some(&c) = self.chars.get(i) {
            let at = |k: usize| self.chars.get(i.saturating_add(k)).copied();
            let comment_follows = at(1) == Some('#') || (at(1) == Some('/') && at(2) == Some('/'));
            if matches!(c, '\n' | '\r' | ',' | ']' | '}' | ')' | ';')
                || (c.is_whitespace() && comment_follows)
            {
                break;
            }
            out.push(c);
            i = i.saturating_add(1);
        }
        out.trim_end().to_owned()
    }
}
