//! Playlist rewriting, pure: every URI of an HLS playlist (RFC 8216) gets the
//! segment token, so players fetch segments and variants with it.
//!
//! URI lines and the `URI="…"` attribute of any tag (`EXT-X-KEY`, `EXT-X-MAP`,
//! `EXT-X-MEDIA`, `EXT-X-PART`, `EXT-X-PRELOAD-HINT`, `EXT-X-RENDITION-REPORT`,
//! `EXT-X-I-FRAME-STREAM-INF`, …) are rewritten when relative or on `host`; URIs on
//! other hosts are left alone; a URI's own query is kept and the token added to it.
//! A body that is not a playlist (no `#EXTM3U` first) is not one: `None`.

/// Writes a URI with `name=token` added to its query (before any fragment).
fn push_with_token(out: &mut String, uri: &str, name: &str, token: &str) {
    let (base, fragment) = match uri.find('#') {
        Some(i) => (&uri[..i], &uri[i..]),
        None => (uri, ""),
    };
    out.push_str(base);
    out.push(if base.contains('?') { '&' } else { '?' });
    out.push_str(name);
    out.push('=');
    out.push_str(token);
    out.push_str(fragment);
}

/// Whether a URI is served by this edge: relative, or absolute on `host`.
fn ours(uri: &str, host: &str) -> bool {
    if uri.is_empty() {
        return false;
    }
    let rest = if let Some(r) = uri.strip_prefix("//") {
        r
    } else if let Some((scheme, r)) = uri.split_once("://") {
        if !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return true;
        }
        r
    } else {
        // Relative, unless a scheme comes first (`data:…`, `skd:…`).
        return match (uri.find(':'), uri.find('/')) {
            (None, _) => true,
            (Some(colon), Some(slash)) => slash < colon,
            (Some(_), None) => false,
        };
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    crate::route::host_name(authority).eq_ignore_ascii_case(crate::route::host_name(host))
}

/// The byte range of a tag line's `URI="…"` value, if it has one.
fn uri_attribute(line: &str) -> Option<(usize, usize)> {
    let at = line.find("URI=\"")? + 5;
    let len = line[at..].find('"')?;
    Some((at, at + len))
}

/// The playlist with the token `name=token` on each of its URIs served by `host`,
/// or `None` when the body is not a playlist.
pub fn rewrite(body: &str, host: &str, name: &str, token: &str) -> Option<String> {
    let text = body.strip_prefix('\u{feff}').unwrap_or(body);
    if !text.starts_with("#EXTM3U") {
        return None;
    }
    let mut out = String::with_capacity(text.len() + text.len() / 2);
    for line in text.split_inclusive('\n') {
        let content = line.trim_end_matches(['\r', '\n']);
        let end = &line[content.len()..];
        let trimmed = content.trim();
        if trimmed.starts_with('#') {
            match uri_attribute(content).filter(|&(a, b)| ours(&content[a..b], host)) {
                Some((a, b)) => {
                    out.push_str(&content[..a]);
                    push_with_token(&mut out, &content[a..b], name, token);
                    out.push_str(&content[b..]);
                }
                None => out.push_str(content),
            }
        } else if ours(trimmed, host) {
            push_with_token(&mut out, trimmed, name, token);
        } else {
            out.push_str(content);
        }
        out.push_str(end);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_uri_of_ours_gets_the_token() {
        let p = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-MAP:URI=\"init.mp4\"\n\
                 #EXT-X-KEY:METHOD=AES-128,URI=\"https://keys.other.com/k\",IV=0x1\n\
                 #EXTINF:2.0,\ncam1-1.ts\n#EXTINF:2.0,\nseg.ts?x=1\n\
                 #EXT-X-PART:DURATION=0.5,URI=\"p1.mp4\"\n\
                 #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p2.mp4\"\n\
                 #EXT-X-RENDITION-REPORT:URI=\"../hi/index.m3u8\",LAST-MSN=5\n\
                 http://play.example.com:8080/live/abs.ts\n\
                 https://other.example.org/x.ts\n\
                 //play.example.com/live/rel.ts\n";
        let out = rewrite(p, "play.example.com", "lgt", "T").unwrap();
        for want in [
            "#EXT-X-MAP:URI=\"init.mp4?lgt=T\"",
            "URI=\"https://keys.other.com/k\"",
            "\ncam1-1.ts?lgt=T\n",
            "\nseg.ts?x=1&lgt=T\n",
            "URI=\"p1.mp4?lgt=T\"",
            "URI=\"p2.mp4?lgt=T\"",
            "URI=\"../hi/index.m3u8?lgt=T\"",
            "\nhttp://play.example.com:8080/live/abs.ts?lgt=T\n",
            "\nhttps://other.example.org/x.ts\n",
            "\n//play.example.com/live/rel.ts?lgt=T\n",
            "#EXTINF:2.0,\n",
        ] {
            assert!(out.contains(want), "{want} not in\n{out}");
        }
    }

    #[test]
    fn variants_media_and_line_ends_are_kept() {
        let p = "#EXTM3U\r\n#EXT-X-STREAM-INF:BANDWIDTH=800000\r\nhi/index.m3u8\r\n\
                 #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"audio/en.m3u8\"\r\n\
                 #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI=\"iframes.m3u8\"\r\n";
        let out = rewrite(p, "h", "lgt", "T").unwrap();
        assert_eq!(
            out,
            "#EXTM3U\r\n#EXT-X-STREAM-INF:BANDWIDTH=800000\r\nhi/index.m3u8?lgt=T\r\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"audio/en.m3u8?lgt=T\"\r\n\
             #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI=\"iframes.m3u8?lgt=T\"\r\n"
        );
    }

    #[test]
    fn a_body_that_is_not_a_playlist_is_left_alone() {
        assert_eq!(rewrite("<html>", "h", "lgt", "T"), None);
        assert_eq!(rewrite("", "h", "lgt", "T"), None);
        assert!(rewrite("\u{feff}#EXTM3U\na.ts\n", "h", "lgt", "T").is_some());
        let keyed = rewrite(
            "#EXTM3U\n#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"skd:key1\"\n",
            "h",
            "lgt",
            "T",
        )
        .unwrap();
        assert!(keyed.contains("URI=\"skd:key1\""), "{keyed}");
    }
}
