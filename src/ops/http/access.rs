//! ACL on the HTTP listener (`crate::acl`): with ACL on, every page but `/healthz` needs HTTP
//! Basic authentication with an account's access key and secret key (what Prometheus'
//! `basic_auth` and a browser send); `/api/messages` shows message contents and also needs SUB
//! on its topic. Without credentials, or with wrong ones, the answer is 401 with a Basic
//! challenge; an account without the permission gets 403. Basic sends the secret itself: keep
//! the HTTP listener on loopback, or behind TLS.

use base64::Engine;
use shardmq_protocol::auth::constant_time_eq;

use super::request::Request;
use super::Response;
use crate::acl::{Acl, Denied, Need, Resource};

/// Pages anyone may read, ACL or not.
const OPEN_PATHS: &[&str] = &["/healthz"];

/// `None` when `req` may be served; otherwise the response that refuses it.
pub fn check(acl: &Acl, req: &Request) -> Option<Response> {
    if OPEN_PATHS.contains(&req.path.as_str()) {
        return None;
    }
    let denied = match authenticate(acl, req.authorization.as_deref()) {
        Err(denied) => return Some(Response::text(401, format!("{denied}\n"))),
        Ok(account) => match (req.path.as_str(), req.param("topic")) {
            ("/api/messages", Some(topic)) => account.may(Resource::topic(topic), Need::Subscribe),
            _ => Ok(()),
        },
    };
    denied
        .err()
        .map(|denied| Response::text(403, format!("{denied}\n")))
}

fn authenticate<'a>(acl: &'a Acl, header: Option<&str>) -> Result<&'a crate::acl::Account, Denied> {
    let credentials = header
        .and_then(|h| h.trim().strip_prefix("Basic "))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok());
    let Some((access_key, secret_key)) = credentials.as_deref().and_then(|c| c.split_once(':'))
    else {
        return Err(Denied::NoCredentials);
    };
    let account = acl.account(access_key)?;
    if constant_time_eq(
        account.secret_key.expose().as_bytes(),
        secret_key.as_bytes(),
    ) {
        Ok(account)
    } else {
        Err(Denied::WrongSecret(
            shardmq_protocol::text::Shown(access_key).to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl() -> Acl {
        crate::acl::load_str(
            "[[accounts]]\naccessKey = \"viewer\"\nsecretKey = \"viewer-secret\"\ndefaultTopicPerm = \"DENY\"\ntopicPerms = [\"orders=SUB\"]",
        )
        .unwrap()
    }

    fn get(path: &str, auth: Option<&str>) -> Option<u16> {
        let raw = match auth {
            Some(pair) => format!(
                "GET {path} HTTP/1.1\r\nAuthorization: Basic {}\r\n\r\n",
                base64::engine::general_purpose::STANDARD.encode(pair)
            ),
            None => format!("GET {path} HTTP/1.1\r\n\r\n"),
        };
        let req = super::super::request::parse(raw.as_bytes())
            .unwrap()
            .unwrap();
        check(&acl(), &req).map(|r| r.status)
    }

    #[test]
    fn pages_need_an_account_and_messages_their_topic() {
        assert_eq!(get("/healthz", None), None);
        assert_eq!(get("/metrics", None), Some(401));
        assert_eq!(get("/metrics", Some("viewer:wrong")), Some(401));
        assert_eq!(get("/metrics", Some("nobody:viewer-secret")), Some(401));
        assert_eq!(get("/metrics", Some("viewer:viewer-secret")), None);
        let ok = Some("viewer:viewer-secret");
        assert_eq!(get("/api/messages?topic=orders&queue=0", ok), None);
        assert_eq!(get("/api/messages?topic=payroll&queue=0", ok), Some(403));
    }
}
