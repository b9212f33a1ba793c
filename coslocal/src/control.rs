//! The control endpoint: plain HTTP on a separate (loopback) listener through which tests
//! change the fault configuration, read counters and damage stored data while the server
//! runs. It is not COS and needs no signature, so it must only listen on loopback.
//!
//! - `PUT /faults` with [`FaultConfig`] JSON replaces the configuration (`{}` clears it;
//!   the per-configuration fault count starts over) and echoes it; `GET /faults` reads it.
//! - `GET /stats`: `{"requests": n, "faults_injected": n, "faults_injected_config": n,
//!   "faults_by_op": {"GetObject": n, ...}, "faults_by_kind": {"reset": n, ...}}`, where
//!   `faults_injected`, `faults_by_op` and `faults_by_kind` count over the server's
//!   lifetime and `faults_injected_config` since the last `PUT /faults`; operation names
//!   are `CosOp::name()` (`Unknown` for unrecognised requests), kinds as in the JSON.
//! - `POST /corrupt` with `{"key": "path/in/bucket", "offset": n}` flips the lowest bit of
//!   the object's byte at plaintext offset `n` at rest (SSE-C objects too), leaving its
//!   ETag, CRC-64 and size as recorded; answers 200 `{"key": .., "offset": n}`, 404 for a
//!   missing key, 400 for an offset at or past the size.
//! - `POST /omit-crc` with `{"omit": true|false}` makes GET/HEAD Object responses leave out
//!   `x-cos-hash-crc64ecma` (until turned off; not part of the fault configuration, so
//!   `PUT /faults` does not reset it); `GET /omit-crc` reads it. Both answer `{"omit": b}`.
//!
//! - `PUT /credentials` with `{"credentials": [{"secret_id", "secret_key", "token"?,
//!   "expires"? (Unix seconds), "role"?}, ...]}` replaces the accepted credentials (key
//!   rotation; an expired one gets 400 ExpiredToken); answers `{"secret_ids": [..]}`.
//!   `GET /stats` counts `requests_by_secret_id`, so a test sees which ones signed.
//! - A fake CVM metadata service: `GET /latest/meta-data/cam/security-credentials/` lists
//!   the roles of the accepted credentials, `.../ROLE` gives the last one listed for it as
//!   `{"TmpSecretId", "TmpSecretKey", "Token", "ExpiredTime", "Expiration", "Code"}`
//!   (`metadata_requests` in `GET /stats` counts them).
//!
//! Errors are `{"error": "message"}` JSON.

use super::body::{self, RespBody};
use super::store::CorruptError;
use super::{FaultConfig, State};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub async fn serve(listener: TcpListener, state: Arc<State>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
            _ = shutdown.changed() => break,
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(state.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn json(status: u16, v: serde_json::Value) -> Response<RespBody> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body::full(v.to_string()))
        .unwrap_or_else(|_| Response::new(body::empty()))
}

fn error(status: u16, msg: impl std::fmt::Display) -> Response<RespBody> {
    json(status, serde_json::json!({ "error": msg.to_string() }))
}

