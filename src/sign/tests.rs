//! Every worked example of `signing.md`, and each failure reason.

use super::*;

fn rule(scheme: Scheme, key: &str) -> Rule {
    Rule::new(scheme, vec![Key::new(key).unwrap()], None).unwrap()
}

fn req<'a>(path: &'a str, query: &'a str) -> Request<'a> {
    Request {
        host: "cdn.example.com",
        path,
        query,
        remote_addr: "127.0.0.1",
        ..Request::default()
    }
}

fn reason(r: Result<Pass<'_>, Failure>) -> Reason {
    r.expect_err("should fail").reason
}

#[test]
fn tencent_examples() {
    for (key, stream, time, sig) in [
        (
            "e12c46f2612d5106e2034781ab261ca3",
            "test",
            "5C271099",
            "f85a2ab363fe4deaffef9754d79da6fe",
        ),
        (
            "somestring",
            "test",
            "5c2acacc",
            "b77e812107e1d8b8f247885a46e1bd34",
        ),
        (
            "somestring",
            "test_900",
            "5c2acacc",
            "4beae959b16c77da6a65c7edda1dfefe",
        ),
        (
            "ngoeiq03",
            "test01",
            "5C01D608",
            "ce797dc6238156d548ef945e6ad1ea20",
        ),
    ] {
        let r = rule(Scheme::Tencent, key);
        let now = i64::from_str_radix(time, 16).unwrap();
        for ext in ["flv", "m3u8"] {
            let path = format!("/live/{stream}.{ext}");
            let q = format!("txSecret={sig}&txTime={time}");
            assert!(r.verify(&req(&path, &q), now).is_ok(), "{stream} {ext}");
            assert_eq!(reason(r.verify(&req(&path, &q), now + 1)), Reason::Expired);
            let upper = format!("txSecret={}&txTime={time}", sig.to_uppercase());
            assert!(
                r.verify(&req(&path, &upper), now).is_ok(),
                "hex is case-insensitive"
            );
        }
    }
}

#[test]
fn type_a_examples() {
    for (key, uri, time, rand, sig) in [
        (
            "aliyuncdnexp1234",
            "/video/standard/1K.html",
            "1444435200",
            "0",
            "80cd3862d699b7118eed99103f2a3a4f",
        ),
        (
            "aliyunliveexp1234",
            "/video/standard",
            "1622194197",
            "0",
            "5552ff52b5e4e20387c6dc18afce206b",
        ),
        (
            "dimtm5evg50ijsx2hvuwyfoiu65",
            "/test.jpg",
            "1582791032",
            "im1acp76sx9sdqe601v",
            "3fbb88382c9356b6faaf9d68c7b2ae3a",
        ),
    ] {
        let r = rule(Scheme::TypeA, key).with_valid_duration(1800);
        let issued: i64 = time.parse().unwrap();
        let q = format!("auth_key={time}-{rand}-0-{sig}");
        assert!(r.verify(&req(uri, &q), issued + 1800).is_ok(), "{uri}");
        assert_eq!(
            reason(r.verify(&req(uri, &q), issued + 1801)),
            Reason::Expired
        );
    }
    // The published URL form, with another parameter beside it.
    let r = rule(Scheme::TypeA, "aliyuncdnexp1234").with_valid_duration(1800);
    let q = "x=1&auth_key=1444435200-0-0-80cd3862d699b7118eed99103f2a3a4f";
    assert!(r
        .verify(&req("/video/standard/1K.html", q), 1444435200)
        .is_ok());
}

#[test]
fn type_b_examples_strip_the_prefix() {
    for (key, time, uri, sig) in [
        (
            "aliyuncdnexp1234",
            "201508150800",
            "/4/44/44c0909bcfc20a01afaf256ca99a8b8b.mp3",
            "9044548ef1527deadafa49a890a377f0",
        ),
        (
            "dimtm5evg50ijsx2hvuwyfoiu65",
            "202002271610",
            "/test.jpg",
            "2e03a07cfa55a47768226d3e5ea82a8d",
        ),
    ] {
        let r = rule(Scheme::TypeB, key).with_valid_duration(1800);
        let issued = TimeFormat::BeijingMinute.parse(time).unwrap();
        let path = format!("/{time}/{sig}{uri}");
        let pass = r.verify(&req(&path, ""), issued + 1800).unwrap();
        assert_eq!(pass.path, uri);
        assert_eq!(
            reason(r.verify(&req(&path, ""), issued + 1801)),
            Reason::Expired
        );
    }
}

