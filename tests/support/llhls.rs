//! A small, real Low-Latency HLS origin: ffmpeg encodes a live test picture as
//! fragmented MP4 (a fragment of five frames, 200 ms, and a keyframe every
//! second); each fragment is a part, each keyframe starts a segment. It serves
//! `/live/ll/index.m3u8` (and a `master.m3u8` naming its codec) as the LL-HLS
//! spec has an origin do: `CAN-BLOCK-RELOAD`, a
//! request with `_HLS_msn`/`_HLS_part` held until that part exists (400 when it
//! is too far ahead, 503 after three target durations), parts and a preload
//! hint held until the part is made. It counts every request it gets, so tests
//! can say how many reached it.

use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::sync::watch;

use super::media::{need, Proc};
use super::server::Server;

/// Frames per second and per part; a keyframe every `FPS` frames.
const FPS: u32 = 25;
const PART_FRAMES: u32 = 5;
/// Seconds: the target duration, three of which a blocking request is held.
const TARGET: u64 = 1;
/// Segments listed; the last `WITH_PARTS` of them with their parts.
const WINDOW: usize = 6;
const WITH_PARTS: usize = 3;

/// One part: a `moof` and its `mdat`.
struct Part {
    bytes: Bytes,
    /// When ffmpeg had written it whole.
    made: Instant,
    /// Global part number: its URI (`part<n>.m4s`), known before it is made.
    n: u64,
    independent: bool,
    frames: u32,
}

struct Segment {
    parts: Vec<Part>,
    complete: bool,
    /// When its first frame was made.
    date: SystemTime,
}

#[derive(Default)]
struct State {
    init: Option<Bytes>,
    /// Index: media sequence number.
    segments: Vec<Segment>,
    parts: u64,
}

impl State {
    /// Whether a blocking request for (`msn`, `part`) can be answered: the part
    /// exists, or (past the segment's last part) the next segment has begun; a
    /// request without a part waits for the whole segment.
    fn has(&self, msn: u64, part: Option<u64>) -> bool {
        let Some(seg) = self.segments.get(msn as usize) else {
            return false;
        };
        match part {
            None => seg.complete,
            Some(p) if (p as usize) < seg.parts.len() => true,
            Some(_) => seg.complete,
        }
    }

    /// The RFC 6381 codec of the init section's `avcC`, as a master playlist names it.
    fn codec(&self) -> String {
        let init = self.init.as_deref().unwrap_or(&[]);
        match init.windows(4).position(|w| w == b"avcC") {
            Some(i) if init.len() > i + 8 => {
                format!(
                    "avc1.{:02x}{:02x}{:02x}",
                    init[i + 5],
                    init[i + 6],
                    init[i + 7]
                )
            }
            _ => "avc1.42c01e".into(),
        }
    }

    fn part(&self, n: u64) -> Option<Bytes> {
        self.segments
            .iter()
            .rev()
            .flat_map(|s| s.parts.iter())
            .find(|p| p.n == n)
            .map(|p| p.bytes.clone())
    }

    fn playlist(&self) -> String {
        let last = self.segments.len();
        let first = last.saturating_sub(WINDOW);
        let mut out = format!(
            "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:{TARGET}\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.6\n\
             #EXT-X-PART-INF:PART-TARGET=0.2\n#EXT-X-MEDIA-SEQUENCE:{first}\n\
             #EXT-X-MAP:URI=\"init.mp4\"\n"
        );
        for (msn, seg) in self.segments.iter().enumerate().skip(first) {
            out.push_str(&format!("#EXT-X-PROGRAM-DATE-TIME:{}\n", iso(seg.date)));
            if msn + WITH_PARTS >= last {
                for p in &seg.parts {
                    out.push_str(&format!(
                        "#EXT-X-PART:DURATION={:.3},URI=\"part{}.m4s\"{}\n",
                        p.frames as f64 / FPS as f64,
                        p.n,
                        if p.independent {
                            ",INDEPENDENT=YES"
                        } else {
                            ""
                        }
                    ));
                }
            }
            if seg.complete {
                let frames: u32 = seg.parts.iter().map(|p| p.frames).sum();
                out.push_str(&format!(
                    "#EXTINF:{:.3},\nseg{msn}.m4s\n",
                    frames as f64 / FPS as f64
                ));
            }
        }
        out.push_str(&format!(
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part{}.m4s\"\n",
            self.parts
        ));
        out
    }
}

struct Shared {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    /// Every request: `path?query` → how many times.
    asked: Mutex<HashMap<String, usize>>,
}

/// The running origin (and its ffmpeg); stopped when dropped.
pub struct LlOrigin {
    pub port: u16,
    shared: Arc<Shared>,
    _server: Server,
    _ffmpeg: Proc,
}

