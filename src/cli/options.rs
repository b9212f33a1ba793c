//! The `-o` options: cosfs/s3fs names plus cosmount's own, each parsed into a typed
//! field of [`Options`] with its unit and range checked. Generic options that mount(8)
//! and mount.fuse3 pass along are accepted and ignored; a few cosfs tuning options that
//! have no meaning here are accepted with a warning so existing fstab lines keep working;
//! anything else is an error naming the option. Options that try to carry a secret
//! (keys, SecretKey) are refused with a message saying where secrets go, and the value is
//! never echoed. Later occurrences of an option override earlier ones, as with mount(8),
//! except the encryption options: a second `use_sse=`/`load_sse_c=` that asks for
//! something else than the first is refused, naming both.

use super::error::CliError;
use cos_wire::STORAGE_CLASSES;
use std::path::PathBuf;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;
const KIB: u64 = 1024;

/// The encryption the options ask for, before any key file is read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SseRequest {
    #[default]
    None,
    /// `use_sse` / `use_sse=1`: SSE-COS.
    Cos,
    /// `use_sse=kmsid[:ID]` / `k[:ID]`, with `kms_context=`.
    Kms {
        key_id: Option<String>,
        context: Option<String>,
    },
    /// `use_sse=custom:FILE` / `c:FILE` / `load_sse_c=FILE`.
    Customer { key_file: PathBuf },
}

/// Log verbosity from `dbglevel=` (or `-d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// The `tracing` filter directive for this level.
    pub fn directive(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    /// The next level SIGUSR2 switches to: one step more verbose, from trace back to
    /// error (as cosfs cycles its dbglevel).
    pub fn cycled(self) -> LogLevel {
        match self {
            LogLevel::Error => LogLevel::Warn,
            LogLevel::Warn => LogLevel::Info,
            LogLevel::Info => LogLevel::Debug,
            LogLevel::Debug => LogLevel::Trace,
            LogLevel::Trace => LogLevel::Error,
        }
    }
}

/// Every `-o` option, typed. `None` means "not given: use the component's default".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub url: Option<String>,
    pub region: Option<String>,
    pub path_style: bool,
    pub passwd_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub sse: SseRequest,
    pub allow_other: bool,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub umask: Option<u32>,
    pub read_only: bool,
    /// Upper-case COS storage class.
    pub storage_class: Option<String>,
    /// Bytes.
    pub multipart_size: Option<u64>,
    pub parallel_count: Option<usize>,
    pub stat_cache_expire: Option<Duration>,
    /// Retries after the first attempt.
    pub retries: Option<u32>,
    pub connect_timeout: Option<Duration>,
    pub readwrite_timeout: Option<Duration>,
    pub log_level: Option<LogLevel>,
    pub logfile: Option<PathBuf>,
    /// Bytes.
    pub memory_limit: Option<u64>,
    /// Bytes.
    pub block_size: Option<u64>,
    pub staging_dir: Option<PathBuf>,
    /// Bytes.
    pub staging_min_free: Option<u64>,
    pub auto_unmount: bool,
    pub fuse_threads: Option<usize>,
    pub fsname: Option<String>,
    /// `cam_role=sts`: the passwd file is in the STS format (detected anyway; any passwd
    /// file is re-read before its STS credentials expire).
    pub sts_file: bool,
    /// `incomplete_mpu_abort=all|AGE`: at mount, abort incomplete uploads under the prefix
    /// initiated at least this long ago (zero: all).
    pub incomplete_mpu_abort: Option<std::time::Duration>,
    /// `metrics_listen=ADDR:PORT`: serve the Prometheus page there.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `ssec_check=warn|error|off`: the mount-time SSE-C key check.
    pub ssec_check: crate::cli::check::SsecCheck,
    /// `cam_role=ROLE`: credentials of the CVM's CAM role, from the metadata service.
    pub cam_role: Option<String>,
    /// `cam_role_endpoint=URL`: the metadata service's role-credentials address.
    pub cam_role_endpoint: Option<String>,
    /// Warnings about options accepted without effect, to show the user.
    pub warnings: Vec<String>,
}

/// Generic options mount(8)/mount.fuse3 pass or that belong in fstab for the benefit of
/// mount(8) and systemd; they mean nothing to cosmount.
const MOUNT8_IGNORED: &[&str] = &[
    "_netdev",
    "nofail",
    "auto",
    "noauto",
    "user",
    "nouser",
    "users",
    "owner",
    "group",
    "defaults",
    "rw",
    "dev",
    "nodev",
    "suid",
    "nosuid",
    "exec",
    "noexec",
    "atime",
    "noatime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "lazytime",
    "nolazytime",
    "diratime",
    "nodiratime",
    "sync",
    "async",
    "dirsync",
    "loud",
    "silent",
];

