//! Temporary credentials over a long mount: coslocal's accepted credentials are replaced
//! at run time (its control endpoint), as STS and CAM roles rotate them, and the mount
//! keeps working. With an STS passwd file: refreshed before the expiry (re-read 10
//! minutes before it), after COS rejects the old ones, and on SIGHUP; expired ones are
//! never sent (EIO) until the file holds new ones. With `cam_role=`: from the fake CVM
//! metadata endpoint coslocal serves, refreshed before each expiry. Every rotation is
//! proven by coslocal's count of requests per SecretId.

use crate::harness::fsops::errno_of;
use crate::harness::{self, Coslocal, Harness, Mount, MountOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Refresh is due 600 s before the expiry: an expiry this far ahead is due in 4 s.
const DUE_SOON: u64 = 600 + 4;

/// One temporary credential as coslocal's `PUT /credentials` takes it.
fn cred(id: &str, expires: u64, role: Option<&str>) -> serde_json::Value {
    serde_json::json!({
        "secret_id": id,
        "secret_key": format!("key-of-{id}"),
        "token": format!("token-of-{id}"),
        "expires": expires,
        "role": role,
    })
}

/// Makes coslocal accept exactly `creds` (plus the harness's own key pair, which the
/// test's other clients use).
fn accept(h: &Harness, creds: &[serde_json::Value]) {
    let mut all = vec![serde_json::json!({
        "secret_id": h.cos.secret_id,
        "secret_key": h.cos.secret_key,
    })];
    all.extend(creds.iter().cloned());
    let body = serde_json::json!({ "credentials": all }).to_string();
    let (status, text) = h.cos.control_request("PUT", "/credentials", Some(&body));
    assert_eq!(status, 200, "PUT /credentials: {text}");
}

fn used(cos: &Coslocal, id: &str) -> u64 {
    cos.stats()["requests_by_secret_id"][id]
        .as_u64()
        .unwrap_or(0)
}

/// Writes the STS passwd file (mode 0600) for credentials `id` expiring at `expires`.
fn write_sts(path: &Path, id: &str, expires: u64) {
    let t = chrono::DateTime::<chrono::Utc>::from_timestamp(expires as i64, 0).unwrap();
    let text = format!(
        "COSAccessKeyId={id}\nCOSSecretKey=key-of-{id}\nCOSAccessToken=token-of-{id}\nCOSAccessTokenExpire={}\n",
        t.format("%Y-%m-%dT%H:%M:%S")
    );
    // Replaced whole (rename), as an STS agent would, so a reader never sees half a file.
    let tmp = path.with_extension("new");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .unwrap();
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
    drop(f);
    std::fs::rename(&tmp, path).unwrap();
}

/// Keeps the mount busy (a listing and a stat that miss the caches) until `id` has signed
/// a request, or fails after `limit`.
fn until_used(h: &Harness, m: &Mount, id: &str, limit: Duration) {
    let ok = harness::wait_until(limit, || {
        let _ = std::fs::read_dir(m.path("")).map(|d| d.count());
        let _ = std::fs::metadata(m.path(&format!("probe-{}", now())));
        used(&h.cos, id) > 0
    });
    assert!(
        ok,
        "no request signed with {id} within {limit:?}; log:\n{}",
        m.log_text()
    );
}

/// A write and read-back through the mount, named after the step.
fn round_trip(m: &Mount, step: &str) {
    let name = format!("{step}.txt");
    std::fs::write(m.path(&name), step.as_bytes())
        .unwrap_or_else(|e| panic!("{step}: write: {e}; log:\n{}", m.log_text()));
    assert_eq!(
        std::fs::read(m.path(&name)).unwrap(),
        step.as_bytes(),
        "{step}"
    );
}

#[test]
fn sts_passwd_file_rotates_under_a_live_mount() {
    let Some(h) = Harness::start("cred-sts") else {
        return;
    };
    let sts = h.path("passwd-sts");
    let t0 = now();
    accept(&h, &[cred("AKIDstsA", t0 + DUE_SOON, None)]);
    write_sts(&sts, "AKIDstsA", t0 + DUE_SOON);
    let m = h.mount(
        MountOptions::default()
            .opt(&format!("passwd_file={}", sts.display()))
            .opt("cam_role=sts")
            .opt("stat_cache_expire=1"),
    );
    round_trip(&m, "a");
    assert!(used(&h.cos, "AKIDstsA") > 0);

    // Rotations 1 and 2, as STS does them: the new credentials are in the file and
    // accepted before the old ones stop; the mount re-reads the file when the old ones
    // are due (10 minutes before their expiry) and the old ones can then go.
    for (old, new) in [("AKIDstsA", "AKIDstsB"), ("AKIDstsB", "AKIDstsC")] {
        let exp = now() + DUE_SOON;
        write_sts(&sts, new, exp);
        accept(&h, &[cred(old, now() + 3600, None), cred(new, exp, None)]);
        until_used(&h, &m, new, Duration::from_secs(40));
        accept(&h, &[cred(new, exp, None)]);
        round_trip(&m, new);
    }

    // Rejected without warning (the old ones revoked at once, nothing due yet): the
    // first rejection makes the mount re-read the file and send again.
    write_sts(&sts, "AKIDstsD", now() + 3600);
    accept(&h, &[cred("AKIDstsD", now() + 3600, None)]);
    round_trip(&m, "after-revocation");
    assert!(used(&h.cos, "AKIDstsD") > 0);

    // SIGHUP re-reads the file.
    write_sts(&sts, "AKIDstsE", now() + 3600);
    accept(
        &h,
        &[
            cred("AKIDstsD", now() + 3600, None),
            cred("AKIDstsE", now() + 3600, None),
        ],
    );
    m.signal(libc::SIGHUP);
    until_used(&h, &m, "AKIDstsE", Duration::from_secs(20));
    round_trip(&m, "after-sighup");

    // Credentials that really expire with nothing newer in the file: once expired they
    // are not sent, and programs get EIO; new ones in the file (and SIGHUP) bring the
    // mount back.
    let soon = now() + 3;
    write_sts(&sts, "AKIDstsF", soon);
    accept(&h, &[cred("AKIDstsF", soon, None)]);
    m.signal(libc::SIGHUP);
    until_used(&h, &m, "AKIDstsF", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(5));
    let before = used(&h.cos, "AKIDstsF");
    let e = errno_of(
        "write with expired credentials",
        std::fs::write(m.path("late.txt"), b"x"),
    );
    assert_eq!(e, libc::EIO, "expired credentials must fail with EIO");
    assert_eq!(
        used(&h.cos, "AKIDstsF"),
        before,
        "a request was signed with credentials known to be expired"
    );
    write_sts(&sts, "AKIDstsG", now() + 3600);
    accept(&h, &[cred("AKIDstsG", now() + 3600, None)]);
    m.signal(libc::SIGHUP);
    until_used(&h, &m, "AKIDstsG", Duration::from_secs(20));
    round_trip(&m, "after-expiry");
    assert_eq!(std::fs::read(m.path("a.txt")).unwrap(), b"a");
}

#[test]
fn cvm_role_credentials_rotate_from_the_metadata_service() {
    let Some(h) = Harness::start("cred-role") else {
        return;
    };
    let role = "backup-role";
    accept(&h, &[cred("AKIDrole1", now() + DUE_SOON, Some(role))]);
    let endpoint = format!(
        "http://{}/latest/meta-data/cam/security-credentials",
        h.cos.control
    );
    let m = h.mount(
        MountOptions::default()
            .opt(&format!("cam_role={role}"))
            .opt(&format!("cam_role_endpoint={endpoint}"))
            .opt("stat_cache_expire=1"),
    );
    round_trip(&m, "one");
    assert!(used(&h.cos, "AKIDrole1") > 0);
    for (old, new) in [("AKIDrole1", "AKIDrole2"), ("AKIDrole2", "AKIDrole3")] {
        let exp = now() + DUE_SOON;
        // The last credential listed for the role is the one the metadata service gives.
        accept(
            &h,
            &[
                cred(old, now() + 3600, Some(role)),
                cred(new, exp, Some(role)),
            ],
        );
        until_used(&h, &m, new, Duration::from_secs(40));
        accept(&h, &[cred(new, exp, Some(role))]);
        round_trip(&m, new);
    }
    let asked = h.cos.stats()["metadata_requests"].as_u64().unwrap_or(0);
    assert!(asked >= 3, "the metadata service was asked {asked} times");
    assert_eq!(std::fs::read(m.path("one.txt")).unwrap(), b"one");
}

#[test]
fn unknown_cvm_role_fails_the_mount_with_a_message() {
    let Some(h) = Harness::start("cred-role-missing") else {
        return;
    };
    let endpoint = format!(
        "http://{}/latest/meta-data/cam/security-credentials",
        h.cos.control
    );
    let mut opts = MountOptions::default()
        .opt("cam_role=nosuchrole")
        .opt(&format!("cam_role_endpoint={endpoint}"));
    opts.foreground = false;
    let Err(out) = h.try_mount(opts) else {
        panic!("mounted without credentials");
    };
    assert!(
        out.contains("CVM role nosuchrole") && out.contains("HTTP 404"),
        "{out}"
    );
}
