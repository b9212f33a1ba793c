//! On-disk object store of coslocal: one bucket under a data directory, surviving restarts.
//!
//! Layout: `objects/<sha256(key)>.json` is an object's metadata (it holds the key, so keys
//! never become paths); `data/<random>` is its data ("blob"), immutable once written;
//! `uploads/<id>/upload.json`, `part-<n>.json` and the part blobs beside them are the
//! multipart uploads in progress; `tmp/` holds files being written. Every metadata write
//! is a temp file renamed into place, so a crash leaves either the old or the new version.
//! An overwrite writes a new blob, renames the new metadata over the old, then deletes the
//! old blob; orphan blobs are collected at startup. The key index lives in memory (a
//! `BTreeMap`, which the listing code walks in key order).

use super::sse::SseRecord;
use md5::{Digest, Md5};
use parking_lot::{Mutex, RwLock};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Metadata of a stored object.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub key: String,
    pub blob: String,
    pub size: u64,
    /// Unquoted ETag.
    pub etag: String,
    pub crc64: u64,
    pub last_modified_ms: i64,
    pub content_type: Option<String>,
    /// Stored standard headers (cache-control, content-disposition, ...), lowercase names.
    pub headers: BTreeMap<String, String>,
    /// `x-cos-meta-*` with lowercase full names.
    pub user_meta: BTreeMap<String, String>,
    pub storage_class: String,
    pub sse: SseRecord,
}

/// Metadata of a multipart upload in progress (what the object will get).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UploadRecord {
    pub upload_id: String,
    pub key: String,
    pub initiated_ms: i64,
    pub content_type: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub user_meta: BTreeMap<String, String>,
    pub storage_class: String,
    pub sse: SseRecord,
}

/// One uploaded part.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PartRecord {
    pub number: u32,
    pub blob: String,
    pub size: u64,
    pub etag: String,
    /// MD5 of the plaintext, hex (for the multipart ETag).
    pub md5: String,
    pub crc64: u64,
    pub last_modified_ms: i64,
    /// SSE-C: the IV the part was encrypted with, hex.
    pub iv: Option<String>,
}

/// An upload in memory.
#[derive(Debug)]
pub struct UploadState {
    pub record: UploadRecord,
    pub parts: BTreeMap<u32, PartRecord>,
    /// Set once Complete or Abort has taken the upload.
    pub closed: bool,
}

/// Why [`Store::corrupt`] left an object alone.
#[derive(Debug)]
pub enum CorruptError {
    NoSuchKey,
    /// The offset is not inside the object (`size` bytes).
    OffsetBeyondSize {
        size: u64,
    },
    Io(io::Error),
}

impl std::fmt::Display for CorruptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CorruptError::NoSuchKey => write!(f, "no such key"),
            CorruptError::OffsetBeyondSize { size } => {
                write!(f, "offset beyond the object's {size} bytes")
            }
            CorruptError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for CorruptError {
    fn from(e: io::Error) -> Self {
        CorruptError::Io(e)
    }
}

/// The store.
pub struct Store {
    root: PathBuf,
    objects: RwLock<BTreeMap<String, Arc<ObjectRecord>>>,
    uploads: Mutex<BTreeMap<String, Arc<Mutex<UploadState>>>>,
}

/// A random hex name.
pub fn random_name() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    cos_wire::sign::hex(&b)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn key_file_name(key: &str) -> String {
    format!(
        "{}.json",
        cos_wire::sign::hex(&Sha256::digest(key.as_bytes()))
    )
}

