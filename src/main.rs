//! The `livegate` command line: parse, load the configuration, hand over.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use livegate::check::{check_url, sign_url, verdict_json};
use livegate::config::{self, Loaded};
use livegate::route::Scene;
use livegate::unix_now;

/// Edge reverse proxy for live streaming with inline signed-URL authentication.
#[derive(Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    /// Configuration file.
    #[arg(short, long, value_name = "FILE")]
    conf: Option<PathBuf>,
    /// Validate the configuration, print what is wrong, exit 0 or 1.
    #[arg(short, long)]
    test: bool,
    /// Run in the background (Pingora's daemon mode).
    #[arg(short, long)]
    daemon: bool,
    /// Take over the listening sockets of a running livegate (zero-downtime upgrade).
    #[arg(short, long)]
    upgrade: bool,
    /// Tell the running livegate: `reload` applies the configuration file live
    /// (validated first; refused whole: exit 1 with the messages).
    #[arg(short, long, value_name = "reload")]
    signal: Option<Signal>,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Signal {
    Reload,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print a signed URL (first key of the matching rule).
    Sign(SignArgs),
    /// Check a URL: one JSON line; exit 0 pass, 1 fail, 2 usage or config error.
    Check(CheckArgs),
    /// The management API from the shell: each call signed for you.
    Api(ApiArgs),
    /// Serve a synthetic live origin (endless .flv, live .m3u8, .ts) for demos.
    DemoOrigin {
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: String,
    },
}

#[derive(Args)]
struct Target {
    /// Configuration file.
    #[arg(short, long, value_name = "FILE")]
    conf: PathBuf,
    /// Absolute URL; its host picks the domain.
    #[arg(long)]
    url: String,
    #[arg(long, default_value = "pull", value_name = "pull|push")]
    scene: Scene,
    /// Client IP, for templates that sign `{remote_addr}` (and `check`'s IP list).
    #[arg(long, default_value = "")]
    remote_addr: String,
}

#[derive(Args)]
struct ApiArgs {
    /// Configuration file: its admin.listen and admin key (key or key_file).
    #[arg(short, long, value_name = "FILE", required_unless_present = "admin")]
    conf: Option<PathBuf>,
    /// The API's URL, e.g. http://127.0.0.1:9180 (with --key-file, instead of -c).
    #[arg(
        long,
        value_name = "URL",
        requires = "key_file",
        conflicts_with = "conf"
    )]
    admin: Option<String>,
    /// A file holding the admin key.
    #[arg(long, value_name = "F", requires = "admin")]
    key_file: Option<PathBuf>,
    /// Print the API's JSON answer as it is.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    call: ApiCmd,
}

/// A stream: domain, app and stream name.
#[derive(Args)]
struct StreamArgs {
    domain: String,
    app: String,
    stream: String,
}

