//! Response bodies: in-memory documents, streamed file data (fed by a blocking reader
//! thread through a channel), and the shaping wrapper that applies the bandwidth cap and
//! the TruncateBody fault to any of them.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub type RespBody = BoxBody<Bytes, io::Error>;

pub fn full(b: impl Into<Bytes>) -> RespBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

pub fn empty() -> RespBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A body fed by a channel; an `Err` item aborts the response (hyper closes the connection).
pub struct ChannelBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

pub fn channel(rx: mpsc::Receiver<io::Result<Bytes>>) -> RespBody {
    ChannelBody { rx }.boxed()
}

/// Wraps a body: cuts it after `cut_at` bytes with an error (the TruncateBody fault) and
/// paces it to `rate` bytes per second.
pub struct Shaped {
    inner: RespBody,
    cut_at: Option<u64>,
    rate: Option<u64>,
    sent: u64,
    started: Instant,
    pending: Option<Frame<Bytes>>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    done: bool,
}

pub fn shaped(inner: RespBody, cut_at: Option<u64>, rate: Option<u64>) -> RespBody {
    if cut_at.is_none() && rate.is_none() {
        return inner;
    }
    Shaped {
        inner,
        cut_at,
        rate: rate.filter(|r| *r > 0),
        sent: 0,
        started: Instant::now(),
        pending: None,
        sleep: None,
        done: false,
    }
    .boxed()
}

impl Body for Shaped {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if let Some(s) = &mut this.sleep {
            if s.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
        }
        if this.done {
            return Poll::Ready(Some(Err(io::Error::other(
                "coslocal fault: body truncated",
            ))));
        }
        let frame = match this.pending.take() {
            Some(f) => f,
            None => match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(f))) => f,
            },
        };
        let Ok(mut data) = frame.into_data() else {
            return Poll::Ready(None);
        };
        // Pace: this chunk may leave only when the average rate allows it.
        if let Some(rate) = this.rate {
            let due = this.started + Duration::from_secs_f64(this.sent as f64 / rate as f64);
            if due > Instant::now() {
                let mut s = Box::pin(tokio::time::sleep_until(due.into()));
                if s.as_mut().poll(cx).is_pending() {
                    this.sleep = Some(s);
                    this.pending = Some(Frame::data(data));
                    return Poll::Pending;
                }
            }
            // Big chunks are split so the pacing stays smooth.
            let slice = (rate / 10).max(16 * 1024) as usize;
            if data.len() > slice {
                let rest = data.split_off(slice);
                this.pending = Some(Frame::data(rest));
            }
        }
        if let Some(cut) = this.cut_at {
            let left = cut.saturating_sub(this.sent);
            if (data.len() as u64) >= left {
                data.truncate(left as usize);
                this.pending = None;
                this.done = true;
                // Let hyper flush the head and the partial body before the connection
                // is aborted, so the client sees a short body rather than no response.
                this.sleep = Some(Box::pin(tokio::time::sleep(Duration::from_millis(100))));
            }
        }
        this.sent += data.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn size_hint(&self) -> SizeHint {
        // The declared Content-Length stays the full one; don't let hyper shorten it.
        self.inner.size_hint()
    }
}

use std::future::Future;
