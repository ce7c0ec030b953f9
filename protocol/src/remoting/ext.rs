//! Typed reads of a command's extFields, as liberal as Java's header decoding (appendix C): a
//! number may carry spaces or arrive as a JSON number (already text here), a boolean is
//! `true`/`false` in any case or `1`/`0`. A required field that is missing or unparsable is a
//! [`FieldError`] naming the field, which the broker answers with a clear remark.

use std::collections::BTreeMap;
use std::str::FromStr;

use crate::text::Shown;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("the header field {0} is missing")]
    Missing(&'static str),
    #[error("the header field {field} is not {wanted}: {value}")]
    Invalid {
        field: &'static str,
        wanted: &'static str,
        value: String,
    },
}

/// Read access to extFields with the field names in the errors.
pub struct Fields<'a>(pub &'a BTreeMap<String, String>);

impl<'a> Fields<'a> {
    /// The first of `keys` present (a V2 short key and its V1 long name).
    fn raw(&self, keys: &[&'static str]) -> Option<(&'static str, &'a str)> {
        keys.iter()
            .find_map(|k| self.0.get(*k).map(|v| (*k, v.as_str())))
    }

    pub fn str(&self, keys: &[&'static str]) -> Result<&'a str, FieldError> {
        self.raw(keys)
            .map(|(_, v)| v)
            .ok_or(FieldError::Missing(keys[0]))
    }

    pub fn opt_str(&self, keys: &[&'static str]) -> Option<&'a str> {
        self.raw(keys).map(|(_, v)| v)
    }

    pub fn num<T: FromStr>(&self, keys: &[&'static str]) -> Result<T, FieldError> {
        self.opt_num(keys)?.ok_or(FieldError::Missing(keys[0]))
    }

    pub fn opt_num<T: FromStr>(&self, keys: &[&'static str]) -> Result<Option<T>, FieldError> {
        let Some((field, value)) = self.raw(keys) else {
            return Ok(None);
        };
        let trimmed = value.trim();
        if trimmed.is_empty() || trimmed == "null" {
            return Ok(None);
        }
        trimmed.parse().map(Some).map_err(|_| FieldError::Invalid {
            field,
            wanted: "a number",
            value: Shown(value).to_string(),
        })
    }

    pub fn opt_bool(&self, keys: &[&'static str]) -> Result<Option<bool>, FieldError> {
        let Some((field, value)) = self.raw(keys) else {
            return Ok(None);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            "" | "null" => Ok(None),
            _ => Err(FieldError::Invalid {
                field,
                wanted: "a boolean",
                value: Shown(value).to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn numbers_booleans_and_short_keys_read_liberally() {
        let map = fields(&[("e", " 3 "), ("k", "1"), ("unitMode", "FALSE"), ("b", "t")]);
        let f = Fields(&map);
        assert_eq!(f.num::<i32>(&["e", "queueId"]), Ok(3));
        assert_eq!(f.opt_bool(&["k"]), Ok(Some(true)));
        assert_eq!(f.opt_bool(&["unitMode"]), Ok(Some(false)));
        assert_eq!(f.str(&["b", "topic"]), Ok("t"));
        assert_eq!(
            f.num::<i64>(&["queueOffset"]),
            Err(FieldError::Missing("queueOffset"))
        );
        assert!(matches!(
            f.num::<i32>(&["b"]),
            Err(FieldError::Invalid { field: "b", .. })
        ));
        assert_eq!(f.opt_num::<i32>(&["nope"]), Ok(None));
    }
}
