//! Recursive descent over the tokens, one function per grammar level, with RocketMQ's
//! parse-time checks (see the module above).

use super::eval::Value;
use super::lexer::{tokens, Token};
use super::{
    Comparison, Expr, ParseError, TextOp, SQL_EXPRESSION_BYTES_MAX, SQL_NESTING_DEPTH_MAX,
};

/// Parses a whole expression; it must be boolean.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    if text.len() > SQL_EXPRESSION_BYTES_MAX {
        return Err(ParseError::at(
            0,
            format!("the expression is longer than {SQL_EXPRESSION_BYTES_MAX} bytes"),
        ));
    }
    let tokens = tokens(text)?;
    let mut parser = Parser {
        tokens,
        next: 0,
        end: text.len(),
        depth: 0,
    };
    if parser.tokens.is_empty() {
        return Err(ParseError::at(0, "the expression is empty".into()));
    }
    let expr = parser.or()?;
    if let Some((token, at)) = parser.tokens.get(parser.next) {
        return Err(ParseError::at(
            *at,
            format!("unexpected {token:?} after a complete expression"),
        ));
    }
    parser.boolean(expr, 0)
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    next: usize,
    /// Byte length of the text, the position of "end of input".
    end: usize,
    depth: usize,
}

fn is_boolean(expr: &Expr) -> bool {
    match expr {
        Expr::Literal(value) => matches!(value, Value::Bool(_) | Value::Null),
        Expr::Property(_) | Expr::Negate(_) => false,
        _ => true,
    }
}

