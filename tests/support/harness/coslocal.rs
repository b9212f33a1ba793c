//! Runs the `coslocal` binary for one test: self-signed TLS on loopback, a credentials
//! file, a JSON-lines request log and a plain-HTTP control port for fault injection,
//! counters, at-rest corruption of an object and leaving the CRC-64 header out of reads.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Knobs of one coslocal instance.
#[derive(Debug, Clone)]
pub struct CoslocalOptions {
    pub bucket: String,
    pub region: String,
    pub latency_ms: Option<u64>,
    /// Extra command-line arguments (e.g. for options added later).
    pub extra_args: Vec<String>,
}

impl Default for CoslocalOptions {
    fn default() -> Self {
        CoslocalOptions {
            bucket: ::coslocal::testkit::BUCKET.into(),
            region: ::coslocal::testkit::REGION.into(),
            latency_ms: None,
            extra_args: Vec::new(),
        }
    }
}

/// A running coslocal; killed on drop.
pub struct Coslocal {
    child: Child,
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub ca: PathBuf,
    pub secret_id: String,
    pub secret_key: String,
    pub request_log: PathBuf,
    pub control: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Coslocal {
    /// Starts coslocal under `dir` and waits for its `coslocal ready` line. The control
    /// port is picked free beforehand, so another process may grab it in between (client
    /// connections use the same ephemeral range): a bind failure is retried on a new port.
    pub fn start(dir: &Path, opts: CoslocalOptions) -> Coslocal {
        let mut last = String::new();
        for _ in 0..5 {
            match Coslocal::try_start(dir, &opts) {
                Ok(c) => return c,
                Err(e) if e.contains("Address already in use") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("coslocal could not bind a control port 5 times: {last}");
    }

    fn try_start(dir: &Path, opts: &CoslocalOptions) -> Result<Coslocal, String> {
        let data_dir = dir.join("cos-data");
        std::fs::create_dir_all(&data_dir).expect("data dir");
        let ca = dir.join("ca.pem");
        let creds = dir.join("cos-credentials");
        let secret_id = format!("AKIDtest{:08x}", rand::random::<u32>());
        let secret_key = format!(
            "sk{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        super::write_private(&creds, format!("{secret_id}:{secret_key}\n").as_bytes());
        let request_log = dir.join("requests.jsonl");
        let stderr_log = dir.join("coslocal.log");
        let control = format!("127.0.0.1:{}", free_port());

        let mut cmd = Command::new(crate::bins::coslocal());
        cmd.arg("--data-dir")
            .arg(&data_dir)
            .args(["--bucket", &opts.bucket, "--region", &opts.region])
            .args(["--listen", "127.0.0.1:0", "--tls-self-signed"])
            .arg("--ca-out")
            .arg(&ca)
            .arg("--credentials-file")
            .arg(&creds)
            .arg("--request-log")
            .arg(&request_log)
            .args(["--control-listen", &control]);
        if let Some(ms) = opts.latency_ms {
            cmd.args(["--latency-ms", &ms.to_string()]);
        }
        cmd.args(&opts.extra_args);
        let err = std::fs::File::create(&stderr_log).expect("coslocal log");
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(err);
        let mut child = cmd.spawn().expect("spawn coslocal");
        let stdout = child.stdout.take().expect("coslocal stdout");

        // Read the ready line on a thread so a silent coslocal cannot hang the test.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if line.starts_with("coslocal ready") {
                    let _ = tx.send(line);
                    break;
                }
            }
            // Keep draining so coslocal never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(&stderr_log).unwrap_or_default();
                return Err(format!(
                    "coslocal exited or did not print its ready line within 30 s; stderr:\n{log}"
                ));
            }
        };
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")[..]).map(str::to_string))
        };
        let endpoint = field("endpoint").ok_or_else(|| format!("no endpoint= in {line:?}"))?;
        let bucket = field("bucket").unwrap_or_else(|| opts.bucket.clone());
        let region = field("region").unwrap_or_else(|| opts.region.clone());
        Ok(Coslocal {
            child,
            endpoint,
            bucket,
            region,
            ca,
            secret_id,
            secret_key,
            request_log,
            control,
        })
    }

    /// Every request logged so far.
    pub fn requests(&self) -> Vec<super::LogEntry> {
        super::reqlog::read(&self.request_log)
    }

    /// Number of lines in the request log (a cursor for [`Coslocal::requests_since`]).
    pub fn request_count(&self) -> usize {
        self.requests().len()
    }

    /// Requests logged after the `from`-th.
    pub fn requests_since(&self, from: usize) -> Vec<super::LogEntry> {
        self.requests().into_iter().skip(from).collect()
    }

    /// `PUT /faults` on the control port with a JSON body.
    pub fn set_faults(&self, json: &str) {
        let (status, body) = self.control_request("PUT", "/faults", Some(json));
        assert!(
            (200..300).contains(&status),
            "PUT /faults {json} -> {status}: {body}"
        );
    }

    /// Removes every fault (PUT replaces the whole configuration).
    pub fn clear_faults(&self) {
        self.set_faults("{}");
    }

    /// `POST /corrupt`: flips the lowest bit of `key`'s stored byte at plaintext `offset`
    /// (SSE-C objects included), keeping its recorded ETag, CRC-64 and size, so a read
    /// returns damaged data under good checksums. Panics unless coslocal did it.
    pub fn corrupt(&self, key: &str, offset: u64) {
        let (status, body) = self.try_corrupt(key, offset);
        assert_eq!(status, 200, "POST /corrupt {key:?} at {offset}: {body}");
    }

    /// `POST /corrupt` without the assertion: 200, 404 (no such key) or 400 (offset at or
    /// past the size), and the JSON answer.
    pub fn try_corrupt(&self, key: &str, offset: u64) -> (u16, String) {
        let req = serde_json::json!({ "key": key, "offset": offset }).to_string();
        self.control_request("POST", "/corrupt", Some(&req))
    }

    /// `POST /omit-crc`: whether GET/HEAD Object responses leave out
    /// `x-cos-hash-crc64ecma` (stays until changed; `clear_faults` does not reset it).
    pub fn set_omit_crc(&self, omit: bool) {
        let req = serde_json::json!({ "omit": omit }).to_string();
        let (status, body) = self.control_request("POST", "/omit-crc", Some(&req));
        assert_eq!(status, 200, "POST /omit-crc {req}: {body}");
    }

    /// `GET /stats` as JSON: `requests`, `faults_injected` (lifetime),
    /// `faults_injected_config` (since the last `set_faults`), `faults_by_op` and
    /// `faults_by_kind` (lifetime, name -> count).
    pub fn stats(&self) -> serde_json::Value {
        let (status, body) = self.control_request("GET", "/stats", None);
        assert_eq!(status, 200, "GET /stats: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("stats JSON {e}: {body}"))
    }

    /// A minimal HTTP/1.1 client for the control port (std only, Connection: close).
    pub fn control_request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let mut s = TcpStream::connect(&self.control)
            .unwrap_or_else(|e| panic!("connect control port {}: {e}", self.control));
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let body = body.unwrap_or("");
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.control,
            body.len()
        );
        s.write_all(req.as_bytes()).expect("write control request");
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).expect("read control response");
        let text = String::from_utf8_lossy(&resp).to_string();
        let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let chunked = head.lines().any(|l| {
            l.to_ascii_lowercase()
                .starts_with("transfer-encoding: chunked")
        });
        let body = if chunked {
            dechunk(rest)
        } else {
            rest.to_string()
        };
        (status, body)
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

impl Drop for Coslocal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
