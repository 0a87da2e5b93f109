//! Access control beside signatures: Referer, User-Agent and IP allow/deny lists
//! and per-client limits, checked before the signature (cheap checks first), as the
//! CDN consoles' "Access Control" and nginx's `valid_referers`, `allow`/`deny`,
//! `limit_req` and `limit_conn` do.
//!
//! [`Access`] is the compiled configuration of one domain (part of the rule
//! snapshot, so the management API can replace it); [`limits::Limiter`] is the
//! per-domain counting state, which outlives snapshots.

pub mod limits;

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::{AccessConfig, AllowDeny, LimitsConfig, Problems, RefererList};
use crate::verdict::{Failure, Reason};

/// A compiled list: allow (only these) or deny (all but these).
#[derive(Debug, Clone)]
enum List<T> {
    Allow(Vec<T>),
    Deny(Vec<T>),
}

impl<T> List<T> {
    /// Whether a value passes, given whether it matches the list.
    fn passes(&self, matches: impl Fn(&T) -> bool) -> bool {
        match self {
            List::Allow(items) => items.iter().any(matches),
            List::Deny(items) => !items.iter().any(matches),
        }
    }
}

/// A Referer host pattern: exact, or `*.suffix` (any subdomain, as domain wildcards).
#[derive(Debug, Clone)]
enum HostPattern {
    Exact(String),
    /// `.example.com`
    Suffix(String),
}

impl HostPattern {
    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => host.eq_ignore_ascii_case(h),
            HostPattern::Suffix(s) => {
                host.len() > s.len()
                    && host.as_bytes()[host.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
            }
        }
    }
}

/// One scope's checks (the domain's, or an app's).
#[derive(Debug, Clone, Default)]
pub struct Checks {
    referer: Option<(List<HostPattern>, bool)>,
    ip: Option<List<IpNet>>,
    user_agent: Option<List<String>>,
    pub limits: Limits,
}

/// Per-client limits of a scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub requests_per_second: Option<u32>,
    pub burst: Option<u32>,
    pub connections: Option<u32>,
}

/// One domain's compiled access control.
#[derive(Debug, Clone, Default)]
pub struct Access {
    domain: Checks,
    /// Lowercase app → its checks (replacing the domain's).
    apps: HashMap<String, Checks>,
    trusted: Vec<IpNet>,
}

/// What a request shows the access checks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen<'a> {
    /// The client address (already resolved through trusted proxies).
    pub client: Option<IpAddr>,
    pub referer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

/// The host of a Referer as browsers send it — `http(s)://host[:port]/…`, no
/// userinfo — or `None` for one no browser sends (another scheme, a backslash,
/// a control character or space, `@`, percent-encoding or a trailing dot in the
/// host, an empty or non-numeric port): a URL parsers could read as two hosts
/// is never an allowed host.
pub fn referer_host(referer: &str) -> Option<&str> {
    let (scheme, rest) = referer.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    if referer
        .bytes()
        .any(|b| b <= b' ' || b == 0x7f || b == b'\\')
    {
        return None;
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains(['@', '%']) {
        return None;
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let end = v6.find(']')?;
            (&authority[..end + 2], &v6[end + 1..])
        }
        None => match authority.rsplit_once(':') {
            Some((h, _)) => (h, &authority[h.len()..]),
            None => (authority, ""),
        },
    };
    let port_ok = match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(p) => !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()),
    };
    let name_ok = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
    (port_ok && name_ok && !host.is_empty() && !host.ends_with('.')).then_some(host)
}

/// A case-insensitive glob: `*` any run, `?` one character.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi].eq_ignore_ascii_case(&t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) as the IPv4 address it is, so
/// IPv4 CIDRs match clients of dual-stack listeners.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A CIDR as clients are matched against it: clients' IPv4-mapped addresses are
/// read as IPv4 ([`canonical_ip`]), so an IPv4-mapped net (`::ffff:192.0.2.0/120`)
/// is the IPv4 net it maps (`192.0.2.0/24`), and a v6 net that holds all of
/// `::ffff:0:0/96` (`::/0`) also holds every IPv4 client.
fn canonical_nets(net: IpNet) -> Vec<IpNet> {
    let IpNet::V6(v6) = net else {
        return vec![net];
    };
    let mapped: ipnet::Ipv6Net = "::ffff:0:0/96".parse().unwrap_or(v6);
    if v6.prefix_len() >= 96 && mapped.contains(&v6.network()) {
        let v4 = v6
            .network()
            .to_ipv4_mapped()
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
        if let Ok(n) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96) {
            return vec![IpNet::V4(n)];
        }
    }
    if v6.contains(&mapped) {
        return vec![net, "0.0.0.0/0".parse().unwrap_or(net)];
    }
    vec![net]
}

