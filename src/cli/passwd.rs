//! cosfs password files: the key-pair format
//! (`BUCKET-APPID:SecretId:SecretKey` lines and at most one default `SecretId:SecretKey`
//! line) and the STS format (`COSAccessKeyId=`, `COSSecretKey=`, `COSAccessToken=`,
//! `COSAccessTokenExpire=`), with cosfs's permission rules. Errors name the file and the
//! line, never a secret.

use super::error::CliError;
use crate::cos::config::Credentials;
use chrono::{DateTime, NaiveDateTime, Utc};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use zeroize::Zeroizing;

/// The system-wide file, the only one whose group may read it.
pub const ETC_PASSWD_COSFS: &str = "/etc/passwd-cosfs";

/// Credentials read from a file, with the STS expiry when the file gave one.
#[derive(Debug, Clone)]
pub struct FileCredentials {
    pub credentials: Credentials,
    pub expires: Option<DateTime<Utc>>,
}

/// cosfs's mode rules: nothing for others; no execute bits; no group bits except that
/// `/etc/passwd-cosfs` may be group-readable (0640).
pub fn check_mode(path: &Path, mode: u32, system_file: bool) -> Result<(), CliError> {
    let mode = mode & 0o7777;
    let fix = if system_file { "640" } else { "600" };
    let problem = if mode & 0o007 != 0 {
        Some("is accessible by other users")
    } else if mode & 0o100 != 0 || mode & 0o010 != 0 {
        Some("has execute permission")
    } else if !system_file && mode & 0o070 != 0 {
        Some("is accessible by its group")
    } else if system_file && mode & 0o020 != 0 {
        Some("is writable by its group")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(what) => Err(CliError::credentials(format!(
            "credentials file {} {what} (mode {mode:04o}); refusing to use it. Fix with: chmod {fix} {}",
            path.display(),
            path.display()
        ))),
    }
}

/// Reads `path`, checks its mode and returns the credentials for `bucket`.
pub fn load(path: &Path, bucket: &str, now: DateTime<Utc>) -> Result<FileCredentials, CliError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        CliError::credentials(format!(
            "cannot read credentials file {}: {e}",
            path.display()
        ))
    })?;
    if !meta.is_file() {
        return Err(CliError::credentials(format!(
            "credentials file {} is not a regular file",
            path.display()
        )));
    }
    check_mode(path, meta.mode(), path == Path::new(ETC_PASSWD_COSFS))?;
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
        CliError::credentials(format!(
            "cannot read credentials file {}: {e}",
            path.display()
        ))
    })?);
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        CliError::credentials(format!(
            "credentials file {} is not UTF-8 text",
            path.display()
        ))
    })?;
    parse(text, bucket, path, now)
}

const STS_ID: &str = "COSAccessKeyId";
const STS_KEY: &str = "COSSecretKey";
const STS_TOKEN: &str = "COSAccessToken";
const STS_EXPIRE: &str = "COSAccessTokenExpire";

