//! Daemonizing with a readiness handshake, and systemd readiness in the foreground.
//!
//! `fork_and_wait` forks while the process is still single-threaded (before any tokio
//! runtime or FUSE thread exists). The parent blocks on a pipe and exits with the status
//! the child reports: one byte (an [`ExitCode`]) followed by an optional UTF-8 message.
//! So `cosmount` (and mount(8), which waits for it) returns 0 only once the mount is live,
//! and otherwise prints the child's reason. If the child reports nothing within the
//! timeout the parent stops it (SIGTERM) and fails; warnings may come first, each a
//! `0xFE` byte, a line and `\n`, printed by the parent. If the child dies silently the
//! parent reports how it died. The child calls `setsid`, `chdir("/")`, and points
//! stdin at /dev/null and stdout/stderr at the log file (or /dev/null). No re-exec: no
//! secret ever passes through argv or the environment of a new process image.

use super::error::{CliError, ExitCode};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::pipe::PipeFlags;
use rustix::process::{Pid, Signal, WaitOptions};
use std::fs::File;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// Starts a warning record on the readiness pipe (exit codes are small numbers).
const WARNING: u8 = 0xFE;

/// The child's end of the readiness pipe. Dropping it without reporting closes the pipe,
/// which the parent treats as "died before the mount was ready".
#[derive(Debug)]
pub struct Notifier {
    pipe: Option<File>,
}

impl Notifier {
    /// Reports success: the parent exits 0.
    pub fn ready(&mut self) {
        self.send(ExitCode::Ok, "");
    }

    /// Reports a failure: the parent prints `cosmount: <message>` and exits with its code.
    pub fn fail(&mut self, err: &CliError) {
        self.send(err.code, &err.message);
    }

    /// Passes a warning to the terminal (before the status; the parent prints it as
    /// `cosmount: warning: ...`).
    pub fn warn(&mut self, message: &str) {
        if let Some(pipe) = self.pipe.as_mut() {
            let mut buf = vec![WARNING];
            buf.extend_from_slice(message.replace('\n', " ").as_bytes());
            buf.push(b'\n');
            let _ = pipe.write_all(&buf);
        }
    }

    /// Whether a status has already been sent.
    pub fn is_done(&self) -> bool {
        self.pipe.is_none()
    }

    fn send(&mut self, code: ExitCode, message: &str) {
        if let Some(mut pipe) = self.pipe.take() {
            let mut buf = vec![code as u8];
            buf.extend_from_slice(message.as_bytes());
            // If the parent is gone there is nobody to tell; nothing else to do.
            let _ = pipe.write_all(&buf);
        }
    }
}

/// Which side of the fork we are on.
#[derive(Debug)]
pub enum Forked {
    /// The original process: exit with this code.
    Parent(ExitCode),
    /// The daemon: mount, then report through the notifier.
    Child(Notifier),
}

/// Forks; the parent waits up to `timeout` for the child's status. `log` becomes the
/// child's stdout/stderr (so panics and stray prints land in the log file).
pub fn fork_and_wait(timeout: Duration, log: Option<&File>) -> Result<Forked, CliError> {
    let (read_end, write_end) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)
        .map_err(|e| CliError::mount(format!("cannot create a pipe: {e}")))?;
    let devnull = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| CliError::mount(format!("cannot open /dev/null: {e}")))?;
    // SAFETY: the process is single-threaded here (no runtime, no FUSE threads yet), so
    // the child may run arbitrary code after fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(CliError::mount(format!(
            "cannot fork: {}",
            std::io::Error::last_os_error()
        )));
    }
    let Some(child) = Pid::from_raw(pid) else {
        drop(read_end);
        detach(&devnull, log.unwrap_or(&devnull));
        return Ok(Forked::Child(Notifier {
            pipe: Some(File::from(write_end)),
        }));
    };
    drop(write_end);
    Ok(Forked::Parent(wait_for_child(
        child,
        File::from(read_end),
        timeout,
    )))
}

/// Child side: new session, neutral cwd, stdio away from the terminal.
fn detach(devnull: &File, out: &File) {
    // Failures leave the defaults, which only affects where stray output goes.
    let _ = rustix::process::setsid();
    let _ = std::env::set_current_dir("/");
    let _ = rustix::stdio::dup2_stdin(devnull);
    let _ = rustix::stdio::dup2_stdout(out);
    let _ = rustix::stdio::dup2_stderr(out);
}

/// Parent side: read the status, print the reason on failure, return the exit code.
/// Prints (and removes) the complete warning records at the start of `buf`.
fn print_warnings(buf: &mut Vec<u8>) {
    while buf.first() == Some(&WARNING) {
        let Some(end) = buf.iter().position(|&b| b == b'\n') else {
            return;
        };
        eprintln!(
            "cosmount: warning: {}",
            String::from_utf8_lossy(&buf[1..end])
        );
        buf.drain(..=end);
    }
}

