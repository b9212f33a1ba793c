//! Measures coslocal's read throughput: one object of `--size-mib`, read by one process
//! with `--parallel` concurrent ranged GETs of `--range-mib` each, over plain HTTP and
//! over HTTPS, signed with `cos_wire::sign`. Prints a table.
//!
//! Runs coslocal in-process (so build with `--release`); `scripts/bench-coslocal.sh`
//! wraps it. Usage:
//! `cargo run --release --example coslocal_throughput -- [--size-mib 1024] [--parallel 8] [--range-mib 8] [--rounds 3] [--sse-c]`

use bytes::Bytes;
use cos_wire::sign::{authorization, sign, KeyTime, SignInput};
use coslocal::testkit::{TestServer, SECRET_ID as ID, SECRET_KEY as SECRET};
use coslocal::TlsMode;
use futures::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

const KEY_B64: &str = "MDEyMzQ1Njc4OUFCQ0RFRjAxMjM0NTY3ODlBQkNERUY=";
const KEY_MD5: &str = "U5L61r7jcwdNvT7frmUG8g==";

struct Opts {
    size_mib: u64,
    parallel: usize,
    range_mib: u64,
    rounds: usize,
    sse_c: bool,
}

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        size_mib: 1024,
        parallel: 8,
        range_mib: 8,
        rounds: 3,
        sse_c: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "--size-mib" => o.size_mib = num("--size-mib")?,
            "--parallel" => o.parallel = num("--parallel")? as usize,
            "--range-mib" => o.range_mib = num("--range-mib")?,
            "--rounds" => o.rounds = num("--rounds")? as usize,
            "--sse-c" => o.sse_c = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.size_mib == 0 || o.parallel == 0 || o.range_mib == 0 || o.rounds == 0 {
        return Err("sizes, --parallel and --rounds must be positive".into());
    }
    Ok(o)
}

/// A signed request builder (host, range and the SSE-C triple are signed).
// The benchmark measures the server alone, so it builds raw signed requests.
#[allow(clippy::disallowed_methods)]
fn request(
    client: &reqwest::Client,
    method: reqwest::Method,
    endpoint: &str,
    key: &str,
    headers: &[(&str, String)],
) -> reqwest::RequestBuilder {
    let host = endpoint.split("://").nth(1).unwrap_or_default().to_string();
    let kt = KeyTime::around_now(3600);
    let mut signed: Vec<(&str, &str)> = vec![("host", host.as_str())];
    for (n, v) in headers {
        signed.push((n, v.as_str()));
    }
    let path = format!("/{key}");
    let parts = sign(
        SECRET,
        &SignInput {
            method: method.as_str(),
            path: &path,
            params: &[],
            headers: &signed,
            key_time: kt,
        },
    );
    let mut rb = client
        .request(method, format!("{endpoint}{path}"))
        .header("authorization", authorization(ID, kt, &parts));
    for (n, v) in headers {
        rb = rb.header(*n, v.as_str());
    }
    rb
}

fn ssec_headers(on: bool) -> Vec<(&'static str, String)> {
    if !on {
        return vec![];
    }
    vec![
        (
            "x-cos-server-side-encryption-customer-algorithm",
            "AES256".into(),
        ),
        ("x-cos-server-side-encryption-customer-key", KEY_B64.into()),
        (
            "x-cos-server-side-encryption-customer-key-md5",
            KEY_MD5.into(),
        ),
    ]
}

