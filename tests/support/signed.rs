//! Hand-built requests to coslocal, signed with the product's signer (or deliberately
//! not), for the tests of the server's strictness: the [`Call`] builder, sending it, and
//! an in-process server (`coslocal::testkit`) with a plain reqwest client that trusts it.

pub use ::coslocal::testkit::{config, BUCKET, REGION, SECRET_ID as ID, SECRET_KEY as SECRET};
use ::coslocal::{testkit, ServerConfig};
use cosmount::cos::sign::{authorization, cos_encode, sign, KeyTime, SignInput};

/// Two SSE-C keys (base64) and their MD5s.
pub const KEY_B64: &str = "MDEyMzQ1Njc4OUFCQ0RFRjAxMjM0NTY3ODlBQkNERUY=";
pub const KEY_MD5: &str = "U5L61r7jcwdNvT7frmUG8g==";
pub const KEY2_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
pub const KEY2_MD5: &str = "hRasmdxgYDKV3nvbahU1MA==";

/// An in-process coslocal and a client that trusts its certificate.
pub struct TestServer {
    pub cos: testkit::TestServer,
    pub client: reqwest::Client,
}

impl std::ops::Deref for TestServer {
    type Target = testkit::TestServer;
    fn deref(&self) -> &testkit::TestServer {
        &self.cos
    }
}

pub fn client_for(ca: Option<&std::path::Path>) -> reqwest::Client {
    let mut b = reqwest::Client::builder().pool_max_idle_per_host(16);
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).expect("CA PEM");
        b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA parses"));
    }
    b.build().expect("client")
}

pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

pub async fn start_with(f: impl FnOnce(&mut ServerConfig)) -> TestServer {
    with_client(testkit::TestServer::start_with(f).await)
}

pub async fn start_in(dir: tempfile::TempDir, f: impl FnOnce(&mut ServerConfig)) -> TestServer {
    with_client(testkit::TestServer::start_in(dir, f).await)
}

fn with_client(cos: testkit::TestServer) -> TestServer {
    let client = client_for(cos.trust.as_deref());
    TestServer { cos, client }
}

/// Encodes a key for the URL path: every byte but unreserved ones and `/` is escaped;
/// keys with dot segments keep `/` escaped too so no HTTP stack normalises them.
pub fn encode_key(key: &str) -> String {
    let e = cos_encode(key);
    let dotty = key.split('/').any(|s| s == "." || s == "..");
    if dotty {
        e
    } else {
        e.replace("%2F", "/")
    }
}

/// One request to send.
#[derive(Clone, Default)]
pub struct Call {
    pub method: String,
    pub key: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Sign with this secret instead of the right one.
    pub secret: Option<String>,
    /// Sign as this SecretId instead of [`ID`] (for servers with other credentials).
    pub id: Option<String>,
    pub key_time: Option<KeyTime>,
    pub host: Option<String>,
    pub anonymous: bool,
    /// Path-style: put the bucket in the path.
    pub path_style: bool,
    /// Skip signing these header names (to send them unsigned).
    pub unsigned: Vec<String>,
}

impl Call {
    pub fn new(method: &str, key: &str) -> Call {
        Call {
            method: method.into(),
            key: key.into(),
            ..Call::default()
        }
    }
    pub fn q(mut self, n: &str, v: &str) -> Call {
        self.query.push((n.into(), v.into()));
        self
    }
    pub fn h(mut self, n: &str, v: &str) -> Call {
        self.headers.push((n.into(), v.into()));
        self
    }
    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Call {
        self.body = b.into();
        self
    }
    pub fn ssec(self, key: &str, md5: &str) -> Call {
        self.h("x-cos-server-side-encryption-customer-algorithm", "AES256")
            .h("x-cos-server-side-encryption-customer-key", key)
            .h("x-cos-server-side-encryption-customer-key-MD5", md5)
    }
    pub fn src_ssec(self, key: &str, md5: &str) -> Call {
        self.h(
            "x-cos-copy-source-server-side-encryption-customer-algorithm",
            "AES256",
        )
        .h("x-cos-copy-source-server-side-encryption-customer-key", key)
        .h(
            "x-cos-copy-source-server-side-encryption-customer-key-MD5",
            md5,
        )
    }
}

impl TestServer {
    pub async fn send(&self, c: Call) -> reqwest::Response {
        send_to(&self.client, &self.endpoint(), c).await
    }

    pub async fn put(&self, key: &str, body: &[u8]) -> reqwest::Response {
        self.send(Call::new("PUT", key).body(body.to_vec())).await
    }

    pub async fn get_bytes(&self, c: Call) -> (u16, Vec<u8>) {
        let r = self.send(c).await;
        let s = r.status().as_u16();
        (s, r.bytes().await.expect("body").to_vec())
    }
}

