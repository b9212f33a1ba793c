//! The backup and data tools people point at a mount, each run through the kernel over
//! coslocal twice: on a plain mount and on an SSE-C mount (each under its own prefix of
//! one bucket; every upload of the SSE-C one is checked for the customer key in the
//! request log). restic (init, two backups, `check --read-data`, restore, diff), borg
//! (`init -e repokey`, two creates, `check --verify-data`, extract, diff), git (init,
//! commits, gc, fsck, clone out of the mount) and sqlite3 (rollback journal and WAL).
//! Every result is compared after a remount, so it is what the bucket holds.

use crate::harness::fsops::{diff, snapshot};
use crate::harness::{self, pattern, run_ok as run, Harness, Mount};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A source tree: nested directories, small and multipart-sized files, a symlink.
fn make_source(root: &Path, seed: u64) {
    std::fs::create_dir_all(root.join("docs/deep")).unwrap();
    std::fs::write(root.join("README"), b"a tree to back up\n").unwrap();
    std::fs::write(
        root.join("docs/report.bin"),
        pattern(seed, 3 * 1024 * 1024 + 5),
    )
    .unwrap();
    std::fs::write(root.join("docs/deep/notes.txt"), pattern(seed + 1, 20_000)).unwrap();
    std::fs::write(root.join("docs/empty"), b"").unwrap();
    std::os::unix::fs::symlink("docs/report.bin", root.join("latest")).unwrap();
}

fn assert_same(a: &Path, b: &Path, what: &str) {
    let d = diff(&snapshot(a, true), &snapshot(b, true));
    assert!(d.is_empty(), "{what}:\n{}", d.join("\n"));
}

/// `root` joined with an absolute path (where restore and extract put a tree).
fn under(root: &Path, abs: &Path) -> PathBuf {
    root.join(abs.strip_prefix("/").unwrap())
}

fn tool(name: &str) -> bool {
    harness::require(name, harness::which(name).is_some())
}

#[test]
fn restic_backs_up_checks_restores_and_diffs() {
    let Some(h) = Harness::start("tools-restic") else {
        return;
    };
    if !tool("restic") {
        return;
    }
    for (prefix, sse) in h.plain_and_ssec() {
        let src = h.path(&format!("{prefix}-src"));
        make_source(&src, 11);
        let mut m = h.mount_under(prefix, &sse);
        let restic = |m: &Mount, args: &[&str]| {
            let mut c = Command::new("restic");
            c.args(args)
                .arg("--no-cache")
                .env("RESTIC_REPOSITORY", m.path("restic-repo"))
                .env("RESTIC_PASSWORD", "correct horse")
                .env("HOME", h.path("home"));
            run(&mut c)
        };
        restic(&m, &["init"]);
        restic(&m, &["backup", "--host", "t", src.to_str().unwrap()]);
        std::fs::write(src.join("docs/deep/notes.txt"), b"changed\n").unwrap();
        std::fs::write(src.join("new.txt"), b"new\n").unwrap();
        restic(&m, &["backup", "--host", "t", src.to_str().unwrap()]);
        m.remount();
        restic(&m, &["check", "--read-data"]);
        let out = h.path(&format!("{prefix}-restored"));
        restic(
            &m,
            &["restore", "latest", "--target", out.to_str().unwrap()],
        );
        assert_same(
            &under(&out, &src),
            &src,
            &format!("{prefix}: restic restore"),
        );
        let ids: Vec<String> =
            serde_json::from_str::<serde_json::Value>(&restic(&m, &["snapshots", "--json"]))
                .unwrap()
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["short_id"].as_str().unwrap().to_string())
                .collect();
        assert_eq!(ids.len(), 2, "{prefix}: two snapshots");
        let d = restic(&m, &["diff", &ids[0], &ids[1]]);
        assert!(
            d.contains("new.txt") && d.contains("notes.txt"),
            "{prefix}: restic diff:\n{d}"
        );
        m.finish_quietly(&format!("{prefix}: restic"));
        h.assert_uploads_encrypted(prefix, &sse);
    }
}

