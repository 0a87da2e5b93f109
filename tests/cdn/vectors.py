"""Tokens made by the vendors' own libraries, for tests/cdn_tokens.rs.

    python3 vectors.py make OUT_DIR NOW HOST   -> keys in OUT_DIR, JSON vectors on stdout
    python3 vectors.py akamai KEY ACL EXP      -> Akamai's ACL token for those inputs
    python3 vectors.py jwt-decode TOKEN KEY_OR_PEM_FILE AUD ISS -> the claims, verified

The libraries are PyPI's `akamai-edgeauth` (Akamai's EdgeAuth-Token-Python),
`botocore` (its CloudFrontSigner) with `cryptography`, and `pyjwt`; the test
puts them on PYTHONPATH from a private directory (scripts/test.sh installs them).
"""

import datetime
import json
import os
import sys

import jwt
from akamai.edgeauth import EdgeAuth
from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

KEY_ID = "K2JCJMDEHXQW5F"
AKAMAI_KEY = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
AKAMAI_OTHER = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
JWT_SECRET = "jwtSecret2026-long-enough-for-hs256"
AUD, ISS = "livegate", "backend.example.com"


def pem_private(key):
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def pem_public(key):
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def when(t):
    return datetime.datetime.fromtimestamp(t, tz=datetime.timezone.utc)


def akamai(key=AKAMAI_KEY, acl=None, url=None, **kw):
    ea = EdgeAuth(key=key, **kw)
    return ea.generate_acl_token(acl) if acl else ea.generate_url_token(url)


def cloudfront(private, now, host):
    def rsa_signer(message):
        return private.sign(message, padding.PKCS1v15(), hashes.SHA1())

    s = CloudFrontSigner(KEY_ID, rsa_signer)
    base = f"http://{host}"
    query = lambda url: url.split("?", 1)[1]
    out = {
        "canned": query(s.generate_presigned_url(f"{base}/cf/cam1/index.m3u8", date_less_than=when(now + 600))),
        "canned_expired": query(
            s.generate_presigned_url(f"{base}/cf/cam1/index.m3u8", date_less_than=when(now - 60))
        ),
    }
    policy = s.build_policy(f"{base}/cf/cam1/*", when(now + 600), date_greater_than=when(now - 60), ip_address="127.0.0.1")
    out["custom"] = query(s.generate_presigned_url(f"{base}/cf/cam1/index.m3u8", policy=policy))
    other_ip = s.build_policy(f"{base}/cf/cam1/*", when(now + 600), ip_address="192.0.2.0/24")
    out["custom_other_ip"] = query(s.generate_presigned_url(f"{base}/cf/cam1/index.m3u8", policy=other_ip))
    later = s.build_policy(f"{base}/cf/cam1/*", when(now + 600), date_greater_than=when(now + 3600))
    out["custom_not_yet"] = query(s.generate_presigned_url(f"{base}/cf/cam1/index.m3u8", policy=later))
    # Signed cookies: the same three values, as CloudFront-* cookies.
    stream = s.build_policy(f"{base}/cfl/cam1*", when(now + 600))
    out["cookies"] = {
        "CloudFront-Policy": s._url_b64encode(stream.encode()).decode(),
        "CloudFront-Signature": s._url_b64encode(rsa_signer(stream.encode())).decode(),
        "CloudFront-Key-Pair-Id": KEY_ID,
    }
    wrong = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = CloudFrontSigner(KEY_ID, lambda m: wrong.sign(m, padding.PKCS1v15(), hashes.SHA1()))
    out["wrong_key"] = query(forged.generate_presigned_url(f"{base}/cf/cam1/index.m3u8", date_less_than=when(now + 600)))
    return out


def make(out_dir, now, host):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    files = {
        "rsa_private.pem": pem_private(rsa_key),
        "rsa_public.pem": pem_public(rsa_key),
        "ec_private.pem": pem_private(ec_key),
        "ec_public.pem": pem_public(ec_key),
    }
    for name, text in files.items():
        with open(os.path.join(out_dir, name), "w") as f:
            f.write(text)
    exp = now + 600
    claims = {"exp": exp, "aud": AUD, "iss": ISS, "stream": "cam1"}
    hs = lambda c, key=JWT_SECRET: jwt.encode(c, key, algorithm="HS256")
    vectors = {
        "akamai": {
            "acl": akamai(acl="/ak/cam1/*", end_time=exp),
            "url": akamai(url="/ak/cam1/index.m3u8", end_time=exp),
            "stream": akamai(acl="/akl/cam1*", end_time=exp),
            "header": akamai(acl="/akh/*", end_time=exp),
            "expired": akamai(acl="/ak/cam1/*", start_time=now - 700, end_time=now - 100),
            "not_yet": akamai(acl="/ak/cam1/*", start_time=now + 3600, end_time=now + 7200),
            "other_ip": akamai(acl="/ak/cam1/*", end_time=exp, ip="192.0.2.99"),
            "wrong_key": akamai(key=AKAMAI_OTHER, acl="/ak/cam1/*", end_time=exp),
            "sha1": akamai(acl="/ak1/cam1/*", end_time=exp, algorithm="sha1"),
        },
        "cloudfront": cloudfront(rsa_key, now, host),
        "jwt": {
            "hs256": hs(claims),
            "rs256": jwt.encode(claims, files["rsa_private.pem"], algorithm="RS256"),
            "es256": jwt.encode(claims, files["ec_private.pem"], algorithm="ES256"),
            "expired": hs({**claims, "exp": now - 100}),
            "not_yet": hs({**claims, "nbf": now + 3600}),
            "other_stream": hs({**claims, "stream": "cam2"}),
            "other_audience": hs({**claims, "aud": "someone-else"}),
            "wrong_key": hs(claims, "anotherSecret-2026-long-enough-for-hs256"),
        },
    }
    json.dump(vectors, sys.stdout)


def main(args):
    if args[0] == "make":
        make(args[1], int(args[2]), args[3])
    elif args[0] == "akamai":
        print(akamai(key=args[1], acl=args[2], end_time=int(args[3])))
    elif args[0] == "jwt-decode":
        token, key, aud, iss = args[1:5]
        if os.path.exists(key):
            with open(key) as f:
                key = f.read()
        algorithms = ["HS256", "RS256", "ES256"]
        print(json.dumps(jwt.decode(token, key, algorithms=algorithms, audience=aud, issuer=iss)))
    else:
        sys.exit(f"unknown command {args[0]}")


if __name__ == "__main__":
    main(sys.argv[1:])
