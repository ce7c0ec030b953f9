//! [`ClientConfig`]: the knobs of a [`crate::Client`] and its connections. Plain data.
//!
//! Every wait in this crate is bounded by one of these durations: connecting by
//! `connect_timeout`, the handshake and every request by `request_timeout` (a pull adds its own
//! long-poll `wait_ms` on top, since the broker may legitimately hold it that long).

use std::time::Duration;

use shardmq_protocol::messages::HelloCredentials;

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Bound on one TCP connect (per resolved address).
    pub connect_timeout: Duration,
    /// Bound on one request, from queuing its frame to receiving its reply.
    pub request_timeout: Duration,
    /// The ACL account to connect as (a broker with `--acl` refuses connections without one).
    pub credentials: Option<Credentials>,
    /// Connect over TLS (to the broker's `--tls-listen` address; every shard's connection then
    /// goes to that shard's TLS listener, from the `HelloReply`).
    pub tls: Option<TlsConfig>,
}

/// How to reach a TLS listener: rustls' client configuration (the roots to trust) and, when
/// the address's host is not the certificate's name, the name to check.
#[derive(Clone)]
pub struct TlsConfig {
    pub config: std::sync::Arc<rustls::ClientConfig>,
    pub server_name: Option<String>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Trusts the certificates of a PEM file (a CA, or the broker's own self-signed one).
    pub fn trusting_pem_file(path: &std::path::Path) -> Result<TlsConfig, String> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        if roots.is_empty() {
            return Err(format!("{}: no certificate in it", path.display()));
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsConfig {
            config: std::sync::Arc::new(config),
            server_name: None,
        })
    }

    /// The name the certificate must carry: `server_name`, else `addr`'s host.
    pub fn server_name_for(
        &self,
        addr: &str,
    ) -> std::io::Result<rustls::pki_types::ServerName<'static>> {
        let host = match &self.server_name {
            Some(name) => name.clone(),
            None => addr
                .rsplit_once(':')
                .map_or(addr, |(host, _)| host)
                .trim_matches(|c| c == '[' || c == ']')
                .to_string(),
        };
        rustls::pki_types::ServerName::try_from(host)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))
    }
}

/// The environment variables of [`Credentials::from_env`].
pub const ACCESS_KEY_ENV: &str = "SHARDMQ_ACCESS_KEY";
pub const SECRET_KEY_ENV: &str = "SHARDMQ_SECRET_KEY";

/// An ACL access key and its secret key. The secret is used to sign each Hello and is never
/// sent or shown (`Debug` redacts it).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
}

impl Credentials {
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Credentials {
        Credentials {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
        }
    }

    /// The account of `SHARDMQ_ACCESS_KEY` and `SHARDMQ_SECRET_KEY` (how the CLI tools take
    /// credentials, so a secret never shows in a process list): `None` when neither is set, an
    /// error when only one is.
    pub fn from_env() -> Result<Option<Credentials>, String> {
        let read = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        match (read(ACCESS_KEY_ENV), read(SECRET_KEY_ENV)) {
            (None, None) => Ok(None),
            (Some(access_key), Some(secret_key)) => {
                Ok(Some(Credentials::new(access_key, secret_key)))
            }
            (Some(_), None) => Err(format!(
                "{ACCESS_KEY_ENV} is set but {SECRET_KEY_ENV} is not"
            )),
            (None, Some(_)) => Err(format!(
                "{SECRET_KEY_ENV} is set but {ACCESS_KEY_ENV} is not"
            )),
        }
    }

    /// What goes into a Hello from `client_name`, signed now with a fresh nonce.
    pub fn hello(&self, client_name: &str) -> HelloCredentials {
        let timestamp_ms = shardmq_protocol::auth::unix_time_ms();
        let nonce = fresh_nonce();
        let signature = shardmq_protocol::auth::hello_signature(
            &self.secret_key,
            &self.access_key,
            client_name,
            timestamp_ms,
            nonce,
        );
        HelloCredentials {
            access_key: self.access_key.clone(),
            timestamp_ms,
            nonce,
            signature: signature.to_vec(),
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// A nonce from the process's random hash keys and a counter: unique per Hello, not a secret.
fn fresh_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    hasher.finish()
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            credentials: None,
            tls: None,
        }
    }
}