#[test]
fn borg_creates_checks_extracts_and_diffs() {
    let Some(h) = Harness::start("tools-borg") else {
        return;
    };
    if !tool("borg") {
        return;
    }
    for (prefix, sse) in h.plain_and_ssec() {
        let src = h.path(&format!("{prefix}-src"));
        make_source(&src, 21);
        let mut m = h.mount_under(prefix, &sse);
        let borg = |m: &Mount, dir: &Path, args: &[&str]| {
            let mut c = Command::new("borg");
            c.args(args)
                .current_dir(dir)
                .env("BORG_REPO", m.path("borg-repo"))
                .env("BORG_PASSPHRASE", "correct horse")
                .env("BORG_DISPLAY_PASSPHRASE", "no")
                .env("BORG_BASE_DIR", h.path(&format!("{prefix}-borg-base")));
            run(&mut c)
        };
        let here = h.path("");
        borg(&m, &here, &["init", "-e", "repokey"]);
        borg(&m, &here, &["create", "::one", src.to_str().unwrap()]);
        std::fs::write(src.join("docs/deep/notes.txt"), b"changed\n").unwrap();
        std::fs::write(src.join("new.txt"), b"new\n").unwrap();
        borg(&m, &here, &["create", "::two", src.to_str().unwrap()]);
        m.remount();
        borg(&m, &here, &["check", "--verify-data"]);
        let out = h.path(&format!("{prefix}-extracted"));
        std::fs::create_dir(&out).unwrap();
        borg(&m, &out, &["extract", "::two"]);
        assert_same(&under(&out, &src), &src, &format!("{prefix}: borg extract"));
        let d = borg(&m, &here, &["diff", "::one", "two"]);
        assert!(
            d.contains("new.txt") && d.contains("notes.txt"),
            "{prefix}: borg diff:\n{d}"
        );
        m.finish_quietly(&format!("{prefix}: borg"));
        h.assert_uploads_encrypted(prefix, &sse);
    }
}

#[test]
fn git_commits_gcs_and_clones() {
    let Some(h) = Harness::start("tools-git") else {
        return;
    };
    if !tool("git") {
        return;
    }
    for (prefix, sse) in h.plain_and_ssec() {
        let mut m = h.mount_under(prefix, &sse);
        let repo = m.path("repo");
        let git = |dir: &Path, args: &[&str]| {
            let mut c = Command::new("git");
            c.args(args)
                .current_dir(dir)
                .env("HOME", h.path("home"))
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.com")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.com");
            run(&mut c)
        };
        git(&m.path(""), &["init", "-q", "-b", "main", "repo"]);
        make_source(&repo.join("tree"), 31);
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "first"]);
        std::fs::write(repo.join("tree/README"), b"edited\n").unwrap();
        git(&repo, &["commit", "-q", "-am", "second"]);
        git(&repo, &["gc", "-q", "--aggressive", "--prune=now"]);
        m.remount();
        let repo = m.path("repo");
        git(&repo, &["fsck", "--full", "--strict"]);
        let log = git(&repo, &["log", "--format=%s"]);
        assert_eq!(log.lines().collect::<Vec<_>>(), ["second", "first"]);
        let clone = h.path(&format!("{prefix}-clone"));
        git(
            &h.path(""),
            &[
                "clone",
                "-q",
                repo.to_str().unwrap(),
                clone.to_str().unwrap(),
            ],
        );
        assert_eq!(
            std::fs::read(clone.join("tree/README")).unwrap(),
            b"edited\n"
        );
        assert_eq!(
            std::fs::read(clone.join("tree/docs/report.bin")).unwrap(),
            pattern(31, 3 * 1024 * 1024 + 5)
        );
        m.finish_quietly(&format!("{prefix}: git"));
        h.assert_uploads_encrypted(prefix, &sse);
    }
}

#[test]
fn sqlite_in_rollback_and_wal_mode() {
    let Some(h) = Harness::start("tools-sqlite") else {
        return;
    };
    if !tool("sqlite3") {
        return;
    }
    for (prefix, sse) in h.plain_and_ssec() {
        let mut m = h.mount_under(prefix, &sse);
        let sql = |db: &Path, script: &str| run(Command::new("sqlite3").arg(db).arg(script));
        for mode in ["DELETE", "WAL"] {
            let db = m.path(&format!("{mode}.db"));
            sql(&db, &format!("PRAGMA journal_mode={mode};"));
            sql(
                &db,
                "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);\
                 BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<5000)\
                 INSERT INTO t SELECT i, randomblob(200) FROM n; COMMIT;",
            );
            sql(
                &db,
                "UPDATE t SET v = zeroblob(10) WHERE id % 7 = 0; DELETE FROM t WHERE id > 4000;",
            );
            if mode == "WAL" {
                sql(&db, "PRAGMA wal_checkpoint(TRUNCATE);");
            }
        }
        m.remount();
        for mode in ["DELETE", "WAL"] {
            let db = m.path(&format!("{mode}.db"));
            let out = sql(
                &db,
                "PRAGMA integrity_check; SELECT count(*), sum(length(v)) FROM t; PRAGMA journal_mode;",
            );
            let lines: Vec<&str> = out.lines().collect();
            let short = 4000 / 7;
            let bytes = short * 10 + (4000 - short) * 200;
            assert_eq!(
                lines,
                ["ok", &format!("4000|{bytes}"), &mode.to_lowercase()],
                "{prefix} {mode}"
            );
        }
        m.finish_quietly(&format!("{prefix}: sqlite3"));
        h.assert_uploads_encrypted(prefix, &sse);
    }
}
