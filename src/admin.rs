//! `shardmq admin`: what RocketMQ's `mqadmin` does, over the native protocol. Runs the client on
//! a short-lived glommio executor.
//!
//! Every command prints a readable table, or with `--json` one JSON document (an object or an
//! array of objects, fields named as in the table), so scripts never parse tables. Exit codes:
//! 0 done; 1 the broker refused (the message says why); 2 bad usage (from the argument parser);
//! 3 the broker could not be reached.

use clap::{Args, Subcommand};
use serde_json::{json, Value};
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
    /// Min and max offset of every queue of a topic.
    Offsets {
        #[arg(long)]
        topic: String,
    },
    /// The broker's shard count and routing function.
    Shards,
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
}

impl AdminError {
    pub fn exit_code(&self) -> i32 {
        match self {
            AdminError::Refused(_) | AdminError::Executor(_) => 1,
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
struct Shown {
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
    Ok(if as_json {
        serde_json::to_string_pretty(&shown.json).unwrap_or_default()
    } else {
        shown.table.trim_end().to_string()
    })
}

async fn execute(args: AdminArgs) -> Result<Shown, AdminError> {
    let client = Client::connect(&args.broker, "shardmq-admin").await?;
    match args.command {
        AdminCommand::Topic(command) => topic(&client, command).await,
        AdminCommand::Offsets { topic } => status(&client, &topic).await,
        AdminCommand::Shards => {
            let map = client.shard_map().await?;
            Ok(Shown {
                table: format!("shards: {}\nrouting: {}", map.shard_count, map.routing),
                json: json!({"shards": map.shard_count, "routing": map.routing}),
            })
        }
    }
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
