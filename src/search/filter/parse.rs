//! Parsing: syntax first, into raw comparisons; keys and values are checked after.

use super::*;

/// A comparison as written, before the grammar has looked at it.
pub(super) struct RawComparison<'a> {
    /// The whole comparison's text, for messages.
    pub(super) text: &'a str,
    pub(super) ident: Vec<Part>,
    /// Upper-cased, keywords single-spaced (`NOT IN`, `IS NOT NULL`).
    pub(super) comparator: String,
    pub(super) value: RawValue<'a>,
}

pub(super) enum RawValue<'a> {
    None,
    /// A `'...'` or `"..."` literal, quotes removed (MLflow does not unescape).
    Quoted(String),
    /// An unquoted or backtick-quoted word where a value belongs.
    Bare(&'a str),
    Number {
        text: &'a str,
        float: bool,
    },
    List {
        text: &'a str,
        items: ListItems,
    },
}

pub(super) enum ListItems {
    Strings(Vec<String>),
    Empty,
    NotStrings,
    IllFormed,
}

impl RawValue<'_> {
    pub(super) fn text(&self) -> String {
        match self {
            Self::None => String::new(),
            Self::Quoted(s) => format!("'{s}'"),
            Self::Bare(t) | Self::Number { text: t, .. } | Self::List { text: t, .. } => {
                t.to_string()
            }
        }
    }
}

pub(super) struct Parser<'a> {
    pub(super) src: &'a str,
    pub(super) tokens: &'a [Token],
    pub(super) pos: usize,
}

pub(super) const RESERVED: &[&str] = &[
    "AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "ILIKE", "RLIKE",
];

