//! The request pipeline: routing, fault injection and latency, authentication, SSE header
//! validation, dispatch to the operation handlers, error documents, the common response
//! headers (and the test switch that leaves the CRC-64 header out of GET/HEAD Object),
//! body shaping and the request log.

use super::body::{self, RespBody};
use super::error::ApiError;
use super::{auth, route, sse, FaultKind, State};
use cos_wire::CosOp;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{HeaderMap, Method, Request, Response};
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// One routed, authenticated request, as the operation handlers see it.
pub struct Req {
    pub op: CosOp,
    pub method: Method,
    pub key: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub sse: sse::SseHeaders,
    pub body: Incoming,
    pub request_id: String,
}

impl Req {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub type HandlerResult = Result<Response<RespBody>, ApiError>;

fn host_of(parts: &hyper::http::request::Parts) -> String {
    let h = parts
        .headers
        .get(hyper::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    // Strip the port (IPv6 literals are bracketed).
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("").to_string();
    }
    h.rsplit_once(':').map(|(a, _)| a.to_string()).unwrap_or(h)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The hyper service function.
pub async fn service(
    state: Arc<State>,
    head_flag: Arc<std::sync::atomic::AtomicBool>,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, io::Error> {
    let r = service_inner(state, req).await;
    if r.is_ok() {
        head_flag.store(true, std::sync::atomic::Ordering::Release);
    }
    r
}

async fn service_inner(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, io::Error> {
    state.count_request();
    let request_id = state.next_request_id();
    let (parts, incoming) = req.into_parts();
    let host = host_of(&parts);
    let method = parts.method.clone();
    let raw_path = parts.uri.path().to_string();
    let resource = format!("{host}{raw_path}");
    let bytes_in: u64 = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);

    let routed = route::resolve(&state.bucket, &host, &raw_path).and_then(|t| {
        let q = route::parse_query(parts.uri.query())?;
        let op = route::classify(&method, &t.key, &q, &parts.headers);
        Ok((t, q, op))
    });
    let op = routed.as_ref().ok().and_then(|(_, _, op)| *op);
    let key_for_log = routed
        .as_ref()
        .map(|(t, _, _)| t.key.clone())
        .unwrap_or_default();

    let fault = state.faults.decide(op);
    let latency = state.faults.latency_ms();
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let log_ctx = LogCtx {
        request_id: &request_id,
        method: method.as_str(),
        op,
        key: &key_for_log,
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        bytes_in,
    };
    if fault == Some(FaultKind::Reset) {
        log(&state, &log_ctx, 0, Some("InjectedReset"), 0);
        return Err(io::Error::other("coslocal fault: connection reset"));
    }

    let result: HandlerResult = match fault {
        Some(FaultKind::SlowDown) => Err(ApiError::new(
            503,
            "SlowDown",
            "Please reduce your request rate.",
        )),
        Some(FaultKind::InternalError) => Err(ApiError::new(
            500,
            "InternalError",
            "We encountered an internal error. Please try again.",
        )),
        _ => match routed {
            Err(e) => Err(e),
            Ok((target, query, op)) => {
                dispatch(
                    &state,
                    parts.method,
                    target,
                    query,
                    op,
                    parts.headers.clone(),
                    incoming,
                    &request_id,
                )
                .await
            }
        },
    };

    let is_head = method == Method::HEAD;
    let (mut resp, error_code) = match result {
        Ok(r) => (r, None),
        Err(e) => {
            let trace_id = format!("{request_id}-trace");
            let mut b = Response::builder()
                .status(e.status)
                .header("x-cos-trace-id", &trace_id);
            let body = if is_head {
                body::empty()
            } else {
                b = b.header(CONTENT_TYPE, "application/xml");
                body::full(e.to_xml(&resource, &request_id, &trace_id))
            };
            let r = b
                .body(body)
                .unwrap_or_else(|_| Response::new(body::empty()));
            (r, Some(e.code))
        }
    };
    let h = resp.headers_mut();
    if matches!(op, Some(CosOp::GetObject | CosOp::HeadObject))
        && state.omit_crc.load(std::sync::atomic::Ordering::Relaxed)
    {
        h.remove("x-cos-hash-crc64ecma");
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-cos-request-id", v);
    }
    h.insert(
        hyper::header::SERVER,
        HeaderValue::from_static("tencent-cos"),
    );
    let status = resp.status().as_u16();
    let bytes_out = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .or_else(|| http_body::Body::size_hint(resp.body()).exact())
        .unwrap_or(0);

    let truncate = fault == Some(FaultKind::TruncateBody);
    if truncate && (is_head || bytes_out == 0) {
        // Nothing to cut: the request was acted on, the answer is lost.
        log(&state, &log_ctx, status, Some("InjectedTruncateNoBody"), 0);
        return Err(io::Error::other("coslocal fault: response dropped"));
    }
    log(&state, &log_ctx, status, error_code, bytes_out);
    let cut_at = truncate.then_some(bytes_out / 2);
    let rate = state.faults.bandwidth();
    if cut_at.is_some() || rate.is_some() {
        let (p, b) = resp.into_parts();
        if cut_at.is_some() && !p.headers.contains_key(CONTENT_LENGTH) {
            let mut p = p;
            if let Ok(v) = HeaderValue::from_str(&bytes_out.to_string()) {
                p.headers.insert(CONTENT_LENGTH, v);
            }
            return Ok(Response::from_parts(p, body::shaped(b, cut_at, rate)));
        }
        return Ok(Response::from_parts(p, body::shaped(b, cut_at, rate)));
    }
    Ok(resp)
}

#[allow(clippy::too_many_arguments)]
async fn dispatch(
    state: &Arc<State>,
    method: Method,
    target: route::Target,
    query: Vec<(String, String)>,
    op: Option<CosOp>,
    headers: HeaderMap,
    body: Incoming,
    request_id: &str,
) -> HandlerResult {
    let secret_id = auth::verify(
        &state
            .accepted
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .creds,
        &auth::AuthRequest {
            method: method.as_str(),
            signed_path: &target.signed_path,
            query: &query,
            headers: &headers,
            now: now_secs(),
        },
    )?;
    state.credential_used(&secret_id, now_secs())?;
    let Some(op) = op else {
        return Err(match method {
            Method::GET | Method::HEAD | Method::PUT | Method::POST | Method::DELETE => {
                ApiError::new(
                    501,
                    "NotImplemented",
                    "coslocal does not implement this operation.",
                )
            }
            _ => ApiError::new(
                405,
                "MethodNotAllowed",
                "The specified method is not allowed.",
            ),
        });
    };
    let sse = sse::parse(&headers, state.https)?;
    sse::check_allowed(op, &sse)?;
    if !target.key.is_empty() && target.key.len() > cos_wire::MAX_KEY_LEN {
        return Err(ApiError::bad(
            "KeyTooLong",
            "Object keys are limited to 850 bytes.",
        ));
    }
    let req = Req {
        op,
        method,
        key: target.key,
        query,
        headers,
        sse,
        body,
        request_id: request_id.to_string(),
    };
    use super::{multipart as mp, object as ob};
    match op {
        CosOp::HeadBucket => ob::head_bucket(state, req).await,
        CosOp::HeadObject | CosOp::GetObject => ob::get_object(state, req).await,
        CosOp::ListObjects => ob::list_objects(state, req).await,
        CosOp::PutObject => ob::put_object(state, req).await,
        CosOp::DeleteObject => ob::delete_object(state, req).await,
        CosOp::DeleteMultiple => ob::delete_multiple(state, req).await,
        CosOp::CopyObject => ob::copy_object(state, req).await,
        CosOp::InitiateMultipart => mp::initiate(state, req).await,
        CosOp::UploadPart => mp::upload_part(state, req).await,
        CosOp::UploadPartCopy => mp::upload_part_copy(state, req).await,
        CosOp::CompleteMultipart => mp::complete(state, req).await,
        CosOp::AbortMultipart => mp::abort(state, req).await,
        CosOp::ListParts => mp::list_parts(state, req).await,
        CosOp::ListMultipartUploads => mp::list_uploads(state, req).await,
    }
}

struct LogCtx<'a> {
    request_id: &'a str,
    method: &'a str,
    op: Option<CosOp>,
    key: &'a str,
    query: &'a str,
    headers: &'a HeaderMap,
    bytes_in: u64,
}

fn log(state: &State, c: &LogCtx<'_>, status: u16, error_code: Option<&str>, bytes_out: u64) {
    let Some(l) = &state.log else {
        return;
    };
    let h = |n: &str| c.headers.get(n).and_then(|v| v.to_str().ok());
    // Only names and key MD5s: never a key, token or signature.
    let entry = serde_json::json!({
        "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "request_id": c.request_id,
        "method": c.method,
        "op": c.op.map(|o| o.name()).unwrap_or("Unknown"),
        "key": c.key,
        "query": redact_query(c.query),
        "status": status,
        "error_code": error_code,
        "bytes_in": c.bytes_in,
        "bytes_out": bytes_out,
        "sse": {
            "server_side_encryption": h(cos_wire::sse_headers::H_SSE),
            "kms_key_id": h(cos_wire::sse_headers::H_SSE_KMS_KEY_ID),
            "customer_key_md5": h("x-cos-server-side-encryption-customer-key-md5"),
            "copy_source_customer_key_md5": h("x-cos-copy-source-server-side-encryption-customer-key-md5"),
        },
    });
    l.write(&entry);
}

/// Drops presigned-URL signature fields and tokens from a logged query string.
fn redact_query(q: &str) -> String {
    q.split('&')
        .filter(|p| !p.starts_with("q-signature") && !p.starts_with("x-cos-security-token"))
        .collect::<Vec<_>>()
        .join("&")
}
