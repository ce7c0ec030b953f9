//! Evaluating a parsed expression against one message, with RocketMQ's three-valued logic and
//! type rules:
//! - a property that is not there is NULL; property values are strings;
//! - `=`: NULL on one side only is unknown (NULL) when the left is NULL, false otherwise; values
//!   of different types are converted the way RocketMQ's `__compare` converts them (a string
//!   against a number is parsed as that number's type; a number is widened: int → long →
//!   double); a failed conversion is an error, and an error means "does not match";
//! - `>` and friends: NULL on either side is NULL; two strings are compared as doubles;
//! - `AND` / `OR` / `NOT` over true, false and NULL as SQL defines them;
//! - `IN`: NULL for a missing property; `CONTAINS` and friends: false (not NULL) for a missing
//!   property or an empty search string;
//! - a property used as a boolean is true only if its value is a boolean (never, for string
//!   properties); a message matches only when the whole expression is true.

use std::cmp::Ordering;
use std::fmt;
use std::rc::Rc;

use super::{Comparison, Expr, TextOp};

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i32),
    Long(i64),
    Double(f64),
    Str(Rc<str>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => write!(f, "NULL"),
            Value::Bool(b) => write!(f, "{}", if *b { "TRUE" } else { "FALSE" }),
            Value::Int(v) => write!(f, "{v}"),
            Value::Long(v) => write!(f, "{v}"),
            Value::Double(v) => write!(f, "{v}"),
            Value::Str(s) => write!(f, "'{}'", s.replace('\'', "''")),
        }
    }
}

/// Where property values come from.
pub trait Context {
    fn property(&self, name: &str) -> Option<Rc<str>>;
}

/// An evaluation that cannot go on (a string that is not the number it is compared with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError;

type Eval = Result<Value, EvalError>;

/// Java's `Boolean.valueOf(String)`.
fn java_bool(s: &str) -> bool {
    s.eq_ignore_ascii_case("true")
}

/// Java's `Double.valueOf` on the strings that matter here (surrounding spaces, a `d`/`f`
/// suffix).
fn java_double(s: &str) -> Result<f64, EvalError> {
    let t = s.trim();
    let t = t.strip_suffix(['d', 'D', 'f', 'F']).unwrap_or(t);
    t.parse().map_err(|_| EvalError)
}

impl Value {
    /// RocketMQ's `__compare` (with string conversion on, as its parser sets it). `None` when
    /// the types cannot be ordered (Java answers -1 then; callers treat it as "not equal").
    fn ordering(&self, other: &Value) -> Result<Option<Ordering>, EvalError> {
        use Value::*;
        Ok(match (self, other) {
            (Bool(a), Bool(b)) => Some(a.cmp(b)),
            (Int(a), Int(b)) => Some(a.cmp(b)),
            (Long(a), Long(b)) => Some(a.cmp(b)),
            (Double(a), Double(b)) => a.partial_cmp(b),
            (Str(a), Str(b)) => Some(a.as_ref().cmp(b.as_ref())),
            (Int(a), Long(b)) => Some(i64::from(*a).cmp(b)),
            (Long(a), Int(b)) => Some(a.cmp(&i64::from(*b))),
            (Int(a), Double(b)) => f64::from(*a).partial_cmp(b),
            (Double(a), Int(b)) => a.partial_cmp(&f64::from(*b)),
            (Long(a), Double(b)) => (*a as f64).partial_cmp(b),
            (Double(a), Long(b)) => a.partial_cmp(&(*b as f64)),
            (Int(a), Str(b)) => Some(a.cmp(&b.parse::<i32>().map_err(|_| EvalError)?)),
            (Long(a), Str(b)) => Some(a.cmp(&b.parse::<i64>().map_err(|_| EvalError)?)),
            (Double(a), Str(b)) => a.partial_cmp(&java_double(b)?),
            (Str(a), Int(b)) => Some(a.parse::<i32>().map_err(|_| EvalError)?.cmp(b)),
            (Str(a), Long(b)) => Some(a.parse::<i64>().map_err(|_| EvalError)?.cmp(b)),
            (Str(a), Double(b)) => java_double(a)?.partial_cmp(b),
            (Str(a), Bool(b)) => Some(java_bool(a).cmp(b)),
            // RocketMQ casts the wrong side here and fails: a boolean literal on the left of a
            // string never matches.
            (Bool(_), Str(_)) => return Err(EvalError),
            _ => None,
        })
    }

    /// Ordering for the parse-time BETWEEN check (numbers only).
    pub fn compare(&self, other: &Value) -> Option<Ordering> {
        self.ordering(other).ok().flatten()
    }
}

fn truth(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        _ => None,
    }
}

