//! `shardmq admin`: what RocketMQ's `mqadmin` does, over the native protocol. Runs the client on
//! a short-lived glommio executor.
//!
//! Every command prints a readable table, or with `--json` one JSON document (an object or an
//! array of objects, fields named as in the table), so scripts never parse tables. Exit codes:
//! 0 done; 1 the broker refused (the message says why), or a status command found a shard
//! that refuses writes (after printing the status); 2 bad usage (from the argument parser); 3
//! the broker could not be reached.

mod status;

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use shardmq_client::group_calls::ResetTo;
use shardmq_client::{Client, ClientError};
use shardmq_protocol::messages::TopicInfo;

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Broker address, HOST:PORT (the `native=` address of the ready line).
    #[arg(long, default_value = "127.0.0.1:9900")]
    pub broker: String,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Topics: create, update, delete, list, status.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Min and max offset of every queue of a topic; `offsets reset` moves a group's offsets.
    Offsets {
        /// The topic whose queues to show (or whose group offsets to reset).
        #[arg(long)]
        topic: String,
        #[command(subcommand)]
        reset: Option<OffsetsCommand>,
    },
    /// Consumer groups: list, describe (members, assignment, lag per queue), delete.
    #[command(subcommand)]
    Group(GroupCommand),
    /// The broker's shard count and routing function.
    Shards,
    /// The broker: `broker status` shows every shard's connections, log, disk and version.
    #[command(subcommand)]
    Broker(BrokerCommand),
    /// Every shard as the RocketMQ broker it is advertised as (name, remoting address).
    Cluster,
}

#[derive(Debug, Subcommand)]
pub enum BrokerCommand {
    /// Every shard: connections, segments, log size, disk use and free space, whether it takes
    /// writes, version. Exits 1 if a shard refuses writes.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum OffsetsCommand {
    /// Move a group's committed offsets of every queue of the topic.
    Reset {
        #[arg(long)]
        group: String,
        /// `earliest`, `latest`, or a time: ms since the epoch or RFC 3339
        /// (2026-12-01T10:00:00Z).
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Every consumer group with its members.
    List,
    /// A group's members, their assignment, and each queue's committed offset and lag.
    Describe {
        #[arg(long)]
        group: String,
    },
    /// Delete a group and its committed offsets.
    Delete {
        #[arg(long)]
        group: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic with N queues.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, default_value_t = 8)]
        queues: u32,
        /// RocketMQ permission bits: 6 read and write, 4 read only, 2 write only.
        #[arg(long)]
        perm: Option<u8>,
    },
    /// Give a topic more queues, or change its permission.
    Update {
        #[arg(long)]
        name: String,
        #[arg(long)]
        queues: Option<u32>,
        #[arg(long)]
        perm: Option<u8>,
    },
    /// Delete a topic and free its queues.
    Delete {
        #[arg(long)]
        name: String,
    },
    /// List topics.
    List,
    /// Every queue of a topic: its shard and offsets.
    Status {
        #[arg(long)]
        name: String,
    },
}

/// Why an admin command failed, with the exit code it ends the process with.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Refused(ClientError),
    #[error("cannot reach the broker: {0}")]
    Unreachable(ClientError),
    #[error("{0}")]
    Executor(String),
    /// The command cannot be run as given (half of an account in the environment).
    #[error("{0}")]
    Usage(String),
    /// A status command found a problem: `output` is printed, then the reason.
    #[error("{reason}")]
    Unhealthy { output: String, reason: String },
}

impl AdminError {
    pub fn exit_code(&self) -> i32 {
        match self {
            AdminError::Refused(_) | AdminError::Executor(_) | AdminError::Unhealthy { .. } => 1,
            AdminError::Usage(_) => 2,
            AdminError::Unreachable(_) => 3,
        }
    }
}

impl From<ClientError> for AdminError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Io(_) | ClientError::Timeout(_) | ClientError::Closed => {
                AdminError::Unreachable(e)
            }
            other => AdminError::Refused(other),
        }
    }
}

/// What a command prints: a table for people, a JSON value for scripts.
#[derive(Debug)]
pub struct Shown {
    table: String,
    json: Value,
}

/// Runs an admin command and returns what to print.
pub fn run(args: AdminArgs) -> Result<String, AdminError> {
    let as_json = args.json;
    let shown = glommio::LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .spawn(move || async move { execute(args).await })
        .map_err(|e| AdminError::Executor(format!("cannot start the client executor: {e}")))?
        .join()
        .map_err(|e| AdminError::Executor(format!("client executor failed: {e}")))??;
    let (shown, problem) = shown;
    let output = if as_json {
        serde_json::to_string_pretty(&shown.json).unwrap_or_default()
    } else {
        shown.table.trim_end().to_string()
    };
    match problem {
        None => Ok(output),
        Some(reason) => Err(AdminError::Unhealthy { output, reason }),
    }
}

impl AdminError {
    /// What to print on stdout before the error (a status that found a problem).
    pub fn output(&self) -> Option<&str> {
        match self {
            AdminError::Unhealthy { output, .. } => Some(output),
            _ => None,
        }
    }
}

