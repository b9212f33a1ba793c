//! pjdfstest (the POSIX file system test suite, Rust edition) through a real mount over
//! coslocal with `allow_other`, on the suites backup tools lean on. The cases expected to
//! fail are listed with a reason in `tests/pjdfstest/expected-failures.txt`: the test
//! fails when any other case fails, and when a listed case passes (so the list stays
//! true; a case marked flaky there may do either and is printed). It prints a table per
//! suite and the pass ratio, with the link suite (and the other cases that need hard
//! links) left out of the ratio while hard links are unsupported.
//!
//! Needs the `pjdfstest` binary (env `PJDFSTEST_BIN`, else on PATH; `scripts/test.sh`
//! installs it with `cargo install pjdfstest`) and the users `nobody` (group `nogroup`)
//! and `tests` (group `tests`), which the suite switches to.

use crate::harness::{self, Harness, MountOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SUITES: &[&str] = &[
    "chmod",
    "chown",
    "ftruncate",
    "link",
    "mkdir",
    "mkfifo",
    "mknod",
    "open",
    "posix_fallocate",
    "rename",
    "rmdir",
    "symlink",
    "truncate",
    "unlink",
    "utimensat",
];

/// How long the whole run may take (it takes about 80 s on two cores).
const RUN_LIMIT: Duration = Duration::from_secs(200);

fn pjdfstest_bin() -> Option<PathBuf> {
    std::env::var_os("PJDFSTEST_BIN")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| harness::which("pjdfstest"))
}

fn has(db: &str, name: &str) -> bool {
    Command::new("getent")
        .args([db, name])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `name | reason` lines of the expected-failure list.
fn expected_failures() -> BTreeMap<String, String> {
    let p = harness::repo_root().join("tests/pjdfstest/expected-failures.txt");
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, why) = l.split_once('|').expect("NAME | reason");
            (name.trim().to_string(), why.trim().to_string())
        })
        .collect()
}

/// Each case's outcome from pjdfstest's output: "NAME   ok|FAILED|skipped".
fn outcomes(output: &str) -> BTreeMap<String, String> {
    output
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (name, status) = (w.next()?, w.next()?);
            let known = matches!(status, "ok" | "FAILED" | "skipped");
            (known && w.next().is_none() && name.contains("::"))
                .then(|| (name.to_string(), status.to_string()))
        })
        .collect()
}

#[test]
fn posix_suites_pass_except_the_listed_cases() {
    let Some(h) = Harness::start("pjdfstest") else {
        return;
    };
    let Some(bin) = pjdfstest_bin() else {
        harness::require("pjdfstest (cargo install pjdfstest)", false);
        return;
    };
    let users = has("passwd", "nobody")
        && has("group", "nogroup")
        && has("passwd", "tests")
        && has("group", "tests");
    if !harness::require("users nobody:nogroup and tests:tests", users) {
        return;
    }
    // The suite works as other users under the mount: they must reach it.
    std::fs::set_permissions(&h.root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let m = h.mount(MountOptions::default().opt("allow_other"));
    let config = harness::repo_root().join("tests/pjdfstest/pjdfstest.toml");
    let mut cmd = Command::new(&bin);
    cmd.arg("-c")
        .arg(&config)
        .arg("-p")
        .arg(m.path(""))
        .args(SUITES.iter().map(|s| format!("{s}::")))
        .current_dir(m.path(""))
        .stdin(Stdio::null());
    let out_path = h.path("pjdfstest.out");
    let out = std::fs::File::create(&out_path).unwrap();
    cmd.stdout(out.try_clone().unwrap()).stderr(out);
    let mut child = cmd.spawn().expect("run pjdfstest");
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for pjdfstest") {
            break s;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pjdfstest ran longer than {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = std::fs::read_to_string(&out_path).unwrap();
    // Kept after the test (its directory is not): the whole run, for a failure's details.
    let kept = harness::repo_root().join("target/pjdfstest-output.txt");
    let _ = std::fs::write(&kept, &output);
    let got = outcomes(&output);
    assert!(
        got.len() > 300,
        "pjdfstest reported {} cases ({status}):\n{output}",
        got.len()
    );
    let expected = expected_failures();

    // One line per suite, then the ratio.
    let mut per: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
    for (name, st) in &got {
        let suite = name.split("::").next().unwrap_or("");
        let slot = match st.as_str() {
            "ok" => 0,
            "FAILED" => 1,
            _ => 2,
        };
        per.entry(suite).or_default()[slot] += 1;
    }
    println!("| suite | passed | failed | skipped |\n|---|---|---|---|");
    for (suite, [ok, failed, skipped]) in &per {
        println!("| {suite} | {ok} | {failed} | {skipped} |");
    }
    let needs_links = |n: &str| {
        n.starts_with("link::") || expected.get(n).is_some_and(|why| why.contains("link(2)"))
    };
    let ratio = |keep: &dyn Fn(&str) -> bool| {
        let ran = got.iter().filter(|(n, s)| keep(n) && *s != "skipped");
        let (mut ok, mut all) = (0, 0);
        for (_, s) in ran {
            all += 1;
            ok += usize::from(s == "ok");
        }
        (ok, all)
    };
    let (ok, all) = ratio(&|n: &str| !n.starts_with("link::"));
    println!(
        "without the link suite: {ok} of {all} that ran pass ({:.1} %)",
        100.0 * ok as f64 / all as f64
    );
    let (ok, all) = ratio(&|n: &str| !needs_links(n));
    println!(
        "without any case that calls link(2): {ok} of {all} pass ({:.1} %)",
        100.0 * ok as f64 / all as f64
    );

    let failed: BTreeSet<&String> = got
        .iter()
        .filter(|(_, s)| *s == "FAILED")
        .map(|(n, _)| n)
        .collect();
    let flaky = |n: &str| expected.get(n).is_some_and(|why| why.starts_with("flaky:"));
    for n in expected.keys().filter(|n| flaky(n)) {
        println!(
            "flaky case {n}: {}",
            got.get(n).map_or("not run", |s| s.as_str())
        );
    }
    let unexpected: Vec<&&String> = failed
        .iter()
        .filter(|n| !expected.contains_key(n.as_str()))
        .collect();
    let now_passing: Vec<&String> = expected
        .keys()
        .filter(|n| !flaky(n) && got.get(*n).is_some_and(|s| s == "ok"))
        .collect();
    let missing: Vec<&String> = expected.keys().filter(|n| !got.contains_key(*n)).collect();
    assert!(
        unexpected.is_empty() && now_passing.is_empty() && missing.is_empty(),
        "failed but not expected: {unexpected:?}\nexpected to fail but passed (remove \
         from tests/pjdfstest/expected-failures.txt): {now_passing:?}\nlisted but not run: \
         {missing:?}\nfull output in {}",
        kept.display()
    );
}
