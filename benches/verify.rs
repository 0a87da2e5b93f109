//! Verification cost per scheme: the work added to every request. Target ≤ 1 µs.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use livegate::sign::{Key, Layout, Request, Rule, Scheme};

fn rule(scheme: Scheme) -> Rule {
    let layout = match scheme {
        Scheme::VolcMd5Custom => Some(
            Layout::volc_fields(&["Domain", "AppName", "StreamName", "key", "volcTime"]).unwrap(),
        ),
        Scheme::SecureLink => Some(Layout::template("{expires}{uri}{remote_addr} {key}").unwrap()),
        _ => None,
    };
    let keys = vec![Key::new("e12c46f2612d5106e2034781ab261ca3").unwrap()];
    let r = Rule::new(scheme, keys, layout).unwrap();
    if scheme.issue_time() {
        r.with_valid_duration(1800)
    } else {
        r
    }
}

fn verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify");
    for scheme in Scheme::URL_SCHEMES {
        let r = rule(scheme);
        let expire = 2_000_000_040;
        let base = Request {
            host: "play.example.com",
            path: "/live/cam1.flv",
            query: "",
            remote_addr: "192.0.2.10",
            ..Request::default()
        };
        let signed = r.sign(&base, expire).unwrap();
        let (path, query) = signed.split_once('?').unwrap_or((&signed, ""));
        let req = Request {
            path,
            query,
            ..base
        };
        assert!(r.verify(&req, expire).is_ok());
        group.bench_function(scheme.name(), |b| {
            b.iter(|| r.verify(black_box(&req), black_box(expire - 10)))
        });
    }
    group.finish();
}

/// The CDN token schemes, through the same `TokenRule::verify` the proxy
/// calls: Akamai's HMAC, JWTs (HMAC and RSA), CloudFront's RSA-SHA1 — first
/// seen (a full RSA verification) and seen again (remembered).
fn tokens(c: &mut Criterion) {
    use livegate::sign::cdn::cloudfront::{CloudFront, CloudFrontSigner};
    use livegate::sign::cdn::edgeauth::{self, EdgeAuth};
    use livegate::sign::cdn::fixtures::{RSA_PRIVATE, RSA_PUBLIC};
    use livegate::sign::cdn::jwt::{Jwt, JwtKey, Requirements};
    use livegate::sign::cdn::rule::{Places, SignAs, TokenRule, Verifier};
    let mut group = c.benchmark_group("verify");
    let now = 2_000_000_000;
    let query = |name: &str| Places {
        query: Some(name.into()),
        ..Places::default()
    };
    let base = Request {
        host: "play.example.com",
        path: "/live/cam1/index.m3u8",
        remote_addr: "192.0.2.10",
        ..Request::default()
    };
    let run = |group: &mut criterion::BenchmarkGroup<_>, name: &str, r: &TokenRule, q: &str| {
        let req = Request { query: q, ..base };
        assert!(r.verify(&req, now).is_ok(), "{name}");
        group.bench_function(name, |b| {
            b.iter(|| r.verify(black_box(&req), black_box(now)))
        });
    };
    let ea = EdgeAuth::new(&["a1b2c3d4e5f60718293a4b5c6d7e8f90"], Default::default()).unwrap();
    let token = ea.generate(&edgeauth::Fields {
        exp: now + 60,
        acl: vec!["/live/cam1/*"],
        ..Default::default()
    });
    let akamai = TokenRule::new(
        Scheme::AkamaiToken,
        Verifier::EdgeAuth(ea),
        query("hdnts"),
        0,
        None,
    );
    run(
        &mut group,
        "akamai_token (acl, sha256)",
        &akamai,
        &format!("hdnts={token}"),
    );
    let need = || Requirements {
        stream_claim: Some("stream".into()),
        ..Requirements::default()
    };
    let secret = "jwtSecret2026-long-enough-for-hs256";
    for (name, key, private) in [
        ("jwt (HS256)", JwtKey::Secret(secret.into()), None),
        (
            "jwt (RS256, 2048-bit)",
            JwtKey::Rsa(RSA_PUBLIC.into()),
            Some(RSA_PRIVATE),
        ),
    ] {
        let hs = private.is_none().then_some(secret);
        let jwt = Jwt::new(&[key], need()).unwrap();
        let r = TokenRule::new(Scheme::Jwt, Verifier::Jwt(jwt), query("token"), 0, hs);
        let how = SignAs {
            private_key: private,
            ..SignAs::default()
        };
        let signed = r.sign(&base, now + 60, &how).unwrap();
        run(&mut group, name, &r, signed.split_once('?').unwrap().1);
    }
    let cloudfront = || {
        TokenRule::for_cloudfront(
            CloudFront::new(&[("K2JCJMDEHXQW5F", RSA_PUBLIC)]).unwrap(),
            0,
        )
    };
    let signer = CloudFrontSigner::new("K2JCJMDEHXQW5F", RSA_PRIVATE).unwrap();
    let q = signer.canned("http://play.example.com/live/cam1/index.m3u8", now + 60);
    let req = Request { query: &q, ..base };
    group.bench_function("cloudfront (canned, first seen: RSA-SHA1 2048)", |b| {
        // By reference: a rule's drop (its signature cache) is not the verify.
        b.iter_batched_ref(
            cloudfront,
            |r| r.verify(black_box(&req), black_box(now)).is_ok(),
            criterion::BatchSize::SmallInput,
        )
    });
    run(
        &mut group,
        "cloudfront (canned, seen again)",
        &cloudfront(),
        &q,
    );
    group.finish();
}