/// cosfs/s3fs tuning options with no effect in cosmount; accepted with a warning so that
/// an fstab line written for cosfs still mounts.
const COSFS_IGNORED: &[(&str, &str)] = &[
    (
        "use_cache",
        "cosmount caches in memory and stages random writes in staging_dir=",
    ),
    ("del_cache", "cosmount keeps no disk cache"),
    ("ensure_diskfree", "use staging_min_free= (MiB)"),
    (
        "max_stat_cache_size",
        "the stat cache is bounded by memory_limit=",
    ),
    (
        "enable_noobj_cache",
        "negative lookups are always cached briefly",
    ),
    (
        "nonempty",
        "FUSE 3 always allows mounting over a non-empty directory",
    ),
    ("noxattr", "cosmount does not expose extended attributes"),
    ("big_writes", "FUSE 3 always uses big writes"),
    ("max_write", "the write size is negotiated with the kernel"),
    ("multireq_max", "use parallel_count="),
    (
        "singlepart_copy_limit",
        "copies switch to multipart at 5 GiB",
    ),
    (
        "complement_stat",
        "directory and file modes are always reported",
    ),
    (
        "enable_content_md5",
        "uploads are verified with CRC-64 instead",
    ),
    ("mp_umask", "the mount point's mode follows umask="),
    ("curldbg", "use dbglevel=debug or COSMOUNT_LOG"),
    ("noua", "cosmount always sends its own User-Agent"),
    (
        "kernel_cache",
        "the kernel page cache is managed by cosmount",
    ),
];

/// Option names that would put a secret on the command line.
const SECRET_OPTIONS: &[&str] = &[
    "accesskeyid",
    "secretaccesskey",
    "secretid",
    "secretkey",
    "secret_id",
    "secret_key",
    "access_key",
    "secret",
    "token",
    "security_token",
    "session_token",
    "sse_c_key",
    "ssec_key",
    "sse_key",
    "sse_customer_key",
    "customer_key",
    "sse_c",
];

