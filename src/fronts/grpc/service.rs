//! `apache.rocketmq.v2.MessagingService` as this broker serves it: what a 5.x producer needs
//! (`docs/grpc-5x-client.md` §6a) — QueryRoute, Telemetry (Settings), Heartbeat, SendMessage,
//! NotifyClientTermination — and what a SimpleConsumer adds (§6b): ReceiveMessage, AckMessage,
//! ChangeInvisibleDuration (`receive`). Every other call answers gRPC UNIMPLEMENTED with what
//! to use instead; push and pull consumers are refused at their first Settings (`clients`).
//!
//! Answers follow the proxy: gRPC status OK with the outcome in the reply's `Status`, whose code
//! is always set. With an ACL every call is authenticated first (`access`).
//!
//! Routes: the broker is one 5.x broker (`--broker-name`) with one queue, id 0, per topic,
//! reached at the address the client connected to (or `--advertise-host` with the gRPC port);
//! the broker spreads what is sent there over the topic's queues (`core::produce::queue_for`) and hands
//! each batch to the shard that owns its queue (`shard_calls`).

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use shardmq_grpc_proto::v2::messaging_service_server::MessagingService;
use shardmq_grpc_proto::v2::{self as pb, telemetry_command, Code};
use shardmq_protocol::limits::validate_topic_name;
use shardmq_protocol::routing::shard_for_queue;
use shardmq_protocol::ValidatedBatch;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::TcpConnectInfo;
use tonic::{Request, Response, Status, Streaming};

use super::access;
use super::clients::Clients;
use super::receive;
use super::send;
use super::shard_calls::Shards;
use super::status::{self, Refusal};
use crate::acl::{Acl, Need, Resource};
use crate::core::topics::{Topic, TopicRegistry, PERM_READ, PERM_WRITE};
use crate::core::CoreError;

/// The header every 5.x client names itself by.
pub const CLIENT_ID: &str = "x-mq-client-id";
/// Receives in progress broker-wide at most; more are answered TOO_MANY_REQUESTS. Each holds
/// at most one batch of messages (`receive::BATCH_MAX`).
pub const RECEIVES_MAX: usize = 1024;
/// Commands queued for one telemetry stream at most.
const TELEMETRY_QUEUE: usize = 16;

pub struct Messaging {
    pub shards: Shards,
    pub topics: Arc<TopicRegistry>,
    pub clients: Clients,
    pub acl: Option<Arc<Acl>>,
    pub broker_name: String,
    pub advertise_host: Option<String>,
    turn: AtomicU64,
    next_stream: AtomicU64,
    /// Receives in progress (long polls included), at most [`RECEIVES_MAX`].
    receives: Arc<tokio::sync::Semaphore>,
}

type Answer<T> = Result<Response<T>, Status>;

impl Messaging {
    pub fn new(shards: Shards, topics: Arc<TopicRegistry>, acl: Option<Arc<Acl>>) -> Messaging {
        Messaging {
            shards,
            topics,
            clients: Clients::default(),
            acl,
            broker_name: "shardmq".into(),
            advertise_host: None,
            turn: AtomicU64::new(0),
            next_stream: AtomicU64::new(1),
            receives: Arc::new(tokio::sync::Semaphore::new(RECEIVES_MAX)),
        }
    }

    /// The signing account's check, or none without an ACL.
    fn authenticate<T>(
        &self,
        request: &Request<T>,
    ) -> Result<Option<&crate::acl::Account>, Refusal> {
        match &self.acl {
            None => Ok(None),
            Some(acl) => access::authenticate(acl, request.metadata()).map(Some),
        }
    }

    /// The topic as it is; never made.
    pub fn existing_topic(&self, name: &str) -> Result<Topic, Refusal> {
        validate_topic_name(name)
            .map_err(|e| Refusal::new(Code::IllegalTopic, format!("topic {name:?}: {e}")))?;
        self.topics
            .get(name)
            .ok_or_else(|| CoreError::TopicNotFound(name.to_string()).into())
    }

