//! argv → [`Command`]: the positionals (`BUCKET-APPID[:/PREFIX]`, `MOUNTPOINT`), the
//! flags `-f`, `-d`, `-s`, `-h`, `-V`, and the `-o` option lists, split into single
//! options. Hand-written because mount(8) and mount.fuse3 pass options in shapes clap
//! does not model: `-o a,b` anywhere on the line, `-oa,b` glued, repeated `-o`, and
//! options before the positionals. The meaning of each `-o` option is decided in
//! `options.rs`.

use super::error::CliError;
use std::ffi::{OsStr, OsString};

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Version,
    Mount(MountArgs),
    /// `--incomplete-mpu-list` / `--incomplete-mpu-abort[=...]` (s3fs's utility mode):
    /// no mount, only the bucket and its options.
    Uploads(UploadsArgs),
}

/// What to do with incomplete multipart uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadsAction {
    List,
    /// Abort those initiated at least this long ago (zero: all).
    Abort(std::time::Duration),
}

/// The utility mode's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadsArgs {
    pub action: UploadsAction,
    /// `BUCKET-APPID[:/PREFIX]`.
    pub source: String,
    pub options: Vec<String>,
}

/// How old an upload must be for `--incomplete-mpu-abort` without a value (s3fs's).
pub const DEFAULT_ABORT_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// `all`, or an age such as `24h`, `90m`, `7d`, `3600s` (a bare number is seconds).
pub fn parse_age(v: &str) -> Result<std::time::Duration, CliError> {
    if v == "all" {
        return Ok(std::time::Duration::ZERO);
    }
    let (num, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| CliError::usage(format!("'{v}' is not an age (all, or like 24h, 90m, 7d)")))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => {
            return Err(CliError::usage(format!(
                "'{v}': the unit of an age is s, m, h or d"
            )))
        }
    };
    Ok(std::time::Duration::from_secs(secs))
}

/// A mount request before the options are interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountArgs {
    /// `BUCKET-APPID` or `BUCKET-APPID:/PREFIX`, as given.
    pub source: String,
    pub mountpoint: OsString,
    /// `-f`: stay in the foreground.
    pub foreground: bool,
    /// `-d`: debug logging.
    pub debug: bool,
    /// `-s`: one FUSE worker thread (libfuse's single-threaded flag).
    pub single_thread: bool,
    /// Every `-o` option in order, one per element, commas already split.
    pub options: Vec<String>,
}

/// Parses the arguments after the program name.
pub fn parse<I, S>(args: I) -> Result<Command, CliError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let mut positionals: Vec<OsString> = Vec::new();
    let mut foreground = false;
    let mut debug = false;
    let mut single_thread = false;
    let mut options = Vec::new();
    let mut uploads: Option<UploadsAction> = None;
    let mut only_positionals = false;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let bytes = arg.as_encoded_bytes();
        if only_positionals || !bytes.starts_with(b"-") || bytes == b"-" {
            positionals.push(arg.clone());
            continue;
        }
        let text = arg
            .to_str()
            .ok_or_else(|| CliError::usage("an option is not valid UTF-8"))?;
        match text {
            "--" => only_positionals = true,
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "-f" | "--foreground" => foreground = true,
            "-d" | "--debug" => debug = true,
            "-s" => single_thread = true,
            "--incomplete-mpu-list" => uploads = Some(UploadsAction::List),
            "--incomplete-mpu-abort" => uploads = Some(UploadsAction::Abort(DEFAULT_ABORT_AGE)),
            _ if text.starts_with("--incomplete-mpu-abort=") => {
                let age = &text["--incomplete-mpu-abort=".len()..];
                uploads = Some(UploadsAction::Abort(parse_age(age)?));
            }
            "-o" => {
                let value = args
                    .get(i)
                    .ok_or_else(|| CliError::usage("option '-o' needs a value"))?;
                i += 1;
                let value = value
                    .to_str()
                    .ok_or_else(|| CliError::usage("the value of '-o' is not valid UTF-8"))?;
                options.extend(split_option_list(value));
            }
            _ if text.starts_with("-o") => options.extend(split_option_list(&text[2..])),
            // Clustered short flags such as `-fd`.
            _ if !text.starts_with("--") && text[1..].chars().all(|c| "fds".contains(c)) => {
                for c in text[1..].chars() {
                    match c {
                        'f' => foreground = true,
                        'd' => debug = true,
                        _ => single_thread = true,
                    }
                }
            }
            _ => {
                // Print only the flag name: `--secret=...` must not be echoed.
                let name = text.split('=').next().unwrap_or(text);
                return Err(CliError::usage(format!(
                    "unknown option '{name}' (try 'cosmount --help')"
                )));
            }
        }
    }
    if let Some(action) = uploads {
        let mut p = positionals.into_iter();
        let source = p.next().ok_or_else(|| {
            CliError::usage("missing BUCKET-APPID[:/PREFIX] (try 'cosmount --help')")
        })?;
        if p.next().is_some() {
            return Err(CliError::usage(
                "--incomplete-mpu-list/-abort take BUCKET-APPID[:/PREFIX] only, no mountpoint",
            ));
        }
        let source = source
            .into_string()
            .map_err(|_| CliError::usage("the bucket argument is not valid UTF-8"))?;
        return Ok(Command::Uploads(UploadsArgs {
            action,
            source,
            options,
        }));
    }
    let mut positionals = positionals.into_iter();
    let source = positionals.next().ok_or_else(|| {
        CliError::usage("missing BUCKET-APPID[:/PREFIX] and MOUNTPOINT (try 'cosmount --help')")
    })?;
    let mountpoint = positionals
        .next()
        .ok_or_else(|| CliError::usage("missing MOUNTPOINT (try 'cosmount --help')"))?;
    if positionals.next().is_some() {
        return Err(CliError::usage(
            "too many arguments: expected BUCKET-APPID[:/PREFIX] MOUNTPOINT (options go after -o)",
        ));
    }
    let source = source
        .into_string()
        .map_err(|_| CliError::usage("the bucket argument is not valid UTF-8"))?;
    Ok(Command::Mount(MountArgs {
        source,
        mountpoint,
        foreground,
        debug,
        single_thread,
        options,
    }))
}

