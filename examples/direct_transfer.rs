//! The "direct" side of scripts/bench.sh: the same transfers the mount does, done by
//! `CosHttpClient` alone, so the benchmark can report mount throughput as a fraction of
//! what the client can do with the same parallelism.
//!
//! ```text
//! direct_transfer --url URL --bucket B --passwd-file F --ca-file CA \
//!     upload KEY SIZE_BYTES | download KEY | populate PREFIX COUNT
//!     [--part-size BYTES] [--parallel N]
//! ```
//! `upload` sends SIZE bytes of zeros as a multipart upload with N parts in flight;
//! `download` reads the object with N ranged GETs in flight; `populate` puts COUNT tiny
//! objects `PREFIX000000...` (for the listing benchmark). Each prints one JSON line
//! `{"op":..,"bytes":..,"seconds":..,"mib_per_s":..,"requests":..}`.
//! Credentials come from a cosfs passwd file (`BUCKET:SecretId:SecretKey`), never argv.

use bytes::Bytes;
use cosmount::cos::config::{CosClientConfig, Credentials, Endpoint};
use cosmount::cos::http::CosHttpClient;
use cosmount::cos::{ObjectClient, PutOptions};
use futures::{StreamExt, TryStreamExt};
use std::path::PathBuf;
use std::time::Instant;

struct Args {
    url: String,
    bucket: String,
    passwd: PathBuf,
    ca: Option<PathBuf>,
    part_size: u64,
    parallel: usize,
    command: Vec<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: direct_transfer --url URL --bucket B --passwd-file F [--ca-file CA] \
         [--part-size BYTES] [--parallel N] (upload KEY SIZE | download KEY | populate PREFIX COUNT)"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        url: String::new(),
        bucket: String::new(),
        passwd: PathBuf::new(),
        ca: None,
        part_size: 8 * 1024 * 1024,
        parallel: 8,
        command: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--url" => a.url = val(),
            "--bucket" => a.bucket = val(),
            "--passwd-file" => a.passwd = PathBuf::from(val()),
            "--ca-file" => a.ca = Some(PathBuf::from(val())),
            "--part-size" => a.part_size = val().parse().unwrap_or_else(|_| usage()),
            "--parallel" => a.parallel = val().parse().unwrap_or_else(|_| usage()),
            _ if arg.starts_with("--") => usage(),
            _ => a.command.push(arg),
        }
    }
    if a.url.is_empty() || a.bucket.is_empty() || a.command.is_empty() {
        usage();
    }
    a
}

/// SecretId/SecretKey from the cosfs line `BUCKET:SecretId:SecretKey` of `path`.
fn credentials(path: &PathBuf, bucket: &str) -> Result<Credentials, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for line in text.lines() {
        let fields: Vec<&str> = line.trim().split(':').collect();
        if fields.len() == 3 && fields[0] == bucket {
            return Ok(Credentials::new(fields[1], fields[2], None));
        }
    }
    Err(format!("{}: no line for bucket {bucket}", path.display()))
}

fn report(op: &str, bytes: u64, start: Instant, client: &CosHttpClient) {
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"op\":\"{op}\",\"bytes\":{bytes},\"seconds\":{secs:.3},\"mib_per_s\":{:.1},\"requests\":{}}}",
        bytes as f64 / 1048576.0 / secs.max(1e-9),
        client.request_count()
    );
}

async fn upload(c: &CosHttpClient, a: &Args, key: &str, size: u64) -> Result<(), String> {
    let start = Instant::now();
    let upload = c
        .create_multipart(key, &PutOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let parts = size.div_ceil(a.part_size).max(1);
    let zeros = Bytes::from(vec![0u8; a.part_size as usize]);
    let mut done: Vec<_> = futures::stream::iter(1..=parts)
        .map(|n| {
            let len = (size - (n - 1) * a.part_size).min(a.part_size) as usize;
            let body = zeros.slice(..len);
            let upload = &upload;
            async move { c.upload_part(key, upload, n as u32, body).await }
        })
        .buffer_unordered(a.parallel)
        .try_collect()
        .await
        .map_err(|e| e.to_string())?;
    done.sort_by_key(|p| p.number);
    c.complete_multipart(key, &upload, &done)
        .await
        .map_err(|e| e.to_string())?;
    report("upload", size, start, c);
    Ok(())
}

async fn download(c: &CosHttpClient, a: &Args, key: &str) -> Result<(), String> {
    let start = Instant::now();
    let size = c.head(key).await.map_err(|e| e.to_string())?.size;
    let chunks = size.div_ceil(a.part_size);
    let total: u64 = futures::stream::iter(0..chunks)
        .map(|i| async move {
            let range = i * a.part_size..((i + 1) * a.part_size).min(size);
            let mut body = c.get(key, Some(range)).await?.body;
            let mut n = 0u64;
            while let Some(chunk) = body.next().await {
                n += chunk?.len() as u64;
            }
            Ok::<u64, cosmount::cos::CosError>(n)
        })
        .buffer_unordered(a.parallel)
        .try_fold(0u64, |acc, n| async move { Ok(acc + n) })
        .await
        .map_err(|e| e.to_string())?;
    if total != size {
        return Err(format!("downloaded {total} of {size} bytes"));
    }
    report("download", size, start, c);
    Ok(())
}

async fn populate(c: &CosHttpClient, a: &Args, prefix: &str, count: u64) -> Result<(), String> {
    let start = Instant::now();
    futures::stream::iter(0..count)
        .map(|i| async move {
            let key = format!("{prefix}{i:06}");
            c.put(
                &key,
                Bytes::from(format!("object {i}\n")),
                &PutOptions::default(),
            )
            .await
            .map(|_| ())
        })
        .buffer_unordered(a.parallel.max(32))
        .try_collect::<Vec<()>>()
        .await
        .map_err(|e| e.to_string())?;
    report("populate", count, start, c);
    Ok(())
}

async fn run(a: Args) -> Result<(), String> {
    let creds = credentials(&a.passwd, &a.bucket)?;
    let mut cfg = CosClientConfig::new(a.bucket.clone(), Endpoint::Url(a.url.clone()), creds);
    cfg.ca_file = a.ca.clone();
    cfg.pool_max_idle_per_host = a.parallel.max(32);
    let c = CosHttpClient::new(cfg).map_err(|e| e.to_string())?;
    let cmd: Vec<&str> = a.command.iter().map(String::as_str).collect();
    match cmd.as_slice() {
        ["upload", key, size] => upload(&c, &a, key, size.parse().map_err(|_| "bad size")?).await,
        ["download", key] => download(&c, &a, key).await,
        ["populate", prefix, count] => {
            populate(&c, &a, prefix, count.parse().map_err(|_| "bad count")?).await
        }
        _ => usage(),
    }
}

fn main() {
    let a = parse_args();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("direct_transfer: tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(a)) {
        eprintln!("direct_transfer: {e}");
        std::process::exit(1);
    }
}
