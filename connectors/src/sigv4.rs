//! AWS Signature Version 4: the canonical request, the string to sign, the derived
//! signing key and the `Authorization` header, over HMAC-SHA256.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// What a signature needs besides the request.
pub struct Credentials<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
    pub region: &'a str,
    pub service: &'a str,
}

/// The request as signed: the path already percent-encoded as sent, the query as
/// decoded `(name, value)` pairs, and the headers to sign (any case).
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// The headers to add (`x-amz-date`, `x-amz-content-sha256`, `x-amz-security-token`,
/// `authorization`) and the canonical query string the URL must carry.
pub struct Signed {
    pub headers: Vec<(String, String)>,
    pub canonical_query: String,
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length, so this cannot fail.
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// RFC 3986 encoding as SigV4 wants it: everything but unreserved characters escaped,
/// upper-case hex.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The canonical query string: names and values encoded, sorted by name then value.
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Signs a request at `amz_date` (`20150830T123600Z`).
pub fn sign(req: &Request<'_>, creds: &Credentials<'_>, amz_date: &str) -> Signed {
    let date = amz_date.get(..8).unwrap_or(amz_date);
    let payload_hash = sha256_hex(req.body);
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), collapse(v)))
        .collect();
    let mut added = vec![("x-amz-date".to_owned(), amz_date.to_owned())];
    if creds.service == "s3" {
        added.push(("x-amz-content-sha256".to_owned(), payload_hash.clone()));
    }
    if let Some(token) = creds.session_token {
        added.push(("x-amz-security-token".to_owned(), token.to_owned()));
    }
    headers.extend(added.iter().cloned());
    headers.sort();
    headers.dedup_by(|a, b| a.0 == b.0);
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    // S3 signs the path as sent; every other service encodes each segment once more.
    let path = if req.path.is_empty() { "/" } else { req.path };
    let canonical_path = if creds.service == "s3" {
        path.to_owned()
    } else {
        path.split('/')
            .map(|seg| uri_encode(seg, false))
            .collect::<Vec<_>>()
            .join("/")
    };
    let canonical_query = canonical_query(req.query);
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        canonical_path,
        canonical_query,
        canonical_headers,
        signed_headers,
        payload_hash
    );
    let scope = format!("{date}/{}/{}/aws4_request", creds.region, creds.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let k_date = hmac(
        format!("AWS4{}", creds.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac(&k_date, creds.region.as_bytes());
    let k_service = hmac(&k_region, creds.service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let signature = hex(&hmac(&k_signing, string_to_sign.as_bytes()));
    added.push((
        "authorization".to_owned(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            creds.access_key_id
        ),
    ));
    Signed {
        headers: added,
        canonical_query,
    }
}

fn collapse(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The current time as SigV4 writes it.
pub fn amz_now() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()
}

#[cfg(test)]
mod tests {
    //! Vectors from AWS's Signature Version 4 test suite (`get-vanilla`, `post-vanilla`,
    //! `get-vanilla-query-order-key-case`) and the IAM `ListUsers` example of the
    //! signing documentation.
    use super::*;

    const KEY_ID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn creds(service: &'static str) -> Credentials<'static> {
        Credentials {
            access_key_id: KEY_ID,
            secret_access_key: SECRET,
            session_token: None,
            region: "us-east-1",
            service,
        }
    }

    fn authorization(s: &Signed) -> &str {
        &s.headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1
    }

    #[test]
    fn get_vanilla() {
        let headers = vec![("Host".to_owned(), "example.amazonaws.com".to_owned())];
        let req = Request {
            method: "GET",
            path: "/",
            query: &[],
            headers: &headers,
            body: b"",
        };
        let s = sign(&req, &creds("service"), "20150830T123600Z");
        assert_eq!(
            authorization(&s),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn post_vanilla() {
        let headers = vec![("Host".to_owned(), "example.amazonaws.com".to_owned())];
        let req = Request {
            method: "POST",
            path: "/",
            query: &[],
            headers: &headers,
            body: b"",
        };
        let s = sign(&req, &creds("service"), "20150830T123600Z");
        assert_eq!(
            authorization(&s),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
    }

    #[test]
    fn get_vanilla_query_order_key_case() {
        let headers = vec![("Host".to_owned(), "example.amazonaws.com".to_owned())];
        let query = vec![
            ("Param2".to_owned(), "value2".to_owned()),
            ("Param1".to_owned(), "value1".to_owned()),
        ];
        let req = Request {
            method: "GET",
            path: "/",
            query: &query,
            headers: &headers,
            body: b"",
        };
        let s = sign(&req, &creds("service"), "20150830T123600Z");
        assert_eq!(s.canonical_query, "Param1=value1&Param2=value2");
        assert_eq!(
            authorization(&s),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
    }

    #[test]
    fn iam_list_users_example() {
        let headers = vec![
            ("Host".to_owned(), "iam.amazonaws.com".to_owned()),
            (
                "Content-Type".to_owned(),
                "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
            ),
        ];
        let query = vec![
            ("Action".to_owned(), "ListUsers".to_owned()),
            ("Version".to_owned(), "2010-05-08".to_owned()),
        ];
        let req = Request {
            method: "GET",
            path: "/",
            query: &query,
            headers: &headers,
            body: b"",
        };
        let s = sign(&req, &creds("iam"), "20150830T123600Z");
        assert!(authorization(&s).ends_with(
            "SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        ));
    }
}