impl<'a> Parser<'a> {
    pub(super) fn peek(&self) -> Option<&'a Token> {
        self.tokens.get(self.pos)
    }

    pub(super) fn next(&mut self) -> Option<&'a Token> {
        let token = self.tokens.get(self.pos);
        self.pos += token.is_some() as usize;
        token
    }

    /// The text of the clause from `start` through the current token, for errors.
    pub(super) fn clause_error(&self, start: usize) -> MlflowError {
        let end = self
            .tokens
            .get(self.pos.saturating_sub(1))
            .map_or(self.src.len(), |t| t.end)
            .max(start);
        invalid_clause(self.src[start..end].trim())
    }

    /// The end of the parenthesised group opening at token `open`.
    pub(super) fn group_end(&self, open: usize) -> (usize, usize) {
        let mut depth = 0usize;
        for (i, token) in self.tokens.iter().enumerate().skip(open) {
            match token.kind {
                Kind::LParen => depth += 1,
                Kind::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        return (i + 1, token.end);
                    }
                }
                _ => {}
            }
        }
        (self.tokens.len(), self.src.len())
    }

    pub(super) fn comparison(&mut self) -> Result<RawComparison<'a>> {
        let first = self.next().expect("caller checked for a token");
        let start = first.start;
        let ident = match &first.kind {
            Kind::Ident(parts)
                if !first
                    .word()
                    .is_some_and(|w| RESERVED.iter().any(|r| r.eq_ignore_ascii_case(w))) =>
            {
                parts.clone()
            }
            // MLflow names a parenthesised group whole: '(metrics.a > 1)'.
            Kind::LParen => {
                let (next, end) = self.group_end(self.pos - 1);
                self.pos = next;
                return Err(invalid_clause(&self.src[start..end]));
            }
            _ => return Err(self.clause_error(start)),
        };
        let comparator = self.comparator(start)?;
        let value = match comparator.as_str() {
            "IS NULL" | "IS NOT NULL" => RawValue::None,
            "IN" | "NOT IN" => match self.peek() {
                Some(t) if t.kind == Kind::LParen => self.list(),
                _ => {
                    self.pos += 1;
                    return Err(self.clause_error(start));
                }
            },
            _ => self.value(start)?,
        };
        let end = self.tokens[self.pos - 1].end;
        Ok(RawComparison {
            text: &self.src[start..end],
            ident,
            comparator,
            value,
        })
    }

    pub(super) fn comparator(&mut self, start: usize) -> Result<String> {
        let Some(token) = self.next() else {
            return Err(self.clause_error(start));
        };
        if token.kind == Kind::Op {
            return Ok(self.src[token.start..token.end].to_string());
        }
        let word = token.word().map(str::to_ascii_uppercase);
        let follow = |parser: &mut Self, allowed: &[&str]| -> Result<String> {
            match parser.next().and_then(Token::word) {
                Some(w) if allowed.iter().any(|a| a.eq_ignore_ascii_case(w)) => {
                    Ok(w.to_ascii_uppercase())
                }
                _ => Err(parser.clause_error(start)),
            }
        };
        match word.as_deref() {
            Some(w @ ("LIKE" | "ILIKE" | "RLIKE" | "IN")) => Ok(w.to_string()),
            Some("NOT") => Ok(format!(
                "NOT {}",
                follow(self, &["LIKE", "ILIKE", "RLIKE", "IN"])?
            )),
            Some("IS") => match follow(self, &["NULL", "NOT"])?.as_str() {
                "NULL" => Ok("IS NULL".to_string()),
                _ => {
                    follow(self, &["NULL"])?;
                    Ok("IS NOT NULL".to_string())
                }
            },
            _ => Err(self.clause_error(start)),
        }
    }

    pub(super) fn value(&mut self, start: usize) -> Result<RawValue<'a>> {
        let Some(token) = self.peek() else {
            return Err(self.clause_error(start));
        };
        let text = &self.src[token.start..token.end];
        let value = match &token.kind {
            Kind::Str => RawValue::Quoted(text[1..text.len() - 1].to_string()),
            Kind::Ident(parts) if parts.len() == 1 && parts[0].quote == Some('"') => {
                RawValue::Quoted(parts[0].text.clone())
            }
            Kind::Ident(_) => RawValue::Bare(text),
            Kind::Number { float } => RawValue::Number {
                text,
                float: *float,
            },
            Kind::LParen => return Ok(self.list()),
            _ => {
                self.pos += 1;
                return Err(self.clause_error(start));
            }
        };
        self.pos += 1;
        Ok(value)
    }

    /// A parenthesised list at the current token. Its shape is judged later,
    /// after the key, because MLflow reports a key that takes no list first.
    pub(super) fn list(&mut self) -> RawValue<'a> {
        let open = self.pos;
        let (next, end) = self.group_end(open);
        let text = &self.src[self.tokens[open].start..end];
        let inner = &self.tokens[open + 1..next.saturating_sub(1).max(open + 1)];
        self.pos = next;
        let closed = self
            .tokens
            .get(next - 1)
            .is_some_and(|t| t.kind == Kind::RParen);
        let mut strings = Vec::new();
        let mut items = if closed {
            None
        } else {
            Some(ListItems::IllFormed)
        };
        let mut expect_item = true;
        for token in inner {
            if items.is_some() {
                break;
            }
            let token_text = &self.src[token.start..token.end];
            match (&token.kind, expect_item) {
                (Kind::Comma, false) => expect_item = true,
                (Kind::Str, true) => {
                    strings.push(token_text[1..token_text.len() - 1].to_string());
                    expect_item = false;
                }
                (Kind::Ident(parts), true) if parts.len() == 1 && parts[0].quote == Some('"') => {
                    strings.push(parts[0].text.clone());
                    expect_item = false;
                }
                (Kind::Number { .. }, true) => {
                    items = Some(ListItems::NotStrings);
                }
                _ => items = Some(ListItems::IllFormed),
            }
        }
        let items = items.unwrap_or(if strings.is_empty() {
            ListItems::Empty
        } else {
            ListItems::Strings(strings)
        });
        RawValue::List { text, items }
    }
}
