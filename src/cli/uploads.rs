//! Incomplete multipart uploads: s3fs's utility mode, `--incomplete-mpu-list` and
//! `--incomplete-mpu-abort[=all|AGE]`, and the mount option `incomplete_mpu_abort=AGE`
//! that aborts old ones under the mount's prefix when it mounts.
//!
//! An upload that was started and never completed or aborted (a daemon killed in the
//! middle of a large write, a machine that lost power) keeps its parts in the bucket, and
//! COS bills them as stored data, invisibly: they are not objects and no listing shows
//! them. A running mount aborts every upload it started and could not complete; these
//! are for what a crash left behind.

use super::args::{UploadsAction, UploadsArgs};
use super::error::CliError;
use super::options::Options;
use super::run::connect;
use super::settings::resolve_connection;
use crate::cos::credentials::humantime_utc;
use crate::cos::{CosError, ObjectClient, UploadInfo};
use std::time::{Duration, SystemTime};

/// Every incomplete upload under `prefix` (all pages).
pub async fn list_all_uploads<C: ObjectClient>(
    client: &C,
    prefix: &str,
) -> Result<Vec<UploadInfo>, CosError> {
    let mut out = Vec::new();
    let mut marker: Option<(String, String)> = None;
    // Bounded: a server whose marker never ends would otherwise loop for ever.
    for _ in 0..100_000 {
        let page = client
            .list_uploads(
                prefix,
                marker.as_ref().map(|(k, u)| (k.as_str(), u.as_str())),
            )
            .await?;
        out.extend(page.uploads);
        match page.next {
            Some(next) if Some(&next) != marker.as_ref() => marker = Some(next),
            _ => break,
        }
    }
    Ok(out)
}

/// The parts an upload holds: (count, bytes).
async fn parts_of<C: ObjectClient>(client: &C, u: &UploadInfo) -> Result<(u64, u64), CosError> {
    let (mut count, mut bytes) = (0u64, 0u64);
    let mut marker = None;
    for _ in 0..10_001 {
        let page = client.list_parts(&u.key, &u.upload_id, marker).await?;
        count += page.parts.len() as u64;
        bytes += page.parts.iter().map(|p| p.size).sum::<u64>();
        match page.next_part_number_marker {
            Some(m) if Some(m) != marker => marker = Some(m),
            _ => break,
        }
    }
    Ok((count, bytes))
}

fn age_of(u: &UploadInfo, now: SystemTime) -> Option<Duration> {
    u.initiated.and_then(|t| now.duration_since(t).ok())
}

/// `1d02h`, `3h05m`, `4m07s`.
fn short_age(d: Option<Duration>) -> String {
    let Some(d) = d else { return "?".into() };
    let s = d.as_secs();
    match s {
        s if s >= 86_400 => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}m{:02}s", s / 60, s % 60),
    }
}

/// Whether an upload initiated `age` ago is old enough to abort (`min` zero: all). One
/// without an initiation time is never "old enough" except for `all`.
fn old_enough(age: Option<Duration>, min: Duration) -> bool {
    min.is_zero() || age.is_some_and(|a| a >= min)
}

/// What an abort run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AbortCounts {
    pub aborted: u64,
    pub failed: u64,
    pub kept: u64,
}

/// Aborts the uploads under `prefix` initiated at least `min` ago; `report` hears of
/// each one aborted or failed.
pub async fn abort_old<C: ObjectClient>(
    client: &C,
    prefix: &str,
    min: Duration,
    mut report: impl FnMut(&UploadInfo, Result<(), &CosError>),
) -> Result<AbortCounts, CosError> {
    let now = SystemTime::now();
    let mut c = AbortCounts::default();
    for u in list_all_uploads(client, prefix).await? {
        if !old_enough(age_of(&u, now), min) {
            c.kept += 1;
            continue;
        }
        match client.abort_multipart(&u.key, &u.upload_id).await {
            Ok(()) => {
                c.aborted += 1;
                report(&u, Ok(()));
            }
            Err(e) if e.kind == crate::cos::CosErrorKind::NotFound => c.aborted += 1, // gone meanwhile
            Err(e) => {
                c.failed += 1;
                report(&u, Err(&e));
            }
        }
    }
    Ok(c)
}

/// The utility command; returns the exit code.
pub fn command(u: &UploadsArgs) -> i32 {
    match run(u) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cosmount: {}", e.message);
            e.code.code()
        }
    }
}