impl LlOrigin {
    pub async fn start() -> LlOrigin {
        need("ffmpeg", "ffmpeg");
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed,
            asked: Mutex::new(HashMap::new()),
        });
        let mut child = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-re",
                "-f",
                "lavfi",
                "-i",
            ])
            .arg(format!("testsrc2=size=320x180:rate={FPS}"))
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
            ])
            .args(["-g", &FPS.to_string(), "-keyint_min", &FPS.to_string()])
            .args(["-sc_threshold", "0", "-pix_fmt", "yuv420p"])
            .args(["-video_track_timescale", "90000", "-f", "mp4"])
            .args(["-movflags", "+frag_keyframe+empty_moov+default_base_moof"])
            .args([
                "-frag_duration",
                &(PART_FRAMES * 1_000_000 / FPS).to_string(),
            ])
            .arg("pipe:1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let fed = shared.clone();
        std::thread::spawn(move || read_fragments(stdout, &fed));
        let served = shared.clone();
        let server = Server::start(None, move |req: Request<Incoming>| {
            let shared = served.clone();
            async move { answer(&shared, req).await }
        })
        .await;
        let origin = LlOrigin {
            port: server.addr.port(),
            shared,
            _server: server,
            _ffmpeg: Proc(child),
        };
        origin.wait_segments(4).await;
        origin
    }

    /// Waits until `n` segments are complete.
    pub async fn wait_segments(&self, n: usize) {
        let mut rx = self.shared.changed.subscribe();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let done = {
                let s = self.shared.state.lock().unwrap();
                s.segments.iter().filter(|s| s.complete).count()
            };
            if done >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the LL-HLS origin made no segments"
            );
            let _ = tokio::time::timeout(Duration::from_secs(1), rx.changed()).await;
        }
    }

    /// When part `name` (`part<n>.m4s`) was made whole.
    pub fn made(&self, name: &str) -> Option<Instant> {
        let n: u64 = name
            .rsplit('/')
            .next()?
            .strip_prefix("part")?
            .strip_suffix(".m4s")?
            .parse()
            .ok()?;
        let s = self.shared.state.lock().unwrap();
        let part = s
            .segments
            .iter()
            .flat_map(|s| s.parts.iter())
            .find(|p| p.n == n)?;
        Some(part.made)
    }

    /// Origin requests per distinct request among those `which` selects, made
    /// since `before` (an earlier [`LlOrigin::asked`]); and how many distinct.
    pub fn per_request(
        &self,
        before: &HashMap<String, usize>,
        which: impl Fn(&str) -> bool,
    ) -> (f64, usize) {
        let hits: Vec<usize> = self
            .asked()
            .iter()
            .filter(|(k, _)| which(k))
            .map(|(k, n)| n - before.get(k).copied().unwrap_or(0))
            .filter(|n| *n > 0)
            .collect();
        let per = hits.iter().sum::<usize>() as f64 / hits.len().max(1) as f64;
        (per, hits.len())
    }

    /// Every request it got so far: `path?query` → count.
    pub fn asked(&self) -> HashMap<String, usize> {
        self.shared.asked.lock().unwrap().clone()
    }
}

/// Reads ffmpeg's fragmented MP4: `ftyp`+`moov` are the init section, each
/// `moof`+`mdat` a part; a part starting with a keyframe starts a segment.
fn read_fragments(mut out: impl Read, shared: &Shared) {
    let mut init = Vec::new();
    let mut moof: Option<Vec<u8>> = None;
    loop {
        let mut head = [0u8; 8];
        if out.read_exact(&mut head).is_err() {
            return;
        }
        let size = u32::from_be_bytes(head[..4].try_into().unwrap()) as usize;
        let mut b = head.to_vec();
        b.resize(size.max(8), 0);
        if out.read_exact(&mut b[8..]).is_err() {
            return;
        }
        match &head[4..] {
            b"ftyp" => init = b,
            b"moov" => {
                init.extend_from_slice(&b);
                shared.state.lock().unwrap().init = Some(Bytes::from(std::mem::take(&mut init)));
            }
            b"moof" => moof = Some(b),
            b"mdat" => {
                let Some(mut part) = moof.take() else {
                    continue;
                };
                let (frames, independent) = fragment(&part);
                part.extend_from_slice(&b);
                let mut s = shared.state.lock().unwrap();
                let now = SystemTime::now();
                let took = Duration::from_secs_f64(frames as f64 / FPS as f64);
                if independent || s.segments.is_empty() {
                    if let Some(last) = s.segments.last_mut() {
                        last.complete = true;
                    }
                    s.segments.push(Segment {
                        parts: Vec::new(),
                        complete: false,
                        date: now - took,
                    });
                }
                let n = s.parts;
                s.parts += 1;
                if let Some(seg) = s.segments.last_mut() {
                    seg.parts.push(Part {
                        bytes: Bytes::from(part),
                        made: Instant::now(),
                        n,
                        independent,
                        frames,
                    });
                }
                drop(s);
                shared.changed.send_modify(|v| *v += 1);
            }
            _ => {}
        }
    }
}