/// Parses a password file's contents for `bucket`. `path` only labels messages.
pub fn parse(
    text: &str,
    bucket: &str,
    path: &Path,
    now: DateTime<Utc>,
) -> Result<FileCredentials, CliError> {
    let err = |line: usize, what: &str| {
        CliError::credentials(format!(
            "credentials file {} line {line}: {what}",
            path.display()
        ))
    };
    let mut sts: [Option<&str>; 4] = [None; 4];
    let mut sts_seen = false;
    let mut pairs_seen = false;
    let mut default: Option<(&str, &str)> = None;
    let mut matched: Option<(&str, &str)> = None;
    for (i, raw) in text.split('\n').enumerate() {
        let n = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.contains([' ', '\t']) {
            return Err(err(
                n,
                "contains whitespace (spaces and tabs are not allowed anywhere)",
            ));
        }
        if line.starts_with('[') {
            return Err(err(
                n,
                "starts with '[': INI sections are not a cosfs passwd format \
                 (expected BUCKET-APPID:SecretId:SecretKey or SecretId:SecretKey)",
            ));
        }
        if let Some((k, v)) = line.split_once('=').filter(|(k, _)| k.starts_with("COS")) {
            let slot = match k {
                STS_ID => 0,
                STS_KEY => 1,
                STS_TOKEN => 2,
                STS_EXPIRE => 3,
                _ => {
                    return Err(err(
                        n,
                        &format!("unknown key '{k}' (the STS format has {STS_ID}, {STS_KEY}, {STS_TOKEN}, {STS_EXPIRE})"),
                    ))
                }
            };
            if v.is_empty() {
                return Err(err(n, &format!("{k} has an empty value")));
            }
            sts[slot] = Some(v);
            sts_seen = true;
            continue;
        }
        let (first, last) =
            match (line.find(':'), line.rfind(':')) {
                (Some(f), Some(l)) => (f, l),
                _ => return Err(err(
                    n,
                    "has no ':' (expected BUCKET-APPID:SecretId:SecretKey or SecretId:SecretKey)",
                )),
            };
        pairs_seen = true;
        if first == last {
            let (id, key) = (&line[..first], &line[first + 1..]);
            if id.is_empty() || key.is_empty() {
                return Err(err(n, "has an empty SecretId or SecretKey"));
            }
            if default.is_some() {
                return Err(err(
                    n,
                    "is a second default SecretId:SecretKey line (only one is allowed)",
                ));
            }
            default = Some((id, key));
        } else {
            let (b, id, key) = (&line[..first], &line[first + 1..last], &line[last + 1..]);
            if b.is_empty() || id.is_empty() || key.is_empty() {
                return Err(err(n, "has an empty bucket, SecretId or SecretKey"));
            }
            if b == bucket && matched.is_none() {
                matched = Some((id, key));
            }
        }
    }
    if sts_seen && pairs_seen {
        return Err(CliError::credentials(format!(
            "credentials file {} mixes the STS format (COSAccessKeyId=...) with SecretId:SecretKey lines; use one",
            path.display()
        )));
    }
    if sts_seen {
        return sts_credentials(sts, path, now);
    }
    let (id, key) = matched.or(default).ok_or_else(|| {
        CliError::credentials(format!(
            "credentials file {} has no line for bucket {bucket} and no default SecretId:SecretKey line",
            path.display()
        ))
    })?;
    Ok(FileCredentials {
        credentials: Credentials::new(id, key, None),
        expires: None,
    })
}