impl Store {
    /// Opens (creating) the store under `root` and loads the index.
    pub fn open(root: &Path) -> io::Result<Store> {
        for d in ["objects", "data", "uploads", "tmp"] {
            fs::create_dir_all(root.join(d))?;
        }
        // Half-written files of a previous run.
        for e in fs::read_dir(root.join("tmp"))? {
            let _ = fs::remove_file(e?.path());
        }
        let mut objects = BTreeMap::new();
        let mut referenced = HashSet::new();
        for e in fs::read_dir(root.join("objects"))? {
            let p = e?.path();
            if p.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            let rec: ObjectRecord = serde_json::from_slice(&fs::read(&p)?).map_err(|err| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {err}", p.display()),
                )
            })?;
            referenced.insert(rec.blob.clone());
            objects.insert(rec.key.clone(), Arc::new(rec));
        }
        for e in fs::read_dir(root.join("data"))? {
            let e = e?;
            if !referenced.contains(e.file_name().to_string_lossy().as_ref()) {
                let _ = fs::remove_file(e.path());
            }
        }
        let mut uploads = BTreeMap::new();
        for e in fs::read_dir(root.join("uploads"))? {
            let dir = e?.path();
            match load_upload(&dir) {
                Ok(Some(state)) => {
                    uploads.insert(state.record.upload_id.clone(), Arc::new(Mutex::new(state)));
                }
                Ok(None) => {
                    let _ = fs::remove_dir_all(&dir);
                }
                Err(err) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: {err}", dir.display()),
                    ))
                }
            }
        }
        Ok(Store {
            root: root.to_path_buf(),
            objects: RwLock::new(objects),
            uploads: Mutex::new(uploads),
        })
    }

    pub fn blob_path(&self, blob: &str) -> PathBuf {
        self.root.join("data").join(blob)
    }

    fn upload_dir(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }

    pub fn part_path(&self, upload_id: &str, blob: &str) -> PathBuf {
        self.upload_dir(upload_id).join(blob)
    }

    /// Writes `bytes` to `path` atomically (temp file + rename).
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let tmp = self.root.join("tmp").join(random_name());
        let res = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            fs::rename(&tmp, path)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res
    }

    /// The current record of `key`.
    pub fn get(&self, key: &str) -> Option<Arc<ObjectRecord>> {
        self.objects.read().get(key).cloned()
    }

    /// The record of `key` with its blob opened under the index lock, so a concurrent
    /// overwrite cannot delete the blob between lookup and open (blocking).
    pub fn open_object(&self, key: &str) -> io::Result<Option<(Arc<ObjectRecord>, File)>> {
        let idx = self.objects.read();
        match idx.get(key) {
            None => Ok(None),
            Some(rec) => {
                let f = File::open(self.blob_path(&rec.blob))?;
                Ok(Some((rec.clone(), f)))
            }
        }
    }

    /// Runs `f` over the key index (for listing).
    pub fn with_index<R>(&self, f: impl FnOnce(&BTreeMap<String, Arc<ObjectRecord>>) -> R) -> R {
        f(&self.objects.read())
    }

    /// A writer for a new object blob.
    pub fn object_writer(&self, cipher: Option<(&[u8; 32], [u8; 16])>) -> io::Result<BlobWriter> {
        BlobWriter::create(self.root.join("data"), cipher)
    }

    /// Makes `rec` the current version of its key (blocking). Its blob must exist.
    pub fn commit(&self, rec: ObjectRecord) -> io::Result<()> {
        let path = self.root.join("objects").join(key_file_name(&rec.key));
        let json = serde_json::to_vec(&rec).map_err(io::Error::other)?;
        let old = {
            let mut idx = self.objects.write();
            self.write_atomic(&path, &json)?;
            idx.insert(rec.key.clone(), Arc::new(rec.clone()))
        };
        if let Some(old) = old {
            if old.blob != rec.blob {
                let _ = fs::remove_file(self.blob_path(&old.blob));
            }
        }
        Ok(())
    }

    /// Flips the lowest bit of the stored byte at plaintext `offset` of `key` (blocking),
    /// keeping the record's ETag, CRC-64 and size, so that clients' integrity checks can
    /// be tested against data that went bad at rest.
    ///
    /// A blob holds the object's bytes at their plaintext offsets and nothing else: an
    /// SSE-C blob is AES-256-CTR ciphertext whose IVs live in the record (see
    /// [`super::crypto`]), and CTR is malleable, so flipping a ciphertext bit flips the
    /// same plaintext bit. The damaged data goes into a new blob: blobs are immutable and
    /// may be hard links shared with copies (see [`Store::link_blob`]), which must stay
    /// intact, and a reader that already opened the old blob keeps reading it whole.
    pub fn corrupt(&self, key: &str, offset: u64) -> Result<(), CorruptError> {
        let rec = self.get(key).ok_or(CorruptError::NoSuchKey)?;
        if offset >= rec.size {
            return Err(CorruptError::OffsetBeyondSize { size: rec.size });
        }
        let name = random_name();
        let path = self.blob_path(&name);
        let flipped = (|| {
            fs::copy(self.blob_path(&rec.blob), &path)?;
            let f = fs::OpenOptions::new().read(true).write(true).open(&path)?;
            let mut b = [0u8; 1];
            f.read_exact_at(&mut b, offset)?;
            b[0] ^= 0x01;
            f.write_all_at(&b, offset)
        })();
        let mut damaged = (*rec).clone();
        damaged.blob = name;
        let swapped = flipped.and_then(|()| {
            let json = serde_json::to_vec(&damaged).map_err(io::Error::other)?;
            let mut idx = self.objects.write();
            // Only replace the version the damage was made from: a write that landed
            // meanwhile must not be rolled back.
            if idx.get(key).map(|cur| &cur.blob) != Some(&rec.blob) {
                return Err(io::Error::other("the object changed while being corrupted"));
            }
            self.write_atomic(&self.root.join("objects").join(key_file_name(key)), &json)?;
            idx.insert(key.to_string(), Arc::new(damaged));
            Ok(())
        });
        match swapped {
            Ok(()) => {
                let _ = fs::remove_file(self.blob_path(&rec.blob));
                Ok(())
            }
            Err(e) => {
                let _ = fs::remove_file(&path);
                Err(e.into())
            }
        }
    }

    /// Deletes `key` (blocking); `false` when it did not exist.
    pub fn delete(&self, key: &str) -> io::Result<bool> {
        let old = {
            let mut idx = self.objects.write();
            if !idx.contains_key(key) {
                return Ok(false);
            }
            match fs::remove_file(self.root.join("objects").join(key_file_name(key))) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            idx.remove(key)
        };
        if let Some(old) = old {
            let _ = fs::remove_file(self.blob_path(&old.blob));
        }
        Ok(true)
    }

    /// A new blob that is a hard link to `blob` (a copy without copying; blobs are immutable).
    pub fn link_blob(&self, blob: &str) -> io::Result<String> {
        let name = random_name();
        fs::hard_link(self.blob_path(blob), self.blob_path(&name))?;
        Ok(name)
    }

    /// Concatenates part blobs into a new object blob (blocking); returns its name.
    pub fn concat_parts(&self, upload_id: &str, parts: &[PartRecord]) -> io::Result<String> {
        let name = random_name();
        let path = self.blob_path(&name);
        let res = (|| {
            let mut out = File::create(&path)?;
            for p in parts {
                let mut src = File::open(self.part_path(upload_id, &p.blob))?;
                let n = io::copy(&mut src, &mut out)?;
                if n != p.size {
                    return Err(io::Error::other(format!(
                        "part {} is {n} bytes on disk, expected {}",
                        p.number, p.size
                    )));
                }
            }
            Ok(())
        })();
        if let Err(e) = res {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        Ok(name)
    }

    /// Records a new upload (blocking).
    pub fn create_upload(&self, record: UploadRecord) -> io::Result<()> {
        let dir = self.upload_dir(&record.upload_id);
        fs::create_dir_all(&dir)?;
        let json = serde_json::to_vec(&record).map_err(io::Error::other)?;
        self.write_atomic(&dir.join("upload.json"), &json)?;
        let id = record.upload_id.clone();
        let state = UploadState {
            record,
            parts: BTreeMap::new(),
            closed: false,
        };
        self.uploads.lock().insert(id, Arc::new(Mutex::new(state)));
        Ok(())
    }

    pub fn upload(&self, id: &str) -> Option<Arc<Mutex<UploadState>>> {
        self.uploads.lock().get(id).cloned()
    }

    /// Every upload, by id.
    pub fn uploads(&self) -> Vec<Arc<Mutex<UploadState>>> {
        self.uploads.lock().values().cloned().collect()
    }

    /// A writer for a part blob of `upload_id`.
    pub fn part_writer(
        &self,
        upload_id: &str,
        cipher: Option<(&[u8; 32], [u8; 16])>,
    ) -> io::Result<BlobWriter> {
        BlobWriter::create(self.upload_dir(upload_id), cipher)
    }

    /// Records a part (blocking), replacing an earlier part with the same number.
    /// `NotFound` when the upload was completed or aborted meanwhile.
    pub fn commit_part(&self, upload_id: &str, part: PartRecord) -> io::Result<()> {
        let state = self
            .upload(upload_id)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let mut st = state.lock();
        if st.closed {
            return Err(io::ErrorKind::NotFound.into());
        }
        let json = serde_json::to_vec(&part).map_err(io::Error::other)?;
        self.write_atomic(
            &self
                .upload_dir(upload_id)
                .join(format!("part-{}.json", part.number)),
            &json,
        )?;
        if let Some(old) = st.parts.insert(part.number, part.clone()) {
            if old.blob != part.blob {
                let _ = fs::remove_file(self.part_path(upload_id, &old.blob));
            }
        }
        Ok(())
    }

    /// Forgets an upload and removes its files (blocking).
    pub fn remove_upload(&self, upload_id: &str) -> io::Result<()> {
        self.uploads.lock().remove(upload_id);
        match fs::remove_dir_all(self.upload_dir(upload_id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn load_upload(dir: &Path) -> io::Result<Option<UploadState>> {
    let meta = dir.join("upload.json");
    let Ok(bytes) = fs::read(&meta) else {
        return Ok(None);
    };
    let record: UploadRecord = serde_json::from_slice(&bytes).map_err(io::Error::other)?;
    let mut parts = BTreeMap::new();
    let mut referenced = HashSet::new();
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with("part-") && name.ends_with(".json") {
            let part: PartRecord =
                serde_json::from_slice(&fs::read(&p)?).map_err(io::Error::other)?;
            referenced.insert(part.blob.clone());
            parts.insert(part.number, part);
        }
    }
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".json") && !referenced.contains(&name) {
            let _ = fs::remove_file(e.path());
        }
    }
    Ok(Some(UploadState {
        record,
        parts,
        closed: false,
    }))
}

/// What a finished blob write produced.
#[derive(Debug, Clone)]
pub struct BlobDone {
    pub name: String,
    pub len: u64,
    pub md5: [u8; 16],
    pub crc64: u64,
    /// SSE-C: the IV, hex.
    pub iv: Option<String>,
}

/// Writes a blob: hashes the plaintext (MD5, CRC-64) and encrypts it when a customer key
/// is given. The file is removed on drop unless `finish` was called.
pub struct BlobWriter {
    file: Option<File>,
    path: PathBuf,
    name: String,
    md5: Md5,
    crc: cos_wire::crc64::Crc64,
    cipher: Option<(super::crypto::Aes256Ctr, [u8; 16])>,
    len: u64,
}

impl BlobWriter {
    fn create(dir: PathBuf, cipher: Option<(&[u8; 32], [u8; 16])>) -> io::Result<BlobWriter> {
        let name = random_name();
        let path = dir.join(&name);
        let file = File::create(&path)?;
        Ok(BlobWriter {
            file: Some(file),
            path,
            name,
            md5: Md5::new(),
            crc: cos_wire::crc64::Crc64::default(),
            cipher: cipher.map(|(k, iv)| (super::crypto::cipher_at(k, &iv, 0), iv)),
            len: 0,
        })
    }

    /// Appends plaintext `buf` (encrypted in place first when SSE-C).
    pub fn write(&mut self, buf: &mut [u8]) -> io::Result<()> {
        use ctr::cipher::StreamCipher;
        self.md5.update(&*buf);
        self.crc.update(buf);
        if let Some((c, _)) = &mut self.cipher {
            c.apply_keystream(buf);
        }
        self.len += buf.len() as u64;
        match &mut self.file {
            Some(f) => f.write_all(buf),
            None => Err(io::Error::other("blob writer already finished")),
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Closes the file and keeps it.
    pub fn finish(mut self) -> io::Result<BlobDone> {
        let file = self.file.take();
        drop(file);
        let md5: [u8; 16] = std::mem::take(&mut self.md5).finalize().into();
        Ok(BlobDone {
            name: std::mem::take(&mut self.name),
            len: self.len,
            md5,
            crc64: self.crc.finish(),
            iv: self.cipher.as_ref().map(|(_, iv)| cos_wire::sign::hex(iv)),
        })
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            self.file = None;
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, blob: &str, size: u64) -> ObjectRecord {
        ObjectRecord {
            key: key.into(),
            blob: blob.into(),
            size,
            etag: "e".into(),
            crc64: 0,
            last_modified_ms: 0,
            content_type: None,
            headers: BTreeMap::new(),
            user_meta: BTreeMap::new(),
            storage_class: "STANDARD".into(),
            sse: SseRecord::None,
        }
    }

    #[test]
    fn keys_are_not_paths_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        for key in ["../escape", "./x", "a b/ü+c%.txt", "dir/", &"k".repeat(850)] {
            let mut w = store.object_writer(None).expect("writer");
            w.write(&mut key.as_bytes().to_vec()).expect("write");
            let done = w.finish().expect("finish");
            store
                .commit(record(key, &done.name, done.len))
                .expect("commit");
        }
        assert!(!dir.path().parent().expect("parent").join("escape").exists());
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        let (rec, _f) = store
            .open_object("../escape")
            .expect("io")
            .expect("present");
        assert_eq!(
            fs::read(store.blob_path(&rec.blob)).expect("read"),
            b"../escape"
        );
        assert_eq!(store.with_index(|m| m.len()), 5);
    }

    #[test]
    fn overwrite_and_delete_remove_old_blobs_and_orphans_are_collected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let mut names = vec![];
        for body in [b"one".to_vec(), b"two".to_vec()] {
            let mut w = store.object_writer(None).expect("writer");
            w.write(&mut body.clone()).expect("write");
            let done = w.finish().expect("finish");
            names.push(done.name.clone());
            store
                .commit(record("k", &done.name, done.len))
                .expect("commit");
        }
        assert!(!store.blob_path(&names[0]).exists());
        assert!(store.delete("k").expect("delete"));
        assert!(!store.blob_path(&names[1]).exists());
        assert!(!store.delete("k").expect("delete again"));
        // A dropped (unfinished) writer leaves nothing; an orphan blob is collected on open.
        drop(store.object_writer(None).expect("writer"));
        fs::write(dir.path().join("data").join("orphan"), b"x").expect("orphan");
        drop(store);
        let _ = Store::open(dir.path()).expect("reopen");
        assert_eq!(
            fs::read_dir(dir.path().join("data")).expect("ls").count(),
            0
        );
    }

    #[test]
    fn corrupt_flips_one_bit_in_a_new_blob_and_keeps_the_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let body = b"0123456789".to_vec();
        let mut w = store.object_writer(None).expect("writer");
        w.write(&mut body.clone()).expect("write");
        let done = w.finish().expect("finish");
        let mut rec = record("k", &done.name, done.len);
        rec.etag = "etag-of-k".into();
        rec.crc64 = done.crc64;
        store.commit(rec).expect("commit");
        // A copy shares the blob's inode; it must not see the damage.
        let copy_blob = store.link_blob(&done.name).expect("link");
        store
            .commit(record("copy", &copy_blob, done.len))
            .expect("commit copy");

        store.corrupt("k", 3).expect("corrupt");
        let now = store.get("k").expect("still there");
        assert_ne!(now.blob, done.name, "damage goes into a new blob");
        assert!(!store.blob_path(&done.name).exists(), "old blob removed");
        assert_eq!(
            (now.etag.as_str(), now.crc64, now.size),
            ("etag-of-k", done.crc64, 10)
        );
        let mut want = body.clone();
        want[3] ^= 0x01;
        assert_eq!(fs::read(store.blob_path(&now.blob)).expect("read"), want);
        assert_eq!(fs::read(store.blob_path(&copy_blob)).expect("copy"), body);

        assert!(matches!(
            store.corrupt("k", 10),
            Err(CorruptError::OffsetBeyondSize { size: 10 })
        ));
        assert!(matches!(
            store.corrupt("missing", 0),
            Err(CorruptError::NoSuchKey)
        ));
        // The damaged version is what a restart finds.
        let blob = now.blob.clone();
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.get("k").expect("k").blob, blob);
        assert_eq!(fs::read(store.blob_path(&blob)).expect("read"), want);
    }

    #[test]
    fn corrupting_customer_key_ciphertext_flips_the_same_plaintext_bit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let key = [5u8; 32];
        let iv = super::super::crypto::new_iv();
        let plain: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        let mut w = store.object_writer(Some((&key, iv))).expect("writer");
        w.write(&mut plain.clone()).expect("write");
        let done = w.finish().expect("finish");
        let seg = super::super::crypto::Segment {
            start: 0,
            len: done.len,
            iv: done.iv.clone().expect("iv"),
        };
        store
            .commit(record("enc", &done.name, done.len))
            .expect("commit");
        for offset in [0u64, 17, 299] {
            store.corrupt("enc", offset).expect("corrupt");
            let blob = store.get("enc").expect("enc").blob.clone();
            let mut back = fs::read(store.blob_path(&blob)).expect("read");
            super::super::crypto::apply_segments(&key, std::slice::from_ref(&seg), 0, &mut back);
            let diff: Vec<(usize, u8)> = back
                .iter()
                .zip(&plain)
                .enumerate()
                .filter(|(_, (a, b))| a != b)
                .map(|(i, (a, b))| (i, a ^ b))
                .collect();
            assert_eq!(diff, [(offset as usize, 0x01)], "offset {offset}");
            // Undo, so the next offset is checked alone.
            store.corrupt("enc", offset).expect("flip back");
        }
    }

    #[test]
    fn customer_key_blobs_hold_no_plaintext() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let key = [9u8; 32];
        let iv = super::super::crypto::new_iv();
        let mut w = store.object_writer(Some((&key, iv))).expect("writer");
        let plain = b"attack at dawn, attack at dawn, attack at dawn".to_vec();
        w.write(&mut plain.clone()).expect("write");
        let done = w.finish().expect("finish");
        let stored = fs::read(store.blob_path(&done.name)).expect("read");
        assert_eq!(stored.len(), plain.len());
        assert!(!stored.windows(6).any(|w| w == b"attack"));
        let mut back = stored.clone();
        let seg = super::super::crypto::Segment {
            start: 0,
            len: stored.len() as u64,
            iv: done.iv.clone().expect("iv"),
        };
        super::super::crypto::apply_segments(&key, &[seg], 0, &mut back);
        assert_eq!(back, plain);
        assert_eq!(done.md5, <[u8; 16]>::from(Md5::digest(&plain)));
    }
}
