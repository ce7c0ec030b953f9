//! TLS end to end (`--tls-cert`, `--tls-key`, `--tls-listen`), with a certificate generated
//! for the test (rcgen, self-signed for 127.0.0.1): the native client over TLS against a
//! two-shard broker (each shard's connection at that shard's own TLS listener), a client that
//! does not trust the certificate refused, and the remoting and HTTP ports serving TLS and
//! plaintext side by side. Plaintext native connections go on working beside TLS ones.

mod harness;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use harness::{batch_of, data_dir, run, Broker};
use shardmq_client::{Client, ClientConfig, TlsConfig};
use shardmq_protocol::remoting::codes::{request, response};
use shardmq_protocol::remoting::RemotingCommand;

/// A self-signed certificate for 127.0.0.1 and localhost: (cert, key) PEM files in `dir`.
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let generated =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.key_pair.serialize_pem()).unwrap();
    (cert, key)
}

fn start(dir: &Path, cert: &Path, key: &Path) -> Broker {
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    Broker::start(
        dir,
        &[
            "--shards",
            "2",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
            "--tls-listen",
            "127.0.0.1:0",
        ],
    )
}

fn tls_config(trusted: &Path) -> ClientConfig {
    ClientConfig {
        tls: Some(TlsConfig::trusting_pem_file(trusted).unwrap()),
        ..ClientConfig::default()
    }
}

#[test]
fn the_native_client_produces_and_pulls_over_tls_on_every_shard() {
    let dir = data_dir();
    let (cert, key) = certificate(dir.path(), "broker");
    let broker = start(&dir.path().join("data"), &cert, &key);
    assert!(
        !broker.tls.is_empty(),
        "the ready line names the TLS listener"
    );
    let (tls_addr, plain_addr) = (broker.tls.clone(), broker.addr.clone());
    run(move || async move {
        let client = Client::connect_with(&tls_addr, "tls-test", tls_config(&cert))
            .await
            .unwrap();
        assert_eq!(client.shard_count(), 2);
        client.create_topic("secure", 4).await.unwrap();
        let mut shards = std::collections::BTreeSet::new();
        for queue in 0..4 {
            shards.insert(client.shard_for("secure", queue));
            let batch = batch_of(0..50, |i| format!("q{queue} r{i}").into_bytes());
            client.produce_batch("secure", queue, &batch).await.unwrap();
        }
        assert_eq!(shards.len(), 2, "the queues cover both shards");
        for queue in 0..4 {
            let pulled = client
                .pull("secure", queue, 0, 100, 1 << 20, 0)
                .await
                .unwrap();
            let records = pulled.to_owned_records().unwrap();
            assert_eq!(records.len(), 50);
            assert_eq!(records[49].1.payload, format!("q{queue} r49").into_bytes());
        }
        // Plaintext on the native listener sees the same data.
        let plain = Client::connect(&plain_addr, "plain").await.unwrap();
        let pulled = plain.pull("secure", 3, 0, 100, 1 << 20, 0).await.unwrap();
        assert_eq!(pulled.record_count().unwrap(), 50);
    });
}

#[test]
fn a_client_that_does_not_trust_the_certificate_is_refused() {
    let dir = data_dir();
    let (cert, key) = certificate(dir.path(), "broker");
    let (other, _) = certificate(dir.path(), "other");
    let broker = start(&dir.path().join("data"), &cert, &key);
    let tls_addr = broker.tls.clone();
    let plain_addr = broker.addr.clone();
    let trusted = cert.clone();
    run(move || async move {
        let untrusted = Client::connect_with(&tls_addr, "mitm", tls_config(&other)).await;
        assert!(
            untrusted.is_err(),
            "a certificate the client does not trust"
        );
        // A TLS client at the plaintext listener fails instead of talking plaintext.
        let mut config = tls_config(&trusted);
        config.connect_timeout = Duration::from_secs(3);
        config.request_timeout = Duration::from_secs(3);
        assert!(Client::connect_with(&plain_addr, "wrong-port", config)
            .await
            .is_err());
    });
    // The broker goes on serving TLS clients.
    let tls_addr = broker.tls.clone();
    run(move || async move {
        let client = Client::connect_with(&tls_addr, "after", tls_config(&cert)).await;
        assert!(client.is_ok());
    });
}

