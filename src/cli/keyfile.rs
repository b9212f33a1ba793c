//! Loading the SSE-C key file named by `use_sse=custom:FILE` / `load_sse_c=FILE`: the
//! file must be a regular file with no group or other permission bits and no execute
//! bit (0600 or 0400), then `cos::sse::parse_key_file` reads the key history (first key
//! encrypts, all are tried for reads). The key bytes are zeroized after parsing.

use super::error::CliError;
use crate::cos::sse::{parse_key_file, CustomerKey};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use zeroize::Zeroizing;

/// Checks the mode of an SSE-C key file: owner read/write only.
pub fn check_key_file_mode(path: &Path, mode: u32) -> Result<(), CliError> {
    let mode = mode & 0o7777;
    if mode & 0o177 != 0 {
        return Err(CliError::credentials(format!(
            "SSE-C key file {} has mode {mode:04o}; it must be readable by its owner only \
             (0600 or 0400). Fix with: chmod 600 {}",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

/// Reads, checks and parses an SSE-C key file.
pub fn load_key_file(path: &Path) -> Result<Vec<CustomerKey>, CliError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        CliError::credentials(format!(
            "cannot read SSE-C key file {}: {e} (use_sse=custom: and load_sse_c= take the path \
             of a 0600 file holding the key, never the key itself)",
            path.display()
        ))
    })?;
    if !meta.is_file() {
        return Err(CliError::credentials(format!(
            "SSE-C key file {} is not a regular file",
            path.display()
        )));
    }
    check_key_file_mode(path, meta.mode())?;
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
        CliError::credentials(format!(
            "cannot read SSE-C key file {}: {e}",
            path.display()
        ))
    })?);
    parse_key_file(&bytes)
        .map_err(|e| CliError::credentials(format!("SSE-C key file {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::error::ExitCode;
    use std::os::unix::fs::PermissionsExt;

    const K1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    fn write(dir: &Path, text: &str, mode: u32) -> std::path::PathBuf {
        let p = dir.join("keys");
        std::fs::write(&p, text).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        p
    }

    #[test]
    fn mode_rule() {
        let p = Path::new("/k");
        assert!(check_key_file_mode(p, 0o600).is_ok());
        assert!(check_key_file_mode(p, 0o400).is_ok());
        for bad in [0o640, 0o644, 0o604, 0o700, 0o660] {
            let e = check_key_file_mode(p, bad).expect_err("refused");
            assert_eq!(e.code, ExitCode::Credentials);
            assert!(e.message.contains("chmod 600 /k"), "{}", e.message);
        }
    }

    #[test]
    fn loads_history_in_order() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = write(
            d.path(),
            &format!("# keys\n{K1}\n0123456789abcdef0123456789abcdef\n"),
            0o600,
        );
        let keys = load_key_file(&p).expect("loads");
        assert_eq!(keys.len(), 2);
        assert_eq!(
            keys[0].raw().as_slice(),
            b"0123456789abcdef0123456789abcdef"
        );
    }

    #[test]
    fn refuses_loose_modes_and_bad_keys() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = write(d.path(), K1, 0o644);
        let e = load_key_file(&p).expect_err("0644 refused");
        assert!(e.message.contains("0644") && e.message.contains("chmod 600"));
        let p = write(d.path(), "short\n", 0o600);
        let e = load_key_file(&p).expect_err("bad key");
        assert!(
            e.message.contains("line 1") && !e.message.contains("short"),
            "{}",
            e.message
        );
        let p = write(d.path(), "# nothing\n", 0o600);
        assert!(load_key_file(&p).unwrap_err().message.contains("no key"));
        let e = load_key_file(&d.path().join("absent")).unwrap_err();
        assert!(e.message.contains("never the key itself"));
    }
}
