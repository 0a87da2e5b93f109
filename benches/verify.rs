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

criterion_group!(benches, verify, hls);
criterion_main!(benches);