fn wait_for_child(pid: Pid, mut pipe: File, timeout: Duration) -> ExitCode {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = rustix::process::kill_process(pid, Signal::TERM);
            eprintln!(
                "cosmount: the mount was not ready after {} s; stopped the daemon (pid {}). \
                 Run with -f to watch it start.",
                timeout.as_secs(),
                pid.as_raw_pid()
            );
            return ExitCode::Mount;
        }
        let wait = Timespec {
            tv_sec: left.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        match rustix::event::poll(&mut [PollFd::new(&pipe, PollFlags::IN)], Some(&wait)) {
            Err(rustix::io::Errno::INTR) | Ok(0) => continue,
            Err(e) => {
                eprintln!("cosmount: waiting for the daemon failed: {e}");
                return ExitCode::Mount;
            }
            Ok(_) => {}
        }
        match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("cosmount: reading the daemon's status failed: {e}");
                return ExitCode::Mount;
            }
        }
        print_warnings(&mut buf);
        if buf.first() == Some(&0) {
            return ExitCode::Ok;
        }
    }
    print_warnings(&mut buf);
    match buf.split_first() {
        Some((&code, msg)) => {
            let code = ExitCode::from_code(code).unwrap_or(ExitCode::Mount);
            let msg = String::from_utf8_lossy(msg);
            if code != ExitCode::Ok {
                eprintln!("cosmount: {msg}");
            }
            code
        }
        None => {
            eprintln!(
                "cosmount: the daemon exited before the mount was ready ({})",
                child_status(pid)
            );
            ExitCode::Mount
        }
    }
}

/// How the child ended, waiting briefly for it to be reaped.
fn child_status(pid: Pid) -> String {
    for _ in 0..50 {
        match rustix::process::waitpid(Some(pid), WaitOptions::NOHANG) {
            Ok(Some((_, status))) => {
                if let Some(code) = status.exit_status() {
                    return format!("exit status {code}");
                }
                if let Some(sig) = status.terminating_signal() {
                    return format!("killed by signal {sig}");
                }
            }
            Ok(None) => {}
            Err(_) => break,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    "status unknown".to_string()
}

/// Tells systemd (`Type=notify`) that the service is ready, when `NOTIFY_SOCKET` is set.
pub fn sd_notify_ready() {
    if let Some(path) = std::env::var_os("NOTIFY_SOCKET") {
        if let Err(e) = notify(&path, b"READY=1") {
            tracing::warn!("sd_notify READY=1 failed: {e}");
        }
    }
}

/// Sends one datagram to a notify socket: a path, or `@name` for the abstract namespace.
fn notify(socket: &std::ffi::OsStr, msg: &[u8]) -> std::io::Result<()> {
    let sock = std::os::unix::net::UnixDatagram::unbound()?;
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(socket);
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(msg, &addr)?;
    } else {
        sock.send_to(msg, socket)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;

    fn pid_of(child: &std::process::Child) -> Pid {
        Pid::from_raw(child.id() as i32).expect("a child's pid is positive")
    }

    #[test]
    fn notifier_sends_once() {
        let (mut r, w) = std::os::unix::net::UnixStream::pair().expect("pair");
        let mut n = Notifier {
            pipe: Some(File::from(OwnedFd::from(w))),
        };
        n.fail(&CliError::endpoint("cannot reach x"));
        assert!(n.is_done());
        n.ready(); // ignored: already reported
        drop(n);
        let mut buf = Vec::new();
        r.read_to_end(&mut buf).expect("read");
        assert_eq!(buf[0], ExitCode::Endpoint as u8);
        assert_eq!(&buf[1..], b"cannot reach x");
    }

    #[test]
    fn notify_reaches_path_and_abstract_sockets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let server = std::os::unix::net::UnixDatagram::bind(&path).expect("bind");
        notify(path.as_os_str(), b"READY=1").expect("send");
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("cosmount-test-{}", std::process::id());
        let addr =
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        let server = std::os::unix::net::UnixDatagram::bind_addr(&addr).expect("bind abstract");
        notify(std::ffi::OsStr::new(&format!("@{name}")), b"READY=1").expect("send abstract");
        let n = server.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1");
    }

    /// A stand-in daemon: a real child process, so kill/waitpid work.
    fn fake_daemon() -> std::process::Child {
        std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep")
    }

    /// A socket pair playing the status pipe: (parent's read end, child's write end).
    fn status_pipe() -> (File, std::os::unix::net::UnixStream) {
        let (r, w) = std::os::unix::net::UnixStream::pair().expect("pair");
        (File::from(OwnedFd::from(r)), w)
    }

    #[test]
    fn parent_reads_success_and_failure() {
        let mut child = fake_daemon();
        let pid = pid_of(&child);
        let (r, mut w) = status_pipe();
        w.write_all(&[0]).expect("write");
        assert_eq!(wait_for_child(pid, r, Duration::from_secs(5)), ExitCode::Ok);
        let (r, mut w) = status_pipe();
        w.write_all(b"\x03cannot reach x").expect("write");
        drop(w);
        assert_eq!(
            wait_for_child(pid, r, Duration::from_secs(5)),
            ExitCode::Endpoint
        );
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn parent_reports_silent_exit_and_times_out() {
        let mut child = fake_daemon();
        let (r, w) = status_pipe();
        drop(w); // the "daemon" closed the pipe without a word
        let code = wait_for_child(pid_of(&child), r, Duration::from_secs(5));
        assert_eq!(code, ExitCode::Mount);
        let _ = child.kill();
        let _ = child.wait();

        let mut child = fake_daemon();
        let (r, _w) = status_pipe();
        let start = Instant::now();
        let code = wait_for_child(pid_of(&child), r, Duration::from_millis(300));
        assert_eq!(code, ExitCode::Mount);
        assert!(start.elapsed() < Duration::from_secs(5));
        // The parent stopped the silent daemon with SIGTERM.
        let status = child.wait().expect("wait");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGTERM));
    }
}