/// What to show, and a problem it shows (which makes the command fail after printing).
async fn execute(args: AdminArgs) -> Result<(Shown, Option<String>), AdminError> {
    let config = shardmq_client::ClientConfig {
        credentials: shardmq_client::Credentials::from_env().map_err(AdminError::Usage)?,
        ..Default::default()
    };
    let client = Client::connect_with(&args.broker, "shardmq-admin", config).await?;
    let shown = match args.command {
        AdminCommand::Topic(command) => topic(&client, command).await,
        AdminCommand::Offsets { topic, reset: None } => status(&client, &topic).await,
        AdminCommand::Offsets {
            topic,
            reset: Some(OffsetsCommand::Reset { group, to }),
        } => reset(&client, &topic, &group, &to).await,
        AdminCommand::Group(command) => group(&client, command).await,
        AdminCommand::Broker(BrokerCommand::Status) => return status::broker_status(&client).await,
        AdminCommand::Cluster => return status::cluster(&client).await,
        AdminCommand::Shards => {
            let map = client.shard_map().await?;
            Ok(Shown {
                table: format!("shards: {}\nrouting: {}", map.shard_count, map.routing),
                json: json!({"shards": map.shard_count, "routing": map.routing}),
            })
        }
    };
    shown.map(|s| (s, None))
}

async fn topic(client: &Client, command: TopicCommand) -> Result<Shown, AdminError> {
    match command {
        TopicCommand::Create { name, queues, perm } => {
            let topic = client.create_topic_with(&name, queues, perm).await?;
            Ok(topic_shown("created", &topic))
        }
        TopicCommand::Update { name, queues, perm } => {
            let topic = client.update_topic(&name, queues, perm).await?;
            Ok(topic_shown("updated", &topic))
        }
        TopicCommand::Delete { name } => {
            let topic = client.delete_topic(&name).await?;
            Ok(topic_shown("deleted", &topic))
        }
        TopicCommand::List => {
            let topics = client.list_topics().await?;
            let mut table = format!(
                "{:<40} {:>7} {:>6} {:>5}\n",
                "TOPIC", "QUEUES", "ID", "PERM"
            );
            for t in &topics {
                table.push_str(&format!(
                    "{:<40} {:>7} {:>6} {:>5}\n",
                    t.name, t.queues, t.topic_id, t.perm
                ));
            }
            Ok(Shown {
                table,
                json: Value::Array(topics.iter().map(topic_json).collect()),
            })
        }
        TopicCommand::Status { name } => status(client, &name).await,
    }
}

fn topic_json(t: &TopicInfo) -> Value {
    json!({"name": t.name, "queues": t.queues, "id": t.topic_id, "perm": t.perm})
}

fn topic_shown(what: &str, t: &TopicInfo) -> Shown {
    Shown {
        table: format!(
            "{what} topic {} with {} queues (id {}, perm {})",
            t.name, t.queues, t.topic_id, t.perm
        ),
        json: topic_json(t),
    }
}

async fn status(client: &Client, topic: &str) -> Result<Shown, AdminError> {
    let status = client.topic_status(topic).await?;
    let mut table = format!(
        "{:>6} {:>6} {:>14} {:>14}\n",
        "QUEUE", "SHARD", "MIN", "MAX"
    );
    let mut queues = Vec::new();
    for q in &status.queues {
        table.push_str(&format!(
            "{:>6} {:>6} {:>14} {:>14}\n",
            q.queue_id, q.shard_id, q.min_offset, q.max_offset
        ));
        queues.push(json!({
            "queue": q.queue_id, "shard": q.shard_id, "min": q.min_offset, "max": q.max_offset,
        }));
    }
    let mut json = topic_json(&status.topic);
    json["queueStatus"] = Value::Array(queues);
    Ok(Shown { table, json })
}

fn mode_name(mode: u8) -> &'static str {
    match mode {
        1 => "broadcasting",
        _ => "clustering",
    }
}

async fn group(client: &Client, command: GroupCommand) -> Result<Shown, AdminError> {
    match command {
        GroupCommand::List => {
            let groups = client.list_groups().await?.groups;
            let mut table = format!(
                "{:<40} {:<13} {:>8} {:>10}\n",
                "GROUP", "MODE", "MEMBERS", "GENERATION"
            );
            for g in &groups {
                table.push_str(&format!(
                    "{:<40} {:<13} {:>8} {:>10}\n",
                    g.name,
                    mode_name(g.mode),
                    g.members,
                    g.generation
                ));
            }
            let json = groups
                .iter()
                .map(|g| json!({"group": g.name, "mode": mode_name(g.mode), "members": g.members, "generation": g.generation}))
                .collect();
            Ok(Shown {
                table,
                json: Value::Array(json),
            })
        }
        GroupCommand::Describe { group } => describe(client, &group).await,
        GroupCommand::Delete { group } => {
            let existed = client.delete_group(&group).await?;
            Ok(Shown {
                table: format!(
                    "deleted group {group}{}",
                    if existed { "" } else { " (it had no members)" }
                ),
                json: json!({"group": group, "existed": existed}),
            })
        }
    }
}