fn from_truth(t: Option<bool>) -> Value {
    t.map_or(Value::Null, Value::Bool)
}

/// True when the whole expression is true for `context`; an evaluation error is false.
pub fn matches(expr: &Expr, context: &dyn Context) -> bool {
    matches!(evaluate(expr, context), Ok(Value::Bool(true)))
}

pub fn evaluate(expr: &Expr, context: &dyn Context) -> Eval {
    Ok(match expr {
        Expr::Literal(v) => v.clone(),
        Expr::Property(name) => context.property(name).map_or(Value::Null, Value::Str),
        Expr::And(l, r) => and(evaluate(l, context)?, || evaluate(r, context))?,
        Expr::Or(l, r) => or(evaluate(l, context)?, || evaluate(r, context))?,
        Expr::Not(inner) => from_truth(truth(&evaluate(inner, context)?).map(|b| !b)),
        Expr::Equal(l, r) => equal(&evaluate(l, context)?, &evaluate(r, context)?)?,
        Expr::Compare(l, op, r) => compare(&evaluate(l, context)?, *op, &evaluate(r, context)?)?,
        Expr::In {
            property,
            values,
            negated,
        } => match context.property(property) {
            None => Value::Null,
            Some(v) => Value::Bool(values.iter().any(|x| x.as_str() == v.as_ref()) ^ negated),
        },
        Expr::Text {
            value,
            op,
            search,
            negated,
        } => text(&evaluate(value, context)?, *op, search, *negated),
        Expr::Negate(inner) => negate(evaluate(inner, context)?)?,
        Expr::BooleanCast(inner) => match evaluate(inner, context)? {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(b),
            _ => Value::Bool(false),
        },
    })
}

fn and(left: Value, right: impl FnOnce() -> Eval) -> Eval {
    let l = truth(&left);
    if l == Some(false) {
        return Ok(Value::Bool(false));
    }
    let r = truth(&right()?);
    Ok(match (l, r) {
        (_, Some(false)) => Value::Bool(false),
        (Some(true), Some(true)) => Value::Bool(true),
        _ => Value::Null,
    })
}

fn or(left: Value, right: impl FnOnce() -> Eval) -> Eval {
    let l = truth(&left);
    if l == Some(true) {
        return Ok(Value::Bool(true));
    }
    let r = truth(&right()?);
    Ok(match (l, r) {
        (_, Some(true)) => Value::Bool(true),
        (Some(false), Some(false)) => Value::Bool(false),
        _ => Value::Null,
    })
}

fn equal(l: &Value, r: &Value) -> Eval {
    match (l, r) {
        (Value::Null, Value::Null) => Ok(Value::Bool(true)),
        (Value::Null, _) => Ok(Value::Null),
        (_, Value::Null) => Ok(Value::Bool(false)),
        _ if l == r => Ok(Value::Bool(true)),
        _ => Ok(Value::Bool(l.ordering(r)? == Some(Ordering::Equal))),
    }
}

fn compare(l: &Value, op: Comparison, r: &Value) -> Eval {
    if matches!(l, Value::Null) || matches!(r, Value::Null) {
        return Ok(Value::Null);
    }
    let ordering = match (l, r) {
        (Value::Str(a), Value::Str(b)) => java_double(a)?.partial_cmp(&java_double(b)?),
        _ => l.ordering(r)?,
    };
    let Some(ordering) = ordering else {
        // Java's -1 for types it cannot order.
        return Ok(Value::Bool(matches!(
            op,
            Comparison::Less | Comparison::LessOrEqual
        )));
    };
    Ok(Value::Bool(match op {
        Comparison::Greater => ordering == Ordering::Greater,
        Comparison::GreaterOrEqual => ordering != Ordering::Less,
        Comparison::Less => ordering == Ordering::Less,
        Comparison::LessOrEqual => ordering != Ordering::Greater,
    }))
}

fn text(value: &Value, op: TextOp, search: &str, negated: bool) -> Value {
    let Value::Str(s) = value else {
        return Value::Bool(false);
    };
    if search.is_empty() {
        return Value::Bool(false);
    }
    let found = match op {
        TextOp::Contains => s.contains(search),
        TextOp::StartsWith => s.starts_with(search),
        TextOp::EndsWith => s.ends_with(search),
    };
    Value::Bool(found ^ negated)
}

fn negate(value: Value) -> Eval {
    Ok(match value {
        Value::Int(v) => v
            .checked_neg()
            .map_or(Value::Long(-i64::from(v)), Value::Int),
        Value::Long(v) => Value::Long(v.wrapping_neg()),
        Value::Double(v) => Value::Double(-v),
        _ => Value::Null,
    })
}
