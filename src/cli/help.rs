//! The `--help` and `--version` texts.

use crate::cos::config::{CosClientConfig, Credentials, Endpoint};
use crate::fs::FsConfig;

/// FUSE worker threads when `fuse_threads=` is not given: callbacks block on network
/// I/O, so more threads than cores keep independent operations from queueing.
pub const DEFAULT_FUSE_THREADS: usize = 16;

/// `cosmount --version`.
pub fn version() -> String {
    format!("cosmount {}", env!("CARGO_PKG_VERSION"))
}

/// `cosmount --help`, with the defaults read from the component configurations so the
/// text cannot drift from the code.
pub fn help() -> String {
    let fs = FsConfig::default();
    let client = CosClientConfig::new(
        "b-1",
        Endpoint::Region(String::new()),
        Credentials::new("", "", None),
    );
    HELP.replace("{part_mib}", &(fs.part_size >> 20).to_string())
        .replace("{parallel}", &fs.parallel_count.to_string())
        .replace("{stat_ttl}", &fs.stat_ttl.as_secs().to_string())
        .replace(
            "{retries}",
            &client.retry.max_attempts.saturating_sub(1).to_string(),
        )
        .replace("{connect}", &client.connect_timeout.as_secs().to_string())
        .replace("{read}", &client.read_timeout.as_secs().to_string())
        .replace("{mem_mib}", &(fs.memory_budget >> 20).to_string())
        .replace("{block_kib}", &(fs.block_size >> 10).to_string())
        .replace("{staging}", "a fresh private directory in $TMPDIR")
        .replace("{min_free_mib}", &(fs.staging_min_free >> 20).to_string())
        .replace("{threads}", &DEFAULT_FUSE_THREADS.to_string())
        .replace("{umask:03o}", &format!("{:03o}", fs.umask))
}

const HELP: &str = "\
cosmount: mount a Tencent Cloud COS bucket as a FUSE filesystem (cosfs-compatible command line)

USAGE:
    cosmount BUCKET-APPID[:/PREFIX] MOUNTPOINT [-f] [-d] [-s] [-o OPT[,OPT...]]...
    mount -t fuse.cosmount BUCKET-APPID[:/PREFIX] MOUNTPOINT -o OPT,...
    fstab: BUCKET-APPID /mnt/cos fuse.cosmount _netdev,allow_other,url=https://cos.ap-guangzhou.myqcloud.com 0 0

    cosmount --incomplete-mpu-list BUCKET-APPID[:/PREFIX] -o OPT,...
    cosmount --incomplete-mpu-abort[=all|AGE] BUCKET-APPID[:/PREFIX] -o OPT,...
        list, or abort, the multipart uploads a crash left incomplete (billed as
        stored data until aborted); AGE like 24h (the default), 90m, 7d

    Without -f, cosmount returns once the mount is live (exit 0) or prints why it
    failed; the filesystem keeps running in the background. Unmount with
    'umount MOUNTPOINT' or 'fusermount3 -u MOUNTPOINT' (SIGTERM also unmounts cleanly).

FLAGS:
    -f, --foreground   stay in the foreground (logs to stderr; systemd Type=notify aware)
    -d, --debug        debug logging (like cosfs, still daemonizes: add -f or logfile=)
    -s                 one FUSE worker thread
    -o OPT[,OPT...]    options below; may be repeated, glued (-oOPT) or placed anywhere
    -h, --help         this text
    -V, --version      version

ENDPOINT:
    url=URL                 https://cos.<region>.myqcloud.com, a custom host, or http://
                            (plain http is refused with SSE-C). Requests go to
                            <bucket>.<host> unless the host is an IP/localhost.
    region=REGION           without url=: https://<bucket>.cos.<region>.myqcloud.com
                            (default region when neither is given: ap-guangzhou)
    use_path_request_style  put the bucket in the path (buckets created before 2024)
    ca_file=FILE            extra PEM CA certificates to trust

CREDENTIALS (first found wins; secrets are never accepted as options):
    passwd_file=FILE        cosfs format: BUCKET-APPID:SecretId:SecretKey lines and at most
                            one SecretId:SecretKey default line, or the STS format
                            COSAccessKeyId=/COSSecretKey=/COSAccessToken=/COSAccessTokenExpire=
    env COSACCESSKEYID + COSSECRETACCESSKEY [+ COSSESSIONTOKEN]
    env COS_CREDENTIAL_FILE=FILE
    env TENCENTCLOUD_SECRET_ID + TENCENTCLOUD_SECRET_KEY [+ TENCENTCLOUD_SESSION_TOKEN]
    ~/.passwd-cosfs, then /etc/passwd-cosfs
    Files must not be readable by others (0600; /etc/passwd-cosfs may be 0640).
    A passwd file is read again 10 minutes before STS credentials in it expire,
    when COS rejects the credentials, and on SIGHUP (keep it fresh with an STS agent).
    cam_role=sts            accepted (the STS format is detected anyway)
    cam_role=ROLE           the CAM role of this CVM: credentials from the metadata
                            service, refreshed 10 minutes before they expire
    cam_role_endpoint=URL   the metadata service's role-credentials address (default
                            http://metadata.tencentyun.com/latest/meta-data/cam/security-credentials)

