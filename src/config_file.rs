//! The broker's configuration file and environment: a TOML file (`broker --config FILE`) and
//! `SHARDMQ_<KEY>` variables, layered under the command line.
//!
//! Every key is a `shardmq broker` flag without its dashes, `-` written `_` (`segment_size`,
//! `flush_interval_ms`), so the flags stay the one definition of what can be configured, with
//! their units, defaults and checks; `--print-config` renders them as a commented file.
//!
//! Precedence, highest first: flags, then environment variables, then the file, then the
//! defaults. It is implemented by handing clap the file's keys, then the variables, then the
//! real flags, with later occurrences overriding earlier ones.
//!
//! Refusals, at start and before anything is opened: a file that is not TOML, a key that is no
//! broker flag, a table where a value belongs, and any value its flag's parser refuses: each
//! message names the file (or variable), the key, the value and why.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, FromArgMatches, Parser};
use thiserror::Error;

use crate::config::BrokerArgs;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {reason}")]
    Syntax { path: PathBuf, reason: String },
    #[error("{origin}: unknown key `{key}` (see `shardmq broker --print-config` for every key)")]
    UnknownKey { origin: String, key: String },
    #[error("{origin}: `{key}` = {value}: {reason}")]
    Invalid {
        origin: String,
        key: String,
        value: String,
        reason: String,
    },
}

/// Flags that are about the configuration itself, not configuration.
const NOT_KEYS: &[&str] = &["config", "print_config", "help"];

/// `shardmq broker`'s flags alone, for checking one key at a time.
#[derive(Parser)]
#[command(name = "broker", args_override_self = true)]
struct BrokerOnly {
    #[command(flatten)]
    args: BrokerArgs,
}

/// Every configurable key, with its clap argument.
fn keys() -> Vec<(String, clap::Arg)> {
    BrokerOnly::command()
        .get_arguments()
        .filter_map(|arg| {
            let key = arg.get_long()?.replace('-', "_");
            (!NOT_KEYS.contains(&key.as_str())).then(|| (key, arg.clone()))
        })
        .collect()
}

/// The broker's flags as clap should see them: the file's keys, then `SHARDMQ_<KEY>`
/// variables, then `cli` (the flags after `broker`), later ones overriding earlier ones.
pub fn layered_args(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    cli: Vec<OsString>,
) -> Result<Vec<OsString>, ConfigError> {
    let known = keys();
    let mut args: Vec<OsString> = Vec::new();
    if let Some(path) = file {
        for (key, value) in file_values(path)? {
            let origin = format!("config file {}", path.display());
            args.extend(checked(&known, &origin, &key, &value)?);
        }
    }
    let mut env: Vec<(String, String)> = env.into_iter().collect();
    env.sort();
    for (name, value) in env {
        let Some(key) = name.strip_prefix("SHARDMQ_").map(str::to_ascii_lowercase) else {
            continue;
        };
        // Other SHARDMQ_ variables (SHARDMQ_LOG, test switches) are not broker flags.
        if known.iter().any(|(k, _)| *k == key) {
            let origin = format!("environment variable {name}");
            args.extend(checked(&known, &origin, &key, &value)?);
        }
    }
    args.extend(cli);
    Ok(args)
}

/// `(key, value as a flag value)` of every entry of the file.
fn file_values(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
        path: path.to_path_buf(),
        reason: e.message().to_string(),
    })?;
    let origin = format!("config file {}", path.display());
    table
        .into_iter()
        .map(|(key, value)| {
            let text = flag_value(&value).ok_or_else(|| ConfigError::Invalid {
                origin: origin.clone(),
                key: key.clone(),
                value: value.to_string(),
                reason: "a table or date is no flag value; give a string, number, boolean or a list of them".into(),
            })?;
            Ok((key, text))
        })
        .collect()
}

fn flag_value(value: &toml::Value) -> Option<String> {
    Some(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(flag_value)
            .collect::<Option<Vec<_>>>()?
            .join(","),
        toml::Value::Datetime(_) | toml::Value::Table(_) => return None,
    })
}

/// `--key value`, once clap's parser for the flag accepted the value.
fn checked(
    known: &[(String, clap::Arg)],
    origin: &str,
    key: &str,
    value: &str,
) -> Result<[OsString; 2], ConfigError> {
    let Some((_, arg)) = known.iter().find(|(k, _)| k == key) else {
        return Err(ConfigError::UnknownKey {
            origin: origin.to_string(),
            key: key.to_string(),
        });
    };
    let flag = format!("--{}", arg.get_long().expect("keys have long names"));
    let parsed = BrokerOnly::command()
        .try_get_matches_from(["broker", flag.as_str(), value])
        .and_then(|matches| BrokerArgs::from_arg_matches(&matches));
    match parsed {
        Ok(_) => Ok([flag.into(), value.into()]),
        Err(err) => Err(ConfigError::Invalid {
            origin: origin.to_string(),
            key: key.to_string(),
            value: format!("{value:?}"),
            reason: clap_reason(&err),
        }),
    }
}

