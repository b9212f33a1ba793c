//! The control endpoint: plain HTTP on a separate (loopback) listener to change the fault
//! configuration while the server runs. `PUT /faults` (FaultConfig JSON), `GET /faults`,
//! `GET /stats` (`{"requests": n, "faults_injected": n}`).

use super::body::{self, RespBody};
use super::{FaultConfig, State};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
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
        (Method::PUT, "/faults") => {
            let bytes = match http_body_util::Limited::new(incoming, 64 * 1024)
                .collect()
                .await
            {
                Ok(c) => c.to_bytes(),
                Err(e) => return Ok(json(400, serde_json::json!({"error": e.to_string()}))),
            };
            match serde_json::from_slice::<FaultConfig>(&bytes) {
                Ok(cfg) => {
                    tracing::info!(?cfg, "fault configuration changed");
                    state.faults.set(cfg.clone());
                    json(200, serde_json::to_value(cfg).unwrap_or_default())
                }
                Err(e) => json(
                    400,
                    serde_json::json!({"error": format!("bad FaultConfig JSON: {e}")}),
                ),
            }
        }
        (Method::GET, "/stats") => json(
            200,
            serde_json::json!({
                "requests": state.requests.load(Ordering::Relaxed),
                "faults_injected": state.faults.injected(),
            }),
        ),
        _ => json(
            404,
            serde_json::json!({"error": "use PUT/GET /faults or GET /stats"}),
        ),
    })
}