#[test]
fn type_c_examples_path_and_query() {
    let r = rule(Scheme::TypeC, "aliyuncdnexp1234").with_valid_duration(1800);
    let now = 0x55CE8100;
    let pass = r
        .verify(
            &req("/a37fa50a5fb8f71214b1e7c95ec7a1bd/55CE8100/test.flv", ""),
            now,
        )
        .unwrap();
    assert_eq!(pass.path, "/test.flv");
    let q = "KEY1=a37fa50a5fb8f71214b1e7c95ec7a1bd&KEY2=55CE8100";
    assert_eq!(
        r.verify(&req("/test.flv", q), now).unwrap().path,
        "/test.flv"
    );

    let r = rule(Scheme::TypeC, "DvYmqE81E1F9R791H6lmht").with_valid_duration(1800);
    let pass = r
        .verify(
            &req("/6688749e8906a726c12fe1be3aacd016/6694d30a/foo.jpg", ""),
            0x6694d30a,
        )
        .unwrap();
    assert_eq!(pass.path, "/foo.jpg");
}

#[test]
fn type_d_example() {
    let r = rule(Scheme::TypeD, "dimtm5evg50ijsx2hvuwyfoiu65").with_valid_duration(1800);
    let q = "sign=900a5049aa8ac1ab144527d9c2be4cea&t=1582791032";
    assert!(r.verify(&req("/test.jpg", q), 1582791032 + 1800).is_ok());
    assert_eq!(
        reason(r.verify(&req("/test.jpg", q), 1582791032 + 1801)),
        Reason::Expired
    );
}

#[test]
fn volc_md5_example_and_custom_default_equivalence() {
    let q = "volcTime=1653632422&volcSecret=e5bb77201cbaa2f9ccdd316fcda4c212";
    let r = rule(Scheme::VolcMd5, "A1B2C3d4e5f6");
    assert!(r
        .verify(&req("/live/livestream.flv", q), 1653632422)
        .is_ok());
    let layout = Layout::volc_fields(&["AppName", "StreamName", "key", "volcTime"]).unwrap();
    let custom = Rule::new(
        Scheme::VolcMd5Custom,
        vec![Key::new("A1B2C3d4e5f6").unwrap()],
        Some(layout),
    )
    .unwrap();
    assert!(custom
        .verify(&req("/live/livestream.flv", q), 1653632422)
        .is_ok());
}

#[test]
fn secure_link_nginx_example() {
    let layout = Layout::template("{expires}{uri}{remote_addr} {key}").unwrap();
    let r = Rule::new(
        Scheme::SecureLink,
        vec![Key::new("secret").unwrap()],
        Some(layout),
    )
    .unwrap();
    let q = "md5=_e4Nc3iduzkWRm01TBBNYw&expires=2147483647";
    assert!(r.verify(&req("/s/link", q), 1_700_000_000).is_ok());
    assert!(r
        .verify(
            &req("/s/link", "md5=_e4Nc3iduzkWRm01TBBNYw==&expires=2147483647"),
            0
        )
        .is_ok());
    let other_ip = Request {
        remote_addr: "127.0.0.2",
        ..req("/s/link", q)
    };
    assert_eq!(reason(r.verify(&other_ip, 0)), Reason::BadSignature);
    // Too short and too long once decoded.
    assert_eq!(
        reason(r.verify(
            &req("/s/link", "md5=_e4Nc3iduzkWRm01TBBN&expires=2147483647"),
            0
        )),
        Reason::BadSignature
    );
    assert_eq!(
        reason(r.verify(
            &req(
                "/s/link",
                "md5=_e4Nc3iduzkWRm01TBBNYwAAAA&expires=2147483647"
            ),
            0
        )),
        Reason::BadSignature
    );
    assert_eq!(
        reason(r.verify(&req("/s/link", "md5=!!!&expires=2147483647"), 0)),
        Reason::Malformed
    );
}

#[test]
fn secure_link_without_expires_never_expires() {
    let layout = Layout::template("{uri} {key}").unwrap();
    let r = Rule::new(
        Scheme::SecureLink,
        vec![Key::new("secret").unwrap()],
        Some(layout),
    )
    .unwrap();
    assert!(!r.expires());
    let signed = r.sign(&req("/s/link", ""), 0).unwrap();
    let (path, q) = signed.split_once('?').unwrap();
    assert!(!q.contains("expires"));
    assert!(r.verify(&req(path, q), i64::MAX).is_ok());
}

#[test]
fn key_sets_any_verifies_first_signs() {
    let keys = vec![Key::new("primary1").unwrap(), Key::new("backup2").unwrap()];
    let both = Rule::new(Scheme::Tencent, keys, None).unwrap();
    let old = rule(Scheme::Tencent, "backup2");
    let signed_old = old.sign(&req("/live/s.flv", ""), 100).unwrap();
    let (p, q) = signed_old.split_once('?').unwrap();
    assert_eq!(both.verify(&req(p, q), 100).unwrap().key_index, 1);
    let signed_new = both.sign(&req("/live/s.flv", ""), 100).unwrap();
    let (p, q) = signed_new.split_once('?').unwrap();
    assert_eq!(both.verify(&req(p, q), 100).unwrap().key_index, 0);
    assert_eq!(reason(old.verify(&req(p, q), 100)), Reason::BadSignature);
}