/// The first line of a clap error, without its `error: ` prefix.
fn clap_reason(err: &clap::Error) -> String {
    let text = err.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

/// Every key as a commented TOML file: its help (with its unit and how to size it), and its
/// default, or a commented-out line when it has none.
pub fn print_config() -> String {
    let mut out = String::from(
        "# shardmq broker configuration (TOML): `shardmq broker --config FILE`.\n\
         # Every key is a `shardmq broker` flag without its dashes, with `_` for `-`. Flags and\n\
         # SHARDMQ_<KEY> environment variables (SHARDMQ_SEGMENT_SIZE=64MiB) override this file.\n\
         # Sizes take KiB, MiB, GiB; durations of --retention take ms, s, m, h, d.\n",
    );
    for (key, arg) in keys() {
        out.push('\n');
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        for line in wrap(&help, 96) {
            out.push_str(&format!("# {line}\n"));
        }
        let possible: Vec<String> = arg
            .get_possible_values()
            .iter()
            .map(|v| v.get_name().to_string())
            .collect();
        if !possible.is_empty() {
            out.push_str(&format!("# one of: {}\n", possible.join(", ")));
        }
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        match defaults.as_slice() {
            [] => out.push_str(&format!("# {key} = (no default)\n")),
            [one] => out.push_str(&format!("{key} = {}\n", toml_literal(one))),
            many => out.push_str(&format!("{key} = {}\n", toml_literal(&many.join(",")))),
        }
    }
    out
}

/// A default value as TOML writes it: numbers and booleans bare, everything else quoted.
fn toml_literal(value: &str) -> String {
    let bare = value.parse::<i64>().is_ok()
        || value.parse::<f64>().is_ok_and(f64::is_finite) && value.contains('.')
        || value == "true"
        || value == "false";
    if bare {
        value.to_string()
    } else {
        toml::Value::String(value.to_string()).to_string()
    }
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.lines() {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            if !line.is_empty() && line.len() + 1 + word.len() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(line);
    }
    lines
}

/// Re-parses the broker's flags with the file and environment under them, when there is a
/// file or a `SHARDMQ_<KEY>` variable; `cli` is every argument after `broker`.
pub fn resolve(args: BrokerArgs, cli: Vec<OsString>) -> Result<BrokerArgs, ConfigError> {
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(name, _)| name.starts_with("SHARDMQ_"))
        .collect();
    let layered = layered_args(args.config.as_deref(), env, cli)?;
    let matches = BrokerOnly::command()
        .try_get_matches_from(std::iter::once(OsString::from("broker")).chain(layered))
        .map_err(|e| ConfigError::Invalid {
            origin: "the command line".into(),
            key: "(flags)".into(),
            value: String::new(),
            reason: clap_reason(&e),
        })?;
    BrokerArgs::from_arg_matches(&matches).map_err(|e| ConfigError::Invalid {
        origin: "the command line".into(),
        key: "(flags)".into(),
        value: String::new(),
        reason: clap_reason(&e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(file: &str, env: &[(&str, &str)], cli: &[&str]) -> Result<BrokerArgs, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shardmq.toml");
        std::fs::write(&path, file).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let cli = cli.iter().map(OsString::from).collect();
        let layered = layered_args(Some(&path), env, cli)?;
        let matches = BrokerOnly::command()
            .try_get_matches_from(std::iter::once(OsString::from("broker")).chain(layered))
            .unwrap();
        Ok(BrokerArgs::from_arg_matches(&matches).unwrap())
    }

    #[test]
    fn flags_beat_the_environment_which_beats_the_file() {
        let file =
            "segment_size = \"64MiB\"\nflush = \"sync\"\nflush_interval_ms = 20\ncpus = [1, 0]\n";
        let args = parse(file, &[], &[]).unwrap();
        assert_eq!(args.segment_size, 64 << 20);
        assert_eq!(args.flush, crate::config::FlushArg::Sync);
        assert_eq!(args.flush_interval_ms, 20);
        assert_eq!(args.cpus, Some(vec![1, 0]));
        let env = [("SHARDMQ_SEGMENT_SIZE", "128MiB"), ("SHARDMQ_LOG", "debug")];
        let args = parse(file, &env, &[]).unwrap();
        assert_eq!(
            args.segment_size,
            128 << 20,
            "the environment beats the file"
        );
        assert_eq!(args.flush_interval_ms, 20, "the file beats the default");
        let args = parse(file, &env, &["--segment-size", "2MiB"]).unwrap();
        assert_eq!(args.segment_size, 2 << 20, "a flag beats both");
    }

    #[test]
    fn bad_files_keys_and_values_are_refused_with_the_key_the_value_and_why() {
        let err = parse("segment_size = \"12 parsecs\"\n", &[], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("segment_size") && err.contains("12 parsecs") && err.contains("unit"),
            "{err}"
        );
        let err = parse("segmnet_size = 1\n", &[], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown key `segmnet_size`"), "{err}");
        let err = parse("flush = \"sometimes\"\n", &[], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("flush") && err.contains("sometimes"), "{err}");
        let err = parse("listen = [\n", &[], &[]).unwrap_err().to_string();
        assert!(err.contains("not valid TOML"), "{err}");
        let err = parse("[retention]\nage = 1\n", &[], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`retention`") && err.contains("table"),
            "{err}"
        );
        let err = parse("", &[("SHARDMQ_FLUSH_INTERVAL_MS", "soon")], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SHARDMQ_FLUSH_INTERVAL_MS") && err.contains("soon"),
            "{err}"
        );
    }

    #[test]
    fn the_printed_config_is_a_file_that_parses_to_the_defaults() {
        let printed = print_config();
        assert!(printed.contains("# Segment size"), "help texts are in it");
        assert!(printed.contains("segment_size = \"1GiB\""));
        assert!(printed.contains("# shards = (no default)"));
        let from_file = parse(&printed, &[], &[]).unwrap();
        let defaults = BrokerOnly::parse_from(["broker"]).args;
        assert_eq!(format!("{from_file:?}"), format!("{defaults:?}"));
    }
}
