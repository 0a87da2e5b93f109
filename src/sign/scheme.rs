//! The schemes, as data: for each, where the signature travels, how the time is
//! spelled, how the signature is encoded and what is hashed. Everything
//! scheme-specific lives in this table; `Rule` runs it.

use super::layout::{Layout, Piece};
use super::time::TimeFormat;

/// A URL-signing scheme of `signing.md`, by its configuration name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    Tencent,
    TypeA,
    TypeB,
    TypeC,
    TypeD,
    VolcMd5,
    VolcMd5Custom,
    SecureLink,
    /// Akamai EdgeAuth (Token 2.0): an HMAC token in `hdnts`, `__hdnea__` or a header.
    AkamaiToken,
    /// CloudFront signed URLs and cookies (RSA-SHA1 over a policy).
    Cloudfront,
    /// JSON Web Tokens (HS256/384/512, RS256, ES256).
    Jwt,
    /// `sign = md5(key + t)`: the management API and notifications. Not a URL rule.
    #[serde(skip)]
    Tsign,
}

/// Where a URL carries its signature and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    /// Two query parameters (`sign`, `time`).
    Query,
    /// One query parameter `time-rand-uid-sig` (type A's `auth_key`).
    AuthKey,
    /// `/time/sig/rest` (type B).
    TimeSigPrefix,
    /// `/sig/time/rest`, or the two query parameters when present (type C).
    SigTimePrefixOrQuery,
}

/// How the signature bytes are written in the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// 32 hex digits, either case.
    Hex,
    /// base64url of the raw digest, padding optional (nginx `secure_link`).
    Base64Url,
}

impl Scheme {
    /// The URL-signing schemes (every one but `tsign`).
    pub const URL_SCHEMES: [Scheme; 8] = [
        Scheme::Tencent,
        Scheme::TypeA,
        Scheme::TypeB,
        Scheme::TypeC,
        Scheme::TypeD,
        Scheme::VolcMd5,
        Scheme::VolcMd5Custom,
        Scheme::SecureLink,
    ];

    /// The configuration name, for messages.
    pub const fn name(self) -> &'static str {
        match self {
            Scheme::Tencent => "tencent",
            Scheme::TypeA => "type_a",
            Scheme::TypeB => "type_b",
            Scheme::TypeC => "type_c",
            Scheme::TypeD => "type_d",
            Scheme::VolcMd5 => "volc_md5",
            Scheme::VolcMd5Custom => "volc_md5_custom",
            Scheme::SecureLink => "secure_link",
            Scheme::AkamaiToken => "akamai_token",
            Scheme::Cloudfront => "cloudfront",
            Scheme::Jwt => "jwt",
            Scheme::Tsign => "tsign",
        }
    }

    /// The CDN token schemes ([`crate::sign::cdn`]): a token that names what it
    /// covers, rather than a digest of fields the URL spells.
    pub const TOKEN_SCHEMES: [Scheme; 3] = [Scheme::AkamaiToken, Scheme::Cloudfront, Scheme::Jwt];

    pub const fn is_token(self) -> bool {
        matches!(self, Scheme::AkamaiToken | Scheme::Cloudfront | Scheme::Jwt)
    }

    /// The query parameters, cookies and headers a token scheme reads by
    /// default (every one of them is redacted from logs).
    pub const fn token_names(self) -> &'static [&'static str] {
        match self {
            Scheme::AkamaiToken => &["hdnts", "__hdnea__"],
            Scheme::Cloudfront => &[
                "Expires",
                "Policy",
                "Signature",
                "Key-Pair-Id",
                "CloudFront-Expires",
                "CloudFront-Policy",
                "CloudFront-Signature",
                "CloudFront-Key-Pair-Id",
            ],
            Scheme::Jwt => &["token", "jwt", "access_token"],
            _ => &[],
        }
    }

    pub const fn carrier(self) -> Carrier {
        match self {
            Scheme::TypeA => Carrier::AuthKey,
            Scheme::TypeB => Carrier::TimeSigPrefix,
            Scheme::TypeC => Carrier::SigTimePrefixOrQuery,
            _ => Carrier::Query,
        }
    }

    /// Default query parameter names `(sign, time)`; type A uses only the first,
    /// type B none.
    pub const fn param_names(self) -> (&'static str, &'static str) {
        match self {
            Scheme::Tencent => ("txSecret", "txTime"),
            Scheme::TypeA => ("auth_key", ""),
            Scheme::TypeB => ("", ""),
            Scheme::TypeC => ("KEY1", "KEY2"),
            Scheme::TypeD => ("sign", "t"),
            Scheme::VolcMd5 | Scheme::VolcMd5Custom => ("volcSecret", "volcTime"),
            Scheme::SecureLink => ("md5", "expires"),
            Scheme::AkamaiToken => ("hdnts", ""),
            Scheme::Cloudfront => ("Signature", "Policy"),
            Scheme::Jwt => ("token", ""),
            Scheme::Tsign => ("sign", "t"),
        }
    }

    pub const fn default_time_format(self) -> TimeFormat {
        match self {
            Scheme::Tencent | Scheme::TypeC => TimeFormat::Hex,
            Scheme::TypeB => TimeFormat::BeijingMinute,
            _ => TimeFormat::Decimal,
        }
    }

    /// Whether a rule may choose `time_format` (the providers allow both spellings).
    pub const fn time_format_selectable(self) -> bool {
        matches!(self, Scheme::Tencent | Scheme::TypeD)
    }

    /// Whether the URL's time is the issue time (types A–D): then
    /// `valid_duration` is required, since without it every URL is already expired.
    pub const fn issue_time(self) -> bool {
        matches!(
            self,
            Scheme::TypeA | Scheme::TypeB | Scheme::TypeC | Scheme::TypeD
        )
    }

    pub const fn encoding(self) -> Encoding {
        match self {
            Scheme::SecureLink => Encoding::Base64Url,
            _ => Encoding::Hex,
        }
    }

    /// The fixed layout of schemes that have one (`volc_md5_custom` and
    /// `secure_link` are configured).
    pub fn fixed_layout(self) -> Option<Layout> {
        use Piece::*;
        let dash = || Lit("-".into());
        let pieces = match self {
            Scheme::Tencent => vec![Key, Stream, Time],
            Scheme::TypeA => vec![Uri, dash(), Time, dash(), Rand, dash(), Uid, dash(), Key],
            Scheme::TypeB => vec![Key, Time, Uri],
            Scheme::TypeC | Scheme::TypeD => vec![Key, Uri, Time],
            Scheme::VolcMd5 => vec![SlashApp, SlashStream, Key, Time],
            Scheme::Tsign => vec![Key, Time],
            Scheme::VolcMd5Custom
            | Scheme::SecureLink
            | Scheme::AkamaiToken
            | Scheme::Cloudfront
            | Scheme::Jwt => return None,
        };
        Some(Layout::new(pieces))
    }

    /// Whether the signature travels in the path, which the origin then receives shortened.
    pub const fn path_prefixed(self) -> bool {
        matches!(
            self.carrier(),
            Carrier::TimeSigPrefix | Carrier::SigTimePrefixOrQuery
        )
    }
}
