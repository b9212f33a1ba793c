//! Header-name case on the wire. hyper writes response header names in lowercase, but
//! COS sends `ETag`, `Content-Length`, `x-cos-server-side-encryption-customer-key-MD5`
//! and so on, and the official Python SDK turns response headers into a case-sensitive
//! dict (`response['ETag']`). This wrapper around a connection rewrites the names of the
//! next response head in place (a case change never changes lengths).
//!
//! The service raises `flag` just before it returns a response; hyper's HTTP/1 server
//! handles one request at a time per connection and writes the whole head as one buffer
//! before the body, so the next bytes written after the flag is raised start that head.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Lowercase name → the spelling COS uses.
const CANONICAL: &[(&str, &str)] = &[
    ("etag", "ETag"),
    ("content-length", "Content-Length"),
    ("content-type", "Content-Type"),
    ("content-range", "Content-Range"),
    ("content-disposition", "Content-Disposition"),
    ("content-encoding", "Content-Encoding"),
    ("content-language", "Content-Language"),
    ("cache-control", "Cache-Control"),
    ("expires", "Expires"),
    ("last-modified", "Last-Modified"),
    ("accept-ranges", "Accept-Ranges"),
    ("transfer-encoding", "Transfer-Encoding"),
    ("connection", "Connection"),
    ("server", "Server"),
    ("date", "Date"),
    (
        "x-cos-server-side-encryption-customer-key-md5",
        "x-cos-server-side-encryption-customer-key-MD5",
    ),
];

/// Rewrites the header names of a complete response head in place.
pub fn rewrite_head(head: &mut [u8]) {
    let mut line_start = match find(head, b"\r\n") {
        Some(p) => p + 2, // skip the status line
        None => return,
    };
    while line_start < head.len() {
        let Some(rel_end) = find(&head[line_start..], b"\r\n") else {
            return;
        };
        let line = line_start..line_start + rel_end;
        if let Some(colon) = head[line.clone()].iter().position(|&b| b == b':') {
            let name = &mut head[line.start..line.start + colon];
            if let Some((_, canon)) = CANONICAL
                .iter()
                .find(|(l, _)| l.as_bytes().eq_ignore_ascii_case(name))
            {
                name.copy_from_slice(canon.as_bytes());
            }
        }
        line_start = line.end + 2;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A connection whose response heads get COS header case.
pub struct HeadCase<I> {
    inner: I,
    flag: Arc<AtomicBool>,
    /// A rewritten head partly written: (bytes, how many went out).
    pending: Option<(Vec<u8>, usize)>,
}

impl<I> HeadCase<I> {
    pub fn new(inner: I, flag: Arc<AtomicBool>) -> HeadCase<I> {
        HeadCase {
            inner,
            flag,
            pending: None,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for HeadCase<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for HeadCase<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Some((head, sent)) = &mut this.pending {
            // hyper resends the rest of the head: send our rewritten bytes instead.
            let left = head.len() - *sent;
            let n = match Pin::new(&mut this.inner)
                .poll_write(cx, &head[*sent..*sent + left.min(buf.len())])
            {
                Poll::Ready(Ok(n)) => n,
                other => return other,
            };
            *sent += n;
            if *sent == head.len() {
                this.pending = None;
            }
            return Poll::Ready(Ok(n));
        }
        if this.flag.load(Ordering::Acquire) && buf.starts_with(b"HTTP/1.") {
            if let Some(p) = find(buf, b"\r\n\r\n") {
                let mut head = buf[..p + 4].to_vec();
                rewrite_head(&mut head);
                let n = match Pin::new(&mut this.inner).poll_write(cx, &head) {
                    Poll::Ready(Ok(n)) => n,
                    other => return other,
                };
                this.flag.store(false, Ordering::Release);
                if n < head.len() {
                    this.pending = Some((head, n));
                }
                return Poll::Ready(Ok(n));
            }
            this.flag.store(false, Ordering::Release);
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_names_not_values() {
        let mut h = b"HTTP/1.1 200 OK\r\netag: \"etag\"\r\ncontent-length: 3\r\nx-cos-meta-etag: date\r\nx-cos-server-side-encryption-customer-key-md5: abc\r\n\r\n".to_vec();
        rewrite_head(&mut h);
        let s = String::from_utf8(h).expect("utf8");
        assert!(s.contains("\r\nETag: \"etag\"\r\n"));
        assert!(s.contains("\r\nContent-Length: 3\r\n"));
        assert!(
            s.contains("\r\nx-cos-meta-etag: date\r\n"),
            "user metadata stays lowercase"
        );
        assert!(s.contains("x-cos-server-side-encryption-customer-key-MD5: abc"));
        assert!(s.starts_with("HTTP/1.1 200 OK\r\n"));
    }

    #[tokio::test]
    async fn only_the_flagged_head_is_rewritten() {
        use tokio::io::AsyncWriteExt;
        let flag = Arc::new(AtomicBool::new(false));
        let mut w = HeadCase::new(Vec::new(), flag.clone());
        w.write_all(b"HTTP/1.1 100 Continue\r\netag: x\r\n\r\n")
            .await
            .expect("write");
        flag.store(true, Ordering::Release);
        w.write_all(b"HTTP/1.1 200 OK\r\netag: y\r\n\r\nbody etag: z")
            .await
            .expect("write");
        w.write_all(b"HTTP/1.1 200 OK\r\netag: q\r\n\r\n")
            .await
            .expect("write");
        let s = String::from_utf8(w.inner).expect("utf8");
        assert_eq!(s, "HTTP/1.1 100 Continue\r\netag: x\r\n\r\nHTTP/1.1 200 OK\r\nETag: y\r\n\r\nbody etag: zHTTP/1.1 200 OK\r\netag: q\r\n\r\n");
    }
}
