//! RocketMQ's property string (§5.4): `key 0x01 value 0x02`, repeated; the Java writer ends every
//! pair with 0x02, the last one included. Parsing is Java's: split on 0x02, then on the first
//! 0x01; pairs with an empty key or value are skipped; a later duplicate key wins.

pub const NAME_VALUE_SEPARATOR: char = '\u{1}';
pub const PROPERTY_SEPARATOR: char = '\u{2}';

/// Well-known keys the broker reads or writes.
pub mod key {
    pub const TAGS: &str = "TAGS";
    pub const KEYS: &str = "KEYS";
    pub const WAIT: &str = "WAIT";
    pub const UNIQ_KEY: &str = "UNIQ_KEY";
    pub const CLUSTER: &str = "CLUSTER";
    pub const MIN_OFFSET: &str = "MIN_OFFSET";
    pub const MAX_OFFSET: &str = "MAX_OFFSET";
    pub const DELAY: &str = "DELAY";
    pub const TRAN_MSG: &str = "TRAN_MSG";
    pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
    pub const RECONSUME_TIME: &str = "RECONSUME_TIME";
    pub const MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";
    /// Keys with this prefix are never stored.
    pub const TRANSIENT_PREFIX: &str = "__RMQ.TRANSIENT.";
}

/// The well-formed pairs of a property string as they come, borrowed (duplicates included:
/// a later one replaces an earlier one, which the caller applies, as [`parse`] does). What the
/// send path reads, without allocating.
pub fn pairs(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split(PROPERTY_SEPARATOR).filter_map(|pair| {
        let (name, value) = pair.split_once(NAME_VALUE_SEPARATOR)?;
        (!name.is_empty() && !value.is_empty()).then_some((name, value))
    })
}

/// The pairs of a property string, in order, later duplicates replacing earlier ones.
pub fn parse(text: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (name, value) in self::pairs(text) {
        match pairs.iter_mut().find(|(n, _)| n == name) {
            Some(existing) => existing.1 = value.to_owned(),
            None => pairs.push((name.to_owned(), value.to_owned())),
        }
    }
    pairs
}

/// Appends `name 0x01 value 0x02` to `out`.
pub fn push(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push(NAME_VALUE_SEPARATOR);
    out.push_str(value);
    out.push(PROPERTY_SEPARATOR);
}

/// The property string of `pairs`.
pub fn encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (name, value) in pairs {
        push(&mut out, name, value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_parsing_rules() {
        let text =
            "TAGS\u{1}a\u{2}KEYS\u{1}k1 k2\u{2}\u{1}novalue\u{2}empty\u{1}\u{2}TAGS\u{1}b\u{2}x";
        assert_eq!(
            parse(text),
            vec![
                ("TAGS".to_string(), "b".to_string()),
                ("KEYS".to_string(), "k1 k2".to_string())
            ]
        );
        let encoded = encode([("a", "1"), ("b", "2")]);
        assert_eq!(encoded, "a\u{1}1\u{2}b\u{1}2\u{2}");
        assert_eq!(parse(&encoded).len(), 2);
    }
}