/// Reads and parses a small JSON request body; `Err` is the 400 answer.
async fn read_json<T: serde::de::DeserializeOwned>(
    incoming: Incoming,
    what: &str,
) -> Result<T, Response<RespBody>> {
    let bytes = match http_body_util::Limited::new(incoming, 64 * 1024)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(e) => return Err(error(400, e)),
    };
    serde_json::from_slice(&bytes).map_err(|e| error(400, format!("bad {what} JSON: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CorruptRequest {
    key: String,
    offset: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OmitCrcRequest {
    omit: bool,
}

/// The `GET /stats` document.
pub fn stats_json(state: &State) -> serde_json::Value {
    let f = state.faults.stats();
    serde_json::json!({
        "requests": state.requests.load(Ordering::Relaxed),
        "faults_injected": f.injected,
        "faults_injected_config": f.injected_config,
        "faults_by_op": f.by_op,
        "faults_by_kind": f.by_kind,
        "requests_by_secret_id": *state.by_secret_id.lock().unwrap_or_else(|p| p.into_inner()),
        "metadata_requests": state.metadata_requests.load(Ordering::Relaxed),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsRequest {
    credentials: Vec<crate::AcceptedCredential>,
}

/// The fake CVM metadata service's path prefix (the real one's, see cos-api.md §5.2).
const METADATA_PREFIX: &str = "/latest/meta-data/cam/security-credentials/";

/// `GET /latest/meta-data/cam/security-credentials/[ROLE]`: the roles, one per line, or
/// one role's credentials as the metadata service gives them (pretty-printed, one field
/// per line, which is what cosfs's scraper needs).
fn metadata(state: &State, role: &str) -> Response<RespBody> {
    state.metadata_requests.fetch_add(1, Ordering::Relaxed);
    let accepted = state.accepted.read().unwrap_or_else(|p| p.into_inner());
    if role.is_empty() {
        let names: Vec<&str> = accepted.roles.keys().map(String::as_str).collect();
        return Response::builder()
            .status(200)
            .header("content-type", "text/plain")
            .body(body::full(names.join("\n")))
            .unwrap_or_else(|_| Response::new(body::empty()));
    }
    let Some(c) = accepted.roles.get(role) else {
        return error(404, format!("no role {role}"));
    };
    let expires = c.expires.unwrap_or(u64::from(u32::MAX));
    let iso = chrono::DateTime::<chrono::Utc>::from_timestamp(expires as i64, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let doc = serde_json::json!({
        "TmpSecretId": c.credential.secret_id,
        "TmpSecretKey": c.credential.secret_key,
        "Token": c.credential.token.clone().unwrap_or_default(),
        "ExpiredTime": expires,
        "Expiration": iso,
        "Code": "Success",
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(body::full(
            serde_json::to_string_pretty(&doc).unwrap_or_default(),
        ))
        .unwrap_or_else(|_| Response::new(body::empty()))
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, Infallible> {
    let (parts, incoming) = req.into_parts();
    Ok(match (parts.method, parts.uri.path()) {
        (Method::GET, "/faults") => json(
            200,
            serde_json::to_value(state.faults.get()).unwrap_or_default(),
        ),
        (Method::PUT, "/faults") => match read_json::<FaultConfig>(incoming, "FaultConfig").await {
            Ok(cfg) => {
                tracing::info!(?cfg, "fault configuration changed");
                state.faults.set(cfg.clone());
                json(200, serde_json::to_value(cfg).unwrap_or_default())
            }
            Err(resp) => resp,
        },
        (Method::GET, "/stats") => json(200, stats_json(&state)),
        (Method::PUT, "/credentials") => {
            match read_json::<CredentialsRequest>(incoming, "credentials").await {
                Ok(r) if r.credentials.is_empty() => {
                    error(400, "at least one credential must stay accepted")
                }
                Ok(r) => {
                    let ids: Vec<String> = r
                        .credentials
                        .iter()
                        .map(|c| c.credential.secret_id.clone())
                        .collect();
                    tracing::info!(?ids, "accepted credentials replaced");
                    *state.accepted.write().unwrap_or_else(|p| p.into_inner()) =
                        crate::Accepted::new(r.credentials);
                    json(200, serde_json::json!({ "secret_ids": ids }))
                }
                Err(resp) => resp,
            }
        }
        (Method::GET, p) if p.starts_with(METADATA_PREFIX) => {
            metadata(&state, &p[METADATA_PREFIX.len()..])
        }
        (Method::POST, "/corrupt") => {
            match read_json::<CorruptRequest>(incoming, "corrupt request").await {
                Ok(c) => corrupt(&state, c).await,
                Err(resp) => resp,
            }
        }
        (Method::POST, "/omit-crc") => {
            match read_json::<OmitCrcRequest>(incoming, "omit-crc request").await {
                Ok(r) => {
                    tracing::info!(omit = r.omit, "CRC header omission changed");
                    state.omit_crc.store(r.omit, Ordering::SeqCst);
                    json(200, serde_json::json!({ "omit": r.omit }))
                }
                Err(resp) => resp,
            }
        }
        (Method::GET, "/omit-crc") => json(
            200,
            serde_json::json!({ "omit": state.omit_crc.load(Ordering::SeqCst) }),
        ),
        _ => error(
            404,
            "use PUT/GET /faults, GET /stats, POST /corrupt or POST/GET /omit-crc",
        ),
    })
}

async fn corrupt(state: &Arc<State>, c: CorruptRequest) -> Response<RespBody> {
    let st = state.clone();
    let key = c.key.clone();
    let res = tokio::task::spawn_blocking(move || st.store.corrupt(&key, c.offset)).await;
    match res {
        Ok(Ok(())) => {
            tracing::info!(key = %c.key, offset = c.offset, "object corrupted on request");
            json(200, serde_json::json!({ "key": c.key, "offset": c.offset }))
        }
        Ok(Err(e @ CorruptError::NoSuchKey)) => error(404, format!("{e}: {:?}", c.key)),
        Ok(Err(e @ CorruptError::OffsetBeyondSize { .. })) => {
            error(400, format!("{e}: offset {} of {:?}", c.offset, c.key))
        }
        Ok(Err(CorruptError::Io(e))) => error(500, e),
        Err(e) => error(500, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_documents_parse_strictly() {
        let c: CorruptRequest =
            serde_json::from_str(r#"{"key":"a/b c","offset":7}"#).expect("corrupt");
        assert_eq!((c.key.as_str(), c.offset), ("a/b c", 7));
        // A misspelt field must not silently corrupt offset 0 or turn omission off.
        assert!(serde_json::from_str::<CorruptRequest>(r#"{"key":"k","ofset":7}"#).is_err());
        assert!(serde_json::from_str::<CorruptRequest>(r#"{"key":"k","offset":-1}"#).is_err());
        assert!(
            serde_json::from_str::<OmitCrcRequest>(r#"{"omit":true}"#)
                .expect("omit")
                .omit
        );
        assert!(serde_json::from_str::<OmitCrcRequest>(r#"{"omitt":true}"#).is_err());
        assert!(serde_json::from_str::<OmitCrcRequest>("{}").is_err());
    }
}
