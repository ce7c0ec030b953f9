//! The orderly worker of a [`crate::PushConsumer`]: one queue, under the broker's lock of it
//! for the group, one message at a time in offset order.
//!
//! The worker takes the lock first (retrying every `lock_interval` while another member holds
//! it), renews it every `lock_interval` while it consumes, and stops consuming the moment a
//! renewal fails (another member took the queue after this one's lock expired). A message whose
//! handler fails is handed to it again after `retry_delay`, and nothing after it is consumed
//! until it succeeds: a failing message holds up only its own queue. Each message is committed
//! as it succeeds (in the next pull, or when the worker stops); the lock is released at the end.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use crate::client::Client;
use crate::message::messages_of;
use crate::push_consumer::{
    pull_or_stop, pull_request, queue_ref, starting_offset, Handler, PushConfig, Stop,
};

/// Tries to take (or renew) the lock; true if held.
async fn lock(
    client: &Client,
    config: &PushConfig,
    member_id: &str,
    topic: &str,
    queue_id: u32,
) -> bool {
    let queues = vec![queue_ref(topic, queue_id)];
    match client
        .lock_queues(&config.member.group, member_id, queues, false)
        .await
    {
        Ok(held) => !held.is_empty(),
        Err(err) => {
            tracing::debug!(topic, queue_id, error = %err, "lock request failed");
            false
        }
    }
}

/// Renews the lock every `lock_interval` until it is lost or the worker stops.
async fn keep_lock(
    client: Client,
    config: PushConfig,
    member_id: String,
    topic: String,
    queue_id: u32,
    lost: Rc<Cell<bool>>,
) {
    loop {
        glommio::timer::sleep(config.lock_interval).await;
        if !lock(&client, &config, &member_id, &topic, queue_id).await {
            tracing::debug!(
                topic,
                queue_id,
                "queue lock lost; stopping orderly consumption"
            );
            lost.set(true);
            return;
        }
    }
}

pub(crate) async fn run(
    client: &Client,
    config: &PushConfig,
    handler: &Handler,
    member_id: &str,
    topic: &str,
    queue_id: u32,
    stop: &Stop,
) {
    while !lock(client, config, member_id, topic, queue_id).await {
        let waited = futures_lite::future::or(
            async {
                glommio::timer::sleep(config.lock_interval.min(Duration::from_secs(1))).await;
                false
            },
            async {
                stop.wait_requested().await;
                true
            },
        )
        .await;
        if waited {
            return;
        }
    }
    let lost = Rc::new(Cell::new(false));
    let _renewals = glommio::spawn_local(keep_lock(
        client.clone(),
        config.clone(),
        member_id.to_owned(),
        topic.to_owned(),
        queue_id,
        lost.clone(),
    ));
    consume(client, config, handler, topic, queue_id, stop, &lost).await;
    let queues = vec![queue_ref(topic, queue_id)];
    let _ = client
        .lock_queues(&config.member.group, member_id, queues, true)
        .await;
}

/// Consumes in order until stopped or the lock is lost; commits what succeeded.
async fn consume(
    client: &Client,
    config: &PushConfig,
    handler: &Handler,
    topic: &str,
    queue_id: u32,
    stop: &Stop,
    lost: &Cell<bool>,
) {
    let Some(start) = starting_offset(client, config, topic, queue_id, &stop.requested).await
    else {
        return;
    };
    let (mut offset, mut done_to, mut committed) = (start, start, start);
    let halted = || stop.requested.get() || lost.get();
    'pulls: while !halted() {
        let commit = (done_to > committed).then_some(done_to);
        let pull = pull_request(config, topic, queue_id, offset, commit);
        let Some(result) = pull_or_stop(client, pull, &stop.requested, Some(&stop.event)).await
        else {
            break;
        };
        if let Some(due) = commit {
            committed = due;
        }
        let Ok(pulled) = result else {
            glommio::timer::sleep(Duration::from_millis(200)).await;
            continue;
        };
        for message in messages_of(topic, queue_id, &pulled).unwrap_or_default() {
            let next = message.offset + 1;
            while let Err(why) = handler(message.clone()).await {
                tracing::debug!(topic, queue_id, offset = message.offset, %why, "orderly handler failed; retrying the same message");
                glommio::timer::sleep(config.retry_delay).await;
                if halted() {
                    break 'pulls;
                }
            }
            done_to = next;
        }
        // Every message of the pull succeeded: what the filter skipped up to its end is done too.
        done_to = done_to.max(pulled.next_offset());
        offset = done_to;
    }
    if done_to > committed {
        let _ = client
            .commit_offset(&config.member.offsets_key(), topic, queue_id, done_to)
            .await;
    }
}
