//! The request log: one JSON object per request, appended and flushed as the response
//! head is sent. It records which SSE headers a request carried (key MD5s only, never keys).

use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

pub struct RequestLog {
    file: Mutex<File>,
}

impl RequestLog {
    pub fn open(path: &Path) -> io::Result<RequestLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(RequestLog {
            file: Mutex::new(file),
        })
    }

    /// Appends one entry as a line (a single write, so lines never interleave).
    pub fn write(&self, entry: &serde_json::Value) {
        let mut line = entry.to_string();
        line.push('\n');
        if let Err(e) = self.file.lock().write_all(line.as_bytes()) {
            tracing::warn!("request log write failed: {e}");
        }
    }
}
