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
            nested: false,
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

criterion_group!(benches, verify);
criterion_main!(benches);
