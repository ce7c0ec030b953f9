//! RocketMQ's SQL92 message filter: the grammar of its `SelectorParser.jj` and the type and null
//! rules of its expression classes, so a subscription that RocketMQ accepts, refuses or matches
//! is accepted, refused or matched the same way here.
//!
//! Grammar, loosest first: `OR`, `AND`, then `=` `<>` `IS [NOT] NULL`, then `>` `>=` `<` `<=`
//! `[NOT] BETWEEN a AND b` `[NOT] IN ('x', …)` `[NOT] CONTAINS|STARTSWITH|ENDSWITH 'x'`, then
//! unary `+` `-` `NOT`, then literals (`'string'`, decimal with optional `L`, float, `TRUE`,
//! `FALSE`, `NULL`), properties (`[a-z_$][a-z0-9_$]*`, case-insensitive keywords, names kept as
//! written) and parentheses.
//!
//! Checks made while parsing, as RocketMQ makes them (each an error with its byte position):
//! the whole expression and both sides of `AND`/`OR`/`NOT` must be boolean (a property stands
//! for a boolean); `>`-style comparisons and `BETWEEN` take numbers or properties, never string
//! or boolean literals; `=` never takes the `NULL` literal (that is `IS NULL`); `IN` needs a
//! property on its left; `BETWEEN`'s bounds must be in order.
//!
//! Limits: an expression of at most `SQL_EXPRESSION_BYTES_MAX` bytes and
//! `SQL_NESTING_DEPTH_MAX` nested levels (the parser recurses; hostile input cannot overflow the
//! stack).

mod eval;
mod lexer;
mod parser;

pub use eval::{matches as eval_matches, Context, Value};
pub use parser::parse;

/// Longest expression accepted.
pub const SQL_EXPRESSION_BYTES_MAX: usize = 16 * 1024;
/// Deepest nesting (parentheses, unary operators) accepted.
pub const SQL_NESTING_DEPTH_MAX: usize = 64;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Value),
    Property(String),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// RocketMQ's equality (`IS NULL` is equality with the null literal).
    Equal(Box<Expr>, Box<Expr>),
    Compare(Box<Expr>, Comparison, Box<Expr>),
    In {
        property: String,
        values: Vec<String>,
        negated: bool,
    },
    Text {
        value: Box<Expr>,
        op: TextOp,
        search: String,
        negated: bool,
    },
    Negate(Box<Expr>),
    /// A property used where a boolean is expected.
    BooleanCast(Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextOp {
    Contains,
    StartsWith,
    EndsWith,
}

/// Why an expression was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at position {position}: {message}")]
pub struct ParseError {
    /// Byte offset into the expression (0-based).
    pub position: usize,
    pub message: String,
}

impl ParseError {
    pub fn at(position: usize, message: String) -> ParseError {
        ParseError { position, message }
    }
}

#[cfg(test)]
mod tests;
