//! COS request signing (`q-sign-algorithm=sha1`), as pure functions.
//!
//! This module owns the one implementation of the COS signature: the URL-encoding rule,
//! the canonical HttpString, the StringToSign and the `Authorization` header value. The
//! client signs with it and `coslocal` verifies with it; both are pinned by the golden
//! vectors produced by the official Python SDK (see the tests at the bottom).

use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};

type HmacSha1 = Hmac<Sha1>;

/// Percent-encodes `s` by the COS signing rule: only `A-Z a-z 0-9 - _ . ~` stay as they
/// are; every other UTF-8 byte becomes `%XX` with uppercase hex (space is `%20`).
pub fn cos_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX_UPPER[(b >> 4) as usize] as char);
            out.push(HEX_UPPER[(b & 0xf) as usize] as char);
        }
    }
    out
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// The validity window of a signature, `start;end` in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTime {
    pub start: u64,
    pub end: u64,
}

impl KeyTime {
    /// The window the client uses: started 60 s in the past (tolerates a client clock that
    /// runs ahead of the server's) and valid for `lifetime_secs` after now.
    pub fn around_now(lifetime_secs: u64) -> KeyTime {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        KeyTime {
            start: now.saturating_sub(60),
            end: now + lifetime_secs,
        }
    }

    /// Parses `start;end`.
    pub fn parse(s: &str) -> Option<KeyTime> {
        let (a, b) = s.split_once(';')?;
        Some(KeyTime {
            start: a.trim().parse().ok()?,
            end: b.trim().parse().ok()?,
        })
    }
}

impl std::fmt::Display for KeyTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{};{}", self.start, self.end)
    }
}

/// What goes into a signature. `path` is the decoded object path (`/` + raw key);
/// `params` are decoded query parameters; `headers` are the headers chosen for signing.
#[derive(Debug, Clone, Copy)]
pub struct SignInput<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub params: &'a [(&'a str, &'a str)],
    pub headers: &'a [(&'a str, &'a str)],
    pub key_time: KeyTime,
}

/// Every intermediate string of a signature, kept so tests and `coslocal`'s error
/// messages can show exactly where two sides disagree.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedParts {
    pub http_parameters: String,
    pub url_param_list: String,
    pub http_headers: String,
    pub header_list: String,
    pub http_string: String,
    pub string_to_sign: String,
    pub signature: String,
}

impl std::fmt::Debug for SignedParts {
    // The parts can carry signed header values (an SSE-C key, a token): never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedParts")
            .field("header_list", &self.header_list)
            .field("url_param_list", &self.url_param_list)
            .field("signature", &self.signature)
            .finish_non_exhaustive()
    }
}

/// SignKey = hex(HMAC-SHA1(SecretKey, KeyTime)).
pub fn sign_key(secret_key: &str, key_time: KeyTime) -> String {
    hex(&hmac_sha1(
        secret_key.as_bytes(),
        key_time.to_string().as_bytes(),
    ))
}

/// Encodes and sorts `pairs` into (`n1=v1&n2=v2`, `n1;n2`): names are encoded then
/// lowercased, values are encoded with their case kept.
fn canonical(pairs: &[(&str, &str)]) -> (String, String) {
    let mut enc: Vec<(String, String)> = pairs
        .iter()
        .map(|(n, v)| (cos_encode(n).to_ascii_lowercase(), cos_encode(v)))
        .collect();
    enc.sort();
    let joined = enc
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let names = enc
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    (joined, names)
}

/// Computes the signature from an already derived SignKey (the hex text).
pub fn sign_with_key(sign_key_hex: &str, input: &SignInput<'_>) -> SignedParts {
    let (http_parameters, url_param_list) = canonical(input.params);
    let (http_headers, header_list) = canonical(input.headers);
    let http_string = format!(
        "{}\n{}\n{}\n{}\n",
        input.method.to_ascii_lowercase(),
        input.path,
        http_parameters,
        http_headers
    );
    let string_to_sign = format!(
        "sha1\n{}\n{}\n",
        input.key_time,
        hex(&Sha1::digest(http_string.as_bytes()))
    );
    // The HMAC key is SignKey's 40-character hex text, not its raw bytes.
    let signature = hex(&hmac_sha1(
        sign_key_hex.as_bytes(),
        string_to_sign.as_bytes(),
    ));
    SignedParts {
        http_parameters,
        url_param_list,
        http_headers,
        header_list,
        http_string,
        string_to_sign,
        signature,
    }
}

/// Signs `input` with a SecretKey and returns the parts.
pub fn sign(secret_key: &str, input: &SignInput<'_>) -> SignedParts {
    sign_with_key(&sign_key(secret_key, input.key_time), input)
}

/// The `Authorization` header value, fields in the SDKs' order.
pub fn authorization(secret_id: &str, key_time: KeyTime, parts: &SignedParts) -> String {
    format!(
        "q-sign-algorithm=sha1&q-ak={secret_id}&q-sign-time={key_time}&q-key-time={key_time}\
         &q-header-list={}&q-url-param-list={}&q-signature={}",
        parts.header_list, parts.url_param_list, parts.signature
    )
}

/// The fields of an `Authorization` header, parsed as an unordered `&`-separated map
/// (cosfs sends them in another order than the SDKs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuthorization {
    pub algorithm: String,
    pub secret_id: String,
    pub sign_time: KeyTime,
    pub key_time: KeyTime,
    pub header_list: Vec<String>,
    pub url_param_list: Vec<String>,
    pub signature: String,
}

