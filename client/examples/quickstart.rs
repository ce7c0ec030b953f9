//! The README's quick start for the Rust client, compiled with the tests so it cannot rot:
//! create a topic, send messages with tags, keys and properties, and consume them through a
//! consumer group with a push consumer that filters on the broker.
//!
//! `cargo run --release -- broker` in one terminal, then
//! `cargo run --release -p shardmq-client --example quickstart [127.0.0.1:9900]`.

use std::rc::Rc;
use std::time::Duration;

use shardmq_client::{
    Client, Filter, Handler, MemberConfig, Producer, ProducerConfig, PushConfig, PushConsumer,
    StartFromWhere,
};
use shardmq_protocol::{Property, Record};

async fn quickstart(broker: String) -> Result<(), shardmq_client::ClientError> {
    let client = Client::connect(&broker, "quickstart").await?;
    if client.topic("orders").await?.is_none() {
        client.create_topic("orders", 8).await?;
    }

    // Messages go to the queue their sharding key picks (RocketMQ's hash selector).
    let producer = Producer::new(&client, ProducerConfig::default())?;
    for i in 0..10 {
        let record = Record {
            tags: if i % 2 == 0 { "paid" } else { "created" }.into(),
            keys: vec![format!("order-{i}")],
            properties: vec![Property {
                name: "amount".into(),
                value: (i * 10).to_string(),
            }],
            payload: format!("order {i}").into_bytes(),
            ..Record::default()
        };
        let customer = format!("customer-{}", i % 3);
        let sent = producer.send_by_key("orders", &customer, record).await?;
        let offset = sent.await?;
        println!("sent order {i} at offset {offset}");
    }

    // A member of group "billing": the broker assigns it queues and sends only "paid" orders.
    let mut member = MemberConfig::new("billing", "orders");
    member.subscriptions = vec![("orders".into(), Filter::Tags("paid".into()))];
    let mut config = PushConfig::new(member);
    config.start_from = StartFromWhere::First;
    let handler: Handler = Rc::new(|message| {
        Box::pin(async move {
            println!(
                "queue {} offset {}: {}",
                message.queue_id,
                message.offset,
                String::from_utf8_lossy(&message.record.payload)
            );
            Ok(())
        })
    });
    let consumer = PushConsumer::start(&client, config, handler).await?;
    glommio::timer::sleep(Duration::from_secs(2)).await;
    // Finishes what is in flight, commits the group's offsets and leaves the group.
    consumer.shutdown().await
}

fn main() {
    let broker = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9900".into());
    let outcome = glommio::LocalExecutorBuilder::default()
        .spawn(move || quickstart(broker))
        .expect("a glommio executor")
        .join()
        .expect("the executor ran");
    if let Err(e) = outcome {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
