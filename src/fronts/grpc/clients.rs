//! The 5.x clients this front end knows: each one's Settings, and the telemetry stream the
//! broker answers it on, by its `x-mq-client-id`.
//!
//! A client sends its Settings on its Telemetry stream and waits for the broker's Settings
//! before it starts (`docs/grpc-5x-client.md` §1). The answer echoes the client's and adds what
//! only the broker decides (retry backoff, the body limit). Because the Node client can drop
//! that answer when it comes during its startup (§1, "startup race"), the answer is pushed
//! again on every Heartbeat of the client (sync is idempotent).
//!
//! Limits: [`CLIENTS_MAX`] clients with an open stream; an entry lives only as long as its
//! stream (or until NotifyClientTermination), so a client that goes away leaves nothing.
//! Producers and SimpleConsumers are served; other clients (PushConsumer, PullConsumer, lite
//! consumers) are told at startup that they are not served yet (UNSUPPORTED), so they fail at
//! once with a reason instead of failing every call.

use std::collections::HashMap;
use std::sync::Mutex;

use shardmq_grpc_proto::v2::{
    self, settings::PubSub, telemetry_command, ClientType, Code, ExponentialBackoff, RetryPolicy,
    Settings, TelemetryCommand,
};
use shardmq_grpc_proto::Duration;
use tokio::sync::mpsc;

use super::status::{self, Refusal};

/// Clients with an open telemetry stream at most; more are refused (TOO_MANY_REQUESTS).
pub const CLIENTS_MAX: usize = 10_000;

/// The largest message body a producer may send (RocketMQ's maxMessageSize, 4 MiB).
pub const MAX_BODY_BYTES: i32 = 4 * 1024 * 1024;

/// What a consumer is told about redelivery: RocketMQ's 16 retries and the first delivery.
const MAX_DELIVERY_ATTEMPTS: i32 = 17;

/// Sends to one client's telemetry stream.
pub type Outbound = mpsc::Sender<Result<TelemetryCommand, tonic::Status>>;

struct Client {
    /// The broker's answer to its last Settings.
    answer: TelemetryCommand,
    stream: Outbound,
    /// Which stream registered it: a newer stream of the same client replaces an older one.
    stream_id: u64,
}

#[derive(Default)]
pub struct Clients {
    by_id: Mutex<HashMap<String, Client>>,
}

impl Clients {
    /// Records `settings` from `client_id`'s stream `stream_id` and returns the answer to send
    /// on it (a status-only command when they are refused).
    pub fn settings(
        &self,
        client_id: &str,
        stream_id: u64,
        stream: &Outbound,
        settings: Settings,
    ) -> TelemetryCommand {
        let answer = match answer(settings) {
            Ok(settings) => TelemetryCommand {
                status: Some(status::ok()),
                command: Some(telemetry_command::Command::Settings(settings)),
            },
            Err(refusal) => return refused(&refusal),
        };
        let mut clients = self.by_id.lock().expect("clients lock");
        if clients.len() >= CLIENTS_MAX && !clients.contains_key(client_id) {
            return refused(&Refusal::new(
                Code::TooManyRequests,
                format!("this broker serves {CLIENTS_MAX} gRPC clients at most"),
            ));
        }
        clients.insert(
            client_id.to_string(),
            Client {
                answer: answer.clone(),
                stream: stream.clone(),
                stream_id,
            },
        );
        answer
    }

    /// Sends the client's current answer again on its stream (on Heartbeat), if it has one.
    pub fn resync(&self, client_id: &str) {
        let clients = self.by_id.lock().expect("clients lock");
        if let Some(client) = clients.get(client_id) {
            // A full stream already has the answer queued; nothing is lost by skipping.
            let _ = client.stream.try_send(Ok(client.answer.clone()));
        }
    }

    /// Forgets the client if stream `stream_id` is still the one it is known by.
    pub fn stream_ended(&self, client_id: &str, stream_id: u64) {
        let mut clients = self.by_id.lock().expect("clients lock");
        if clients.get(client_id).map(|c| c.stream_id) == Some(stream_id) {
            clients.remove(client_id);
        }
    }

    /// NotifyClientTermination: the client is gone.
    pub fn terminated(&self, client_id: &str) {
        self.by_id.lock().expect("clients lock").remove(client_id);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_id.lock().expect("clients lock").len()
    }
}

fn refused(refusal: &Refusal) -> TelemetryCommand {
    TelemetryCommand {
        status: Some(refusal.status()),
        command: None,
    }
}