impl Options {
    /// Parses the options in order; later ones override earlier ones.
    pub fn parse(items: &[String]) -> Result<Options, CliError> {
        let mut o = Options::default();
        let mut sse = SseChoice::default();
        let mut kms_context: Option<String> = None;
        for item in items {
            let (name, value) = match item.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (item.as_str(), None),
            };
            let lower = name.to_ascii_lowercase();
            if MOUNT8_IGNORED.contains(&name) || name.starts_with("x-") || name == "comment" {
                continue;
            }
            if let Some((_, why)) = COSFS_IGNORED.iter().find(|(n, _)| *n == name) {
                o.warnings
                    .push(format!("ignoring cosfs option '{name}': {why}"));
                continue;
            }
            if SECRET_OPTIONS.contains(&lower.as_str()) {
                return Err(CliError::credentials(format!(
                    "option '{name}' is refused: secrets are never accepted on the command line \
                     (they would be visible in ps and /proc). Put SecretId/SecretKey in a passwd \
                     file (passwd_file=, ~/.passwd-cosfs or /etc/passwd-cosfs, mode 0600) and \
                     SSE-C keys in a key file of mode 0600 (use_sse=custom:FILE or load_sse_c=FILE)"
                )));
            }
            match name {
                "url" => o.url = Some(parse_url(req(name, value)?)?),
                "region" => o.region = Some(parse_region(req(name, value)?)?),
                "use_path_request_style" => o.path_style = flag(name, value)?,
                "passwd_file" => o.passwd_file = Some(path(name, value)?),
                "ca_file" => o.ca_file = Some(path(name, value)?),
                "use_sse" => sse.add(item, parse_use_sse(value)?)?,
                "load_sse_c" => sse.add(item, parse_load_sse_c(value)?)?,
                "kms_context" => kms_context = Some(req(name, value)?.to_string()),
                "allow_other" => o.allow_other = flag(name, value)?,
                "uid" => o.uid = Some(number(name, value, 0, u32::MAX as u64)? as u32),
                "gid" => o.gid = Some(number(name, value, 0, u32::MAX as u64)? as u32),
                "umask" => o.umask = Some(parse_umask(req(name, value)?)?),
                "ro" | "read_only" => o.read_only = flag(name, value)?,
                "storage_class" => {
                    o.storage_class = Some(parse_storage_class(req(name, value)?)?)
                }
                "multipart_size" => {
                    o.multipart_size = Some(number(name, value, 1, 5 * 1024)? * MIB)
                }
                "parallel_count" => {
                    o.parallel_count = Some(number(name, value, 1, 1000)? as usize)
                }
                "stat_cache_expire" => {
                    o.stat_cache_expire =
                        Some(Duration::from_secs(number(name, value, 0, 365 * 86400)?))
                }
                "retries" => o.retries = Some(number(name, value, 0, 100)? as u32),
                "connect_timeout" => {
                    o.connect_timeout = Some(Duration::from_secs(number(name, value, 1, 3600)?))
                }
                "readwrite_timeout" => {
                    o.readwrite_timeout =
                        Some(Duration::from_secs(number(name, value, 1, 86400)?))
                }
                "dbglevel" => o.log_level = Some(parse_level(req(name, value)?)?),
                "debug" => o.log_level = Some(LogLevel::Debug),
                "logfile" => o.logfile = Some(path(name, value)?),
                "memory_limit" => {
                    o.memory_limit = Some(number(name, value, 16, 1024 * 1024)? * MIB)
                }
                "block_size" => o.block_size = Some(parse_block_size(req(name, value)?)?),
                "staging_dir" => o.staging_dir = Some(path(name, value)?),
                "staging_min_free" => {
                    o.staging_min_free = Some(number(name, value, 0, u64::MAX / MIB)? * MIB)
                }
                "auto_unmount" => o.auto_unmount = flag(name, value)?,
                "fuse_threads" => o.fuse_threads = Some(number(name, value, 1, 256)? as usize),
                "fsname" => o.fsname = Some(req(name, value)?.to_string()),
                // The FUSE adapter always lets the kernel check permissions.
                "default_permissions" => {}
                "allow_root" => {
                    return Err(CliError::usage(
                        "allow_root is not supported; use allow_other (with umask=/uid=/gid= to restrict access)",
                    ))
                }
                "cam_role" => match req(name, value)? {
                    "sts" => o.sts_file = true,
                    role if role.contains('/') || role.contains(char::is_whitespace) => {
                        return Err(CliError::usage(format!(
                            "cam_role={role} is not a role name (cam_role=sts, or the CAM role attached to this CVM)"
                        )))
                    }
                    role => o.cam_role = Some(role.to_string()),
                },
                "incomplete_mpu_abort" => {
                    o.incomplete_mpu_abort = Some(crate::cli::args::parse_age(req(name, value)?)?)
                }
                "metrics_listen" => {
                    let v = req(name, value)?;
                    o.metrics_listen = Some(v.parse().map_err(|_| {
                        CliError::usage(format!(
                            "metrics_listen={v}: give ADDR:PORT, e.g. 127.0.0.1:9464"
                        ))
                    })?);
                }
                "ssec_check" => {
                    use crate::cli::check::SsecCheck;
                    o.ssec_check = match req(name, value)? {
                        "warn" => SsecCheck::Warn,
                        "error" => SsecCheck::Error,
                        "off" => SsecCheck::Off,
                        v => {
                            return Err(CliError::usage(format!(
                                "ssec_check={v}: give warn, error or off"
                            )))
                        }
                    }
                }
                "cam_role_endpoint" => {
                    let v = req(name, value)?;
                    if !(v.starts_with("http://") || v.starts_with("https://")) {
                        return Err(CliError::usage(format!(
                            "cam_role_endpoint={v} is not an http:// or https:// URL"
                        )));
                    }
                    o.cam_role_endpoint = Some(v.to_string());
                }
                "public_bucket" => {
                    return Err(CliError::usage(
                        "public_bucket (anonymous access) is not supported: cosmount always signs requests",
                    ))
                }
                _ => {
                    return Err(CliError::usage(format!(
                        "unknown option '{name}' (try 'cosmount --help')"
                    )))
                }
            }
        }
        o.sse = resolve_sse(sse.chosen.map(|(_, c)| c), kms_context)?;
        if o.auto_unmount && !o.allow_other {
            // fuser only supports auto_unmount on mounts other users may access.
            return Err(CliError::usage(
                "auto_unmount requires allow_other (the FUSE library cannot combine it with an owner-only mount)",
            ));
        }
        if o.url.is_some() && o.region.is_some() {
            return Err(CliError::usage(
                "url= and region= were both given: url= names the endpoint already; drop one",
            ));
        }
        Ok(o)
    }
}

/// The raw `use_sse=` / `load_sse_c=` choice.
#[derive(Debug, Clone, PartialEq, Eq)]
enum UseSse {
    Cos,
    Kms(Option<String>),
    /// SSE-C, with the key file if this option named one (`use_sse=custom` alone does not).
    Customer(Option<PathBuf>),
}

impl UseSse {
    fn describe(&self) -> String {
        match self {
            UseSse::Cos => "SSE-COS".to_string(),
            UseSse::Kms(None) => "SSE-KMS with the default key".to_string(),
            UseSse::Kms(Some(id)) => format!("SSE-KMS with key {id}"),
            UseSse::Customer(None) => "SSE-C".to_string(),
            UseSse::Customer(Some(f)) => format!("SSE-C with key file {}", f.display()),
        }
    }