async fn upload(
    client: &reqwest::Client,
    endpoint: &str,
    size: u64,
    sse_c: bool,
) -> Result<f64, String> {
    const CHUNK: u64 = 4 * 1024 * 1024;
    let chunk: Bytes = (0..CHUNK)
        .map(|i| (i * 31 % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let n = size.div_ceil(CHUNK);
    let stream = futures::stream::iter((0..n).map(move |i| {
        let len = (size - i * CHUNK).min(CHUNK) as usize;
        Ok::<Bytes, std::io::Error>(chunk.slice(..len))
    }));
    let t = Instant::now();
    let r = request(
        client,
        reqwest::Method::PUT,
        endpoint,
        "bench.bin",
        &ssec_headers(sse_c),
    )
    .body(reqwest::Body::wrap_stream(stream))
    .send()
    .await
    .map_err(|e| format!("PUT: {e}"))?;
    if !r.status().is_success() {
        return Err(format!(
            "PUT: HTTP {}: {}",
            r.status(),
            r.text().await.unwrap_or_default()
        ));
    }
    Ok(size as f64 / t.elapsed().as_secs_f64())
}

async fn read_all(client: &reqwest::Client, endpoint: &str, o: &Opts) -> Result<f64, String> {
    let size = o.size_mib * 1024 * 1024;
    let range = o.range_mib * 1024 * 1024;
    let ranges = size.div_ceil(range);
    let next = Arc::new(AtomicU64::new(0));
    let total = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..o.parallel {
        let (client, endpoint, next, total) = (
            client.clone(),
            endpoint.to_string(),
            next.clone(),
            total.clone(),
        );
        let sse_c = o.sse_c;
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= ranges {
                    return Ok::<(), String>(());
                }
                let a = i * range;
                let z = (a + range).min(size) - 1;
                let mut h = ssec_headers(sse_c);
                h.push(("range", format!("bytes={a}-{z}")));
                let r = request(&client, reqwest::Method::GET, &endpoint, "bench.bin", &h)
                    .send()
                    .await
                    .map_err(|e| format!("GET: {e}"))?;
                if r.status().as_u16() != 206 {
                    return Err(format!("GET: HTTP {}", r.status()));
                }
                let mut got = 0u64;
                let mut s = r.bytes_stream();
                while let Some(b) = s.next().await {
                    got += b.map_err(|e| format!("GET body: {e}"))?.len() as u64;
                }
                if got != z - a + 1 {
                    return Err(format!("short range: {got} of {}", z - a + 1));
                }
                total.fetch_add(got, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let secs = t.elapsed().as_secs_f64();
    Ok(total.load(Ordering::Relaxed) as f64 / secs)
}

async fn run(o: &Opts, tls: bool) -> Result<(f64, Vec<f64>), String> {
    // No request log: it would measure the log's writes too.
    let server = TestServer::start_with(|c| {
        c.request_log = None;
        if !tls {
            c.tls = TlsMode::Plain;
        }
    })
    .await;
    let mut b = reqwest::Client::builder().pool_max_idle_per_host(o.parallel * 2);
    if tls {
        let pem = std::fs::read(&server.ca).map_err(|e| e.to_string())?;
        b = b
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).map_err(|e| e.to_string())?);
    }
    let client = b.build().map_err(|e| e.to_string())?;
    let endpoint = server.endpoint();
    let up = upload(&client, &endpoint, o.size_mib * 1024 * 1024, o.sse_c).await?;
    let mut reads = Vec::new();
    for _ in 0..o.rounds {
        reads.push(read_all(&client, &endpoint, o).await?);
    }
    server.handle.shutdown().await;
    Ok((up, reads))
}

fn gbs(x: f64) -> String {
    format!("{:.2}", x / 1e9)
}

#[tokio::main]
async fn main() {
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("coslocal_throughput: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "object {} MiB, {} parallel ranged GETs of {} MiB, {} rounds{}",
        o.size_mib,
        o.parallel,
        o.range_mib,
        o.rounds,
        if o.sse_c { ", SSE-C" } else { "" }
    );
    println!("| transport | PUT GB/s | GET best GB/s | GET median GB/s |");
    println!("|---|---|---|---|");
    for tls in [false, true] {
        if o.sse_c && !tls {
            continue; // SSE-C is refused over plain HTTP
        }
        match run(&o, tls).await {
            Ok((up, mut reads)) => {
                reads.sort_by(|a, b| a.total_cmp(b));
                let best = reads.last().copied().unwrap_or(0.0);
                let median = reads[reads.len() / 2];
                println!(
                    "| {} | {} | {} | {} |",
                    if tls { "https" } else { "http" },
                    gbs(up),
                    gbs(best),
                    gbs(median)
                );
            }
            Err(e) => {
                eprintln!(
                    "coslocal_throughput ({}): {e}",
                    if tls { "https" } else { "http" }
                );
                std::process::exit(1);
            }
        }
    }
}