/// The broker's Settings for a client's: the client's echoed, with the broker's fields set.
fn answer(mut settings: Settings) -> Result<Settings, Refusal> {
    let client_type =
        ClientType::try_from(settings.client_type.unwrap_or(0)).unwrap_or(ClientType::Unspecified);
    match (client_type, &mut settings.pub_sub) {
        (ClientType::Producer, Some(PubSub::Publishing(publishing))) => {
            publishing.max_body_size = MAX_BODY_BYTES;
            settings.backoff_policy = Some(backoff(3));
            Ok(settings)
        }
        (ClientType::SimpleConsumer, Some(PubSub::Subscription(_))) => {
            // A message comes back until acknowledged (no dead-letter queue yet); the client
            // reads this only to report it.
            settings.backoff_policy = Some(backoff(MAX_DELIVERY_ATTEMPTS));
            Ok(settings)
        }
        (ClientType::SimpleConsumer, _) => Err(Refusal::new(
            Code::BadRequest,
            "a simple consumer's settings must carry its subscription",
        )),
        (ClientType::Producer, _) => Err(Refusal::new(
            Code::BadRequest,
            "a producer's settings must carry its publishing settings",
        )),
        (ClientType::Unspecified, _) => Err(Refusal::new(
            Code::UnrecognizedClientType,
            "the settings name no client type",
        )),
        (other, _) => Err(Refusal::new(
            Code::Unsupported,
            format!(
                "this broker does not serve {} clients over gRPC yet; use a SimpleConsumer, or consume over RocketMQ remoting (4.x clients) or the native protocol",
                other.as_str_name()
            ),
        )),
    }
}

/// RocketMQ's proxy default: 10 ms, doubling, at most 1 s.
fn backoff(max_attempts: i32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        strategy: Some(v2::retry_policy::Strategy::ExponentialBackoff(
            ExponentialBackoff {
                initial: Some(Duration {
                    seconds: 0,
                    nanos: 10_000_000,
                }),
                max: Some(Duration {
                    seconds: 1,
                    nanos: 0,
                }),
                multiplier: 2.0,
            },
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardmq_grpc_proto::v2::Publishing;

    fn producer() -> Settings {
        Settings {
            client_type: Some(ClientType::Producer as i32),
            pub_sub: Some(PubSub::Publishing(Publishing {
                validate_message_type: true,
                ..Publishing::default()
            })),
            ..Settings::default()
        }
    }

    fn settings_of(command: &TelemetryCommand) -> &Settings {
        match &command.command {
            Some(telemetry_command::Command::Settings(s)) => s,
            other => panic!("no settings in {other:?}"),
        }
    }

    #[test]
    fn a_producer_is_told_the_body_limit_and_a_backoff_and_keeps_its_own_fields() {
        let clients = Clients::default();
        let (tx, mut rx) = mpsc::channel(4);
        let answer = clients.settings("c1", 1, &tx, producer());
        assert_eq!(answer.status.as_ref().unwrap().code, Code::Ok as i32);
        let settings = settings_of(&answer);
        let Some(PubSub::Publishing(p)) = &settings.pub_sub else {
            panic!("publishing echoed")
        };
        assert_eq!(p.max_body_size, MAX_BODY_BYTES);
        assert!(p.validate_message_type, "the client's choice is kept");
        assert!(matches!(
            settings.backoff_policy.as_ref().unwrap().strategy,
            Some(v2::retry_policy::Strategy::ExponentialBackoff(_))
        ));
        clients.resync("c1");
        assert_eq!(
            rx.try_recv().unwrap().unwrap(),
            answer,
            "heartbeat re-sends it"
        );
        clients.resync("unknown");
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn consumers_and_untyped_clients_are_refused_with_a_reason() {
        let clients = Clients::default();
        let (tx, _rx) = mpsc::channel(4);
        let consumer = Settings {
            client_type: Some(ClientType::PushConsumer as i32),
            ..Settings::default()
        };
        let answer = clients.settings("c", 1, &tx, consumer);
        assert_eq!(answer.status.unwrap().code, Code::Unsupported as i32);
        assert!(answer.command.is_none());
        let untyped = clients.settings("c", 1, &tx, Settings::default());
        assert_eq!(
            untyped.status.unwrap().code,
            Code::UnrecognizedClientType as i32
        );
        assert_eq!(clients.len(), 0, "a refused client is not kept");
    }

    #[test]
    fn only_the_stream_a_client_is_known_by_forgets_it() {
        let clients = Clients::default();
        let (tx, _rx) = mpsc::channel(4);
        clients.settings("c", 1, &tx, producer());
        clients.settings("c", 2, &tx, producer());
        clients.stream_ended("c", 1);
        assert_eq!(
            clients.len(),
            1,
            "the older stream ending leaves the newer one"
        );
        clients.stream_ended("c", 2);
        assert_eq!(clients.len(), 0);
        clients.settings("c", 3, &tx, producer());
        clients.terminated("c");
        assert_eq!(clients.len(), 0);
    }
}