/// Splits `a,b=c,d` into options. `\,` is a literal comma inside a value (the escape
/// mount-s3 uses in fstab); empty items (`a,,b`) are dropped.
pub fn split_option_list(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = list.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                cur.push(',');
                chars.next();
            }
            ',' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(args: &[&str]) -> MountArgs {
        match parse(args).expect("parses") {
            Command::Mount(m) => m,
            other => panic!("expected a mount, got {other:?}"),
        }
    }

    #[test]
    fn positionals_and_separate_o() {
        let m = mount(&[
            "bkt-125:/a/b",
            "/mnt",
            "-o",
            "allow_other,ro",
            "-o",
            "uid=5",
        ]);
        assert_eq!(m.source, "bkt-125:/a/b");
        assert_eq!(m.mountpoint, OsString::from("/mnt"));
        assert_eq!(m.options, ["allow_other", "ro", "uid=5"]);
        assert!(!m.foreground && !m.debug && !m.single_thread);
    }

    #[test]
    fn options_before_positionals_and_glued() {
        let m = mount(&[
            "-oallow_other,url=https://h",
            "-f",
            "bkt-1",
            "-d",
            "/m",
            "-ouid=1",
        ]);
        assert_eq!(m.options, ["allow_other", "url=https://h", "uid=1"]);
        assert!(m.foreground && m.debug);
        assert_eq!(m.source, "bkt-1");
    }

    #[test]
    fn mount_fuse3_shape() {
        // Exactly what /sbin/mount.fuse3 execs (verified with a fake helper).
        let m = mount(&[
            "bkt-1:/p",
            "/mnt",
            "-o",
            "rw,allow_other,passwd_file=/etc/p,dev,suid",
        ]);
        assert_eq!(
            m.options,
            ["rw", "allow_other", "passwd_file=/etc/p", "dev", "suid"]
        );
    }

    #[test]
    fn clustered_flags_and_long_forms() {
        let m = mount(&["-fds", "b-1", "/m"]);
        assert!(m.foreground && m.debug && m.single_thread);
        let m = mount(&["--foreground", "--debug", "b-1", "/m"]);
        assert!(m.foreground && m.debug);
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse(["--help"]).unwrap(), Command::Help);
        assert_eq!(parse(["b-1", "-h"]).unwrap(), Command::Help);
        assert_eq!(parse(["-V"]).unwrap(), Command::Version);
        assert_eq!(parse(["--version"]).unwrap(), Command::Version);
    }

    #[test]
    fn errors() {
        let e = parse(["b-1", "/m", "-x"]).unwrap_err();
        assert_eq!(e.message, "unknown option '-x' (try 'cosmount --help')");
        let e = parse(["--secret=abc", "b-1", "/m"]).unwrap_err();
        assert!(!e.message.contains("abc"), "{}", e.message);
        assert!(parse(["b-1"])
            .unwrap_err()
            .message
            .contains("missing MOUNTPOINT"));
        assert!(parse(Vec::<&str>::new())
            .unwrap_err()
            .message
            .contains("missing BUCKET"));
        assert!(parse(["a-1", "/m", "/n"])
            .unwrap_err()
            .message
            .contains("too many"));
        assert!(parse(["a-1", "/m", "-o"])
            .unwrap_err()
            .message
            .contains("needs a value"));
    }

    #[test]
    fn double_dash_ends_flags() {
        let m = mount(&["-o", "ro", "--", "b-1", "-weird-dir"]);
        assert_eq!(m.mountpoint, OsString::from("-weird-dir"));
    }

    #[test]
    fn split_rules() {
        assert_eq!(split_option_list("a,,b,"), ["a", "b"]);
        assert_eq!(
            split_option_list(r"passwd_file=/x\,y,ro"),
            ["passwd_file=/x,y", "ro"]
        );
        assert!(split_option_list("").is_empty());
    }

    #[test]
    fn upload_utility_mode() {
        let p = |a: &[&str]| parse(a.iter().copied());
        assert_eq!(
            p(&["--incomplete-mpu-list", "b-1", "-o", "url=x"]).unwrap(),
            Command::Uploads(UploadsArgs {
                action: UploadsAction::List,
                source: "b-1".into(),
                options: vec!["url=x".into()],
            })
        );
        let abort = |a: &[&str]| match p(a).unwrap() {
            Command::Uploads(u) => u.action,
            c => panic!("{c:?}"),
        };
        assert_eq!(
            abort(&["--incomplete-mpu-abort", "b-1"]),
            UploadsAction::Abort(DEFAULT_ABORT_AGE)
        );
        assert_eq!(
            abort(&["--incomplete-mpu-abort=all", "b-1"]),
            UploadsAction::Abort(std::time::Duration::ZERO)
        );
        assert_eq!(
            abort(&["--incomplete-mpu-abort=90m", "b-1"]),
            UploadsAction::Abort(std::time::Duration::from_secs(5400))
        );
        assert!(p(&["--incomplete-mpu-abort=3w", "b-1"]).is_err());
        assert!(p(&["--incomplete-mpu-list", "b-1", "/mnt"]).is_err());
    }
}
