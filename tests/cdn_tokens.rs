//! Akamai EdgeAuth, CloudFront and JWT tokens through the running edge — made
//! by the vendors' own libraries (`akamai-edgeauth`, botocore's
//! `CloudFrontSigner` with `cryptography`, PyJWT; tests/cdn/vectors.py), not by
//! our reading of them. Each passes (200), and tampered, expired, not-yet-valid,
//! out-of-scope, other-address and wrong-key variants fail with their reason.
//! `livegate sign` writes what the references write or accept, and HLS plays
//! in ffmpeg on a CloudFront cookie and on an Akamai cookie with no playlist
//! rewrite.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::media::{demo_origin, need};
use support::{client, origin_yaml, Livegate, Origin};

const HOST: &str = "127.0.0.1";
const AKAMAI_KEY: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
/// A newer primary key: the vectors are signed with the backup ([`AKAMAI_KEY`]).
const AKAMAI_PRIMARY: &str = "00112233445566778899aabbccddeeff";
const JWT_SECRET: &str = "jwtSecret2026-long-enough-for-hs256";

/// The private directory the reference libraries are installed into.
fn pyref() -> PathBuf {
    let dir = std::env::var_os("LIVEGATE_PYREF").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cdn/pyref"),
        PathBuf::from,
    );
    assert!(
        dir.join("akamai/edgeauth").is_dir() && dir.join("botocore").is_dir() && dir.join("jwt").is_dir(),
        "the vendors' reference libraries are needed in {}: python3 -m pip install --target {} \
         akamai-edgeauth botocore pyjwt cryptography (Debian: python3-pip; scripts/test.sh does this)",
        dir.display(),
        dir.display()
    );
    dir
}

