//! The parser and evaluator against RocketMQ's rules: operators, the null and type matrix, and
//! refused expressions with their positions.

use std::collections::HashMap;
use std::rc::Rc;

use super::eval::{matches, Context};
use super::parse;

struct Props(HashMap<&'static str, &'static str>);

impl Context for Props {
    fn property(&self, name: &str) -> Option<Rc<str>> {
        self.0.get(name).map(|v| Rc::from(*v))
    }
}

fn props(pairs: &[(&'static str, &'static str)]) -> Props {
    Props(pairs.iter().copied().collect())
}

fn check(expression: &str, message: &[(&'static str, &'static str)]) -> bool {
    let expr = parse(expression).unwrap_or_else(|e| panic!("{expression}: {e}"));
    matches(&expr, &props(message))
}

#[test]
fn comparisons_of_numbers_strings_and_booleans() {
    let m = [
        ("a", "5"),
        ("s", "abc"),
        ("f", "2.5"),
        ("b", "true"),
        ("big", "5000000000"),
    ];
    for (expression, expected) in [
        ("a = 5", true),
        ("a = 5.0", true),
        ("a <> 5", false),
        ("a > 4", true),
        ("a >= 5", true),
        ("a < 5", false),
        ("a <= 5", true),
        ("a > 4.5", true),
        ("f > 2", false), // '2.5' is not an int: RocketMQ fails the conversion
        ("f > 2.0", true),
        ("f < 3.0", true),
        ("big > 4000000000", true),
        ("big = 5000000000L", true),
        ("s = 'abc'", true),
        ("s <> 'abd'", true),
        ("s = 5", false), // 'abc' is not a number
        ("b = TRUE", true),
        ("TRUE = b", false), // RocketMQ's quirk: the boolean literal on the left fails
        ("a BETWEEN 1 AND 5", true),
        ("a BETWEEN 6 AND 9", false),
        ("a NOT BETWEEN 6 AND 9", true),
        ("-a = -5", false), // negating a property (a string) is NULL in RocketMQ
        ("a = -5", false),
        ("a > -5", true),
        ("+a = 5", true),
        ("a = 5 AND s = 'abc'", true),
        ("a = 6 OR s = 'abc'", true),
        ("NOT (a = 6)", true),
        ("(a = 5 OR a = 6) AND NOT (s = 'x')", true),
        // NOT binds tighter than =: (NOT s) = 'x' compares a boolean with a string, which
        // RocketMQ fails at evaluation, so it never matches.
        ("NOT s = 'x'", false),
        ("TRUE", true),
        ("FALSE OR a = 5", true),
    ] {
        assert_eq!(check(expression, &m), expected, "{expression}");
    }
}

#[test]
fn the_string_functions_and_in() {
    let m = [("s", "hello world"), ("tag", "b")];
    for (expression, expected) in [
        ("s CONTAINS 'lo w'", true),
        ("s NOT CONTAINS 'xyz'", true),
        ("s STARTSWITH 'hell'", true),
        ("s NOT STARTSWITH 'hell'", false),
        ("s ENDSWITH 'world'", true),
        ("s NOT ENDSWITH 'xyz'", true),
        ("s CONTAINS ''", false), // an empty search never matches
        ("tag IN ('a', 'b', 'c')", true),
        ("tag NOT IN ('a', 'c')", true),
        ("tag IN ('x')", false),
        ("s CONTAINS 'it''s'", false),
    ] {
        assert_eq!(check(expression, &m), expected, "{expression}");
    }
}

#[test]
fn missing_properties_follow_the_three_valued_rules() {
    let none: [(&str, &str); 0] = [];
    for (expression, expected) in [
        ("x = 1", false),
        ("x <> 1", false), // NOT(NULL) is NULL
        ("x IS NULL", true),
        ("x IS NOT NULL", false),
        ("x > 1", false),
        ("NOT (x > 1)", false),
        ("x IN ('a')", false),
        ("x NOT IN ('a')", false),
        ("x CONTAINS 'a'", false),
        ("x NOT CONTAINS 'a'", false), // false, not NULL, for a missing property
        ("x = 1 OR TRUE", true),
        ("x = 1 AND FALSE", false),
        ("x = 1 OR FALSE", false),
        ("x", false),
        ("NULL IS NULL", true),
    ] {
        assert_eq!(check(expression, &none), expected, "{expression}");
    }
    assert!(
        check("a IS NOT NULL", &[("a", "")]),
        "an empty value is a value"
    );
}

#[test]
fn keywords_are_case_insensitive_and_comments_are_skipped() {
    let m = [("Color", "red")];
    assert!(check("color is null and Color = 'red' -- trailing\n", &m));
    assert!(check("/* a */ Color In ('red') oR Color = 'x'", &m));
}

#[test]
fn bad_expressions_are_refused_with_their_position() {
    for (expression, position) in [
        ("a = ", 4),
        ("a = 'open", 4),
        ("a > 'x'", 2),
        ("a = NULL", 2),
        ("1 AND a = 1", 0),
        ("a BETWEEN 5 AND 1", 10),
        ("'x' IN ('a')", 4),
        ("a ! 1", 2),
        ("a = 1 b", 6),
        ("a IS 5", 5),
        ("99999999999999999999 = a", 0),
        ("", 0),
        ("(a = 1", 6),
        ("a = 01", 4),
        ("NOT a > 1", 6), // NOT binds tighter: (NOT a) > 1 compares a boolean
    ] {
        let err = parse(expression).expect_err(expression);
        assert_eq!(err.position, position, "{expression}: {err}");
    }
    let deep = format!("{}a = 1{}", "(".repeat(100), ")".repeat(100));
    assert!(parse(&deep).is_err(), "nesting is bounded");
    assert!(
        parse(&"a = 1 OR ".repeat(5000)).is_err(),
        "length is bounded"
    );
}
