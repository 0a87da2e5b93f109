//! The README's recipes, run with bash against the shipped configuration and checked
//! by the real binary, so that what customers copy keeps working as pasted.

mod support;

use std::process::Command;

/// The shipped configuration: the recipes must work against it as pasted.
const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/livegate.yaml");

/// The README and every page of `docs/`, where the recipes live.
fn guide() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut text = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let mut pages: Vec<_> = std::fs::read_dir(format!("{root}/docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    for p in pages {
        text.push_str(&std::fs::read_to_string(p).unwrap());
    }
    text
}

/// The ```sh blocks of the guide that print a URL.
fn recipes() -> Vec<String> {
    let readme = guide();
    readme
        .split("```sh\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .filter(|b| b.contains("echo \"http"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_signing_recipe_produces_a_url_livegate_accepts() {
    for (tool, package) in [
        ("openssl", "openssl"),
        ("awk", "gawk"),
        ("date", "coreutils"),
    ] {
        support::media::need(tool, package);
    }
    let conf = std::path::Path::new(CONFIG);
    let recipes = recipes();
    assert_eq!(recipes.len(), 10, "one recipe per scheme");
    for r in recipes {
        let out = Command::new("bash").args(["-euc", &r]).output().unwrap();
        assert!(
            out.status.success(),
            "recipe failed: {}\n{r}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let check = Command::new(env!("CARGO_BIN_EXE_livegate"))
            .args(["check", "-c", conf.to_str().unwrap(), "--url", &url])
            .output()
            .unwrap();
        let verdict = String::from_utf8_lossy(&check.stdout);
        assert!(check.status.success(), "{url} -> {verdict}\n{r}");
        // And the key matters: a recipe run with another key is refused.
        let key = r.lines().find_map(|l| l.strip_prefix("key=")).unwrap();
        // (Hex, so that the hex-keyed schemes' recipes run with it too.)
        let forged = r.replacen(
            &format!("key={key}"),
            "key=0123456789abcdef0123456789abcdef",
            1,
        );
        let out = Command::new("bash")
            .args(["-euc", &forged])
            .output()
            .unwrap();
        let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let check = Command::new(env!("CARGO_BIN_EXE_livegate"))
            .args(["check", "-c", conf.to_str().unwrap(), "--url", &url])
            .output()
            .unwrap();
        assert_eq!(check.status.code(), Some(1), "forged {url} passed");
    }
}

/// The ```sh block of the guide that contains `marker`.
fn block(marker: &str) -> String {
    let readme = guide();
    readme
        .split("```sh\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains(marker))
        .unwrap_or_else(|| panic!("no README block with {marker:?}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_management_api_recipes_work_as_pasted() {
    for (tool, package) in [("curl", "curl"), ("openssl", "openssl")] {
        support::media::need(tool, package);
    }
    let o = support::Origin::start("o1").await;
    let port = support::free_port();
    let domains = format!(
        "  - name: localhost\n    origin: {}\n    auth:\n      \
         - {{ scene: pull, scheme: tencent, keys: [demoPullKey2026] }}\n",
        support::origin_yaml(&[o.addr], "")
    );
    let mut lg = support::Livegate::start_top(
        &domains,
        &format!("admin: {{ listen: \"127.0.0.1:{port}\", key: adminKey2026 }}\n"),
    );
    lg.wait_port(port);
    let script = format!(
        "{}\napi=http://127.0.0.1:{port}\n{}",
        block("sign=$(printf '%s' \"$key$t\""),
        block("# Would this URL pass")
    );
    // Each call on its own line of output.
    let script = script.replace("curl -s ", "echo; curl -s ");
    let out = Command::new("bash")
        .args(["-euc", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    assert_eq!(answers.len(), 11, "{stdout}");
    assert_eq!(answers[0]["reason"], "EXPIRED", "{stdout}");
    assert_eq!(answers[0]["description"], "time expired", "{stdout}");
    let codes: Vec<&str> = answers.iter().filter_map(|a| a["code"].as_str()).collect();
    // Only the drop of a stream nobody watches is refused.
    assert_eq!(codes, ["StreamNotOnline"], "{stdout}");
    assert!(stdout.contains("\"source\":\"yaml\""), "{stdout}");
    // The PATCH rotated the YAML rule's key: it is the API's now.
    assert!(
        answers
            .iter()
            .any(|a| a["app"] == "*" && a["scene"] == "pull" && a["source"] == "api"),
        "{stdout}"
    );
}