fn cidrs(items: &[String], at: &str, problems: &mut Problems) -> Vec<IpNet> {
    items
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let parsed = c
                .parse::<IpNet>()
                .or_else(|_| c.parse::<IpAddr>().map(IpNet::from));
            parsed
                .map_err(|_| {
                    problems.add(
                        format!("{at}[{i}]"),
                        format!("{c:?} is not an IP address or CIDR"),
                    )
                })
                .ok()
        })
        .flat_map(canonical_nets)
        .collect()
}

/// Exactly one of allow and deny.
fn one_of<'a>(
    allow: &'a Option<Vec<String>>,
    deny: &'a Option<Vec<String>>,
    at: &str,
    problems: &mut Problems,
) -> Option<(bool, &'a [String])> {
    match (allow, deny) {
        (Some(a), None) => Some((true, a)),
        (None, Some(d)) => Some((false, d)),
        _ => {
            problems.add(at, "give exactly one of allow and deny");
            None
        }
    }
}

fn list<T>(allow: bool, items: Vec<T>) -> List<T> {
    match allow {
        true => List::Allow(items),
        false => List::Deny(items),
    }
}

fn compile_checks(c: &AccessConfig, at: &str, problems: &mut Problems) -> Checks {
    let referer = c.referer.as_ref().and_then(|r: &RefererList| {
        let (allow, items) = one_of(&r.allow, &r.deny, &format!("{at}.referer"), problems)?;
        let patterns = items
            .iter()
            .map(|h| {
                let h = h.to_ascii_lowercase();
                match h.strip_prefix('*') {
                    Some(suffix) => HostPattern::Suffix(suffix.to_owned()),
                    None => HostPattern::Exact(h),
                }
            })
            .collect();
        Some((list(allow, patterns), r.allow_empty))
    });
    let ip = c.ip.as_ref().and_then(|l: &AllowDeny| {
        let (allow, items) = one_of(&l.allow, &l.deny, &format!("{at}.ip"), problems)?;
        let which = if allow { "allow" } else { "deny" };
        Some(list(
            allow,
            cidrs(items, &format!("{at}.ip.{which}"), problems),
        ))
    });
    let user_agent = c.user_agent.as_ref().and_then(|l: &AllowDeny| {
        let (allow, items) = one_of(&l.allow, &l.deny, &format!("{at}.user_agent"), problems)?;
        Some(list(allow, items.to_vec()))
    });
    let limits = c
        .limits
        .as_ref()
        .map_or(Limits::default(), |l: &LimitsConfig| {
            for (name, v) in [
                ("requests_per_second", l.requests_per_second),
                ("burst", l.burst),
                ("connections", l.connections),
            ] {
                if v == Some(0) {
                    problems.add(
                        format!("{at}.limits.{name}"),
                        "must be at least 1 (leave it out for no limit)",
                    );
                }
            }
            if l.burst.is_some() && l.requests_per_second.is_none() {
                problems.add(
                    format!("{at}.limits.burst"),
                    "burst needs requests_per_second",
                );
            }
            Limits {
                requests_per_second: l.requests_per_second,
                burst: l.burst,
                connections: l.connections,
            }
        });
    Checks {
        referer,
        ip,
        user_agent,
        limits,
    }
}

