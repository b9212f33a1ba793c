//! The Prometheus page (`metrics_listen=`): after a multipart write, a read of an object
//! the mount did not write, and a lookup of a missing name, the counters say so: requests
//! by operation and outcome, bytes up and down, block-cache misses and hits, the errno
//! returned, nothing left in flight.

use crate::harness::fsops::assert_errno;
use crate::harness::{pattern, Harness, MountOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

const MIB: usize = 1024 * 1024;

fn scrape(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics port");
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (head.to_string(), body.to_string())
}

/// The value of the sample `name` (with its labels) on the page.
fn sample(page: &str, name: &str) -> u64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in:\n{page}"))
}

#[test]
fn metrics_page_counts_what_happened() {
    let Some(h) = Harness::start("metrics") else {
        return;
    };
    let Some(sdk) = h.sdk() else { return };
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    sdk.put("theirs.bin", &pattern(2, 2 * MIB), None, &[])
        .expect_ok("SDK put");
    let m = h.mount(
        MountOptions::default()
            .opt("multipart_size=1")
            .opt(&format!("metrics_listen={addr}")),
    );
    let mut f = std::fs::File::create(m.path("mine.bin")).unwrap();
    f.write_all(&pattern(1, 3 * MIB + 5)).unwrap();
    drop(f);
    assert!(std::fs::read(m.path("theirs.bin")).unwrap() == pattern(2, 2 * MIB));
    assert!(std::fs::read(m.path("theirs.bin")).unwrap() == pattern(2, 2 * MIB));
    assert_errno(
        "missing",
        std::fs::metadata(m.path("nope")),
        &[libc::ENOENT],
    );

    let (head, page) = scrape(&addr, "/metrics");
    assert!(
        head.starts_with("HTTP/1.1 200") && head.contains("text/plain; version=0.0.4"),
        "{head}"
    );
    let parts = sample(
        &page,
        "cosmount_requests_total{op=\"UploadPart\",outcome=\"ok\"}",
    );
    assert!(parts >= 4, "{parts} parts");
    assert!(
        sample(
            &page,
            "cosmount_requests_total{op=\"CompleteMultipartUpload\",outcome=\"ok\"}"
        ) >= 1
    );
    assert!(sample(&page, "cosmount_uploaded_bytes_total") >= (3 * MIB + 5) as u64);
    assert!(sample(&page, "cosmount_downloaded_bytes_total") >= (2 * MIB) as u64);
    assert!(sample(&page, "cosmount_block_cache_misses_total") >= 1);
    assert!(sample(&page, "cosmount_errors_returned_total{errno=\"ENOENT\"}") >= 1);
    assert_eq!(sample(&page, "cosmount_uploads_in_flight"), 0);
    assert_eq!(sample(&page, "cosmount_upload_pending_bytes"), 0);
    assert!(page.contains("# TYPE cosmount_retries_total counter"));
    let (head, _) = scrape(&addr, "/other");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}