ENCRYPTION:
    use_sse | use_sse=1     SSE-COS on new objects
    use_sse=kmsid[:KEYID] | use_sse=k[:KEYID]    SSE-KMS (default CMK without KEYID)
    kms_context=BASE64JSON  SSE-KMS encryption context
    use_sse=custom:FILE | use_sse=c:FILE | load_sse_c=FILE
                            SSE-C: FILE (mode 0600) holds keys, one per line, 32 raw bytes
                            or base64; the first encrypts, all are tried for reads;
                            HTTPS only; SIGHUP reads the file again (key rotation)
    metrics_listen=ADDR:PORT
                            serve Prometheus metrics at http://ADDR:PORT/metrics
    incomplete_mpu_abort=all|AGE
                            at mount, abort incomplete uploads under the prefix
                            initiated at least AGE ago (a crashed predecessor's)
    ssec_check=warn|error|off
                            at mount, HEAD the first object under the mount with the
                            keys: none opens it -> warn (default), refuse (error), or
                            do not look (off)
    Give one encryption choice: a second use_sse=/load_sse_c= asking for another
    mode, KMS key or key file is refused (repeating the same one is fine).

PERMISSIONS:
    allow_other             let other users access the mount
    uid=N gid=N             owner of objects without stored ownership (default: you)
    umask=OOO               octal, removed from 0666 (files) / 0777 (dirs) (default {umask:03o})
    ro                      read-only mount

TUNING:
    storage_class=CLASS     standard, standard_ia, archive, deep_archive,
                            intelligent_tiering, maz_standard, maz_standard_ia,
                            maz_intelligent_tiering
    multipart_size=MiB      multipart part size (default {part_mib})
    parallel_count=N        concurrent requests per transfer (default {parallel})
    stat_cache_expire=SEC   attribute/entry cache lifetime (default {stat_ttl})
    retries=N               retries after the first attempt (default {retries})
    connect_timeout=SEC     TCP/TLS connect timeout (default {connect})
    readwrite_timeout=SEC   idle timeout of a response (default {read})
    memory_limit=MiB        memory for the block cache and buffers (default {mem_mib})
    block_size=SIZE         read-cache block; a plain number is KiB, or 4M / 512k
                            (64 KiB .. 64 MiB, default {block_kib} KiB)
    staging_dir=DIR         where random writes are staged (default {staging})
    staging_min_free=MiB    free space to keep on the staging disk (default {min_free_mib})
    fuse_threads=N          FUSE worker threads (default {threads})
    auto_unmount            unmount if the daemon dies (needs allow_other)
    fsname=NAME             source shown in /proc/mounts (default: the BUCKET argument)

LOGGING:
    dbglevel=LEVEL          crit, err, warn (default), info, debug, trace
    logfile=FILE            daemon log (appended; SIGHUP reopens it, for logrotate);
                            without it the daemon logs nowhere, but start-up errors
                            are always printed by the command
    env COSMOUNT_LOG        tracing filter overriding dbglevel (e.g. cosmount=trace)

IGNORED:
    mount(8) options (_netdev, nofail, auto, noauto, user, users, defaults, rw, dev,
    nodev, suid, nosuid, exec, noexec, atime options, x-*, comment=) are accepted and
    ignored. cosfs tuning options without a cosmount meaning (use_cache, del_cache,
    nonempty, ...) are accepted with a warning. Any other option is an error.

EXIT CODES:
    0  mounted (or unmounted cleanly in the foreground)
    1  usage or configuration error (bad option, missing mountpoint, ...)
    2  credentials or key files missing, malformed, unsafe modes, or rejected by COS
    3  endpoint or bucket unreachable (DNS, TCP, TLS, timeout, no such bucket)
    4  mount failed (mountpoint busy, FUSE error, not ready within 30 s)
";

#[cfg(test)]
mod tests {
    #[test]
    fn every_placeholder_filled() {
        let h = super::help();
        assert!(!h.contains('{') && !h.contains('}'), "{h}");
        assert!(h.contains("EXIT CODES"));
    }
}
