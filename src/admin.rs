//! `shardmq admin`: topic and queue administration over the native protocol, what RocketMQ's
//! `mqadmin` does for these objects. Runs the client on a short-lived glommio executor.

use clap::{Args, Subcommand};
use shardmq_client::Client;

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Broker address, HOST:PORT (the `native=` address of the ready line).
    #[arg(long, default_value = "127.0.0.1:9900")]
    pub broker: String,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Topics: create, list.
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
    },
    /// List topics.
    List,
}

/// Runs an admin command and returns what to print.
pub fn run(args: AdminArgs) -> Result<String, String> {
    glommio::LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .spawn(move || async move { execute(args).await.map_err(|e| e.to_string()) })
        .map_err(|e| format!("cannot start the client executor: {e}"))?
        .join()
        .map_err(|e| format!("client executor failed: {e}"))?
}

async fn execute(args: AdminArgs) -> Result<String, shardmq_client::ClientError> {
    let client = Client::connect(&args.broker, "shardmq-admin").await?;
    match args.command {
        AdminCommand::Topic(TopicCommand::Create { name, queues }) => {
            let topic = client.create_topic(&name, queues).await?;
            Ok(format!(
                "created topic {} with {} queues (id {})",
                topic.name, topic.queues, topic.topic_id
            ))
        }
        AdminCommand::Topic(TopicCommand::List) => {
            let mut out = format!("{:<40} {:>7} {:>6}\n", "TOPIC", "QUEUES", "ID");
            for topic in client.list_topics().await? {
                out.push_str(&format!(
                    "{:<40} {:>7} {:>6}\n",
                    topic.name, topic.queues, topic.topic_id
                ));
            }
            Ok(out.trim_end().to_string())
        }
        AdminCommand::Offsets { topic } => {
            let info = client.topic(&topic).await?.ok_or_else(|| {
                shardmq_client::ClientError::InvalidArgument(format!(
                    "topic {topic:?} does not exist"
                ))
            })?;
            let mut out = format!(
                "{:>6} {:>6} {:>14} {:>14}\n",
                "QUEUE", "SHARD", "MIN", "MAX"
            );
            for queue in 0..info.queues {
                let offsets = client.queue_offsets(&topic, queue).await?;
                let shard = client.shard_for(&topic, queue);
                out.push_str(&format!(
                    "{queue:>6} {shard:>6} {:>14} {:>14}\n",
                    offsets.min_offset, offsets.max_offset
                ));
            }
            Ok(out.trim_end().to_string())
        }
        AdminCommand::Shards => {
            let map = client.shard_map().await?;
            Ok(format!(
                "shards: {}\nrouting: {}",
                map.shard_count, map.routing
            ))
        }
    }
}
