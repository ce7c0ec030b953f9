//! The embedded name server on one connection: remoting frames (`fronts::remoting::frame_io`),
//! answered by `service` from the broker's own shards (`routes`) and the brokers that
//! registered with it. Runs on shard 0.

use std::rc::{Rc, Weak};
use std::sync::{Arc, Mutex};

use glommio::net::TcpStream;

use shardmq_protocol::remoting::bodies::{BrokerData, QueueData};
use shardmq_protocol::remoting::RemotingCommand;

use super::registry::BrokerRegistry;
use super::routes;
use super::service::{self, OwnBrokers};
use crate::fronts::remoting::dispatch::refused;
use crate::fronts::remoting::error::Refusal;
use crate::fronts::remoting::frame_io::{read_command, reply, InCommand};
use crate::fronts::remoting::state::Directory;
use crate::server::connection::{self, Conn, FrameFailure, Handled, Protocol, Reader};
use crate::server::context::ShardContext;

pub struct NameServer {
    directory: Arc<Directory>,
    /// Other brokers that registered with this name server.
    registry: Arc<Mutex<BrokerRegistry>>,
}

impl Protocol for NameServer {
    type Frame = InCommand;
    const NAME: &'static str = "namesrv";

    async fn read_frame(
        conn: &Conn<Self>,
        reader: &mut Reader,
        arrived: &dyn Fn() -> usize,
    ) -> Result<Option<InCommand>, FrameFailure> {
        read_command(conn, reader, arrived, conn.proto.directory.client_idle).await
    }

    async fn handle(conn: &Rc<Conn<Self>>, frame: InCommand) -> (Handled, &'static str) {
        let req = frame.command;
        if req.is_response() {
            return (Handled::Nothing, "response");
        }
        let what = shardmq_protocol::remoting::codes::request::name(req.code);
        let response = answer(conn, &req).unwrap_or_else(|refusal| refused(&req, refusal));
        if req.is_oneway() {
            return (Handled::Nothing, what);
        }
        (Handled::Reply(reply(&response)), what)
    }

    fn closed(_conn: &Conn<Self>) {}
}

/// The embedded name server's own brokers: the shards of this broker.
struct Shards<'a> {
    core: &'a crate::core::Core,
    directory: &'a Directory,
}

impl OwnBrokers for Shards<'_> {
    fn route(&self, topic: &str) -> Option<(Vec<BrokerData>, Vec<QueueData>)> {
        routes::route(self.core, self.directory, topic)
    }

    fn brokers(&self) -> Vec<BrokerData> {
        routes::brokers(self.directory)
    }

    fn topics(&self) -> Vec<String> {
        self.core
            .topics
            .list()
            .iter()
            .map(|t| t.name.clone())
            .collect()
    }

    fn cluster(&self) -> &str {
        &self.directory.cluster
    }
}

fn answer(conn: &Conn<NameServer>, req: &RemotingCommand) -> Result<RemotingCommand, Refusal> {
    let own = Shards {
        core: &conn.ctx.core,
        directory: &conn.proto.directory,
    };
    service::answer(Some(&own), &conn.proto.registry, req)
}

/// Accepts name-server connections on shard 0 until shutdown.
pub async fn accept_loop(
    ctx: Rc<ShardContext>,
    directory: Arc<Directory>,
    listener: glommio::net::TcpListener,
) {
    let serving = ctx.clone();
    let registry = Arc::new(Mutex::new(BrokerRegistry::default()));
    crate::server::listener::accept_until_shutdown(ctx, listener, "namesrv", move |stream| {
        let proto = NameServer {
            directory: directory.clone(),
            registry: registry.clone(),
        };
        glommio::spawn_local(serve(serving.clone(), proto, stream)).detach();
    })
    .await;
}

async fn serve(ctx: Rc<ShardContext>, proto: NameServer, stream: TcpStream) {
    let make = move |_: &Rc<ShardContext>, _: Weak<Conn<NameServer>>| proto;
    connection::serve(ctx, crate::server::tls::Stream::Plain(stream), make, |_| {
        None
    })
    .await;
}
