//! Tokens of RocketMQ's SQL92 filter dialect (its `SelectorParser.jj`): keywords and
//! identifiers case-insensitive, `'string'` literals with `''` for a quote, decimal literals
//! with an optional `L`, floating literals with an optional exponent, `--` and `/* */`
//! comments. Every token carries its byte position, for error messages.

use super::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// A keyword, upper-cased: NOT AND OR BETWEEN IN TRUE FALSE NULL IS CONTAINS STARTSWITH
    /// ENDSWITH.
    Keyword(&'static str),
    Identifier(String),
    Str(String),
    /// The literal's text without its `L` suffix.
    Decimal(String),
    Float(String),
    /// `=` `<>` `>` `>=` `<` `<=` `(` `)` `,` `+` `-`.
    Symbol(&'static str),
}

const KEYWORDS: [&str; 12] = [
    "NOT",
    "AND",
    "OR",
    "BETWEEN",
    "IN",
    "TRUE",
    "FALSE",
    "NULL",
    "IS",
    "CONTAINS",
    "STARTSWITH",
    "ENDSWITH",
];

/// `(token, byte position)` for every token of `text`.
pub fn tokens(text: &str) -> Result<Vec<(Token, usize)>, ParseError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let c = bytes[at];
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0c) {
            at += 1;
        } else if text[at..].starts_with("--") {
            at = skip_line_comment(text, at);
        } else if text[at..].starts_with("/*") {
            at = skip_block_comment(text, at)?;
        } else if c == b'\'' {
            let (token, end) = string(text, at)?;
            out.push((token, at));
            at = end;
        } else if c.is_ascii_digit() || (c == b'.' && next_is_digit(bytes, at)) {
            let (token, end) = number(text, at)?;
            out.push((token, at));
            at = end;
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
            let end = at
                + bytes[at..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$'))
                    .count();
            out.push((word(&text[at..end]), at));
            at = end;
        } else {
            let (symbol, len) = symbol(&text[at..]).ok_or_else(|| {
                ParseError::at(
                    at,
                    format!(
                        "unexpected character {:?}",
                        text[at..].chars().next().unwrap_or('?')
                    ),
                )
            })?;
            out.push((Token::Symbol(symbol), at));
            at += len;
        }
    }
    Ok(out)
}

fn next_is_digit(bytes: &[u8], at: usize) -> bool {
    bytes.get(at + 1).is_some_and(u8::is_ascii_digit)
}

fn skip_line_comment(text: &str, at: usize) -> usize {
    text[at..]
        .find(['\n', '\r'])
        .map_or(text.len(), |n| at + n + 1)
}

fn skip_block_comment(text: &str, at: usize) -> Result<usize, ParseError> {
    text[at + 2..]
        .find("*/")
        .map(|n| at + 2 + n + 2)
        .ok_or_else(|| ParseError::at(at, "unterminated /* comment".to_string()))
}

fn string(text: &str, start: usize) -> Result<(Token, usize), ParseError> {
    let mut value = String::new();
    let mut chars = text[start + 1..].char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\'' {
            value.push(c);
            continue;
        }
        if chars.peek().is_some_and(|(_, next)| *next == '\'') {
            chars.next();
            value.push('\'');
            continue;
        }
        return Ok((Token::Str(value), start + 1 + i + 1));
    }
    Err(ParseError::at(
        start,
        "unterminated string literal".to_string(),
    ))
}

fn digits(bytes: &[u8], from: usize) -> usize {
    bytes[from..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count()
}

fn number(text: &str, start: usize) -> Result<(Token, usize), ParseError> {
    let bytes = text.as_bytes();
    let mut at = start + digits(bytes, start);
    let mut float = false;
    if bytes.get(at) == Some(&b'.') {
        float = true;
        at += 1;
        at += digits(bytes, at);
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        let mut exp = at + 1;
        if matches!(bytes.get(exp), Some(b'+' | b'-')) {
            exp += 1;
        }
        let n = digits(bytes, exp);
        if n == 0 {
            return Err(ParseError::at(at, "an exponent needs digits".to_string()));
        }
        float = true;
        at = exp + n;
    }
    if float {
        return Ok((Token::Float(text[start..at].to_string()), at));
    }
    let literal = &text[start..at];
    if literal.len() > 1 && literal.starts_with('0') {
        return Err(ParseError::at(
            start,
            format!("decimal literal {literal} has a leading zero"),
        ));
    }
    let end = if matches!(bytes.get(at), Some(b'l' | b'L')) {
        at + 1
    } else {
        at
    };
    Ok((Token::Decimal(literal.to_string()), end))
}

fn word(text: &str) -> Token {
    let upper = text.to_ascii_uppercase();
    match KEYWORDS.iter().find(|k| **k == upper) {
        Some(keyword) => Token::Keyword(keyword),
        None => Token::Identifier(text.to_string()),
    }
}

fn symbol(text: &str) -> Option<(&'static str, usize)> {
    const SYMBOLS: [&str; 11] = ["<>", ">=", "<=", "=", ">", "<", "(", ")", ",", "+", "-"];
    SYMBOLS
        .iter()
        .find(|s| text.starts_with(**s))
        .map(|s| (*s, s.len()))
}