impl Parser {
    fn position(&self) -> usize {
        self.tokens.get(self.next).map_or(self.end, |(_, at)| *at)
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next).map(|(t, _)| t)
    }

    fn peek2(&self) -> Option<&Token> {
        self.tokens.get(self.next + 1).map(|(t, _)| t)
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        if matches!(self.peek(), Some(Token::Keyword(k)) if *k == keyword) {
            self.next += 1;
            return true;
        }
        false
    }

    fn eat_symbol(&mut self, symbol: &str) -> bool {
        if matches!(self.peek(), Some(Token::Symbol(s)) if *s == symbol) {
            self.next += 1;
            return true;
        }
        false
    }

    fn expect_symbol(&mut self, symbol: &str) -> Result<(), ParseError> {
        if self.eat_symbol(symbol) {
            return Ok(());
        }
        Err(ParseError::at(
            self.position(),
            format!("expected {symbol:?}"),
        ))
    }

    fn expect_keyword(&mut self, keyword: &str) -> Result<(), ParseError> {
        if self.eat_keyword(keyword) {
            return Ok(());
        }
        Err(ParseError::at(
            self.position(),
            format!("expected {keyword}"),
        ))
    }

    /// RocketMQ's `asBooleanExpression`: a property becomes a boolean cast; anything else that
    /// is not boolean is refused.
    fn boolean(&self, expr: Expr, at: usize) -> Result<Expr, ParseError> {
        match expr {
            Expr::Property(_) => Ok(Expr::BooleanCast(Box::new(expr))),
            e if is_boolean(&e) => Ok(e),
            e => Err(ParseError::at(
                at,
                format!("{e:?} does not result in a boolean value"),
            )),
        }
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let at = self.position();
        let mut left = self.and()?;
        while self.eat_keyword("OR") {
            let right_at = self.position();
            let right = self.and()?;
            left = Expr::Or(
                Box::new(self.boolean(left, at)?),
                Box::new(self.boolean(right, right_at)?),
            );
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let at = self.position();
        let mut left = self.equality()?;
        while self.eat_keyword("AND") {
            let right_at = self.position();
            let right = self.equality()?;
            left = Expr::And(
                Box::new(self.boolean(left, at)?),
                Box::new(self.boolean(right, right_at)?),
            );
        }
        Ok(left)
    }

    fn equality(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.comparison()?;
        loop {
            let at = self.position();
            let negated = if self.eat_symbol("=") {
                false
            } else if self.eat_symbol("<>") {
                true
            } else if matches!(self.peek(), Some(Token::Keyword("IS"))) {
                self.next += 1;
                let not = self.eat_keyword("NOT");
                self.expect_keyword("NULL")?;
                let is_null = Expr::Equal(Box::new(left), Box::new(Expr::Literal(Value::Null)));
                left = if not {
                    Expr::Not(Box::new(is_null))
                } else {
                    is_null
                };
                continue;
            } else {
                return Ok(left);
            };
            let right = self.comparison()?;
            check_equal_operands(&left, &right, at)?;
            let equal = Expr::Equal(Box::new(left), Box::new(right));
            left = if negated {
                Expr::Not(Box::new(equal))
            } else {
                equal
            };
        }
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        loop {
            let at = self.position();
            let op = match self.peek() {
                Some(Token::Symbol(">")) => Comparison::Greater,
                Some(Token::Symbol(">=")) => Comparison::GreaterOrEqual,
                Some(Token::Symbol("<")) => Comparison::Less,
                Some(Token::Symbol("<=")) => Comparison::LessOrEqual,
                _ => match self.keyword_operator(left, at)? {
                    Ok(next) => {
                        left = next;
                        continue;
                    }
                    Err(unchanged) => return Ok(unchanged),
                },
            };
            self.next += 1;
            let right = self.unary()?;
            left = compare(left, op, right, at)?;
        }
    }

    /// The keyword operators of the comparison level: `[NOT] BETWEEN|IN|CONTAINS|STARTSWITH|
    /// ENDSWITH`. `Err(left)` hands `left` back when no such operator follows.
    fn keyword_operator(
        &mut self,
        left: Expr,
        at: usize,
    ) -> Result<Result<Expr, Expr>, ParseError> {
        let negated = matches!(self.peek(), Some(Token::Keyword("NOT")))
            && matches!(
                self.peek2(),
                Some(Token::Keyword(
                    "BETWEEN" | "IN" | "CONTAINS" | "STARTSWITH" | "ENDSWITH"
                ))
            );
        let keyword = match (negated, if negated { self.peek2() } else { self.peek() }) {
            (_, Some(Token::Keyword(k)))
                if matches!(
                    *k,
                    "BETWEEN" | "IN" | "CONTAINS" | "STARTSWITH" | "ENDSWITH"
                ) =>
            {
                *k
            }
            _ => return Ok(Err(left)),
        };
        self.next += if negated { 2 } else { 1 };
        let expr = match keyword {
            "BETWEEN" => self.between(left, negated, at)?,
            "IN" => self.in_list(left, negated, at)?,
            text => {
                let op = match text {
                    "CONTAINS" => TextOp::Contains,
                    "STARTSWITH" => TextOp::StartsWith,
                    _ => TextOp::EndsWith,
                };
                let search = self.string_literal()?;
                Expr::Text {
                    value: Box::new(left),
                    op,
                    search,
                    negated,
                }
            }
        };
        Ok(Ok(expr))
    }

    fn between(&mut self, value: Expr, negated: bool, at: usize) -> Result<Expr, ParseError> {
        let low_at = self.position();
        let low = self.unary()?;
        self.expect_keyword("AND")?;
        let high = self.unary()?;
        if let (Expr::Literal(l), Expr::Literal(h)) = (&low, &high) {
            if matches!(l, Value::Null) || matches!(h, Value::Null) {
                return Err(ParseError::at(
                    low_at,
                    "the bounds of BETWEEN cannot be NULL".into(),
                ));
            }
            if h.compare(l) == Some(std::cmp::Ordering::Less) {
                return Err(ParseError::at(
                    low_at,
                    format!("BETWEEN's low bound {l} is above its high bound {h}"),
                ));
            }
        }
        Ok(if negated {
            Expr::Or(
                Box::new(compare(value.clone(), Comparison::Less, low, at)?),
                Box::new(compare(value, Comparison::Greater, high, at)?),
            )
        } else {
            Expr::And(
                Box::new(compare(value.clone(), Comparison::GreaterOrEqual, low, at)?),
                Box::new(compare(value, Comparison::LessOrEqual, high, at)?),
            )
        })
    }

    fn in_list(&mut self, left: Expr, negated: bool, at: usize) -> Result<Expr, ParseError> {
        let Expr::Property(property) = left else {
            return Err(ParseError::at(
                at,
                format!("IN needs a property on its left, not {left:?}"),
            ));
        };
        self.expect_symbol("(")?;
        let mut values = vec![self.string_literal()?];
        while self.eat_symbol(",") {
            values.push(self.string_literal()?);
        }
        self.expect_symbol(")")?;
        Ok(Expr::In {
            property,
            values,
            negated,
        })
    }

    fn string_literal(&mut self) -> Result<String, ParseError> {
        match self.tokens.get(self.next) {
            Some((Token::Str(s), _)) => {
                let s = s.clone();
                self.next += 1;
                Ok(s)
            }
            _ => Err(ParseError::at(
                self.position(),
                "expected a 'string' literal".into(),
            )),
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        self.depth += 1;
        if self.depth > SQL_NESTING_DEPTH_MAX {
            return Err(ParseError::at(
                self.position(),
                format!("nested deeper than {SQL_NESTING_DEPTH_MAX} levels"),
            ));
        }
        let at = self.position();
        let expr = if self.eat_symbol("+") {
            self.unary()
        } else if self.eat_symbol("-") {
            self.unary().map(|e| Expr::Negate(Box::new(e)))
        } else if self.eat_keyword("NOT") {
            let inner = self.unary()?;
            self.boolean(inner, at).map(|e| Expr::Not(Box::new(e)))
        } else {
            self.primary()
        };
        self.depth -= 1;
        expr
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let at = self.position();
        let Some((token, _)) = self.tokens.get(self.next).cloned() else {
            return Err(ParseError::at(at, "the expression ends too early".into()));
        };
        self.next += 1;
        Ok(match token {
            Token::Str(s) => Expr::Literal(Value::Str(s.into())),
            Token::Decimal(text) => Expr::Literal(decimal(&text, at)?),
            Token::Float(text) => Expr::Literal(float(&text, at)?),
            Token::Keyword("TRUE") => Expr::Literal(Value::Bool(true)),
            Token::Keyword("FALSE") => Expr::Literal(Value::Bool(false)),
            Token::Keyword("NULL") => Expr::Literal(Value::Null),
            Token::Identifier(name) => Expr::Property(name),
            Token::Symbol("(") => {
                let inner = self.or()?;
                self.expect_symbol(")")?;
                inner
            }
            other => return Err(ParseError::at(at, format!("unexpected {other:?}"))),
        })
    }
}

/// RocketMQ's `createFromDecimal`: an `int` if it fits, else a `long`.
fn decimal(text: &str, at: usize) -> Result<Value, ParseError> {
    let value: i64 = text
        .parse()
        .map_err(|_| ParseError::at(at, format!("{text} does not fit a 64-bit integer")))?;
    Ok(match i32::try_from(value) {
        Ok(int) => Value::Int(int),
        Err(_) => Value::Long(value),
    })
}

fn float(text: &str, at: usize) -> Result<Value, ParseError> {
    let value: f64 = text
        .parse()
        .map_err(|_| ParseError::at(at, format!("{text} is not a number")))?;
    if !value.is_finite() {
        return Err(ParseError::at(at, format!("{text} is beyond a double")));
    }
    Ok(Value::Double(value))
}

/// RocketMQ's `checkLessThanOperand`: a literal in `>`, `<`, `BETWEEN` must be a number, and no
/// boolean expression may be compared.
fn check_ordered_operand(expr: &Expr, at: usize) -> Result<(), ParseError> {
    let refused = match expr {
        Expr::Literal(Value::Int(_) | Value::Long(_) | Value::Double(_)) => false,
        Expr::Literal(_) => true,
        e => is_boolean(e),
    };
    if refused {
        return Err(ParseError::at(
            at,
            format!("{expr:?} cannot be compared with > >= < <= or BETWEEN"),
        ));
    }
    Ok(())
}

fn compare(left: Expr, op: Comparison, right: Expr, at: usize) -> Result<Expr, ParseError> {
    check_ordered_operand(&left, at)?;
    check_ordered_operand(&right, at)?;
    Ok(Expr::Compare(Box::new(left), op, Box::new(right)))
}

/// RocketMQ's `checkEqualOperand` and `checkEqualOperandCompatability`.
fn check_equal_operands(left: &Expr, right: &Expr, at: usize) -> Result<(), ParseError> {
    for side in [left, right] {
        if matches!(side, Expr::Literal(Value::Null)) {
            return Err(ParseError::at(
                at,
                "NULL cannot be compared with = or <>; use IS NULL".into(),
            ));
        }
    }
    if let (Expr::Literal(l), Expr::Literal(r)) = (left, right) {
        if matches!(l, Value::Bool(_)) && !matches!(r, Value::Bool(_)) {
            return Err(ParseError::at(
                at,
                format!("{l} cannot be compared with {r}"),
            ));
        }
    }
    Ok(())
}