#[test]
fn failure_reasons() {
    let r = rule(Scheme::Tencent, "somestring");
    let p = "/live/test.flv";
    let ok = "txSecret=b77e812107e1d8b8f247885a46e1bd34&txTime=5c2acacc";
    assert!(r.verify(&req(p, ok), 0).is_ok());
    let sig = "txSecret=b77e812107e1d8b8f247885a46e1bd34";
    let twice = format!("{ok}&txTime=5c2acacc");
    let cases: [(&str, &str, Reason); 14] = [
        (p, "", Reason::MissingSignature),
        (p, "other=1", Reason::MissingSignature),
        (p, "txTime=5c2acacc", Reason::Malformed),
        (p, sig, Reason::Malformed),
        (p, "txSecret=&txTime=5c2acacc", Reason::Malformed),
        (p, "txSecret=zz&txTime=5c2acacc", Reason::Malformed),
        (p, "txSecret=abc&txTime=5c2acacc", Reason::Malformed),
        (p, &twice, Reason::Malformed),
        (p, &format!("{sig}&txTime=-1"), Reason::BadTimestamp),
        (p, &format!("{sig}&txTime="), Reason::BadTimestamp),
        (
            p,
            &format!("{sig}&txTime=7fffffffffffffff"),
            Reason::BadTimestamp,
        ),
        (
            p,
            "txSecret=b77e812107e1d8b8f247885a46e1bd35&txTime=5c2acacc",
            Reason::BadSignature,
        ),
        (
            p,
            "txSecret=b77e812107e1d8b8f247885a46e1bd&txTime=5c2acacc",
            Reason::BadSignature,
        ),
        ("/live/test2.flv", ok, Reason::BadSignature),
    ];
    for (path, query, expected) in cases {
        assert_eq!(
            reason(r.verify(&req(path, query), 0)),
            expected,
            "{path}?{query}"
        );
    }
}

#[test]
fn overflow_with_valid_duration_is_bad_timestamp_not_panic() {
    let r = rule(Scheme::TypeD, "k").with_valid_duration(2_592_000);
    let q = "sign=900a5049aa8ac1ab144527d9c2be4cea&t=999999999999999999";
    assert_eq!(reason(r.verify(&req("/a", q), 0)), Reason::BadSignature);
    let r = rule(Scheme::TypeD, "k").with_valid_duration(i64::MAX);
    assert_eq!(reason(r.verify(&req("/a", q), 0)), Reason::BadTimestamp);
}

#[test]
fn skew_extends_expiry() {
    let r = rule(Scheme::Tencent, "somestring").with_skew(30);
    let q = "txSecret=b77e812107e1d8b8f247885a46e1bd34&txTime=5c2acacc";
    assert!(r.verify(&req("/live/test.flv", q), 0x5c2acacc + 30).is_ok());
    assert_eq!(
        reason(r.verify(&req("/live/test.flv", q), 0x5c2acacc + 31)),
        Reason::Expired
    );
}

#[test]
fn renamed_params_and_decimal_time() {
    let r = rule(Scheme::Tencent, "somestring")
        .with_param_names(Some("s"), Some("e"))
        .with_time_format(TimeFormat::Decimal);
    let signed = r
        .sign(&req("/live/test.flv", "a=1"), 1_700_000_000)
        .unwrap();
    assert!(signed.starts_with("/live/test.flv?a=1&s="), "{signed}");
    assert!(signed.ends_with("&e=1700000000"), "{signed}");
    let (p, q) = signed.split_once('?').unwrap();
    assert!(r.verify(&req(p, q), 1_700_000_000).is_ok());
    assert_eq!(
        reason(r.verify(&req(p, &q.replace("s=", "txSecret=")), 0)),
        Reason::Malformed
    );
}

#[test]
fn type_a_bad_shapes() {
    let r = rule(Scheme::TypeA, "k").with_valid_duration(10);
    for q in [
        "auth_key=1-0-0",
        "auth_key=1-0-0-a-b",
        "auth_key=1-r!-0-abcd",
        "auth_key=",
    ] {
        assert_eq!(reason(r.verify(&req("/a", q), 0)), Reason::Malformed, "{q}");
    }
}

#[test]
fn prefix_schemes_without_prefix_are_missing() {
    let r = rule(Scheme::TypeB, "k").with_valid_duration(10);
    for p in [
        "/live/cam.flv",
        "/",
        "",
        "/a/b/",
        "/201508150800/nothex/x.flv",
    ] {
        assert_eq!(
            reason(r.verify(&req(p, ""), 0)),
            Reason::MissingSignature,
            "{p}"
        );
    }
    let p = "/20150815080x/9044548ef1527deadafa49a890a377f0/x.mp3";
    assert_eq!(reason(r.verify(&req(p, ""), 0)), Reason::BadTimestamp);
}

#[test]
fn signing_replaces_old_auth_params() {
    let r = rule(Scheme::TypeD, "k").with_valid_duration(60);
    let signed = r.sign(&req("/a.flv", "sign=old&t=1&x=y"), 1000).unwrap();
    assert!(signed.starts_with("/a.flv?x=y&sign="), "{signed}");
    assert!(signed.ends_with("&t=940"), "{signed}");
}