impl Access {
    /// Compiles a domain's `access` section, recording every problem at its path.
    pub fn compile(c: &AccessConfig, at: &str, problems: &mut Problems) -> Access {
        let mut apps = HashMap::new();
        for (app, ac) in &c.apps {
            let app_at = format!("{at}.apps.{app}");
            if !ac.apps.is_empty() || !ac.trusted_proxies.is_empty() {
                problems.add(
                    &app_at,
                    "apps and trusted_proxies belong to the domain, not to an app",
                );
            }
            apps.insert(
                app.to_ascii_lowercase(),
                compile_checks(ac, &app_at, problems),
            );
        }
        Access {
            domain: compile_checks(c, at, problems),
            apps,
            trusted: cidrs(
                &c.trusted_proxies,
                &format!("{at}.trusted_proxies"),
                problems,
            ),
        }
    }

    /// The checks for an app: its own, else the domain's.
    pub fn checks(&self, app: &str) -> &Checks {
        if self.apps.is_empty() {
            return &self.domain;
        }
        self.apps
            .get(&app.to_ascii_lowercase())
            .unwrap_or(&self.domain)
    }

    /// The client a request is from: the connection's peer, unless the peer is a
    /// trusted proxy — then the rightmost `X-Forwarded-For` address that is not
    /// one (a header from anyone else never decides).
    pub fn client(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        let peer = peer.map(canonical_ip)?;
        let trusted = |ip: &IpAddr| self.trusted.iter().any(|n| n.contains(ip));
        if !trusted(&peer) {
            return Some(peer);
        }
        let Some(xff) = forwarded_for else {
            return Some(peer);
        };
        let mut client = peer;
        for hop in xff.rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>().map(canonical_ip) else {
                // An unparseable hop: stop at the last address we could trust.
                break;
            };
            client = ip;
            if !trusted(&ip) {
                break;
            }
        }
        Some(client)
    }

    /// Whether any proxy is trusted (only then is `X-Forwarded-For` read).
    pub fn trusts_proxies(&self) -> bool {
        !self.trusted.is_empty()
    }
}

/// The access step of the request path: the lists, then the rate, then a
/// connection slot. Returns the address whose slot was taken: give it back with
/// [`limits::Limiter::release`] when the request ends.
pub fn admit(
    access: Option<&Access>,
    limiter: &limits::Limiter,
    peer: Option<IpAddr>,
    headers: &http::HeaderMap,
    path: &str,
) -> Result<Option<IpAddr>, Failure> {
    let Some(a) = access else { return Ok(None) };
    let app = crate::route::Route::of_path(path).app;
    let header = |n| {
        headers
            .get(n)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
    };
    let client = match a.trusts_proxies() {
        false => a.client(peer, None),
        true => {
            // Every X-Forwarded-For line, in order, as one list.
            let hops: Vec<&str> = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            a.client(peer, (!hops.is_empty()).then(|| hops.join(",")).as_deref())
        }
    };
    let checks = a.checks(app);
    checks.check(&Seen {
        client,
        referer: header(http::header::REFERER),
        user_agent: header(http::header::USER_AGENT),
    })?;
    let Some(ip) = client else { return Ok(None) };
    limiter.request(ip, &checks.limits)?;
    Ok(limiter.connect(ip, &checks.limits)?.then_some(ip))
}

impl Checks {
    /// The list checks, in order IP, Referer, User-Agent; a request without a
    /// Referer is judged by `allow_empty`. Limits are counted by
    /// [`limits::Limiter`].
    pub fn check(&self, seen: &Seen<'_>) -> Result<(), Failure> {
        self.check_lists(seen, false)
    }

    /// As [`Checks::check`], but only for what `seen` names (the check API, which
    /// reports a list's verdict only when asked with that parameter).
    pub fn check_given(&self, seen: &Seen<'_>) -> Result<(), Failure> {
        self.check_lists(seen, true)
    }

