//! Access log lines (log target `access`): nginx's `combined` plus what an edge
//! operator needs (duration, origin peer, verdict, reason), or one JSON object.
//! The target, the Referer, the User-Agent and the Host go through [`Redact`]:
//! no signature reaches the log, however it was sent.

use std::time::Duration;

use serde::Serialize;

use crate::config::LogFormat;
use crate::redact::Redact;
use crate::verdict::Reason;

/// What one request did.
pub struct Entry<'a> {
    /// Unix time in milliseconds when the request started.
    pub time_ms: i64,
    pub client: &'a str,
    pub host: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub version: &'a str,
    pub status: u16,
    pub bytes: usize,
    pub referer: &'a str,
    pub user_agent: &'a str,
    pub duration: Duration,
    pub origin: Option<&'a str>,
    pub reason: Option<Reason>,
}

#[derive(Serialize)]
struct Json<'a> {
    time: String,
    client: &'a str,
    host: &'a str,
    method: &'a str,
    target: &'a str,
    /// `HTTP/1.1`, `HTTP/2.0`: what combined writes after the target.
    protocol: &'a str,
    status: u16,
    bytes: usize,
    duration_ms: f64,
    origin: Option<&'a str>,
    verdict: &'static str,
    reason: Option<&'static str>,
    referer: &'a str,
    user_agent: &'a str,
}

/// A value for a quoted field: escaped, and `-` when empty (as nginx writes it).
fn quoted(s: &str) -> String {
    if s.is_empty() {
        return "-".into();
    }
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// One log line for `entry`.
pub fn line(format: LogFormat, redact: &Redact, e: &Entry<'_>) -> String {
    let target = redact.target(e.path, e.query);
    let referer = redact.url(e.referer);
    let user_agent = redact.text(e.user_agent);
    let host = redact.text(e.host);
    let when = chrono::DateTime::from_timestamp_millis(e.time_ms).unwrap_or_default();
    let verdict = if e.reason.is_some() { "fail" } else { "pass" };
    match format {
        LogFormat::Combined => format!(
            "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\" {:.3} origin={} verdict={verdict} reason={} host={}",
            e.client,
            when.format("%d/%b/%Y:%H:%M:%S %z"),
            e.method,
            quoted(&target),
            e.version,
            e.status,
            e.bytes,
            quoted(&referer),
            quoted(&user_agent),
            e.duration.as_secs_f64(),
            e.origin.unwrap_or("-"),
            e.reason.map_or("-", Reason::as_str),
            quoted(&host),
        ),
        LogFormat::Json => serde_json::to_string(&Json {
            time: when.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            client: e.client,
            host: &host,
            method: e.method,
            target: &target,
            protocol: e.version,
            status: e.status,
            bytes: e.bytes,
            duration_ms: e.duration.as_secs_f64() * 1000.0,
            origin: e.origin,
            verdict,
            reason: e.reason.map(Reason::as_str),
            referer: &referer,
            user_agent: &user_agent,
        })
        .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(path: &'a str, query: &'a str) -> Entry<'a> {
        Entry {
            time_ms: 1_700_000_000_123,
            client: "192.0.2.7",
            host: "play.example.com",
            method: "GET",
            path,
            query,
            version: "HTTP/1.1",
            status: 200,
            bytes: 1234,
            referer: "",
            user_agent: "curl/8 \"x\"",
            duration: Duration::from_millis(15),
            origin: Some("10.0.0.5:8080"),
            reason: None,
        }
    }

    #[test]
    fn combined_redacts_auth_values_and_signature_segments() {
        let r = Redact::new(vec!["txSecret".into(), "txTime".into()]);
        let l = line(
            LogFormat::Combined,
            &r,
            &entry(
                "/live/a.flv",
                "u=1&txSecret=f85a2ab363fe4deaffef9754d79da6fe&tx%54ime=5C271099",
            ),
        );
        assert!(!l.contains("f85a2ab3") && !l.contains("5C271099"), "{l}");
        assert!(l.starts_with("192.0.2.7 - - [14/Nov/2023:22:13:20 +0000] \"GET /live/a.flv?u=1&txSecret=<redacted>&tx%54ime=<redacted> HTTP/1.1\" 200 1234 \"-\" \"curl/8 \\\"x\\\"\" 0.015 origin=10.0.0.5:8080 verdict=pass reason=-"), "{l}");
        let l = line(
            LogFormat::Combined,
            &r,
            &entry("/201508150800/9044548ef1527deadafa49a890a377f0/a.mp3", ""),
        );
        assert!(l.contains("/201508150800/<redacted>/a.mp3"), "{l}");
    }

    #[test]
    fn json_is_one_object() {
        let r = Redact::new(vec!["sign".into()]);
        let mut e = entry("/live/a.flv", "sign=abc");
        e.reason = Some(Reason::Expired);
        e.status = 403;
        e.origin = None;
        let v: serde_json::Value = serde_json::from_str(&line(LogFormat::Json, &r, &e)).unwrap();
        assert_eq!(v["target"], "/live/a.flv?sign=<redacted>");
        assert_eq!(v["verdict"], "fail");
        assert_eq!(v["reason"], "EXPIRED");
        assert_eq!(v["status"], 403);
        assert_eq!(v["time"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["protocol"], "HTTP/1.1");
    }
}