/// What segment authorisation adds: a token check per segment request, and one
/// playlist rewrite per playlist request (a 6-segment live playlist).
fn hls(c: &mut Criterion) {
    use livegate::hls::{playlist, Grant, Scope, Secret};
    use livegate::route::Scene;
    use livegate::sign::{Binds, Request};
    let mut group = c.benchmark_group("hls");
    let secret = Secret::new([9; 32]);
    let grant = Grant {
        expiry: 2_000_000_000,
        binds: Binds {
            addr: true,
            host: false,
        },
    };
    let viewer = |path| Request {
        host: "play.example.com",
        path,
        remote_addr: "192.0.2.10",
        ..Default::default()
    };
    let token = secret.mint(
        "play.example.com",
        Scene::Pull,
        &Scope::of("/live/cam1.m3u8", false),
        grant,
        &viewer("/live/cam1.m3u8"),
    );
    let segment = viewer("/live/cam1-12.ts");
    group.bench_function("token verify", |b| {
        b.iter(|| {
            secret.verify(
                black_box(&token),
                "play.example.com",
                Scene::Pull,
                &segment,
                1_900_000_000,
            )
        })
    });
    let playlist_req = viewer("/live/cam1.m3u8");
    group.bench_function("token mint", |b| {
        b.iter(|| {
            secret.mint(
                "play.example.com",
                Scene::Pull,
                &Scope::of(black_box("/live/cam1.m3u8"), false),
                grant,
                &playlist_req,
            )
        })
    });
    let mut list = String::from(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:100\n",
    );
    for n in 100..106 {
        list.push_str(&format!("#EXTINF:2.000,\ncam1-{n}.ts\n"));
    }
    let base = playlist::Base {
        host: "play.example.com",
        port: 80,
        tls: false,
    };
    group.bench_function("playlist rewrite (6 segments)", |b| {
        b.iter(|| playlist::rewrite(black_box(&list), &base, "lgt", &token))
    });
    let template = playlist::Template::parse(bytes::Bytes::from(list.clone())).unwrap();
    group.bench_function("playlist fill of a parsed template (6 segments)", |b| {
        b.iter(|| template.fill(black_box(&base), "lgt", &token, usize::MAX))
    });
    group.finish();
}

criterion_group!(benches, verify, tokens, hls);
criterion_main!(benches);