/// tests/cdn/vectors.py with the reference libraries.
fn reference(args: &[&str]) -> String {
    need("python3", "python3");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cdn/vectors.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .env("PYTHONPATH", pyref())
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vectors.py {args:?}: {}",
        support::said(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The edge, its keys and the reference vectors.
struct Edge {
    lg: Livegate,
    keys: tempfile::TempDir,
    v: Value,
}

fn pem(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

/// One rule of the domain's `auth`, as a flow mapping (JSON is YAML).
fn rule(app: &str, scheme: &str, extra: Value) -> String {
    let mut r = json!({ "scene": "pull", "app": app, "scheme": scheme });
    if let (Some(r), Some(extra)) = (r.as_object_mut(), extra.as_object()) {
        r.extend(extra.clone());
    }
    format!("      - {r}\n")
}

fn edge(origin: &str) -> Edge {
    let keys = tempfile::tempdir().unwrap();
    let dir = keys.path().to_str().unwrap().to_owned();
    let v: Value =
        serde_json::from_str(&reference(&["make", &dir, &now().to_string(), HOST])).unwrap();
    let cf_key = format!("K2JCJMDEHXQW5F:{}", pem(keys.path(), "rsa_public.pem"));
    let cloudfront = json!({
        "keys": [cf_key],
        "private_key_file": keys.path().join("rsa_private.pem"),
    });
    let rules = [
        rule(
            "ak",
            "akamai_token",
            json!({ "keys": [AKAMAI_PRIMARY, AKAMAI_KEY] }),
        ),
        rule(
            "ak1",
            "akamai_token",
            json!({ "keys": [AKAMAI_KEY], "algorithm": "sha1" }),
        ),
        rule(
            "akh",
            "akamai_token",
            json!({ "keys": [AKAMAI_KEY], "token": { "query": "", "header": "X-Akamai-Token" } }),
        ),
        rule("akl", "akamai_token", json!({ "keys": [AKAMAI_KEY] })),
        rule("cf", "cloudfront", cloudfront.clone()),
        rule("cfl", "cloudfront", cloudfront),
        rule(
            "jwt",
            "jwt",
            json!({
                "keys": [JWT_SECRET, pem(keys.path(), "rsa_public.pem"), pem(keys.path(), "ec_public.pem")],
                "audience": "livegate",
                "issuer": "backend.example.com",
                "claims": { "stream": "stream" },
            }),
        ),
    ];
    let domains = format!(
        "  - name: \"{HOST}\"\n    origin: {origin}\n    auth:\n{}",
        rules.concat()
    );
    Edge {
        lg: Livegate::start(&domains),
        keys,
        v,
    }
}

impl Edge {
    fn vector(&self, scheme: &str, name: &str) -> String {
        self.v[scheme][name]
            .as_str()
            .unwrap_or_else(|| panic!("no vector {scheme}.{name}"))
            .to_owned()
    }

    /// botocore's signed cookies, each `name=value` plus `attributes`, joined by `sep`.
    fn cloudfront_cookies(&self, attributes: &str, sep: &str) -> String {
        let jar = self.v["cloudfront"]["cookies"].as_object().unwrap();
        jar.iter()
            .map(|(k, v)| format!("{k}={}{attributes}", v.as_str().unwrap()))
            .collect::<Vec<_>>()
            .join(sep)
    }

    /// The status of `GET path` with `headers`, and the reason logged when refused.
    async fn status(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let denials = |log: &str| log.matches("denied GET").count();
        let before = denials(&self.lg.log());
        let mut r = client().get(self.lg.url(path));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let status = r.send().await.unwrap().status().as_u16();
        if status == 200 {
            return (status, String::new());
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.lg.log();
            if denials(&log) > before {
                let line = log
                    .lines()
                    .rev()
                    .find(|l| l.contains("denied GET"))
                    .unwrap();
                let reason = line
                    .split(": ")
                    .nth(1)
                    .unwrap_or("")
                    .split(' ')
                    .next()
                    .unwrap_or("");
                return (status, reason.to_owned());
            }
            assert!(
                Instant::now() < deadline,
                "no denial logged for {path}:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn expect(&self, path: &str, headers: &[(&str, &str)], want: (u16, &str)) {
        let got = self.status(path, headers).await;
        assert_eq!((got.0, got.1.as_str()), want, "GET {path} {headers:?}");
    }
}

/// `token` with one character of its signature changed (ten from the end:
/// the last of a base64 signature may carry padding bits).
fn tampered(token: &str) -> String {
    let mut t: Vec<char> = token.chars().collect();
    let i = t.len() - 10;
    t[i] = if t[i] == 'a' { 'b' } else { 'a' };
    t.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn akamai_tokens_from_the_reference_generator() {
    let o = Origin::start("o1").await;
    let e = edge(&origin_yaml(&[o.addr], ""));
    let acl = e.vector("akamai", "acl");
    // An ACL token opens the stream's playlist and every segment, by query or cookie.
    let cookie = format!("a=1; __hdnea__={acl}");
    for path in ["/ak/cam1/index.m3u8", "/ak/cam1/seg-7.ts"] {
        e.expect(&format!("{path}?hdnts={acl}&v=1"), &[], (200, ""))
            .await;
        e.expect(path, &[("cookie", &cookie)], (200, "")).await;
    }
    // What the origin gets (past the cache, which asks with no viewer's cookies).
    e.expect(
        &format!("/ak/cam1/meta.txt?hdnts={acl}&v=1"),
        &[],
        (200, ""),
    )
    .await;
    assert_eq!(
        o.last().uri,
        "/ak/cam1/meta.txt?v=1",
        "the token reached the origin"
    );
    e.expect("/ak/cam1/meta.txt", &[("cookie", &cookie)], (200, ""))
        .await;
    assert_eq!(
        o.last().header("cookie"),
        Some("a=1"),
        "the token cookie reached the origin"
    );
    e.expect(
        &format!("/ak/cam1/index.m3u8?hdnts={}", e.vector("akamai", "url")),
        &[],
        (200, ""),
    )
    .await;
    e.expect(
        &format!("/ak1/cam1/a.ts?hdnts={}", e.vector("akamai", "sha1")),
        &[],
        (200, ""),
    )
    .await;
    let header = e.vector("akamai", "header");
    e.expect("/akh/cam1/a.ts", &[("x-akamai-token", &header)], (200, ""))
        .await;
    let sent = format!("/akh/cam1/a.ts?hdnts={header}");
    e.expect(&sent, &[], (403, "MISSING_SIGNATURE")).await;
    // And each way to fail, with its reason.
    let q = |name: &str| format!("/ak/cam1/index.m3u8?hdnts={}", e.vector("akamai", name));
    e.expect(
        &format!("/ak/cam2/index.m3u8?hdnts={acl}"),
        &[],
        (403, "OUT_OF_SCOPE"),
    )
    .await;
    e.expect(&q("expired"), &[], (403, "EXPIRED")).await;
    e.expect(&q("not_yet"), &[], (403, "BAD_TIMESTAMP")).await;
    e.expect(&q("other_ip"), &[], (403, "BAD_IP")).await;
    e.expect(&q("wrong_key"), &[], (403, "BAD_SIGNATURE")).await;
    e.expect(
        &format!("/ak/cam1/a.ts?hdnts={}", tampered(&acl)),
        &[],
        (403, "BAD_SIGNATURE"),
    )
    .await;
    e.expect("/ak/cam1/a.ts", &[], (403, "MISSING_SIGNATURE"))
        .await;
    let both = format!("__hdnea__={acl}");
    e.expect(
        &format!("/ak/cam1/a.ts?hdnts={acl}"),
        &[("cookie", &both)],
        (403, "MALFORMED"),
    )
    .await;
    // Tokens never reach the log.
    let log = e.lg.log();
    assert!(
        !log.contains(acl.split("hmac=").nth(1).unwrap()),
        "a token in the log:\n{log}"
    );

    // `livegate sign` writes the token Akamai's generator writes for the same
    // inputs (with the rule's first key), and it opens the stream.
    let exp = (now() + 900).to_string();
    let signed = e.lg.sign(
        &format!("http://{HOST}/ak/cam1/index.m3u8"),
        &["--acl", "/ak/cam1/*", "--expire", &exp],
    );
    let ours = signed.split("hdnts=").nth(1).unwrap();
    let theirs = reference(&["akamai", AKAMAI_PRIMARY, "/ak/cam1/*", &exp]);
    assert_eq!(ours, theirs.trim());
    e.expect(&format!("/ak/cam1/seg-1.ts?hdnts={ours}"), &[], (200, ""))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cloudfront_urls_and_cookies_from_botocore() {
    let o = Origin::start("o1").await;
    let e = edge(&origin_yaml(&[o.addr], ""));
    let canned = e.vector("cloudfront", "canned");
    e.expect(&format!("/cf/cam1/index.m3u8?{canned}"), &[], (200, ""))
        .await;
    assert_eq!(
        o.last().uri,
        "/cf/cam1/index.m3u8",
        "the signature reached the origin"
    );
    // A canned policy is for its one URL.
    e.expect(
        &format!("/cf/cam1/other.m3u8?{canned}"),
        &[],
        (403, "BAD_SIGNATURE"),
    )
    .await;
    let custom = e.vector("cloudfront", "custom");
    for path in ["/cf/cam1/index.m3u8", "/cf/cam1/seg-3.ts"] {
        e.expect(&format!("{path}?{custom}"), &[], (200, "")).await;
    }
    e.expect(
        &format!("/cf/cam2/index.m3u8?{custom}"),
        &[],
        (403, "OUT_OF_SCOPE"),
    )
    .await;
    let q = |name: &str| format!("/cf/cam1/index.m3u8?{}", e.vector("cloudfront", name));
    e.expect(&q("canned_expired"), &[], (403, "EXPIRED")).await;
    e.expect(&q("custom_other_ip"), &[], (403, "BAD_IP")).await;
    e.expect(&q("custom_not_yet"), &[], (403, "BAD_TIMESTAMP"))
        .await;
    e.expect(&q("wrong_key"), &[], (403, "BAD_SIGNATURE")).await;
    let forged = canned.replacen("Signature=", "Signature=A", 1);
    e.expect(
        &format!("/cf/cam1/index.m3u8?{forged}"),
        &[],
        (403, "MALFORMED"),
    )
    .await;
    let swapped = canned.replace("Key-Pair-Id=K2JCJMDEHXQW5F", "Key-Pair-Id=APKAOTHER");
    e.expect(
        &format!("/cf/cam1/index.m3u8?{swapped}"),
        &[],
        (403, "BAD_SIGNATURE"),
    )
    .await;

    // Signed cookies cover the stream's playlist and segments.
    let cookie = e.cloudfront_cookies("", "; ");
    e.expect("/cfl/cam1-4.ts", &[("cookie", &cookie)], (200, ""))
        .await;
    e.expect("/cfl/cam1.txt", &[("cookie", &cookie)], (200, ""))
        .await;
    assert_eq!(
        o.last().header("cookie"),
        None,
        "signed cookies reached the origin"
    );
    e.expect(
        "/cfl/cam2.m3u8",
        &[("cookie", &cookie)],
        (403, "OUT_OF_SCOPE"),
    )
    .await;

    // `livegate sign` with the private key: canned, and a custom policy for the stream.
    let signed = e.lg.sign(&format!("http://{HOST}/cf/cam1/index.m3u8"), &[]);
    let query = signed.split_once('?').unwrap().1;
    e.expect(&format!("/cf/cam1/index.m3u8?{query}"), &[], (200, ""))
        .await;
    let signed = e.lg.sign(
        &format!("http://{HOST}/cf/cam1/index.m3u8"),
        &["--acl", "/cf/cam1/*"],
    );
    let query = signed.split_once('?').unwrap().1;
    e.expect(&format!("/cf/cam1/seg-9.ts?{query}"), &[], (200, ""))
        .await;
    e.expect(
        &format!("/cf/cam3/seg-9.ts?{query}"),
        &[],
        (403, "OUT_OF_SCOPE"),
    )
    .await;
    drop(e.keys);
}

#[tokio::test(flavor = "multi_thread")]
async fn jwts_from_pyjwt_in_the_query_and_the_authorization_header() {
    let o = Origin::start("o1").await;
    let e = edge(&origin_yaml(&[o.addr], ""));
    for alg in ["hs256", "rs256", "es256"] {
        let t = e.vector("jwt", alg);
        e.expect(&format!("/jwt/cam1.m3u8?token={t}"), &[], (200, ""))
            .await;
        e.expect(&format!("/jwt/cam1.txt?token={t}"), &[], (200, ""))
            .await;
        assert_eq!(o.last().uri, "/jwt/cam1.txt");
        let bearer = format!("Bearer {t}");
        e.expect("/jwt/cam1-5.ts", &[("authorization", &bearer)], (200, ""))
            .await;
        e.expect("/jwt/cam1.txt", &[("authorization", &bearer)], (200, ""))
            .await;
        assert_eq!(
            o.last().header("authorization"),
            None,
            "the bearer token reached the origin"
        );
        e.expect(
            &format!("/jwt/cam2.m3u8?token={t}"),
            &[],
            (403, "OUT_OF_SCOPE"),
        )
        .await;
        e.expect(
            &format!("/jwt/cam1.m3u8?token={}", tampered(&t)),
            &[],
            (403, "BAD_SIGNATURE"),
        )
        .await;
    }
    let q = |name: &str| format!("/jwt/cam1.m3u8?token={}", e.vector("jwt", name));
    e.expect(&q("expired"), &[], (403, "EXPIRED")).await;
    e.expect(&q("not_yet"), &[], (403, "BAD_TIMESTAMP")).await;
    e.expect(&q("other_stream"), &[], (403, "OUT_OF_SCOPE"))
        .await;
    e.expect(&q("other_audience"), &[], (403, "OUT_OF_SCOPE"))
        .await;
    e.expect(&q("wrong_key"), &[], (403, "BAD_SIGNATURE")).await;
    e.expect("/jwt/cam1.m3u8?token=not.a.jwt", &[], (403, "MALFORMED"))
        .await;

    // `livegate sign` makes an HS256 token PyJWT accepts, with the rule's claims.
    let signed = e.lg.sign(&format!("http://{HOST}/jwt/cam1.m3u8"), &[]);
    let token = signed.split("token=").nth(1).unwrap();
    let claims: Value = serde_json::from_str(&reference(&[
        "jwt-decode",
        token,
        JWT_SECRET,
        "livegate",
        "backend.example.com",
    ]))
    .unwrap();
    assert_eq!(claims["stream"], "cam1", "{claims}");
    e.expect(&format!("/jwt/cam1.m3u8?token={token}"), &[], (200, ""))
        .await;
}

/// ffmpeg plays `url` with `cookies` (Set-Cookie lines) for `seconds`: frames decoded.
fn frames_with_cookies(lg: &Livegate, url: &str, cookies: &str, seconds: u32) -> usize {
    need("ffmpeg", "ffmpeg");
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-cookies", cookies, "-i", url])
        .args([
            "-t",
            &seconds.to_string(),
            "-map",
            "0:v:0",
            "-f",
            "framemd5",
            "-",
        ])
        .output()
        .unwrap();
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ffmpeg on {url}: {errors}\n{}",
        lg.log()
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn hls_plays_on_a_cloudfront_cookie_and_on_an_akamai_cookie() {
    let origin = demo_origin();
    let e = edge(&origin_yaml(&[format!("127.0.0.1:{}", origin.port)], ""));
    let cloudfront = e.cloudfront_cookies("; path=/", "\n");
    let akamai = format!("__hdnea__={}; path=/", e.vector("akamai", "stream"));
    for (path, cookies) in [("/cfl/cam1.m3u8", cloudfront), ("/akl/cam1.m3u8", akamai)] {
        // The playlist is passed as the origin wrote it: its segments go with the cookie.
        let header: String = cookies
            .lines()
            .map(|l| l.split(';').next().unwrap())
            .collect::<Vec<_>>()
            .join("; ");
        let playlist = client()
            .get(e.lg.url(path))
            .header("cookie", &header)
            .send()
            .await
            .unwrap();
        assert_eq!(playlist.status(), 200, "{path}");
        let text = playlist.text().await.unwrap();
        assert!(text.contains("cam1-") && !text.contains("lgt="), "{text}");
        assert_eq!(
            e.status(path, &[]).await.0,
            403,
            "{path} without its cookie"
        );
        let n = frames_with_cookies(&e.lg, &e.lg.url(path), &cookies, 6);
        assert!(n >= 140, "{path}: {n} frames on the cookie");
    }
    // The same Akamai token in the query: the playlist is rewritten with
    // segment tokens (its segments carry no hdnts), and it plays.
    let url = e.lg.url(&format!(
        "/akl/cam1.m3u8?hdnts={}",
        e.vector("akamai", "stream")
    ));
    let text = client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(".ts?lgt="), "{text}");
    assert!(support::media::frames(&url, 6) >= 140);
}
