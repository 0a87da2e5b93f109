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
struct SignArgs {
    #[command(flatten)]
    target: Target,
    /// The URL's real expiry, Unix seconds.
    #[arg(long, conflicts_with = "ttl", allow_negative_numbers = true)]
    expire: Option<i64>,
    /// Seconds from now until expiry (negative: an already expired URL).
    #[arg(long, default_value_t = 3600, allow_negative_numbers = true)]
    ttl: i64,
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

/// mimalloc: measured faster than glibc malloc on the request path (README,
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