    /// A number that grows by one per call, to take queues and shards in turn.
    pub fn next_turn(&self) -> u64 {
        self.turn.fetch_add(1, Ordering::Relaxed)
    }

    /// May the call's signer consume `topic` as `group` (SUB on both)? Always, without ACL.
    fn may_consume<T>(
        &self,
        request: &Request<T>,
        group: &str,
        topic: &str,
    ) -> Result<(), Refusal> {
        if let Some(account) = self.authenticate(request)? {
            account.may(Resource::Group(group), Need::Subscribe)?;
            account.may(Resource::topic(topic), Need::Subscribe)?;
        }
        Ok(())
    }

    /// The topic, made first when auto-creation is on.
    async fn topic(&self, name: &str) -> Result<Topic, Refusal> {
        validate_topic_name(name)
            .map_err(|e| Refusal::new(Code::IllegalTopic, format!("topic {name:?}: {e}")))?;
        if let Some(topic) = self.topics.get(name) {
            return Ok(topic);
        }
        self.shards.ensure_topic(name).await?;
        self.topics
            .get(name)
            .ok_or_else(|| CoreError::TopicNotFound(name.to_string()).into())
    }

    fn endpoints(&self, info: Option<&TcpConnectInfo>) -> pb::Endpoints {
        let local = info.and_then(|i| i.local_addr);
        let port = local.map_or(0, |a| i32::from(a.port()));
        let host = match (&self.advertise_host, local) {
            (Some(host), _) => host.clone(),
            (None, Some(addr)) => addr.ip().to_string(),
            (None, None) => "127.0.0.1".into(),
        };
        let scheme = match host.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => pb::AddressScheme::IPv4,
            Ok(IpAddr::V6(_)) => pb::AddressScheme::IPv6,
            Err(_) => pb::AddressScheme::DomainName,
        };
        pb::Endpoints {
            scheme: scheme as i32,
            addresses: vec![pb::Address { host, port }],
        }
    }

    async fn route(
        &self,
        request: Request<pb::QueryRouteRequest>,
    ) -> Result<pb::QueryRouteResponse, Refusal> {
        self.authenticate(&request)?;
        let endpoints = self.endpoints(request.extensions().get::<TcpConnectInfo>());
        let asked = request.into_inner().topic.unwrap_or_default();
        let topic = self.topic(&asked.name).await?;
        let permission = match (topic.perm & PERM_READ != 0, topic.perm & PERM_WRITE != 0) {
            (true, true) => pb::Permission::ReadWrite,
            (true, false) => pb::Permission::Read,
            (false, true) => pb::Permission::Write,
            (false, false) => pb::Permission::None,
        };
        let queue = pb::MessageQueue {
            topic: Some(asked),
            id: 0,
            permission: permission as i32,
            broker: Some(pb::Broker {
                name: self.broker_name.clone(),
                id: 0,
                endpoints: Some(endpoints),
            }),
            accept_message_types: vec![
                pb::MessageType::Normal as i32,
                pb::MessageType::Fifo as i32,
            ],
        };
        Ok(pb::QueryRouteResponse {
            status: Some(status::ok()),
            message_queues: vec![queue],
        })
    }

    async fn send(&self, request: Request<pb::SendMessageRequest>) -> pb::SendMessageResponse {
        let peer = request.remote_addr();
        let account = match self.authenticate(&request) {
            Ok(account) => account,
            Err(refusal) => return send_refused(&[], &refusal),
        };
        let account = account.cloned();
        let messages = request.into_inner().messages;
        let born_host = peer
            .map(shardmq_protocol::record::born_host_bytes)
            .unwrap_or_default();
        match self.store(&messages, &born_host, account.as_ref()).await {
            Ok(entries) => pb::SendMessageResponse {
                status: Some(status::ok()),
                entries,
            },
            Err(refusal) => send_refused(&messages, &refusal),
        }
    }

    async fn store(
        &self,
        messages: &[pb::Message],
        born_host: &[u8],
        account: Option<&crate::acl::Account>,
    ) -> Result<Vec<pb::SendResultEntry>, Refusal> {
        let checked = send::check(messages, born_host)?;
        if let Some(account) = account {
            account.may(Resource::topic(checked.topic), Need::Publish)?;
        }
        let topic = self.topic(checked.topic).await?;
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        let queue_id = crate::core::produce::queue_for(checked.message_group, topic.queues, turn);
        let owner = shard_for_queue(&topic.name, queue_id, self.shards.count());
        let batch = ValidatedBatch::encode(&checked.records).map_err(CoreError::BadBatch)?;
        let produced = self
            .shards
            .produce(owner, &topic.name, queue_id, batch)
            .await?;
        Ok(checked
            .message_ids
            .iter()
            .zip(produced.base_offset..)
            .map(|(id, offset)| pb::SendResultEntry {
                status: Some(status::ok()),
                message_id: id.to_string(),
                offset: offset as i64,
                ..pb::SendResultEntry::default()
            })
            .collect())
    }

    /// Serves one telemetry stream: answers each Settings, ends when the client half-closes.
    fn telemetry_stream(
        self: &Arc<Self>,
        client_id: String,
        mut inbound: Streaming<pb::TelemetryCommand>,
    ) -> ReceiverStream<Result<pb::TelemetryCommand, Status>> {
        let (outbound, rx) = mpsc::channel(TELEMETRY_QUEUE);
        let stream_id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let this = self.clone();
        tokio::spawn(async move {
            while let Some(Ok(command)) = inbound.next().await {
                if let Some(telemetry_command::Command::Settings(settings)) = command.command {
                    let answer = this
                        .clients
                        .settings(&client_id, stream_id, &outbound, settings);
                    if outbound.send(Ok(answer)).await.is_err() {
                        break;
                    }
                }
                // Stack traces, verify results, orphaned-transaction replies: nothing to do yet.
            }
            this.clients.stream_ended(&client_id, stream_id);
        });
        ReceiverStream::new(rx)
    }
}