/// A `moof`'s sample count and whether its first sample is a sync sample
/// (trun's first-sample flags, else tfhd's defaults).
fn fragment(moof: &[u8]) -> (u32, bool) {
    let u32_at = |b: &[u8], i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap());
    let children = |b: &[u8], from: usize| {
        let mut out = Vec::new();
        let mut i = from;
        while i + 8 <= b.len() {
            let size = u32_at(b, i) as usize;
            out.push((b[i + 4..i + 8].to_vec(), i, size));
            i += size.max(8);
        }
        out
    };
    let (mut frames, mut default_flags, mut first_flags) = (0, None, None);
    for (t, at, size) in children(moof, 8) {
        if t != b"traf" {
            continue;
        }
        let traf = &moof[at..at + size];
        for (t, at, _) in children(traf, 8) {
            let flags = u32_at(traf, at + 8) & 0xff_ffff;
            if t == b"tfhd" && flags & 0x20 != 0 {
                let mut i = at + 16;
                for (bit, len) in [(0x1, 8), (0x2, 4), (0x8, 4), (0x10, 4)] {
                    if flags & bit != 0 {
                        i += len;
                    }
                }
                default_flags = Some(u32_at(traf, i));
            }
            if t == b"trun" {
                frames = u32_at(traf, at + 12);
                let mut i = at + 16;
                if flags & 0x1 != 0 {
                    i += 4;
                }
                if flags & 0x4 != 0 {
                    first_flags = Some(u32_at(traf, i));
                }
            }
        }
    }
    let flags = first_flags.or(default_flags).unwrap_or(0x1_0000);
    (frames, flags & 0x1_0000 == 0)
}

async fn answer(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    *shared
        .asked
        .lock()
        .unwrap()
        .entry(match query.is_empty() {
            true => path.clone(),
            false => format!("{path}?{query}"),
        })
        .or_default() += 1;
    let param = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.parse::<u64>())
    };
    let reply = |status: u16, ctype: &str, cache: &str, body: Bytes| {
        Response::builder()
            .status(status)
            .header("content-type", ctype)
            .header("cache-control", cache)
            .header("access-control-allow-origin", "*")
            .body(Full::new(body))
            .unwrap()
    };
    let hold = Duration::from_secs(3 * TARGET);
    let name = path.strip_prefix("/live/ll/").unwrap_or("");
    if name == "master.m3u8" {
        let codec = shared.state.lock().unwrap().codec();
        let text = format!(
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=600000,CODECS=\"{codec}\",RESOLUTION=320x180\nindex.m3u8\n"
        );
        return reply(
            200,
            "application/vnd.apple.mpegurl",
            "no-cache",
            text.into(),
        );
    }
    if name == "index.m3u8" {
        let (msn, part) = (param("_HLS_msn"), param("_HLS_part"));
        let (msn, part) = match (msn, part) {
            (Some(Ok(m)), Some(Ok(p))) => (Some(m), Some(p)),
            (Some(Ok(m)), None) => (Some(m), None),
            (None, None) => (None, None),
            _ => return reply(400, "text/plain", "no-cache", Bytes::new()),
        };
        if let Some(msn) = msn {
            let last = shared.state.lock().unwrap().segments.len() as u64;
            if msn > last + 2 {
                return reply(400, "text/plain", "no-cache", Bytes::new());
            }
            if !wait(shared, hold, |s| s.has(msn, part)).await {
                return reply(503, "text/plain", "no-cache", Bytes::new());
            }
        }
        let text = shared.state.lock().unwrap().playlist();
        // A blocking answer is the playlist as of that part: cacheable.
        let cache = match msn {
            Some(_) => "public, max-age=6",
            None => "no-cache",
        };
        return reply(200, "application/vnd.apple.mpegurl", cache, text.into());
    }
    if name == "init.mp4" {
        let init = shared.state.lock().unwrap().init.clone();
        return match init {
            Some(b) => reply(200, "video/mp4", "max-age=3600", b),
            None => reply(404, "text/plain", "no-cache", Bytes::new()),
        };
    }
    if let Some(n) = name
        .strip_prefix("part")
        .and_then(|n| n.strip_suffix(".m4s"))
        .and_then(|n| n.parse::<u64>().ok())
    {
        // The preload hint names the next part: held until it is made.
        let made = shared.state.lock().unwrap().parts;
        if n > made {
            return reply(404, "text/plain", "no-cache", Bytes::new());
        }
        wait(shared, hold, |s| s.parts > n).await;
        return match shared.state.lock().unwrap().part(n) {
            Some(b) => reply(200, "video/mp4", "max-age=60", b),
            None => reply(404, "text/plain", "no-cache", Bytes::new()),
        };
    }
    if let Some(msn) = name
        .strip_prefix("seg")
        .and_then(|n| n.strip_suffix(".m4s"))
        .and_then(|n| n.parse::<usize>().ok())
    {
        let s = shared.state.lock().unwrap();
        if let Some(seg) = s.segments.get(msn).filter(|s| s.complete) {
            let body: Vec<u8> = seg
                .parts
                .iter()
                .flat_map(|p| p.bytes.iter().copied())
                .collect();
            return reply(200, "video/mp4", "max-age=60", body.into());
        }
    }
    reply(404, "text/plain", "no-cache", Bytes::new())
}