/// Parses an `Authorization` header; `Err` names the field that is missing or malformed.
pub fn parse_authorization(value: &str) -> Result<ParsedAuthorization, String> {
    let mut fields = std::collections::HashMap::new();
    for part in value.trim().split('&') {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        fields.insert(k.trim().to_string(), v.trim().to_string());
    }
    let get = |k: &str| {
        fields
            .get(k)
            .cloned()
            .ok_or_else(|| format!("Authorization lacks {k}"))
    };
    let time = |k: &str| -> Result<KeyTime, String> {
        KeyTime::parse(&get(k)?).ok_or_else(|| format!("Authorization has a malformed {k}"))
    };
    let list = |s: String| -> Vec<String> {
        s.split(';')
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    };
    Ok(ParsedAuthorization {
        algorithm: get("q-sign-algorithm")?,
        secret_id: get("q-ak")?,
        sign_time: time("q-sign-time")?,
        key_time: time("q-key-time")?,
        header_list: list(get("q-header-list")?),
        url_param_list: list(get("q-url-param-list")?),
        signature: get("q-signature")?,
    })
}

fn hmac_sha1(key: &[u8], msg: &[u8]) -> [u8; 20] {
    let mut mac = HmacSha1::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const VECTORS: &str = include_str!("testdata/cos-sign-vectors.json");

    fn pairs(v: &Value) -> Vec<(String, String)> {
        match v {
            Value::Array(a) => a
                .iter()
                .map(|p| {
                    (
                        p[0].as_str().unwrap().to_string(),
                        p[1].as_str().unwrap().to_string(),
                    )
                })
                .collect(),
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn borrow(v: &[(String, String)]) -> Vec<(&str, &str)> {
        v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
    }

    #[test]
    fn every_sdk_vector_reproduces_byte_for_byte() {
        let doc: Value = serde_json::from_str(VECTORS).unwrap();
        let vectors = doc["vectors"].as_array().unwrap();
        assert_eq!(vectors.len(), 20);
        for v in vectors {
            let name = v["name"].as_str().unwrap();
            let i = &v["inputs"];
            let e = &v["expected"];
            let kt = KeyTime::parse(i["key_time"].as_str().unwrap()).unwrap();
            let params = pairs(&i["query_params"]);
            let headers = pairs(&i["signed_headers"]);
            let input = SignInput {
                method: i["method"].as_str().unwrap(),
                path: i["path"].as_str().unwrap(),
                params: &borrow(&params),
                headers: &borrow(&headers),
                key_time: kt,
            };
            let key = sign_key(i["secret_key"].as_str().unwrap(), kt);
            assert_eq!(key, e["sign_key"].as_str().unwrap(), "{name}: sign_key");
            let p = sign_with_key(&key, &input);
            assert_eq!(
                p.http_parameters,
                e["http_parameters"].as_str().unwrap(),
                "{name}"
            );
            assert_eq!(
                p.http_headers,
                e["http_headers"].as_str().unwrap(),
                "{name}"
            );
            assert_eq!(p.http_string, e["http_string"].as_str().unwrap(), "{name}");
            assert_eq!(
                p.string_to_sign,
                e["string_to_sign"].as_str().unwrap(),
                "{name}"
            );
            assert_eq!(p.header_list, e["header_list"].as_str().unwrap(), "{name}");
            assert_eq!(
                p.url_param_list,
                e["url_param_list"].as_str().unwrap(),
                "{name}"
            );
            assert_eq!(p.signature, e["signature"].as_str().unwrap(), "{name}");
            let auth = authorization(i["secret_id"].as_str().unwrap(), kt, &p);
            assert_eq!(
                auth,
                e["authorization"].as_str().unwrap(),
                "{name}: authorization"
            );
            // The parser must round-trip what the SDK sent.
            let parsed = parse_authorization(&auth).unwrap();
            assert_eq!(parsed.signature, p.signature);
            assert_eq!(parsed.key_time, kt);
        }
    }

    #[test]
    fn both_doc_examples_reproduce() {
        let doc: Value = serde_json::from_str(VECTORS).unwrap();
        let examples = doc["doc_examples"].as_array().unwrap();
        assert_eq!(examples.len(), 2);
        for v in examples {
            let i = &v["inputs"];
            let e = &v["expected"];
            let kt = KeyTime::parse(i["key_time"].as_str().unwrap()).unwrap();
            let params = pairs(&i["query_params"]);
            let headers = pairs(&i["signed_headers"]);
            let input = SignInput {
                method: i["method"].as_str().unwrap(),
                path: i["path"].as_str().unwrap(),
                params: &borrow(&params),
                headers: &borrow(&headers),
                key_time: kt,
            };
            let p = sign_with_key(i["sign_key"].as_str().unwrap(), &input);
            assert_eq!(p.http_string, e["http_string"].as_str().unwrap());
            assert_eq!(p.string_to_sign, e["string_to_sign"].as_str().unwrap());
            assert_eq!(p.header_list, e["header_list"].as_str().unwrap());
            assert_eq!(p.url_param_list, e["url_param_list"].as_str().unwrap());
            assert_eq!(p.signature, e["signature"].as_str().unwrap());
        }
    }

    #[test]
    fn encoding_rule_matches_the_doc_table() {
        assert_eq!(
            cos_encode("a b+c/=;:,\"~._-"),
            "a%20b%2Bc%2F%3D%3B%3A%2C%22~._-"
        );
        assert_eq!(cos_encode("ü"), "%C3%BC");
    }

    #[test]
    fn authorization_parses_in_any_field_order() {
        let p = parse_authorization(
            "q-sign-algorithm=sha1&q-ak=AK&q-sign-time=1;2&q-key-time=1;2\
             &q-url-param-list=&q-header-list=host&q-signature=ab",
        )
        .unwrap();
        assert_eq!(p.header_list, vec!["host"]);
        assert!(p.url_param_list.is_empty());
        assert!(parse_authorization("q-ak=x").is_err());
    }
}