    /// The one choice two options make together, or `None` when they differ. They agree
    /// when equal, or when one is `use_sse=custom` without a file and the other names
    /// the file (`use_sse=custom,load_sse_c=FILE`, the cosfs spelling).
    fn merge(&self, other: &UseSse) -> Option<UseSse> {
        match (self, other) {
            (a, b) if a == b => Some(a.clone()),
            (UseSse::Customer(None), UseSse::Customer(Some(f)))
            | (UseSse::Customer(Some(f)), UseSse::Customer(None)) => {
                Some(UseSse::Customer(Some(f.clone())))
            }
            _ => None,
        }
    }
}

/// The encryption chosen so far and the option that first chose it. Unlike other
/// options, a later SSE option does not silently override an earlier one: picking the
/// wrong one of two (SSE-C turned into SSE-COS, one key file for another) would write
/// objects with an encryption the user did not ask for.
#[derive(Debug, Default)]
struct SseChoice {
    chosen: Option<(String, UseSse)>,
}

impl SseChoice {
    fn add(&mut self, option: &str, choice: UseSse) -> Result<(), CliError> {
        let Some((first, so_far)) = &mut self.chosen else {
            self.chosen = Some((option.to_string(), choice));
            return Ok(());
        };
        match so_far.merge(&choice) {
            Some(merged) => {
                *so_far = merged;
                Ok(())
            }
            None => Err(CliError::usage(format!(
                "conflicting encryption options: '{first}' asks for {} but '{option}' for {}; \
                 give one",
                so_far.describe(),
                choice.describe()
            ))),
        }
    }
}

fn parse_use_sse(value: Option<&str>) -> Result<UseSse, CliError> {
    let v = value.unwrap_or("1");
    let (kind, arg) = match v.split_once(':') {
        Some((k, a)) => (k, Some(a)),
        None => (v, None),
    };
    let arg = arg.filter(|a| !a.is_empty());
    match kind {
        "1" | "" if arg.is_none() => Ok(UseSse::Cos),
        "kmsid" | "k" => Ok(UseSse::Kms(arg.map(str::to_string))),
        "custom" | "c" => {
            if let Some(a) = arg {
                if looks_like_key(a) {
                    return Err(key_on_command_line());
                }
            }
            Ok(UseSse::Customer(arg.map(PathBuf::from)))
        }
        _ if looks_like_key(v) => Err(key_on_command_line()),
        _ => Err(CliError::usage(
            "use_sse must be 1 (SSE-COS), kmsid[:KEYID] or k[:KEYID] (SSE-KMS), or custom:FILE or \
             c:FILE (SSE-C key file)",
        )),
    }
}

fn parse_load_sse_c(value: Option<&str>) -> Result<UseSse, CliError> {
    let file = path("load_sse_c", value)?;
    if value.is_some_and(looks_like_key) {
        return Err(key_on_command_line());
    }
    Ok(UseSse::Customer(Some(file)))
}

/// Whether a value is a 32-byte key in raw or base64 form rather than a path (an
/// existing file of that name is taken as the path it names).
fn looks_like_key(v: &str) -> bool {
    !v.contains('/')
        && crate::cos::sse::CustomerKey::parse(v.as_bytes()).is_ok()
        && !std::path::Path::new(v).exists()
}

fn key_on_command_line() -> CliError {
    CliError::credentials(
        "an SSE-C key was given on the command line, where any user can read it: put the key \
         in a file of mode 0600 and pass its path with use_sse=custom:FILE or load_sse_c=FILE",
    )
}

fn resolve_sse(
    choice: Option<UseSse>,
    kms_context: Option<String>,
) -> Result<SseRequest, CliError> {
    let sse = match choice {
        None => SseRequest::None,
        Some(UseSse::Cos) => SseRequest::Cos,
        Some(UseSse::Kms(id)) => SseRequest::Kms {
            key_id: id,
            context: None,
        },
        Some(UseSse::Customer(Some(f))) => SseRequest::Customer { key_file: f },
        Some(UseSse::Customer(None)) => {
            return Err(CliError::usage(
                "use_sse=custom needs a key file: use_sse=custom:FILE or load_sse_c=FILE \
                 (one key per line, file mode 0600); keys are never accepted on the command line",
            ))
        }
    };
    match (sse, kms_context) {
        (SseRequest::Kms { key_id, .. }, Some(c)) => Ok(SseRequest::Kms {
            key_id,
            context: Some(c),
        }),
        (_, Some(_)) => Err(CliError::usage(
            "kms_context= only applies to SSE-KMS (use_sse=kmsid[:KEYID])",
        )),
        (sse, None) => Ok(sse),
    }
}

fn req<'a>(name: &str, value: Option<&'a str>) -> Result<&'a str, CliError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(CliError::usage(format!(
            "option '{name}' needs a value ({name}=...)"
        ))),
    }
}