    fn check_lists(&self, seen: &Seen<'_>, only_given: bool) -> Result<(), Failure> {
        if let (Some(l), Some(ip)) = (&self.ip, seen.client.map(canonical_ip)) {
            if !l.passes(|n| n.contains(&ip)) {
                return Err(Failure::new(
                    Reason::IpDenied,
                    "the client address is not allowed",
                ));
            }
        }
        if let Some((l, allow_empty)) = self
            .referer
            .as_ref()
            .filter(|_| !only_given || seen.referer.is_some())
        {
            let ok = match seen.referer.filter(|r| !r.is_empty()) {
                None => *allow_empty,
                // A Referer no browser sends passes neither kind of list.
                Some(r) => referer_host(r).is_some_and(|host| l.passes(|p| p.matches(host))),
            };
            if !ok {
                return Err(Failure::new(
                    Reason::RefererDenied,
                    "the Referer is not allowed",
                ));
            }
        }
        if let Some(l) = self
            .user_agent
            .as_ref()
            .filter(|_| !only_given || seen.user_agent.is_some())
        {
            let ua = seen.user_agent.unwrap_or("");
            if !l.passes(|g| glob(g, ua)) {
                return Err(Failure::new(
                    Reason::UaDenied,
                    "the User-Agent is not allowed",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(yaml: &str) -> Access {
        let c: AccessConfig = serde_yaml::from_str(yaml).unwrap();
        let mut p = Problems::default();
        let a = Access::compile(&c, "access", &mut p);
        assert!(p.is_empty(), "{:?}", p.0);
        a
    }

    fn seen<'a>(ip: &str, referer: Option<&'a str>, ua: Option<&'a str>) -> Seen<'a> {
        Seen {
            client: ip.parse().ok(),
            referer,
            user_agent: ua,
        }
    }

    fn reason(a: &Access, app: &str, s: &Seen<'_>) -> Option<Reason> {
        a.checks(app).check(s).err().map(|f| f.reason)
    }

    #[test]
    fn referer_allow_and_deny_by_host_never_substring() {
        let a = compile("referer: { allow: [\"*.example.com\", example.com], allow_empty: false }");
        for ok in [
            "https://example.com/p",
            "http://a.example.com",
            "https://x.y.EXAMPLE.com:8443/?a=1",
            "HTTPS://example.com",
        ] {
            assert_eq!(
                reason(&a, "live", &seen("192.0.2.1", Some(ok), None)),
                None,
                "{ok}"
            );
        }
        for bad in [
            "https://evil.com/example.com",
            "https://example.com.evil.com/",
            "https://notexample.com/",
            "https://evil.com/?r=a.example.com",
            // Referers no browser sends: never an allowed host.
            "https://u@x.y.example.com/",
            "http://evil.test\\@example.com/",
            "http://example.com./",
            "http://example%2ecom/",
            "http://a.example.com%23.evil.test/",
            "http://a.example.com%2F.evil.test/",
            "http://a.exam\tple.com/",
            "javascript://example.com/%0aalert(1)",
            "example.com",
            "//example.com/",
            "http://example.com:/",
            "http://example.com:x/",
        ] {
            assert_eq!(
                reason(&a, "live", &seen("192.0.2.1", Some(bad), None)),
                Some(Reason::RefererDenied),
                "{bad}"
            );
        }
        assert_eq!(
            reason(&a, "live", &seen("192.0.2.1", None, None)),
            Some(Reason::RefererDenied)
        );
        let d = compile("referer: { deny: [\"*.pirate.example\"] }");
        assert_eq!(
            reason(
                &d,
                "live",
                &seen(
                    "192.0.2.1",
                    Some("http://www.pirate.example\\@good.test/"),
                    None
                )
            ),
            Some(Reason::RefererDenied)
        );
        assert_eq!(
            reason(
                &d,
                "live",
                &seen("192.0.2.1", Some("http://www.pirate.example/x"), None)
            ),
            Some(Reason::RefererDenied)
        );
        assert_eq!(
            reason(
                &d,
                "live",
                &seen("192.0.2.1", Some("http://fine.example/x"), None)
            ),
            None
        );
        assert_eq!(
            reason(&d, "live", &seen("192.0.2.1", None, None)),
            None,
            "allow_empty defaults to true"
        );
    }

    #[test]
    fn ip_lists_take_v4_and_v6_cidrs() {
        let a = compile("ip: { allow: [\"10.0.0.0/8\", \"2001:db8::/32\", \"192.0.2.7\"] }");
        for ok in ["10.1.2.3", "2001:db8::1", "::ffff:10.9.9.9", "192.0.2.7"] {
            assert_eq!(reason(&a, "x", &seen(ok, None, None)), None, "{ok}");
        }
        for bad in ["11.0.0.1", "2001:db9::1", "192.0.2.8"] {
            assert_eq!(
                reason(&a, "x", &seen(bad, None, None)),
                Some(Reason::IpDenied),
                "{bad}"
            );
        }
        // IPv4-mapped forms match both ways.
        let d = compile("ip: { deny: [\"::ffff:127.0.0.6/128\", \"::ffff:10.0.0.0/104\"] }");
        for bad in [
            "127.0.0.6",
            "::ffff:127.0.0.6",
            "10.2.3.4",
            "::ffff:10.2.3.4",
        ] {
            assert_eq!(
                reason(&d, "x", &seen(bad, None, None)),
                Some(Reason::IpDenied),
                "{bad}"
            );
        }
        assert_eq!(reason(&d, "x", &seen("127.0.0.7", None, None)), None);
        let d = compile("ip: { deny: [\"127.0.0.6\", \"::/0\"] }");
        for bad in ["::ffff:127.0.0.6", "192.0.2.1", "2001:db8::1"] {
            assert_eq!(
                reason(&d, "x", &seen(bad, None, None)),
                Some(Reason::IpDenied),
                "{bad}"
            );
        }
        let d = compile("ip: { deny: [\"192.0.2.0/24\"] }");
        assert_eq!(
            reason(&d, "x", &seen("192.0.2.200", None, None)),
            Some(Reason::IpDenied)
        );
        assert_eq!(reason(&d, "x", &seen("198.51.100.1", None, None)), None);
    }

    #[test]
    fn user_agent_globs_ignore_case_and_apps_override() {
        let a = compile(
            "user_agent: { deny: [\"*curl*\", \"python-requests/*\"] }\napps: { vip: { user_agent: { allow: [\"VLC/*\"] } } }",
        );
        assert_eq!(
            reason(&a, "live", &seen("192.0.2.1", None, Some("CURL/8.0"))),
            Some(Reason::UaDenied)
        );
        assert_eq!(
            reason(
                &a,
                "live",
                &seen("192.0.2.1", None, Some("python-requests/2.31"))
            ),
            Some(Reason::UaDenied)
        );
        assert_eq!(
            reason(&a, "live", &seen("192.0.2.1", None, Some("VLC/3.0"))),
            None
        );
        assert_eq!(
            reason(&a, "VIP", &seen("192.0.2.1", None, Some("curl/8"))),
            Some(Reason::UaDenied)
        );
        assert_eq!(
            reason(&a, "vip", &seen("192.0.2.1", None, Some("vlc/3.0.20"))),
            None
        );
        assert!(
            glob("*", "") && glob("a*b*c", "aXXbYYc") && !glob("a*b", "ac") && glob("a?c", "abc")
        );
    }

    #[test]
    fn forwarded_for_decides_only_from_a_trusted_proxy() {
        let a = compile("trusted_proxies: [\"10.0.0.0/8\"]");
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        assert_eq!(
            a.client(ip("192.0.2.9"), Some("203.0.113.1")),
            ip("192.0.2.9")
        );
        assert_eq!(
            a.client(ip("10.0.0.2"), Some("203.0.113.1")),
            ip("203.0.113.1")
        );
        assert_eq!(
            a.client(ip("10.0.0.2"), Some("198.51.100.3, 203.0.113.1, 10.0.0.5")),
            ip("203.0.113.1")
        );
        assert_eq!(a.client(ip("10.0.0.2"), Some("garbage")), ip("10.0.0.2"));
        assert_eq!(a.client(ip("10.0.0.2"), None), ip("10.0.0.2"));
        let none = compile("{}");
        assert_eq!(
            none.client(ip("10.0.0.2"), Some("203.0.113.1")),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn problems_are_reported_at_their_path() {
        let c: AccessConfig = serde_yaml::from_str(
            "ip: { allow: [\"10.0.0.0/33\"] }\nreferer: { allow: [a], deny: [b] }\nlimits: { connections: 0 }",
        )
        .unwrap();
        let mut p = Problems::default();
        Access::compile(&c, "domains[0].access", &mut p);
        let text: Vec<String> = p.0.iter().map(|p| p.to_string()).collect();
        assert!(
            text.iter()
                .any(|t| t.starts_with("domains[0].access.ip.allow[0]")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("domains[0].access.referer")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("domains[0].access.limits.connections")),
            "{text:?}"
        );
    }
}
