//! Where a daemon's log goes and what a healthy mount says there. A daemon started without
//! `logfile=` logs to syslog (here a socket of the test's own, through
//! `COSMOUNT_SYSLOG_SOCKET`); ordinary programs (isatty, poll, a refused hard link, rmdir
//! of a full directory, lookups of missing names) and a clean unmount leave no warning;
//! SIGUSR2 makes the level more verbose at run time.

use crate::harness::fsops::{assert_errno, hard_link};
use crate::harness::{Harness, MountOptions};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// One syslog datagram: its severity (0 emergency .. 7 debug) and text.
#[derive(Debug)]
struct Line {
    severity: u8,
    text: String,
}

fn parse(d: &[u8]) -> Line {
    let text = String::from_utf8_lossy(d).into_owned();
    let pri: u8 = text
        .strip_prefix('<')
        .and_then(|t| t.split_once('>'))
        .and_then(|(p, _)| p.parse().ok())
        .unwrap_or_else(|| panic!("not a syslog line: {text:?}"));
    assert_eq!(pri >> 3, 3, "facility daemon: {text}");
    Line {
        severity: pri & 7,
        text,
    }
}

/// Everything that arrives within `quiet` of the previous datagram (at most `max` total).
fn drain(sock: &UnixDatagram, quiet: Duration, max: Duration) -> Vec<Line> {
    sock.set_read_timeout(Some(quiet)).unwrap();
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while start.elapsed() < max {
        match sock.recv(&mut buf) {
            Ok(n) => out.push(parse(&buf[..n])),
            Err(_) => break,
        }
    }
    out
}

#[test]
fn daemon_logs_to_syslog_and_a_healthy_mount_is_quiet() {
    let Some(h) = Harness::start("log-syslog") else {
        return;
    };
    let sock_path = h.path("syslog.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind the test's syslog socket");
    let opts = MountOptions {
        foreground: false,
        env: vec![(
            "COSMOUNT_SYSLOG_SOCKET".into(),
            sock_path.display().to_string(),
        )],
        ..Default::default()
    };
    let mut m = h.mount(opts);
    let mp = m.mountpoint.display().to_string();

    // What ordinary programs do.
    std::fs::write(m.path("a.txt"), b"hello").unwrap();
    let f = std::fs::File::open(m.path("a.txt")).unwrap();
    // SAFETY: plain calls on a descriptor we own.
    let tty = unsafe { libc::isatty(f.as_raw_fd()) };
    assert_eq!(tty, 0, "a file is not a terminal");
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::ENOTTY),
        "isatty's errno"
    );
    let mut pfd = libc::pollfd {
        fd: f.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut pfd, 1, 1000) };
    assert_eq!(ready, 1, "a file polls readable");
    assert_eq!(std::fs::read(m.path("a.txt")).unwrap(), b"hello");
    drop(f);
    std::fs::create_dir(m.path("d")).unwrap();
    std::fs::write(m.path("d/x"), b"x").unwrap();
    assert_errno(
        "rmdir of a full dir",
        std::fs::remove_dir(m.path("d")),
        &[libc::ENOTEMPTY],
    );
    assert_errno(
        "hard link",
        hard_link(&m.path("a.txt"), &m.path("b.txt")),
        &[libc::ENOTSUP],
    );
    assert_errno(
        "missing",
        std::fs::metadata(m.path("nope")),
        &[libc::ENOENT],
    );
    assert_errno(
        "mkdir twice",
        std::fs::create_dir(m.path("d")),
        &[libc::EEXIST],
    );

    let healthy = drain(&sock, Duration::from_millis(500), Duration::from_secs(5));
    assert!(
        healthy.is_empty(),
        "a healthy mount at the default level logged: {healthy:#?}"
    );

    // SIGUSR2: one step more verbose, said at WARN (so it shows at the default level).
    m.signal(libc::SIGUSR2);
    let said = drain(&sock, Duration::from_millis(500), Duration::from_secs(10));
    assert!(
        said.iter().any(|l| l.severity == 4
            && l.text.contains("cosmount[")
            && l.text.contains(&format!(": {mp}: "))
            && l.text.contains("SIGUSR2: log level is now info")),
        "no SIGUSR2 line naming the mount point: {said:#?}"
    );

    // A clean unmount at info: the statistics line, nothing at WARN or worse.
    // (A daemon has no exit status to give: the harness waits for its pid to go.)
    m.unmount();
    let end = drain(&sock, Duration::from_millis(1000), Duration::from_secs(10));
    let bad: Vec<_> = end.iter().filter(|l| l.severity <= 4).collect();
    assert!(bad.is_empty(), "clean unmount logged warnings: {bad:#?}");
    assert!(
        end.iter()
            .any(|l| l.severity == 6 && l.text.contains("statistics")),
        "the info level set by SIGUSR2 did not take effect: {end:#?}"
    );

    // Stopped by SIGTERM (systemd's way): it flushes, unmounts its own mount and exits,
    // and says nothing at the default level.
    m.spawn().expect("mount again");
    std::fs::write(m.path("c.txt"), b"pending at SIGTERM").unwrap();
    m.signal(libc::SIGTERM);
    m.wait_exit(Duration::from_secs(30));
    let stopped = drain(&sock, Duration::from_millis(1000), Duration::from_secs(10));
    assert!(stopped.is_empty(), "SIGTERM logged: {stopped:#?}");
    m.spawn().expect("mount again");
    assert_eq!(
        std::fs::read(m.path("c.txt")).unwrap(),
        b"pending at SIGTERM"
    );
}