/// A boolean option: bare, or `=1`/`=0` (`=true`/`=false`).
fn flag(name: &str, value: Option<&str>) -> Result<bool, CliError> {
    match value {
        None | Some("1") | Some("true") | Some("yes") => Ok(true),
        Some("0") | Some("false") | Some("no") => Ok(false),
        Some(_) => Err(CliError::usage(format!(
            "option '{name}' takes no value (or =1 / =0)"
        ))),
    }
}

fn path(name: &str, value: Option<&str>) -> Result<PathBuf, CliError> {
    Ok(PathBuf::from(req(name, value)?))
}

fn number(name: &str, value: Option<&str>, min: u64, max: u64) -> Result<u64, CliError> {
    let v = req(name, value)?;
    match v.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(CliError::usage(format!(
            "option '{name}': '{v}' is not a whole number between {min} and {max}"
        ))),
    }
}

fn parse_url(v: &str) -> Result<String, CliError> {
    let rest = v
        .strip_prefix("https://")
        .or_else(|| v.strip_prefix("http://"))
        .ok_or_else(|| {
            CliError::usage(format!(
                "url '{v}' must start with https:// or http:// (e.g. url=https://cos.ap-guangzhou.myqcloud.com)"
            ))
        })?;
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') || host.contains('?') || host.contains('@') {
        return Err(CliError::usage(format!(
            "url '{v}' must be scheme://host[:port] with no path (e.g. url=https://cos.ap-guangzhou.myqcloud.com)"
        )));
    }
    Ok(v.trim_end_matches('/').to_string())
}

fn parse_region(v: &str) -> Result<String, CliError> {
    if v.bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        Ok(v.to_string())
    } else {
        Err(CliError::usage(format!(
            "region '{v}' is not a COS region name such as ap-guangzhou"
        )))
    }
}

fn parse_umask(v: &str) -> Result<u32, CliError> {
    match u32::from_str_radix(v, 8) {
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err(CliError::usage(format!(
            "umask '{v}' must be octal between 0 and 0777 (e.g. umask=022)"
        ))),
    }
}

/// Case-insensitive (cosfs documents lowercase names); sent upper-case as COS spells them.
fn parse_storage_class(v: &str) -> Result<String, CliError> {
    let up = v.to_ascii_uppercase();
    if STORAGE_CLASSES.contains(&up.as_str()) {
        Ok(up)
    } else {
        Err(CliError::usage(format!(
            "storage_class '{v}' is not one of {}",
            STORAGE_CLASSES.join(", ").to_ascii_lowercase()
        )))
    }
}

/// s3fs level names plus the usual spellings.
fn parse_level(v: &str) -> Result<LogLevel, CliError> {
    Ok(match v.to_ascii_lowercase().as_str() {
        "crit" | "critical" | "err" | "error" => LogLevel::Error,
        "warn" | "warning" => LogLevel::Warn,
        "info" | "information" => LogLevel::Info,
        "dbg" | "debug" => LogLevel::Debug,
        "trace" => LogLevel::Trace,
        _ => {
            return Err(CliError::usage(format!(
                "dbglevel '{v}' must be crit, err, warn, info, debug or trace"
            )))
        }
    })
}

