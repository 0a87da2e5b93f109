//! A management API client: signs each call with `t` and `sign = md5(key + t)`,
//! computed here independently of livegate's own code.

use md5::{Digest, Md5};
use serde_json::Value;

use super::client;

pub const ADMIN_KEY: &str = "adminKey2026";

pub struct Api {
    pub port: u16,
    pub key: String,
}

/// `t` and `sign` for a call that expires at `t`.
pub fn signature(key: &str, t: i64) -> String {
    let sign = Md5::digest(format!("{key}{t}").as_bytes());
    format!("t={t}&sign={sign:x}")
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl Api {
    pub fn new(port: u16) -> Api {
        Api {
            port,
            key: ADMIN_KEY.into(),
        }
    }

    /// `path?query` with a valid signature appended.
    pub fn signed(&self, path_and_query: &str) -> String {
        let sep = if path_and_query.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{path_and_query}{sep}{}", signature(&self.key, now() + 300))
    }

    /// Sends `path_and_query` exactly as given (sign it first, or not).
    pub async fn raw(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req =
            client().request(m, format!("http://127.0.0.1:{}{path_and_query}", self.port));
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
        (status, v)
    }

    /// A signed call with an optional JSON body.
    pub async fn call(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap());
        self.raw(method, &self.signed(path_and_query), body).await
    }

    /// [`Api::call`], keeping to the API's rate limit as a client should: a
    /// 429 is retried after a second (a fast run's back-to-back writes can
    /// pass ten a second; the tests of the limit itself use `call`).
    #[allow(dead_code)]
    pub async fn call_paced(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        for _ in 0..10 {
            let (s, v) = self.call(method, path_and_query, body.clone()).await;
            if s != 429 {
                return (s, v);
            }
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
        self.call(method, path_and_query, body).await
    }
}

/// The error code of an answer.
pub fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or("")
}