/// A blocking TLS client trusting `cert`.
fn tls_stream(
    addr: &str,
    cert: &Path,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    let config = TlsConfig::trusting_pem_file(cert).unwrap().config;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let session = rustls::ClientConnection::new(Arc::clone(&config), name).unwrap();
    let socket = std::net::TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    rustls::StreamOwned::new(session, socket)
}

/// One remoting request and its response over `stream`.
fn remoting_call(stream: &mut (impl Read + Write), code: i32) -> RemotingCommand {
    let frame = RemotingCommand::request(code, 7).encode().unwrap();
    stream.write_all(&frame).unwrap();
    stream.flush().unwrap();
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).unwrap();
    let len = shardmq_protocol::remoting::command::frame_length(prefix).unwrap();
    let mut rest = vec![0u8; len];
    stream.read_exact(&mut rest).unwrap();
    shardmq_protocol::remoting::command::decode(rest.into()).unwrap()
}

#[test]
fn remoting_and_http_ports_serve_tls_and_plaintext_side_by_side() {
    let dir = data_dir();
    let (cert, key) = certificate(dir.path(), "broker");
    let broker = start(&dir.path().join("data"), &cert, &key);
    let mut secure = tls_stream(&broker.remoting, &cert);
    let answer = remoting_call(&mut secure, request::GET_BROKER_RUNTIME_INFO);
    assert_eq!(answer.code, response::SUCCESS, "{:?}", answer.remark);
    let mut plain = std::net::TcpStream::connect(&broker.remoting).unwrap();
    let answer = remoting_call(&mut plain, request::GET_BROKER_RUNTIME_INFO);
    assert_eq!(answer.code, response::SUCCESS, "{:?}", answer.remark);

    let mut https = tls_stream(&broker.http, &cert);
    https
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut page = String::new();
    let _ = https.read_to_string(&mut page);
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let mut http = std::net::TcpStream::connect(&broker.http).unwrap();
    http.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut page = String::new();
    http.read_to_string(&mut page).unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
}

#[test]
fn a_missing_or_bad_certificate_stops_the_start_with_the_reason() {
    let dir = data_dir();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let missing = dir.path().join("missing.pem");
    for (cert, key, why) in [
        (&missing, &garbage, "--tls-cert"),
        (&garbage, &garbage, "no certificate"),
    ] {
        let err = Broker::try_start(
            &dir.path().join("data"),
            &[
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
            ],
        )
        .map(|_| ())
        .unwrap_err();
        assert!(err.contains(why), "{err}");
    }
}

#[test]
fn the_bench_produces_and_consumes_over_tls() {
    let dir = data_dir();
    let (cert, key) = certificate(dir.path(), "broker");
    let broker = start(&dir.path().join("data"), &cert, &key);
    let tls_addr = broker.tls.clone();
    let trusted = cert.clone();
    run(move || async move {
        let client = Client::connect_with(&tls_addr, "setup", tls_config(&trusted))
            .await
            .unwrap();
        client.create_topic("bench", 4).await.unwrap();
    });
    let json = dir.path().join("produce.json");
    let ca = cert.to_str().unwrap();
    let out = harness::shardmq(&[
        "bench",
        "--broker",
        &broker.tls,
        "produce",
        "--topic",
        "bench",
        "--messages",
        "2000",
        "--batch",
        "100",
        "--tls-ca",
        ca,
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["acked"], 2000, "{report}");
    let out = harness::shardmq(&[
        "bench",
        "--broker",
        &broker.tls,
        "consume",
        "--topic",
        "bench",
        "--messages",
        "2000",
        "--tls-ca",
        ca,
    ]);
    assert!(out.status.success(), "{out:?}");
}