/// `block_size=N` is KiB; `Nk`/`NKiB` and `Nm`/`NMiB` are explicit. 64 KiB to 64 MiB,
/// a multiple of 4 KiB.
fn parse_block_size(v: &str) -> Result<u64, CliError> {
    let lower = v.to_ascii_lowercase();
    let (digits, unit) = if let Some(d) = lower
        .strip_suffix("mib")
        .or_else(|| lower.strip_suffix('m'))
    {
        (d, MIB)
    } else if let Some(d) = lower
        .strip_suffix("kib")
        .or_else(|| lower.strip_suffix('k'))
    {
        (d, KIB)
    } else {
        (lower.as_str(), KIB)
    };
    let bytes = digits.parse::<u64>().ok().and_then(|n| n.checked_mul(unit));
    match bytes {
        Some(b) if (64 * KIB..=64 * MIB).contains(&b) && b % (4 * KIB) == 0 => Ok(b),
        _ => Err(CliError::usage(format!(
            "block_size '{v}' must be 64 KiB to 64 MiB and a multiple of 4 KiB; a plain number \
             is KiB (block_size=1024), or use a suffix (block_size=4M)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::error::ExitCode;

    fn parse(items: &[&str]) -> Result<Options, CliError> {
        Options::parse(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn ok(items: &[&str]) -> Options {
        parse(items).unwrap_or_else(|e| panic!("{items:?}: {}", e.message))
    }

    fn err(items: &[&str]) -> CliError {
        parse(items).expect_err("should be refused")
    }

    #[test]
    fn defaults_are_unset() {
        assert_eq!(ok(&[]), Options::default());
    }

    #[test]
    fn every_option() {
        let o = ok(&[
            "url=https://cos.ap-beijing.myqcloud.com/",
            "use_path_request_style",
            "passwd_file=/etc/pw",
            "ca_file=/ca.pem",
            "allow_other",
            "uid=1000",
            "gid=100",
            "umask=027",
            "ro",
            "storage_class=standard_ia",
            "multipart_size=16",
            "parallel_count=4",
            "stat_cache_expire=30",
            "retries=3",
            "connect_timeout=5",
            "readwrite_timeout=90",
            "dbglevel=info",
            "logfile=/var/log/c.log",
            "memory_limit=512",
            "block_size=2048",
            "staging_dir=/var/tmp/s",
            "staging_min_free=100",
            "auto_unmount",
            "fuse_threads=8",
            "fsname=mine",
            "cam_role=sts",
        ]);
        assert_eq!(
            o.url.as_deref(),
            Some("https://cos.ap-beijing.myqcloud.com")
        );
        assert!(o.path_style && o.allow_other && o.read_only && o.auto_unmount && o.sts_file);
        assert_eq!(o.passwd_file, Some(PathBuf::from("/etc/pw")));
        assert_eq!(o.ca_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(
            (o.uid, o.gid, o.umask),
            (Some(1000), Some(100), Some(0o027))
        );
        assert_eq!(o.storage_class.as_deref(), Some("STANDARD_IA"));
        assert_eq!(o.multipart_size, Some(16 * MIB));
        assert_eq!(o.parallel_count, Some(4));
        assert_eq!(o.stat_cache_expire, Some(Duration::from_secs(30)));
        assert_eq!(o.retries, Some(3));
        assert_eq!(o.connect_timeout, Some(Duration::from_secs(5)));
        assert_eq!(o.readwrite_timeout, Some(Duration::from_secs(90)));
        assert_eq!(o.log_level, Some(LogLevel::Info));
        assert_eq!(o.logfile, Some(PathBuf::from("/var/log/c.log")));
        assert_eq!(o.memory_limit, Some(512 * MIB));
        assert_eq!(o.block_size, Some(2 * MIB));
        assert_eq!(o.staging_dir, Some(PathBuf::from("/var/tmp/s")));
        assert_eq!(o.staging_min_free, Some(100 * MIB));
        assert_eq!(o.fuse_threads, Some(8));
        assert_eq!(o.fsname.as_deref(), Some("mine"));
        assert_eq!(o.sse, SseRequest::None);
        assert!(o.warnings.is_empty());
    }

    #[test]
    fn region_and_url_exclusive() {
        assert_eq!(
            ok(&["region=ap-shanghai"]).region.as_deref(),
            Some("ap-shanghai")
        );
        assert!(err(&["region=ap-shanghai", "url=https://h"])
            .message
            .contains("both"));
        assert!(err(&["region=AP_x"]).message.contains("region"));
    }

    #[test]
    fn urls() {
        assert_eq!(
            ok(&["url=http://127.0.0.1:9000"]).url.as_deref(),
            Some("http://127.0.0.1:9000")
        );
        for bad in [
            "url=cos.ap-beijing.myqcloud.com",
            "url=https://",
            "url=https://h/path",
            "url=",
        ] {
            assert_eq!(err(&[bad]).code, ExitCode::Usage, "{bad}");
        }
    }

    #[test]
    fn mount8_options_ignored() {
        let o = ok(&[
            "_netdev",
            "nofail",
            "auto",
            "noauto",
            "user",
            "users",
            "defaults",
            "rw",
            "dev",
            "nodev",
            "suid",
            "nosuid",
            "exec",
            "noexec",
            "x-systemd.automount",
            "x-systemd.requires=network-online.target",
            "x-foo",
            "comment=systemd.x",
            "noatime",
            "default_permissions",
        ]);
        assert_eq!(o, Options::default());
    }

    #[test]
    fn cosfs_options_warned() {
        let o = ok(&["use_cache=/tmp/c", "nonempty", "del_cache"]);
        assert_eq!(o.warnings.len(), 3);
        assert!(o.warnings[0].contains("use_cache"));
    }

    #[test]
    fn unknown_option_named() {
        let e = err(&["allow_other", "foo"]);
        assert_eq!(e.code, ExitCode::Usage);
        assert_eq!(e.message, "unknown option 'foo' (try 'cosmount --help')");
        // The value is not echoed.
        let e = err(&["foo=topsecret"]);
        assert!(e.message.contains("'foo'") && !e.message.contains("topsecret"));
    }

    #[test]
    fn secrets_refused_without_echo() {
        for o in [
            "secretAccessKey=SEKRIT",
            "sse_c_key=SEKRIT",
            "SecretKey=SEKRIT",
            "token=SEKRIT",
        ] {
            let e = err(&[o]);
            assert_eq!(e.code, ExitCode::Credentials);
            assert!(!e.message.contains("SEKRIT"), "{}", e.message);
            assert!(e.message.contains("0600"));
        }
    }

    #[test]
    fn sse_cos() {
        assert_eq!(ok(&["use_sse"]).sse, SseRequest::Cos);
        assert_eq!(ok(&["use_sse=1"]).sse, SseRequest::Cos);
    }

    #[test]
    fn sse_kms() {
        let kms = |id: Option<&str>, ctx: Option<&str>| SseRequest::Kms {
            key_id: id.map(String::from),
            context: ctx.map(String::from),
        };
        assert_eq!(ok(&["use_sse=kmsid"]).sse, kms(None, None));
        assert_eq!(
            ok(&["use_sse=kmsid:abc-123"]).sse,
            kms(Some("abc-123"), None)
        );
        assert_eq!(ok(&["use_sse=k:abc"]).sse, kms(Some("abc"), None));
        assert_eq!(
            ok(&["kms_context=eyJhIjoiYiJ9", "use_sse=k:abc"]).sse,
            kms(Some("abc"), Some("eyJhIjoiYiJ9"))
        );
        assert!(err(&["kms_context=eyJhIjoiYiJ9"])
            .message
            .contains("SSE-KMS"));
        assert!(err(&["use_sse=1", "kms_context=eyJ9"])
            .message
            .contains("SSE-KMS"));
    }

    #[test]
    fn sse_customer() {
        let c = |f: &str| SseRequest::Customer {
            key_file: PathBuf::from(f),
        };
        assert_eq!(ok(&["use_sse=custom:/k"]).sse, c("/k"));
        assert_eq!(ok(&["use_sse=c:/k"]).sse, c("/k"));
        assert_eq!(ok(&["load_sse_c=/k"]).sse, c("/k"));
        assert_eq!(ok(&["use_sse=custom", "load_sse_c=/k"]).sse, c("/k"));
        assert_eq!(ok(&["use_sse=c:/k", "load_sse_c=/k"]).sse, c("/k"));
        assert_eq!(ok(&["load_sse_c=/k", "use_sse=custom"]).sse, c("/k"));
        assert_eq!(ok(&["load_sse_c=/k", "load_sse_c=/k"]).sse, c("/k"));
        let e = err(&["use_sse=c:/k", "load_sse_c=/j"]);
        assert_eq!(e.code, ExitCode::Usage);
        assert_eq!(
            e.message,
            "conflicting encryption options: 'use_sse=c:/k' asks for SSE-C with key file /k \
             but 'load_sse_c=/j' for SSE-C with key file /j; give one"
        );
        let e = err(&["use_sse=custom"]);
        assert!(
            e.message.contains("key file") && e.message.contains("0600"),
            "{}",
            e.message
        );
        let e = err(&["use_sse=c"]);
        assert!(e.message.contains("0600"));
        assert!(err(&["use_sse=weird"]).message.contains("use_sse must be"));
    }

    #[test]
    fn conflicting_sse_options_refused() {
        for (items, first, second) in [
            (
                &["use_sse=custom:/k", "use_sse=1"][..],
                "'use_sse=custom:/k' asks for SSE-C with key file /k",
                "'use_sse=1' for SSE-COS",
            ),
            (
                &["load_sse_c=/k", "use_sse=kmsid:x"][..],
                "'load_sse_c=/k' asks for SSE-C with key file /k",
                "'use_sse=kmsid:x' for SSE-KMS with key x",
            ),
            (
                &["use_sse=1", "load_sse_c=/j"][..],
                "'use_sse=1' asks for SSE-COS",
                "'load_sse_c=/j' for SSE-C with key file /j",
            ),
            (
                &["use_sse=kmsid:a", "use_sse=k:b"][..],
                "'use_sse=kmsid:a' asks for SSE-KMS with key a",
                "'use_sse=k:b' for SSE-KMS with key b",
            ),
            (
                &["use_sse=kmsid", "use_sse=kmsid:a"][..],
                "'use_sse=kmsid' asks for SSE-KMS with the default key",
                "'use_sse=kmsid:a' for SSE-KMS with key a",
            ),
            (
                &["use_sse=custom", "use_sse"][..],
                "'use_sse=custom' asks for SSE-C",
                "'use_sse' for SSE-COS",
            ),
            // The first choice is named even when agreeing options came in between.
            (
                &["use_sse=custom", "load_sse_c=/k", "use_sse=1"][..],
                "'use_sse=custom' asks for SSE-C with key file /k",
                "'use_sse=1' for SSE-COS",
            ),
        ] {
            let e = err(items);
            assert_eq!(e.code, ExitCode::Usage, "{items:?}");
            assert!(
                e.message.starts_with("conflicting encryption options: ")
                    && e.message.contains(first)
                    && e.message.contains(second),
                "{items:?}: {}",
                e.message
            );
        }
        // Repeating the same choice is fine, however spelled.
        assert_eq!(ok(&["use_sse", "use_sse=1"]).sse, SseRequest::Cos);
        assert_eq!(
            ok(&["use_sse=kmsid:a", "use_sse=kmsid:a"]).sse,
            SseRequest::Kms {
                key_id: Some("a".into()),
                context: None
            }
        );
        assert_eq!(
            ok(&["use_sse=custom:/k", "load_sse_c=/k", "use_sse=c"]).sse,
            SseRequest::Customer {
                key_file: PathBuf::from("/k")
            }
        );
    }

    #[test]
    fn sse_key_on_command_line_refused() {
        let b64 = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // base64 of 32 bytes
        for o in [
            format!("use_sse=custom:{b64}"),
            format!("use_sse=c:{b64}"),
            format!("use_sse={b64}"),
            format!("load_sse_c={b64}"),
            // Refused as a key before a conflict message could echo it.
            format!("use_sse=1,load_sse_c={b64}"),
        ] {
            let items: Vec<&str> = o.split(',').collect();
            let e = err(&items);
            assert_eq!(e.code, ExitCode::Credentials, "{o}");
            assert!(!e.message.contains(b64));
            assert!(e.message.contains("0600"));
        }
        let e = err(&["use_sse=c:0123456789abcdef0123456789abcdef"]);
        assert_eq!(e.code, ExitCode::Credentials);
    }

    #[test]
    fn numbers_checked() {
        assert!(err(&["uid=abc"]).message.contains("uid"));
        assert!(err(&["uid"]).message.contains("needs a value"));
        assert!(err(&["multipart_size=0"])
            .message
            .contains("between 1 and 5120"));
        assert!(err(&["multipart_size=5121"])
            .message
            .contains("multipart_size"));
        assert!(err(&["parallel_count=0"])
            .message
            .contains("parallel_count"));
        assert!(err(&["connect_timeout=0"])
            .message
            .contains("connect_timeout"));
        assert!(err(&["fuse_threads=0"]).message.contains("fuse_threads"));
        assert!(err(&["memory_limit=1"]).message.contains("memory_limit"));
        assert!(err(&["retries=-1"]).message.contains("retries"));
    }

    #[test]
    fn umask_octal() {
        assert_eq!(ok(&["umask=0022"]).umask, Some(0o22));
        assert_eq!(ok(&["umask=0"]).umask, Some(0));
        assert!(err(&["umask=8"]).message.contains("octal"));
        assert!(err(&["umask=1777"]).message.contains("octal"));
    }

    #[test]
    fn block_sizes() {
        assert_eq!(ok(&["block_size=1024"]).block_size, Some(MIB));
        assert_eq!(ok(&["block_size=256k"]).block_size, Some(256 * KIB));
        assert_eq!(ok(&["block_size=4M"]).block_size, Some(4 * MIB));
        assert_eq!(ok(&["block_size=8MiB"]).block_size, Some(8 * MIB));
        for bad in [
            "block_size=1",
            "block_size=65537",
            "block_size=128M",
            "block_size=x",
        ] {
            assert!(err(&[bad]).message.contains("block_size"), "{bad}");
        }
    }

    #[test]
    fn levels_and_flags() {
        for (v, l) in [
            ("crit", LogLevel::Error),
            ("err", LogLevel::Error),
            ("warn", LogLevel::Warn),
            ("info", LogLevel::Info),
            ("dbg", LogLevel::Debug),
            ("debug", LogLevel::Debug),
        ] {
            assert_eq!(ok(&[&format!("dbglevel={v}")]).log_level, Some(l));
        }
        assert!(err(&["dbglevel=loud"]).message.contains("dbglevel"));
        assert!(!ok(&["ro", "ro=0"]).read_only);
        assert!(err(&["allow_other=maybe"])
            .message
            .contains("takes no value"));
        assert_eq!(
            ok(&["dbglevel=err", "dbglevel=info"]).log_level,
            Some(LogLevel::Info)
        );
    }

    #[test]
    fn auto_unmount_needs_allow_other() {
        assert!(err(&["auto_unmount"]).message.contains("allow_other"));
        assert!(ok(&["auto_unmount", "allow_other"]).auto_unmount);
    }

    #[test]
    fn unsupported_cosfs_modes() {
        let role = Options::parse(&["cam_role=backup-role".to_string()]).expect("role");
        assert_eq!(role.cam_role.as_deref(), Some("backup-role"));
        assert!(err(&["cam_role=a/b"]).message.contains("not a role name"));
        assert!(err(&["cam_role_endpoint=ftp://x"])
            .message
            .contains("not an http"));
        assert!(err(&["public_bucket=1"]).message.contains("not supported"));
    }

    #[test]
    fn storage_classes() {
        assert_eq!(
            ok(&["storage_class=STANDARD"]).storage_class.as_deref(),
            Some("STANDARD")
        );
        assert!(err(&["storage_class=reduced_redundancy"])
            .message
            .contains("standard_ia"));
    }
}
