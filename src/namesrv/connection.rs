//! The name-server protocol on one connection: remoting frames (`fronts::remoting::frame_io`),
//! answered from the broker's registry (`routes`). Runs on shard 0.

use std::rc::{Rc, Weak};
use std::sync::Arc;

use glommio::net::TcpStream;
use shardmq_protocol::remoting::bodies;
use shardmq_protocol::remoting::codes::{request as code, response};
use shardmq_protocol::remoting::ext::Fields;
use shardmq_protocol::remoting::RemotingCommand;

use super::routes;
use crate::fronts::remoting::dispatch::refused;
use crate::fronts::remoting::error::Refusal;
use crate::fronts::remoting::frame_io::{read_command, reply, InCommand};
use crate::fronts::remoting::state::Directory;
use crate::server::connection::{self, Conn, FrameFailure, Handled, Protocol, Reader};
use crate::server::context::ShardContext;

pub struct NameServer {
    directory: Arc<Directory>,
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

    async fn handle(conn: &Rc<Conn<Self>>, frame: InCommand) -> (Handled, String) {
        let req = frame.command;
        let what = format!("code {}", req.code);
        if req.is_response() {
            return (Handled::Nothing, what);
        }
        let response = answer(conn, &req).unwrap_or_else(|refusal| refused(&req, refusal));
        if req.is_oneway() {
            return (Handled::Nothing, what);
        }
        (Handled::Reply(reply(&response)), what)
    }

    fn closed(_conn: &Conn<Self>) {}
}

fn answer(conn: &Conn<NameServer>, req: &RemotingCommand) -> Result<RemotingCommand, Refusal> {
    let core = &conn.ctx.core;
    let directory = &conn.proto.directory;
    let ok = || RemotingCommand::response_to(req, response::SUCCESS);
    match req.code {
        code::GET_ROUTEINFO_BY_TOPIC => {
            let topic = Fields(&req.ext).str(&["topic"])?;
            let (brokers, queues) = routes::route(core, directory, topic).ok_or_else(|| {
                Refusal::new(
                    response::TOPIC_NOT_EXIST,
                    format!("No topic route info in name server for the topic: {topic}"),
                )
            })?;
            Ok(ok().with_body(bodies::topic_route(&brokers, &queues)))
        }
        code::GET_BROKER_CLUSTER_INFO => {
            Ok(ok().with_body(bodies::cluster_info(&routes::brokers(directory))))
        }
        code::GET_ALL_TOPIC_LIST_FROM_NAMESERVER | code::GET_TOPICS_BY_CLUSTER => {
            let names: Vec<String> = core.topics.list().iter().map(|t| t.name.clone()).collect();
            Ok(ok().with_body(bodies::topic_list(&names)))
        }
        code::GET_KV_CONFIG => Err(Refusal::new(
            response::QUERY_NOT_FOUND,
            format!(
                "No config item, Namespace: {} Key: {}",
                Fields(&req.ext).opt_str(&["namespace"]).unwrap_or(""),
                Fields(&req.ext).opt_str(&["key"]).unwrap_or("")
            ),
        )),
        code::GET_KVLIST_BY_NAMESPACE => Err(Refusal::new(
            response::QUERY_NOT_FOUND,
            "No config item in this namespace",
        )),
        other => Err(Refusal::new(
            response::REQUEST_CODE_NOT_SUPPORTED,
            format!(" request type {other} not supported"),
        )),
    }
}

/// Accepts name-server connections on shard 0 until shutdown.
pub async fn accept_loop(
    ctx: Rc<ShardContext>,
    directory: Arc<Directory>,
    listener: glommio::net::TcpListener,
) {
    let serving = ctx.clone();
    crate::server::listener::accept_until_shutdown(ctx, listener, "namesrv", move |stream| {
        glommio::spawn_local(serve(serving.clone(), directory.clone(), stream)).detach();
    })
    .await;
}

async fn serve(ctx: Rc<ShardContext>, directory: Arc<Directory>, stream: TcpStream) {
    let make = move |_: &Rc<ShardContext>, _: Weak<Conn<NameServer>>| NameServer { directory };
    connection::serve(ctx, stream, make, |_| None).await;
}