/// A refused send: the reason on top and on every message's entry (clients read either).
fn send_refused(messages: &[pb::Message], refusal: &Refusal) -> pb::SendMessageResponse {
    let entry = |m: &pb::Message| pb::SendResultEntry {
        status: Some(refusal.status()),
        message_id: m
            .system_properties
            .as_ref()
            .map_or(String::new(), |s| s.message_id.clone()),
        ..pb::SendResultEntry::default()
    };
    pb::SendMessageResponse {
        status: Some(refusal.status()),
        entries: messages.iter().map(entry).collect(),
    }
}

fn client_id<T>(request: &Request<T>) -> Option<String> {
    request
        .metadata()
        .get(CLIENT_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

fn names(group: Option<&pb::Resource>, topic: Option<&pb::Resource>) -> (String, String) {
    let name = |r: Option<&pb::Resource>| r.map(|r| r.name.clone()).unwrap_or_default();
    (name(group), name(topic))
}

fn not_served(what: &str, instead: &str) -> Status {
    Status::unimplemented(format!(
        "{what} is not served by this broker over gRPC yet; {instead}"
    ))
}

const CONSUME_INSTEAD: &str =
    "use a SimpleConsumer, or consume over RocketMQ remoting (4.x clients) or the native protocol";

type CommandStream = Pin<Box<dyn Stream<Item = Result<pb::TelemetryCommand, Status>> + Send>>;

/// A telemetry stream that says why it is refused and ends.
fn refused_stream(refusal: &Refusal) -> CommandStream {
    let command = pb::TelemetryCommand {
        status: Some(refusal.status()),
        command: None,
    };
    Box::pin(tokio_stream::once(Ok(command)))
}

/// The service tonic serves: the shared state behind an `Arc` (telemetry tasks keep it).
#[derive(Clone)]
pub struct Service(pub Arc<Messaging>);

#[tonic::async_trait]
impl MessagingService for Service {
    async fn query_route(
        &self,
        request: Request<pb::QueryRouteRequest>,
    ) -> Answer<pb::QueryRouteResponse> {
        let answer = self
            .0
            .route(request)
            .await
            .unwrap_or_else(|refusal| pb::QueryRouteResponse {
                status: Some(refusal.status()),
                message_queues: Vec::new(),
            });
        Ok(Response::new(answer))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Answer<pb::HeartbeatResponse> {
        let result = self.0.authenticate(&request).map(|_| ());
        if let (Ok(()), Some(id)) = (&result, client_id(&request)) {
            self.0.clients.resync(&id);
        }
        Ok(Response::new(pb::HeartbeatResponse {
            status: Some(status::of(&result)),
        }))
    }

    async fn send_message(
        &self,
        request: Request<pb::SendMessageRequest>,
    ) -> Answer<pb::SendMessageResponse> {
        Ok(Response::new(self.0.send(request).await))
    }

    async fn query_assignment(
        &self,
        _: Request<pb::QueryAssignmentRequest>,
    ) -> Answer<pb::QueryAssignmentResponse> {
        Err(not_served(
            "QueryAssignment (push consumers)",
            CONSUME_INSTEAD,
        ))
    }

    type ReceiveMessageStream =
        Pin<Box<dyn Stream<Item = Result<pb::ReceiveMessageResponse, Status>> + Send>>;

    async fn receive_message(
        &self,
        request: Request<pb::ReceiveMessageRequest>,
    ) -> Answer<Self::ReceiveMessageStream> {
        let checked = receive::check(request.get_ref()).and_then(|r| {
            self.0.may_consume(&request, &r.group, &r.topic.name)?;
            Ok(r)
        });
        let status_only = |refusal: Refusal| {
            let status = pb::receive_message_response::Content::Status(refusal.status());
            let answer = pb::ReceiveMessageResponse {
                content: Some(status),
            };
            Response::new(Box::pin(tokio_stream::once(Ok(answer))) as Self::ReceiveMessageStream)
        };
        let r = match checked {
            Ok(r) => r,
            Err(refusal) => return Ok(status_only(refusal)),
        };
        // The long poll runs in a task of its own, so it holds no slot of the calls in
        // progress (a send's); receives have their own bound.
        let Ok(permit) = self.0.receives.clone().try_acquire_owned() else {
            let busy = format!("{RECEIVES_MAX} receives are waiting already; try again");
            return Ok(status_only(Refusal::new(Code::TooManyRequests, busy)));
        };
        let (tx, rx) = mpsc::channel(receive::BATCH_MAX as usize + 2);
        let messaging = self.0.clone();
        tokio::spawn(async move {
            for answer in receive::receive(&messaging, r).await {
                if tx.send(Ok(answer)).await.is_err() {
                    break;
                }
            }
            drop(permit);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn ack_message(
        &self,
        request: Request<pb::AckMessageRequest>,
    ) -> Answer<pb::AckMessageResponse> {
        let (group, topic) = names(
            request.get_ref().group.as_ref(),
            request.get_ref().topic.as_ref(),
        );
        if let Err(refusal) = self.0.may_consume(&request, &group, &topic) {
            return Ok(Response::new(pb::AckMessageResponse {
                status: Some(refusal.status()),
                entries: Vec::new(),
            }));
        }
        Ok(Response::new(
            receive::ack(&self.0, request.into_inner()).await,
        ))
    }

    async fn forward_message_to_dead_letter_queue(
        &self,
        _: Request<pb::ForwardMessageToDeadLetterQueueRequest>,
    ) -> Answer<pb::ForwardMessageToDeadLetterQueueResponse> {
        Err(not_served(
            "ForwardMessageToDeadLetterQueue",
            CONSUME_INSTEAD,
        ))
    }

    type PullMessageStream =
        Pin<Box<dyn Stream<Item = Result<pb::PullMessageResponse, Status>> + Send>>;

    async fn pull_message(
        &self,
        _: Request<pb::PullMessageRequest>,
    ) -> Answer<Self::PullMessageStream> {
        Err(not_served("PullMessage", CONSUME_INSTEAD))
    }

    async fn update_offset(
        &self,
        _: Request<pb::UpdateOffsetRequest>,
    ) -> Answer<pb::UpdateOffsetResponse> {
        Err(not_served("UpdateOffset", CONSUME_INSTEAD))
    }

    async fn get_offset(&self, _: Request<pb::GetOffsetRequest>) -> Answer<pb::GetOffsetResponse> {
        Err(not_served("GetOffset", CONSUME_INSTEAD))
    }

    async fn query_offset(
        &self,
        _: Request<pb::QueryOffsetRequest>,
    ) -> Answer<pb::QueryOffsetResponse> {
        Err(not_served("QueryOffset", CONSUME_INSTEAD))
    }

    async fn end_transaction(
        &self,
        _: Request<pb::EndTransactionRequest>,
    ) -> Answer<pb::EndTransactionResponse> {
        Err(not_served(
            "EndTransaction",
            "transactional messages are not supported yet",
        ))
    }

    type TelemetryStream = CommandStream;

    async fn telemetry(
        &self,
        request: Request<Streaming<pb::TelemetryCommand>>,
    ) -> Answer<Self::TelemetryStream> {
        if let Err(refusal) = self.0.authenticate(&request) {
            return Ok(Response::new(refused_stream(&refusal)));
        }
        let Some(id) = client_id(&request) else {
            let refusal = Refusal::new(
                Code::ClientIdRequired,
                format!("a telemetry stream needs the {CLIENT_ID} header"),
            );
            return Ok(Response::new(refused_stream(&refusal)));
        };
        let stream = self.0.telemetry_stream(id, request.into_inner());
        Ok(Response::new(Box::pin(stream)))
    }

    async fn notify_client_termination(
        &self,
        request: Request<pb::NotifyClientTerminationRequest>,
    ) -> Answer<pb::NotifyClientTerminationResponse> {
        let result = self.0.authenticate(&request).map(|_| ());
        if let (Ok(()), Some(id)) = (&result, client_id(&request)) {
            self.0.clients.terminated(&id);
        }
        Ok(Response::new(pb::NotifyClientTerminationResponse {
            status: Some(status::of(&result)),
        }))
    }

    async fn change_invisible_duration(
        &self,
        request: Request<pb::ChangeInvisibleDurationRequest>,
    ) -> Answer<pb::ChangeInvisibleDurationResponse> {
        let (group, topic) = names(
            request.get_ref().group.as_ref(),
            request.get_ref().topic.as_ref(),
        );
        if let Err(refusal) = self.0.may_consume(&request, &group, &topic) {
            return Ok(Response::new(pb::ChangeInvisibleDurationResponse {
                status: Some(refusal.status()),
                receipt_handle: String::new(),
            }));
        }
        Ok(Response::new(
            receive::change_invisible(&self.0, request.into_inner()).await,
        ))
    }

    async fn recall_message(
        &self,
        _: Request<pb::RecallMessageRequest>,
    ) -> Answer<pb::RecallMessageResponse> {
        Err(not_served(
            "RecallMessage",
            "delayed messages are not supported yet",
        ))
    }

    async fn sync_lite_subscription(
        &self,
        _: Request<pb::SyncLiteSubscriptionRequest>,
    ) -> Answer<pb::SyncLiteSubscriptionResponse> {
        Err(not_served("SyncLiteSubscription", CONSUME_INSTEAD))
    }
}
