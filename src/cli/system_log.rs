//! The system log, for a daemon started without `logfile=`: the systemd journal when its
//! socket is there (native protocol, so priority, identifier and mount point are fields),
//! else syslog on `/dev/log` (RFC 3164 lines, facility daemon), as cosfs and s3fs log.
//! Each event is one datagram saying `cosmount`, the priority of its level and the mount
//! point. Sending never blocks the file system: the socket is non-blocking and a line the
//! receiver cannot take right now is dropped (and counted).
//!
//! The socket paths can be changed with `COSMOUNT_JOURNAL_SOCKET` and
//! `COSMOUNT_SYSLOG_SOCKET` (an empty value: do not use that one), which is how the
//! tests point the daemon at a socket of their own.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;

const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
const SYSLOG_SOCKET: &str = "/dev/log";
/// The syslog identifier of every line.
const IDENT: &str = "cosmount";
/// Lines longer than this are cut: a datagram socket refuses very large messages, and
/// one log line has no business being that long.
const MAX_MESSAGE: usize = 16 * 1024;

/// Which protocol the socket speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Journal,
    Syslog,
}

/// A connected system-log socket.
#[derive(Debug)]
pub struct SystemLog {
    sock: UnixDatagram,
    path: PathBuf,
    protocol: Protocol,
    mountpoint: String,
    pid: u32,
    dropped: AtomicU64,
}

fn socket_path(var: &str, default: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(v) if v.is_empty() => None,
        Some(v) => Some(PathBuf::from(v)),
        None => Some(PathBuf::from(default)),
    }
}

impl SystemLog {
    /// Connects to the journal, else to syslog; None when neither socket answers.
    pub fn open(mountpoint: &Path) -> Option<SystemLog> {
        let candidates = [
            (
                socket_path("COSMOUNT_JOURNAL_SOCKET", JOURNAL_SOCKET),
                Protocol::Journal,
            ),
            (
                socket_path("COSMOUNT_SYSLOG_SOCKET", SYSLOG_SOCKET),
                Protocol::Syslog,
            ),
        ];
        candidates.into_iter().find_map(|(path, protocol)| {
            let path = path?;
            let sock = UnixDatagram::unbound().ok()?;
            sock.connect(&path).ok()?;
            sock.set_nonblocking(true).ok()?;
            Some(SystemLog {
                sock,
                path,
                protocol,
                mountpoint: mountpoint.display().to_string(),
                pid: std::process::id(),
                dropped: AtomicU64::new(0),
            })
        })
    }

    /// What the log goes to, for the mount's first line.
    pub fn describe(&self) -> String {
        let what = match self.protocol {
            Protocol::Journal => "the systemd journal",
            Protocol::Syslog => "syslog",
        };
        format!("{what} ({})", self.path.display())
    }

    /// Re-learns the pid after a fork (the daemon is the child of the process that
    /// opened the socket).
    pub fn set_pid(&mut self, pid: u32) {
        self.pid = pid;
    }