pub async fn send_to(client: &reqwest::Client, endpoint: &str, c: Call) -> reqwest::Response {
    try_send_to(client, endpoint, c)
        .await
        .expect("request sent")
}

/// Like `send_to`, but a transport error is returned instead of failing the test.
// These tests exercise the server with hand-built (sometimes deliberately wrong)
// requests, so they bypass the client's Requester on purpose.
#[allow(clippy::disallowed_methods)]
pub async fn try_send_to(
    client: &reqwest::Client,
    endpoint: &str,
    c: Call,
) -> reqwest::Result<reqwest::Response> {
    let hostport = endpoint.split("://").nth(1).expect("endpoint").to_string();
    let host = c.host.clone().unwrap_or(hostport.clone());
    let path = if c.path_style {
        if c.key.is_empty() {
            format!("/{BUCKET}")
        } else {
            format!("/{BUCKET}/{}", encode_key(&c.key))
        }
    } else {
        format!("/{}", encode_key(&c.key))
    };
    let signed_path = if c.path_style {
        if c.key.is_empty() {
            format!("/{BUCKET}")
        } else {
            format!("/{BUCKET}/{}", c.key)
        }
    } else {
        format!("/{}", c.key)
    };
    let query: String = c
        .query
        .iter()
        .map(|(n, v)| {
            if v.is_empty() {
                cos_encode(n)
            } else {
                format!("{}={}", cos_encode(n), cos_encode(v))
            }
        })
        .collect::<Vec<_>>()
        .join("&");
    let url = if query.is_empty() {
        format!("{}{}", endpoint, path)
    } else {
        format!("{}{}?{}", endpoint, path, query)
    };
    let mut headers: Vec<(String, String)> = c.headers.clone();
    headers.push(("host".into(), host.clone()));
    if matches!(c.method.as_str(), "PUT" | "POST") || !c.body.is_empty() {
        headers.push(("content-length".into(), c.body.len().to_string()));
    }
    let kt = c.key_time.unwrap_or_else(|| KeyTime::around_now(3600));
    let to_sign: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(n, _)| !c.unsigned.iter().any(|u| u.eq_ignore_ascii_case(n)))
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let params: Vec<(&str, &str)> = c
        .query
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let parts = sign(
        c.secret.as_deref().unwrap_or(SECRET),
        &SignInput {
            method: &c.method,
            path: &signed_path,
            params: &params,
            headers: &to_sign,
            key_time: kt,
        },
    );
    let method = reqwest::Method::from_bytes(c.method.as_bytes()).expect("method");
    let mut rb = client.request(method, &url);
    for (n, v) in &headers {
        rb = rb.header(n.as_str(), v.as_str());
    }
    if !c.anonymous {
        let id = c.id.as_deref().unwrap_or(ID);
        rb = rb.header("authorization", authorization(id, kt, &parts));
    }
    if matches!(c.method.as_str(), "PUT" | "POST") || !c.body.is_empty() {
        rb = rb.body(c.body.clone());
    }
    rb.send().await
}

pub fn header(r: &reqwest::Response, n: &str) -> Option<String> {
    r.headers()
        .get(n)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The `<Code>` of an error body.
pub async fn error_code(r: reqwest::Response) -> (u16, String) {
    let s = r.status().as_u16();
    let body = r.text().await.unwrap_or_default();
    let code = body
        .split("<Code>")
        .nth(1)
        .and_then(|x| x.split("</Code>").next())
        .unwrap_or("")
        .to_string();
    (s, code)
}

pub fn md5_b64(data: &[u8]) -> String {
    use base64::Engine;
    use md5::Digest;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(data))
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// The UploadId of an Initiate Multipart Upload answer.
pub fn upload_id_of(xml: &str) -> String {
    xml.split("<UploadId>")
        .nth(1)
        .and_then(|x| x.split("</UploadId>").next())
        .unwrap_or_else(|| panic!("no UploadId in {xml}"))
        .to_string()
}

/// Initiates a multipart upload of `key` (with `extra` headers); its UploadId.
pub async fn initiate(s: &TestServer, key: &str, extra: &[(&str, &str)]) -> String {
    let mut c = Call::new("POST", key).q("uploads", "");
    for (n, v) in extra {
        c = c.h(n, v);
    }
    let r = s.send(c).await;
    assert_eq!(r.status(), 200);
    upload_id_of(&r.text().await.expect("xml"))
}

/// The Complete Multipart Upload body for `(part number, ETag)` pairs.
pub fn complete_doc(parts: &[(u32, String)]) -> String {
    let mut d = String::from("<CompleteMultipartUpload>");
    for (n, e) in parts {
        d.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>"
        ));
    }
    d.push_str("</CompleteMultipartUpload>");
    d
}