/// Waits up to `limit` for `ready`; whether it came.
async fn wait(shared: &Shared, limit: Duration, ready: impl Fn(&State) -> bool) -> bool {
    let mut rx = shared.changed.subscribe();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if ready(&shared.state.lock().unwrap()) {
            return true;
        }
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            return false;
        }
    }
}

/// `2026-12-01T16:48:45.123Z`.
fn iso(t: SystemTime) -> String {
    let ms = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i64;
    let (secs, ms) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Where the next blocking request of a player that has `playlist` points: the
/// segment still open and its next part, or the next segment's first part.
pub fn next_part(playlist: &str) -> (u64, u64) {
    let mut msn = 0;
    let mut part = 0;
    for line in playlist.lines() {
        if let Some(n) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            msn = n.trim().parse().unwrap();
        } else if line.starts_with("#EXT-X-PART:") {
            part += 1;
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            msn += 1;
            part = 0;
        }
    }
    (msn, part)
}

/// The quoted `URI` of the first line starting with `tag`.
pub fn uri_of<'a>(playlist: &'a str, tag: &str) -> Option<&'a str> {
    let line = playlist.lines().find(|l| l.starts_with(tag))?;
    line.split("URI=\"").nth(1)?.split('"').next()
}

/// One simulated low-latency player: reads the playlist, then, as hls.js does,
/// asks for the next part's playlist version (held until it exists) while
/// fetching the preload hint; every URI it is given carries its token. Plays
/// until it has `parts` parts or `until` passes. Returns each part it fetched
/// (its name) and when it had it whole.
pub async fn player(
    client: reqwest::Client,
    base: String,
    first: String,
    parts_wanted: usize,
    until: Instant,
) -> Result<Vec<(String, Instant)>, String> {
    let get = |url: String| {
        let client = client.clone();
        async move {
            let r = client
                .get(&url)
                .send()
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            let status = r.status().as_u16();
            let body = r.bytes().await.map_err(|e| format!("{url}: {e}"))?;
            Ok::<_, String>((status, body))
        }
    };
    let (status, body) = get(first.clone()).await?;
    if status != 200 {
        return Err(format!("{first}: {status}"));
    }
    let mut text = String::from_utf8_lossy(&body).to_string();
    let mut parts = Vec::new();
    while Instant::now() < until && parts.len() < parts_wanted {
        let hint = uri_of(&text, "#EXT-X-PRELOAD-HINT:")
            .ok_or_else(|| format!("no preload hint in {text}"))?
            .to_owned();
        if !hint.contains("lgt=") {
            return Err(format!("the preload hint has no token: {text}"));
        }
        let (msn, part) = next_part(&text);
        let sep = if first.contains('?') { '&' } else { '?' };
        let blocking = format!("{first}{sep}_HLS_msn={msn}&_HLS_part={part}");
        let (p, h) = tokio::join!(get(blocking.clone()), get(format!("{base}{hint}")));
        let (status, body) = p?;
        if status != 200 {
            return Err(format!("{blocking}: {status}"));
        }
        let (status, part_body) = h?;
        if status != 200 || !part_body.windows(4).any(|w| w == b"moof") {
            return Err(format!("{hint}: {status}, {} bytes", part_body.len()));
        }
        parts.push((
            hint.split('?').next().unwrap_or("").to_owned(),
            Instant::now(),
        ));
        text = String::from_utf8_lossy(&body).to_string();
    }
    Ok(parts)
}