fn run(u: &UploadsArgs) -> Result<i32, CliError> {
    let opts = Options::parse(&u.options)?;
    let conn = resolve_connection(&u.source, &opts)?;
    for w in &conn.warnings {
        eprintln!("cosmount: warning: {w}");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::mount(format!("cannot start the I/O runtime: {e}")))?;
    let client = connect(
        &rt,
        conn.client,
        conn.role_source,
        &conn.source.bucket,
        &conn.endpoint_desc,
        &conn.credentials_origin,
    )?;
    let prefix = conn.source.prefix.clone();
    let where_ = if prefix.is_empty() {
        format!("bucket {}", conn.source.bucket)
    } else {
        format!("{}:/{prefix}", conn.source.bucket)
    };
    let failed = |e: CosError| CliError::endpoint(format!("listing uploads in {where_}: {e}"));
    match u.action {
        UploadsAction::List => {
            let uploads = rt
                .block_on(list_all_uploads(&client, &prefix))
                .map_err(failed)?;
            let now = SystemTime::now();
            println!("INITIATED\tAGE\tPARTS\tBYTES\tKEY\tUPLOAD_ID");
            let mut total = 0u64;
            for up in &uploads {
                let (parts, bytes) = rt
                    .block_on(parts_of(&client, up))
                    .map_err(|e| CliError::endpoint(format!("listing parts of {}: {e}", up.key)))?;
                total += bytes;
                println!(
                    "{}\t{}\t{parts}\t{bytes}\t{}\t{}",
                    humantime_utc(up.initiated),
                    short_age(age_of(up, now)),
                    up.key,
                    up.upload_id.0
                );
            }
            eprintln!(
                "{} incomplete multipart upload(s) in {where_}, {total} bytes in parts \
                 (billed as stored data until aborted: cosmount --incomplete-mpu-abort[=all|AGE])",
                uploads.len()
            );
            Ok(0)
        }
        UploadsAction::Abort(min) => {
            let counts = rt
                .block_on(abort_old(&client, &prefix, min, |up, r| match r {
                    Ok(()) => println!(
                        "aborted {} (upload {}, initiated {})",
                        up.key,
                        up.upload_id.0,
                        humantime_utc(up.initiated)
                    ),
                    Err(e) => eprintln!("cosmount: could not abort {}: {e}", up.key),
                }))
                .map_err(failed)?;
            eprintln!(
                "{} aborted, {} failed, {} younger than {} kept, in {where_}",
                counts.aborted,
                counts.failed,
                counts.kept,
                short_age(Some(min))
            );
            Ok(if counts.failed > 0 { 3 } else { 0 })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cos::mem::MemStore;
    use crate::cos::PutOptions;

    #[test]
    fn ages() {
        assert_eq!(short_age(Some(Duration::from_secs(93_600))), "1d02h");
        assert_eq!(short_age(Some(Duration::from_secs(3_900))), "1h05m");
        assert_eq!(short_age(None), "?");
        assert!(old_enough(None, Duration::ZERO));
        assert!(!old_enough(None, Duration::from_secs(1)));
        assert!(old_enough(
            Some(Duration::from_secs(7)),
            Duration::from_secs(5)
        ));
        assert!(!old_enough(
            Some(Duration::from_secs(3)),
            Duration::from_secs(5)
        ));
    }

    #[tokio::test]
    async fn aborts_only_under_the_prefix_and_old_enough() {
        let s = MemStore::default();
        let opts = PutOptions::default();
        s.create_multipart("keep/a", &opts).await.unwrap();
        s.create_multipart("mine/b", &opts).await.unwrap();
        s.create_multipart("mine/c", &opts).await.unwrap();
        assert_eq!(list_all_uploads(&s, "mine/").await.unwrap().len(), 2);
        // Just started: younger than an hour, kept.
        let c = abort_old(&s, "mine/", Duration::from_secs(3600), |_, _| {})
            .await
            .unwrap();
        assert_eq!(
            c,
            AbortCounts {
                aborted: 0,
                failed: 0,
                kept: 2
            }
        );
        let mut seen = Vec::new();
        let c = abort_old(&s, "mine/", Duration::ZERO, |u, r| {
            assert!(r.is_ok());
            seen.push(u.key.clone());
        })
        .await
        .unwrap();
        assert_eq!(c.aborted, 2);
        seen.sort();
        assert_eq!(seen, ["mine/b", "mine/c"]);
        assert!(list_all_uploads(&s, "mine/").await.unwrap().is_empty());
        assert_eq!(
            list_all_uploads(&s, "").await.unwrap().len(),
            1,
            "keep/a stays"
        );
    }
}