async fn describe(client: &Client, group: &str) -> Result<Shown, AdminError> {
    let d = client.describe_group(group).await?;
    let mut table = format!(
        "group {} ({}, generation {}, {} members)\n",
        d.name,
        mode_name(d.mode),
        d.generation,
        d.members.len()
    );
    for m in &d.members {
        table.push_str(&format!(
            "  member {} ({}, {}, idle {} ms)\n",
            m.member_id,
            m.protocol,
            mode_name(m.mode),
            m.idle_ms
        ));
    }
    table.push_str(&format!(
        "{:<24} {:<24} {:>6} {:>6} {:>12} {:>12} {:>10}\n",
        "MEMBER", "TOPIC", "QUEUE", "SHARD", "COMMITTED", "MAX", "LAG"
    ));
    let owner = |topic: &str, queue: u32| {
        d.members
            .iter()
            .find(|m| {
                m.assignment
                    .iter()
                    .any(|q| q.topic == topic && q.queue_id == queue)
            })
            .map(|m| m.member_id.clone())
    };
    let mut queues = Vec::new();
    for q in &d.queues {
        let member = q
            .member_id
            .clone()
            .or_else(|| owner(&q.topic, q.queue_id))
            .unwrap_or_else(|| "-".into());
        let committed = q.committed.map_or("-".to_string(), |c| c.to_string());
        table.push_str(&format!(
            "{:<24} {:<24} {:>6} {:>6} {:>12} {:>12} {:>10}\n",
            member, q.topic, q.queue_id, q.shard_id, committed, q.max_offset, q.lag
        ));
        queues.push(json!({
            "topic": q.topic, "queue": q.queue_id, "shard": q.shard_id, "member": member,
            "committed": q.committed, "max": q.max_offset, "lag": q.lag,
        }));
    }
    let members: Vec<Value> = d
        .members
        .iter()
        .map(|m| json!({
            "member": m.member_id,
            "protocol": m.protocol,
            "mode": mode_name(m.mode),
            "idleMs": m.idle_ms,
            "subscriptions": m.subscriptions.iter().map(|s| json!({"topic": s.topic, "filter": s.filter.expression, "kind": if s.filter.kind == 1 { "SQL92" } else { "TAG" }})).collect::<Vec<_>>(),
            "assignment": m.assignment.iter().map(|q| json!({"topic": q.topic, "queue": q.queue_id})).collect::<Vec<_>>(),
        }))
        .collect();
    let lag: u64 = d.queues.iter().map(|q| q.lag).sum();
    Ok(Shown {
        table,
        json: json!({
            "group": d.name, "mode": mode_name(d.mode), "generation": d.generation,
            "members": members, "queues": queues, "lag": lag,
        }),
    })
}

/// `earliest`, `latest`, ms since the epoch, or an RFC 3339 time.
fn reset_target(to: &str) -> Result<ResetTo, AdminError> {
    match to {
        "earliest" => return Ok(ResetTo::Earliest),
        "latest" => return Ok(ResetTo::Latest),
        _ => {}
    }
    if let Ok(ms) = to.parse::<u64>() {
        return Ok(ResetTo::Timestamp(ms));
    }
    parse_rfc3339_ms(to).map(ResetTo::Timestamp).ok_or_else(|| {
        AdminError::Refused(ClientError::InvalidArgument(format!(
            "--to {to:?} is not earliest, latest, ms since the epoch, or a time like 2026-12-01T10:00:00Z"
        )))
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` as ms since the epoch (UTC only; enough for an operator's
/// reset).
fn parse_rfc3339_ms(text: &str) -> Option<u64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min, s) = (t.next()??, t.next()??, t.next()??);
    let ms: i64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || s > 60 {
        return None;
    }
    // Days since 1970-01-01 by the civil-from-days inverse (Howard Hinnant's algorithm).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(((days * 24 + h) * 60 + min) * 60_000 + s * 1000 + ms).ok()
}

async fn reset(client: &Client, topic: &str, group: &str, to: &str) -> Result<Shown, AdminError> {
    let target = reset_target(to)?;
    let moved = client.reset_offsets(group, topic, target).await?;
    let mut table = format!(
        "reset group {group} on {topic}\n{:>6} {:>14}\n",
        "QUEUE", "OFFSET"
    );
    for (queue, offset) in &moved {
        table.push_str(&format!("{queue:>6} {offset:>14}\n"));
    }
    let json = moved
        .iter()
        .map(|(q, o)| json!({"queue": q, "offset": o}))
        .collect();
    Ok(Shown {
        table,
        json: json!({"group": group, "topic": topic, "queues": Value::Array(json)}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_targets_parse() {
        assert!(matches!(reset_target("earliest"), Ok(ResetTo::Earliest)));
        assert!(matches!(
            reset_target("1700000000000"),
            Ok(ResetTo::Timestamp(1_700_000_000_000))
        ));
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2023-11-14T22:13:20Z"),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2024-02-29T12:00:00.5Z"),
            Some(1_709_208_000_500)
        );
        assert!(reset_target("yesterday").is_err());
        assert!(parse_rfc3339_ms("2024-13-01T00:00:00Z").is_none());
    }
}