#[derive(Subcommand)]
enum ApiCmd {
    /// Streams with open connections (of one domain, or all).
    Online {
        #[arg(long)]
        domain: Option<String>,
    },
    /// Each open connection of a stream: client, scene, protocol, since, bytes.
    Connections(StreamArgs),
    /// Forbid a stream: new requests 403, open connections cut.
    Forbid {
        #[command(flatten)]
        s: StreamArgs,
        /// Until this Unix time (default: until resumed).
        #[arg(long, allow_negative_numbers = true)]
        until: Option<i64>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a forbid.
    Resume(StreamArgs),
    /// Cut a stream's open connections now (no forbid).
    Drop {
        #[command(flatten)]
        s: StreamArgs,
        #[arg(long, value_name = "pull|push")]
        scene: Option<String>,
    },
    /// The verdict for a URL (exit 1 when it fails).
    Check {
        url: String,
        #[arg(long, value_name = "pull|push")]
        scene: Option<String>,
    },
    /// The rules in force for a domain (keys masked).
    Rules { domain: String },
    /// Change the rule in force for (domain, app, scene) without sending its keys:
    /// rotate = `--add-key NEW --remove-key 0` (indexes as `rules` lists them).
    Rule {
        domain: String,
        /// `*` for the domain's default rule.
        app: String,
        #[arg(value_name = "pull|push")]
        scene: String,
        /// Put this key first: it signs from now on.
        #[arg(long)]
        add_key: Option<String>,
        /// Remove the key at this index.
        #[arg(long)]
        remove_key: Option<usize>,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
    },
    /// A domain's access lists.
    Access { domain: String },
    /// The edge's state backend and revision.
    State,
}

#[derive(Args)]
struct SignArgs {
    #[command(flatten)]
    target: Target,
    /// The URL's real expiry, Unix seconds.
    #[arg(long, conflicts_with = "ttl", allow_negative_numbers = true)]
    expire: Option<i64>,
    /// Seconds from now until expiry (negative: an already expired URL).
    #[arg(long, default_value_t = 3600, allow_negative_numbers = true)]
    ttl: i64,
    /// Token rules: what the token covers instead of this one URL — Akamai ACL
    /// patterns (`/live/cam1/*`, several joined by `!`), a CloudFront custom
    /// policy's Resource (a path, or a whole URL), a JWT's path claim.
    #[arg(long, value_name = "PATTERN")]
    acl: Option<String>,
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    target: Target,
    /// Check as if the time were this (Unix seconds).
    #[arg(long, allow_negative_numbers = true)]
    now: Option<i64>,
    /// Check the domain's Referer list against this Referer.
    #[arg(long)]
    referer: Option<String>,
    /// Check the domain's User-Agent list against this User-Agent.
    #[arg(long)]
    user_agent: Option<String>,
}

/// mimalloc: measured faster than glibc malloc on the request path (docs/performance.md,
/// Performance). `--features system-alloc` keeps the system allocator, for
/// comparison and for heap profilers that only see `malloc`.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(not(feature = "system-alloc"))]
mod alloc;

const USAGE: u8 = 2;

/// Logs to stderr (journald under systemd; `server.error_log` when daemonised).
/// Access-log lines (target `access`) are written bare, one request per line.
fn init_logging() {
    use std::io::Write;
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(|buf, record| {
            if record.target() == "access" {
                writeln!(buf, "{}", record.args())
            } else {
                let ts = buf.timestamp_millis();
                writeln!(
                    buf,
                    "[{ts} {} {}] {}",
                    record.level(),
                    record.target(),
                    record.args()
                )
            }
        })
        .init();
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    match cli.cmd {
        Some(Cmd::Check(a)) => check(a),
        Some(Cmd::Sign(a)) => sign(a),
        Some(Cmd::Api(a)) => api(a),
        Some(Cmd::DemoOrigin { listen }) => livegate::server::run_demo_origin(&listen),
        None => {
            let Some(conf) = cli.conf else {
                eprintln!("livegate: -c FILE is required (see --help)");
                return ExitCode::from(USAGE);
            };
            if cli.test {
                return test_config(&conf);
            }
            if let Some(Signal::Reload) = cli.signal {
                return reload(&conf);
            }
            let loaded = match load(&conf) {
                Ok(l) => l,
                Err(code) => return code,
            };
            if let Err(e) = loaded.runnable(&conf) {
                eprintln!("livegate: {e}");
                return ExitCode::from(USAGE);
            }
            match livegate::server::run(loaded, &conf, cli.daemon, cli.upgrade) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("livegate: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn load(conf: &std::path::Path) -> Result<Loaded, ExitCode> {
    config::load(conf).map_err(|e| {
        eprintln!("livegate: {e}");
        ExitCode::from(USAGE)
    })
}

fn test_config(conf: &std::path::Path) -> ExitCode {
    match config::load(conf).and_then(|l| l.runnable(conf).map(|()| l)) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("livegate: warning: {w}");
            }
            println!("livegate: configuration {} is valid", conf.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("livegate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn api(a: ApiArgs) -> ExitCode {
    use livegate::api::{Call, Endpoint};
    let endpoint = match (&a.conf, &a.admin, &a.key_file) {
        (Some(c), _, _) => Endpoint::from_config(c),
        (None, Some(url), Some(f)) => Endpoint::from_key_file(url, f),
        _ => Err(livegate::api::ApiCliError::Usage(
            "give -c FILE, or --admin URL --key-file F".into(),
        )),
    };
    let endpoint = match endpoint {
        Ok(e) => e,
        Err(e) => {
            eprintln!("livegate: {e}");
            return ExitCode::from(USAGE);
        }
    };
    let of = |s: StreamArgs| (s.domain, s.app, s.stream);
    let call = match a.call {
        ApiCmd::Online { domain } => Call::Online { domain },
        ApiCmd::Connections(s) => {
            let (domain, app, stream) = of(s);
            Call::Connections {
                domain,
                app,
                stream,
            }
        }
        ApiCmd::Forbid { s, until, reason } => {
            let (domain, app, stream) = of(s);
            Call::Forbid {
                domain,
                app,
                stream,
                until,
                reason,
            }
        }
        ApiCmd::Resume(s) => {
            let (domain, app, stream) = of(s);
            Call::Resume {
                domain,
                app,
                stream,
            }
        }
        ApiCmd::Drop { s, scene } => {
            let (domain, app, stream) = of(s);
            Call::Drop {
                domain,
                app,
                stream,
                scene,
            }
        }
        ApiCmd::Check { url, scene } => Call::Check { url, scene },
        ApiCmd::Rules { domain } => Call::Rules { domain },
        ApiCmd::Rule {
            domain,
            app,
            scene,
            add_key,
            remove_key,
            enable,
            disable,
        } => Call::Rule {
            domain,
            app,
            scene,
            enabled: (enable || disable).then_some(enable),
            add_key,
            remove_key,
        },
        ApiCmd::Access { domain } => Call::Access { domain },
        ApiCmd::State => Call::State,
    };
    ExitCode::from(livegate::api::run(&endpoint, &call, a.json))
}

fn reload(conf: &std::path::Path) -> ExitCode {
    match livegate::reload::signal_reload(conf) {
        Ok(message) => {
            println!("livegate: {message}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("livegate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(a: CheckArgs) -> ExitCode {
    let loaded = match load(&a.target.conf) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let now = a.now.unwrap_or_else(unix_now);
    let state = match livegate::state::live::snapshot(&loaded.config.domains, &loaded.saved) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("livegate: {e}");
            return ExitCode::from(USAGE);
        }
    };
    let who = livegate::access::Seen {
        client: a.target.remote_addr.parse().ok(),
        referer: a.referer.as_deref(),
        user_agent: a.user_agent.as_deref(),
    };
    match check_url(&state, &a.target.url, a.target.scene, &who, now) {
        Ok(verdict) => {
            println!("{}", verdict_json(&verdict));
            if verdict.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("livegate: {e}");
            ExitCode::from(USAGE)
        }
    }
}

fn sign(a: SignArgs) -> ExitCode {
    let loaded = match load(&a.target.conf) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let expire = a.expire.unwrap_or_else(|| unix_now().saturating_add(a.ttl));
    match sign_url(
        &loaded.table,
        &a.target.url,
        a.target.scene,
        &a.target.remote_addr,
        expire,
        a.acl.as_deref(),
    ) {
        Ok(url) => {
            println!("{url}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("livegate: {e}");
            ExitCode::from(USAGE)
        }
    }
}
