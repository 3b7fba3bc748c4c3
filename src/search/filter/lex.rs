//! Lexing. The token shapes follow sqlparse's, which MLflow's parser is built on.

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    /// A dotted identifier: `metrics.acc`, ``tags.`a.b` ``, `"run name"`, or a keyword.
    Ident(Vec<Part>),
    /// A single-quoted string.
    Str,
    Number {
        float: bool,
    },
    /// A run of comparison characters (`=`, `!=`, `<>`, ...).
    Op,
    LParen,
    RParen,
    Comma,
    Semicolon,
    /// Anything else, including an unterminated quote (which runs to the end).
    Other,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Part {
    pub(super) text: String,
    /// The quote character around `text` (`"` or `` ` ``), if any.
    pub(super) quote: Option<char>,
}

#[derive(Debug, Clone)]
pub(super) struct Token {
    pub(super) kind: Kind,
    pub(super) start: usize,
    pub(super) end: usize,
}

impl Token {
    /// An unquoted one-part identifier equal to `word`, ignoring case.
    pub(super) fn is_word(&self, word: &str) -> bool {
        self.word().is_some_and(|w| w.eq_ignore_ascii_case(word))
    }

    pub(super) fn word(&self) -> Option<&str> {
        match &self.kind {
            Kind::Ident(parts) if parts.len() == 1 && parts[0].quote.is_none() => {
                Some(&parts[0].text)
            }
            _ => None,
        }
    }
}

pub(super) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

pub(super) fn char_at(src: &str, i: usize) -> Option<char> {
    src.get(i..).and_then(|s| s.chars().next())
}

pub(super) fn count_digits(src: &str, i: usize) -> usize {
    src.get(i..)
        .map_or(0, |s| s.bytes().take_while(u8::is_ascii_digit).count())
}

/// The end of a quoted run starting at `start`; a doubled quote (and, for
/// `'` and `"`, a backslash-escaped one) stays inside. `None` if unterminated.
pub(super) fn scan_quoted(src: &str, start: usize, quote: u8) -> Option<usize> {
    let bytes = src.as_bytes();
    let mut i = start + 1;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\\' && quote != b'`' && bytes.get(i + 1) == Some(&quote) {
            i += 2;
        } else if b == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return Some(i + 1);
            }
        } else {
            i += 1;
        }
    }
    None
}

/// sqlparse's number literals: `-?\d+(\.\d+)?E-?\d+`, then `-?(\d+\.\d*|\.\d+)`
/// and `-?\d+`, the last two not directly followed by a letter or `_`.
pub(super) fn scan_number(src: &str, start: usize) -> Option<(usize, bool)> {
    let bytes = src.as_bytes();
    let at = |i: usize| bytes.get(i).copied();
    let mut i = start;
    if at(i) == Some(b'-') {
        i += 1;
    }
    let int_digits = count_digits(src, i);
    let not_word_after =
        |end: usize| !char_at(src, end).is_some_and(|c| c.is_alphabetic() || c == '_');
    if int_digits > 0 {
        let mut j = i + int_digits;
        if at(j) == Some(b'.') && count_digits(src, j + 1) > 0 {
            j += 1 + count_digits(src, j + 1);
        }
        if matches!(at(j), Some(b'e' | b'E')) {
            let mut k = j + 1;
            if at(k) == Some(b'-') {
                k += 1;
            }
            let exp_digits = count_digits(src, k);
            if exp_digits > 0 {
                return Some((k + exp_digits, true));
            }
        }
    }
    let int_end = i + int_digits;
    if int_digits > 0 && at(int_end) == Some(b'.') {
        let end = int_end + 1 + count_digits(src, int_end + 1);
        return not_word_after(end).then_some((end, true));
    }
    if int_digits == 0 && at(i) == Some(b'.') && count_digits(src, i + 1) > 0 {
        let end = i + 1 + count_digits(src, i + 1);
        return not_word_after(end).then_some((end, true));
    }
    (int_digits > 0 && not_word_after(int_end)).then_some((int_end, false))
}

/// One identifier part at `i`: a word, or a `"`- or `` ` ``-quoted name.
pub(super) fn scan_part(src: &str, i: usize) -> Option<(Part, usize)> {
    let c = char_at(src, i)?;
    if c == '"' || c == '`' {
        let end = scan_quoted(src, i, c as u8)?;
        let text = src[i + 1..end - 1].to_string();
        return Some((
            Part {
                text,
                quote: Some(c),
            },
            end,
        ));
    }
    if !is_word_char(c) {
        return None;
    }
    let len: usize = src[i..]
        .chars()
        .take_while(|&c| is_word_char(c) || c == '$' || c == '#')
        .map(char::len_utf8)
        .sum();
    let text = src[i..i + len].to_string();
    Some((Part { text, quote: None }, i + len))
}

pub(super) fn scan_ident(src: &str, start: usize) -> Option<(Vec<Part>, usize)> {
    let (first, mut end) = scan_part(src, start)?;
    let mut parts = vec![first];
    while char_at(src, end) == Some('.') {
        match scan_part(src, end + 1) {
            Some((part, next)) => {
                parts.push(part);
                end = next;
            }
            None => break,
        }
    }
    Some((parts, end))
}

pub(super) fn lex(src: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(c) = char_at(src, i) {
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        let start = i;
        let (kind, end) = if let Some((end, float)) = (c.is_ascii_digit() || c == '-' || c == '.')
            .then(|| scan_number(src, i))
            .flatten()
        {
            (Kind::Number { float }, end)
        } else if c == '\'' {
            match scan_quoted(src, i, b'\'') {
                Some(end) => (Kind::Str, end),
                None => (Kind::Other, src.len()),
            }
        } else if c == '"' || c == '`' || is_word_char(c) {
            match scan_ident(src, i) {
                Some((parts, end)) => (Kind::Ident(parts), end),
                None => (Kind::Other, src.len()),
            }
        } else if "<>=!~".contains(c) {
            let len = src[i..]
                .bytes()
                .take_while(|b| b"<>=!~".contains(b))
                .count();
            (Kind::Op, i + len)
        } else {
            let kind = match c {
                '(' => Kind::LParen,
                ')' => Kind::RParen,
                ',' => Kind::Comma,
                ';' => Kind::Semicolon,
                _ => Kind::Other,
            };
            (kind, i + c.len_utf8())
        };
        tokens.push(Token { kind, start, end });
        i = end;
    }
    tokens
}