fn sts_credentials(
    sts: [Option<&str>; 4],
    path: &Path,
    now: DateTime<Utc>,
) -> Result<FileCredentials, CliError> {
    let [id, key, token, expire] = sts;
    let (Some(id), Some(key)) = (id, key) else {
        return Err(CliError::credentials(format!(
            "credentials file {} is in the STS format but lacks {STS_ID}= or {STS_KEY}=",
            path.display()
        )));
    };
    let expires = match expire {
        None => None,
        Some(e) => {
            let t = NaiveDateTime::parse_from_str(e.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S")
                .map_err(|_| {
                    CliError::credentials(format!(
                        "credentials file {}: {STS_EXPIRE} '{e}' is not YYYY-MM-DDTHH:MM:SS (GMT)",
                        path.display()
                    ))
                })?
                .and_utc();
            if t <= now {
                return Err(CliError::credentials(format!(
                    "the temporary credentials in {} expired at {t} (GMT); refresh the file",
                    path.display()
                )));
            }
            Some(t)
        }
    };
    Ok(FileCredentials {
        credentials: Credentials::new(id, key, token.map(str::to_string)),
        expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::error::ExitCode;
    use std::os::unix::fs::PermissionsExt;

    const B: &str = "mybkt-1250000000";

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).expect("valid time")
    }

    fn p(text: &str) -> Result<FileCredentials, CliError> {
        parse(text, B, Path::new("/x/pw"), now())
    }

    fn ids(text: &str) -> (String, String, Option<String>) {
        let c = p(text)
            .unwrap_or_else(|e| panic!("{}", e.message))
            .credentials;
        (
            c.secret_id.clone(),
            c.secret_key().to_string(),
            c.token().map(String::from),
        )
    }

    fn e(text: &str) -> String {
        let err = p(text).expect_err("should fail");
        assert_eq!(err.code, ExitCode::Credentials);
        err.message
    }

    #[test]
    fn bucket_line_beats_default() {
        let t = "# comment\nAKIDdef:defkey\nother-1:AKIDo:okey\nmybkt-1250000000:AKIDb:bkey\n";
        assert_eq!(ids(t), ("AKIDb".into(), "bkey".into(), None));
    }

    #[test]
    fn default_line_used() {
        assert_eq!(
            ids("other-1:A:B\r\nAKIDdef:defkey\r\n"),
            ("AKIDdef".into(), "defkey".into(), None)
        );
    }

    #[test]
    fn first_and_last_colon_split() {
        // A SecretId never contains ':', but the split rule is first/last.
        assert_eq!(ids("mybkt-1250000000:AK:ID:key").0, "AK:ID");
    }

    #[test]
    fn fatal_lines() {
        assert!(e("mybkt-1250000000:AK ID:key").contains("line 1: contains whitespace"));
        assert!(e("\n\tAK:key").contains("line 2"));
        assert!(e("[default]\nsecret_id=x").contains("INI"));
        assert!(e("justtext").contains("has no ':'"));
        assert!(e("A:B\nC:D").contains("second default"));
        assert!(e("mybkt-1250000000::key").contains("empty"));
        assert!(e(":key").contains("empty"));
    }

    #[test]
    fn no_match() {
        let m = e("other-1:A:B\n");
        assert!(
            m.contains("no line for bucket mybkt-1250000000") && m.contains("/x/pw"),
            "{m}"
        );
        assert!(e("# only comments\n\n").contains("no line"));
    }

    #[test]
    fn secrets_not_in_messages() {
        for t in [
            "mybkt-1250000000:AKID:SEKRIT x",
            "A:SEKRIT\nB:SEKRIT2",
            "COSSecretKey=SEKRIT",
        ] {
            assert!(!e(t).contains("SEKRIT"), "{t}");
        }
    }

    #[test]
    fn sts_format() {
        let t = "COSAccessKeyId=AKIDtmp\nCOSSecretKey=tmpkey\nCOSAccessToken=tok\nCOSAccessTokenExpire=2027-01-15T08:00:00\n";
        let fc = p(t).expect("sts parses");
        assert_eq!(fc.credentials.secret_id, "AKIDtmp");
        assert_eq!(fc.credentials.secret_key(), "tmpkey");
        assert_eq!(fc.credentials.token(), Some("tok"));
        assert_eq!(
            fc.expires.map(|t| t.to_rfc3339()),
            Some("2027-01-15T08:00:00+00:00".to_string())
        );
        assert_eq!(
            ids("COSAccessKeyId=A\nCOSSecretKey=K\n"),
            ("A".into(), "K".into(), None)
        );
    }

    #[test]
    fn sts_errors() {
        assert!(e("COSAccessKeyId=A\n").contains("lacks"));
        assert!(
            e("COSAccessKeyId=A\nCOSSecretKey=K\nCOSAccessTokenExpire=2020-01-01T00:00:00")
                .contains("expired")
        );
        assert!(e("COSAccessKeyId=A\nCOSSecretKey=K\nCOSAccessTokenExpire=soon").contains("YYYY"));
        assert!(e("COSAccessKeyId=A\nCOSSecretKey=K\nA:B").contains("mixes"));
        assert!(e("COSFoo=1").contains("unknown key 'COSFoo'"));
        assert!(e("COSSecretKey=").contains("empty value"));
    }

    #[test]
    fn mode_rules() {
        let user = Path::new("/home/u/.passwd-cosfs");
        let etc = Path::new(ETC_PASSWD_COSFS);
        for ok in [0o600, 0o400, 0o100600] {
            assert!(check_mode(user, ok, false).is_ok(), "{ok:o}");
        }
        for ok in [0o600, 0o640, 0o440, 0o400] {
            assert!(check_mode(etc, ok, true).is_ok(), "{ok:o}");
        }
        for bad in [0o644, 0o640, 0o604, 0o700, 0o610, 0o620] {
            let m = check_mode(user, bad, false).expect_err("refused").message;
            assert!(
                m.contains("chmod 600 /home/u/.passwd-cosfs"),
                "{bad:o}: {m}"
            );
        }
        for bad in [0o644, 0o660, 0o650, 0o700, 0o604] {
            let m = check_mode(etc, bad, true).expect_err("refused").message;
            assert!(m.contains("chmod 640 /etc/passwd-cosfs"), "{bad:o}: {m}");
        }
        let m = check_mode(user, 0o644, false).unwrap_err().message;
        assert!(
            m.contains("accessible by other users") && m.contains("0644"),
            "{m}"
        );
    }

    #[test]
    fn load_checks_file_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("pw");
        std::fs::write(&f, format!("{B}:AKID:key\n")).expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let m = load(&f, B, now())
            .expect_err("world-readable refused")
            .message;
        assert!(
            m.contains(&f.display().to_string()) && m.contains("chmod 600"),
            "{m}"
        );
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(
            load(&f, B, now())
                .expect("0600 accepted")
                .credentials
                .secret_id,
            "AKID"
        );
        let missing = load(&dir.path().join("nope"), B, now())
            .expect_err("missing")
            .message;
        assert!(
            missing.contains("cannot read credentials file"),
            "{missing}"
        );
        assert!(load(dir.path(), B, now())
            .unwrap_err()
            .message
            .contains("not a regular file"));
    }
}