    /// Lines dropped because the receiver was not taking them.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn send(&self, level: Level, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let mut text = text.trim_end_matches('\n');
        if text.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text = &text[..cut];
        }
        let datagram = match self.protocol {
            Protocol::Journal => journal_datagram(level, self.pid, &self.mountpoint, text),
            Protocol::Syslog => {
                syslog_datagram(level, self.pid, &self.mountpoint, text, SystemTime::now())
            }
        };
        if self.sock.send(&datagram).is_err() {
            // The receiver restarted (a new socket at the same path) or is full: try the
            // path once more, then give the line up rather than block a FUSE request.
            let resent = self.sock.connect(&self.path).is_ok() && self.sock.send(&datagram).is_ok();
            if !resent {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// syslog severities (RFC 5424 §6.2.1) for tracing levels.
fn severity(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// One journal entry: `KEY=value` lines, a value with a newline in the binary form
/// (`KEY\n`, little-endian u64 length, value, `\n`), as systemd's native protocol says.
fn journal_datagram(level: Level, pid: u32, mountpoint: &str, message: &str) -> Vec<u8> {
    let mut d = Vec::with_capacity(message.len() + 128);
    let mut field = |key: &str, value: &str| {
        if value.contains('\n') {
            d.extend_from_slice(key.as_bytes());
            d.push(b'\n');
            d.extend_from_slice(&(value.len() as u64).to_le_bytes());
            d.extend_from_slice(value.as_bytes());
            d.push(b'\n');
        } else {
            d.extend_from_slice(key.as_bytes());
            d.push(b'=');
            d.extend_from_slice(value.as_bytes());
            d.push(b'\n');
        }
    };
    field("PRIORITY", &severity(level).to_string());
    field("SYSLOG_IDENTIFIER", IDENT);
    field("SYSLOG_PID", &pid.to_string());
    field("COSMOUNT_MOUNTPOINT", mountpoint);
    field("MESSAGE", &format!("{mountpoint}: {message}"));
    d
}

/// One RFC 3164 line, facility daemon: `<PRI>Mmm dd hh:mm:ss cosmount[PID]: MOUNT: msg`.
/// The time is UTC; syslog daemons reading /dev/log stamp lines with their own clock.
fn syslog_datagram(
    level: Level,
    pid: u32,
    mountpoint: &str,
    message: &str,
    now: SystemTime,
) -> Vec<u8> {
    const DAEMON: u8 = 3;
    let pri = DAEMON * 8 + severity(level);
    let one_line = message.replace('\n', " ");
    format!(
        "<{pri}>{} {IDENT}[{pid}]: {mountpoint}: {one_line}",
        rfc3164_time(now)
    )
    .into_bytes()
}

/// `Mmm dd hh:mm:ss` (day space-padded) of `t` in UTC.
fn rfc3164_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (_, month, day) = civil_from_days(days as i64);
    format!(
        "{} {day:>2} {:02}:{:02}:{:02}",
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Year, month (1-12) and day (1-31) of a day count since 1970-01-01 (Howard Hinnant's
/// civil-from-days algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The writer one event is formatted into; sent as one datagram when dropped.
pub struct Line<'a> {
    log: &'a SystemLog,
    level: Level,
    buf: Vec<u8>,
}

impl Write for Line<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.log.send(self.level, &self.buf);
        }
    }
}

impl<'a> MakeWriter<'a> for SystemLog {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            log: self,
            level: Level::INFO,
            buf: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Line<'a> {
        Line {
            log: self,
            level: *meta.level(),
            buf: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn syslog_line_has_priority_time_ident_and_mountpoint() {
        // 2026-12-07 23:05:09 UTC
        let t = UNIX_EPOCH + Duration::from_secs(1_796_684_709);
        let d = syslog_datagram(Level::WARN, 42, "/mnt/b", "upload failed\nagain", t);
        assert_eq!(
            String::from_utf8(d).unwrap(),
            "<28>Dec  7 23:05:09 cosmount[42]: /mnt/b: upload failed again"
        );
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn journal_entry_uses_binary_form_for_multiline_values() {
        let d = journal_datagram(Level::ERROR, 7, "/m", "a\nb");
        let text = String::from_utf8_lossy(&d);
        assert!(text.starts_with("PRIORITY=3\nSYSLOG_IDENTIFIER=cosmount\nSYSLOG_PID=7\n"));
        assert!(text.contains("COSMOUNT_MOUNTPOINT=/m\n"));
        let mut want = b"MESSAGE\n".to_vec();
        want.extend_from_slice(&7u64.to_le_bytes());
        want.extend_from_slice(b"/m: a\nb\n");
        assert!(d.ends_with(&want), "{text:?}");
    }

    #[test]
    fn events_arrive_as_datagrams() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        std::env::set_var("COSMOUNT_JOURNAL_SOCKET", "");
        std::env::set_var("COSMOUNT_SYSLOG_SOCKET", &path);
        let log = SystemLog::open(Path::new("/mnt/x")).expect("connects");
        assert!(log.describe().starts_with("syslog"));
        {
            let mut w = log.make_writer();
            w.write_all(b"hello\n").unwrap();
        }
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).unwrap();
        let got = String::from_utf8_lossy(&buf[..n]);
        assert!(got.starts_with("<30>"), "{got}");
        let want = format!("cosmount[{}]: /mnt/x: hello", std::process::id());
        assert!(got.ends_with(&want), "{got}");
        drop(server);
        std::fs::remove_file(&path).unwrap();
        // Nobody listening: the line is dropped and counted, never blocks.
        log.make_writer().write_all(b"lost\n").unwrap();
        assert_eq!(log.dropped(), 1);
    }
}
