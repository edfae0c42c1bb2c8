//! httpbin's compressed-response endpoints (httpbin.org, "Response formats"): `GET /gzip`,
//! `GET /deflate` and `GET /brotli` answer a JSON body compressed with that coding and
//! `Content-Encoding` set, whatever the request's `Accept-Encoding` says, with the request's
//! headers echoed and a flag naming the coding (`{"gzipped": true, "headers": {...}, "method":
//! "GET"}`, `"deflated"`, `"brotli"`). `GET /zstd` does the same for zstd (`"zstd": true`), as
//! go-httpbin does. `deflate` is the zlib format (RFC 9110 8.4.1.2), as httpbin sends it.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::{RunningFake, lock, serve};

/// What httpbin saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpbinState {
    /// The `Content-Encoding` of every compressed body sent, in order.
    pub sent: Vec<&'static str>,
    /// The `Accept-Encoding` of every request, in order.
    pub accept_encoding: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct HttpbinHandle(Arc<Mutex<HttpbinState>>);

impl HttpbinHandle {
    pub fn state(&self) -> HttpbinState {
        lock(&self.0).clone()
    }
}

pub fn router() -> (Router, HttpbinHandle) {
    let handle = HttpbinHandle::default();
    let router = Router::new()
        .route("/gzip", get(|s: State<HttpbinHandle>, h: HeaderMap| compressed(s, h, "gzip", "gzipped")))
        .route("/deflate", get(|s: State<HttpbinHandle>, h: HeaderMap| compressed(s, h, "deflate", "deflated")))
        .route("/brotli", get(|s: State<HttpbinHandle>, h: HeaderMap| compressed(s, h, "br", "brotli")))
        .route("/zstd", get(|s: State<HttpbinHandle>, h: HeaderMap| compressed(s, h, "zstd", "zstd")))
        .with_state(handle.clone());
    (router, handle)
}

pub async fn spawn() -> io::Result<RunningFake<HttpbinHandle>> {
    let (router, handle) = router();
    serve(router, handle).await
}

/// `body` compressed with `coding` (an HTTP content-coding name).
pub fn compress(coding: &str, body: &[u8]) -> io::Result<Vec<u8>> {
    match coding {
        "gzip" => {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(body)?;
            encoder.finish()
        }
        "deflate" => {
            let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(body)?;
            encoder.finish()
        }
        "br" => {
            let mut out = Vec::new();
            let mut encoder = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            encoder.write_all(body)?;
            drop(encoder);
            Ok(out)
        }
        "zstd" => zstd::encode_all(body, 3),
        other => Err(io::Error::other(format!("unknown content-coding {other}"))),
    }
}

async fn compressed(
    State(handle): State<HttpbinHandle>,
    headers: HeaderMap,
    coding: &'static str,
    flag: &'static str,
) -> Response {
    let echoed: Map<String, Value> = headers
        .iter()
        .map(|(name, value)| (title_case(name.as_str()), Value::from(String::from_utf8_lossy(value.as_bytes()))))
        .collect();
    let body = json!({ flag: true, "headers": echoed, "method": "GET" }).to_string();
    let accept = headers.get(header::ACCEPT_ENCODING).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let bytes = match compress(coding, body.as_bytes()) {
        Ok(bytes) => bytes,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let mut state = lock(&handle.0);
    state.sent.push(coding);
    state.accept_encoding.push(accept.unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json"), (header::CONTENT_ENCODING, coding)], bytes).into_response()
}

/// `accept-encoding` as httpbin echoes it: `Accept-Encoding`.
fn title_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[tokio::test]
    async fn each_endpoint_sends_its_coding_which_decodes_to_the_flagged_json() {
        let fake = spawn().await.unwrap();
        // A client that decodes nothing, to see the bytes as sent.
        let http = reqwest::Client::builder().no_proxy().no_gzip().no_deflate().no_brotli().no_zstd().build().unwrap();
        for (path, coding, flag) in [
            ("gzip", "gzip", "gzipped"),
            ("deflate", "deflate", "deflated"),
            ("brotli", "br", "brotli"),
            ("zstd", "zstd", "zstd"),
        ] {
            let resp = http
                .get(format!("{}/{path}", fake.base_url()))
                .header("accept-encoding", "identity")
                .send()
                .await
                .unwrap();
            assert_eq!(resp.headers().get("content-encoding").unwrap(), coding);
            let raw = resp.bytes().await.unwrap().to_vec();
            let mut plain = Vec::new();
            match coding {
                "gzip" => flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut plain).map(drop),
                "deflate" => flate2::read::ZlibDecoder::new(&raw[..]).read_to_end(&mut plain).map(drop),
                "br" => brotli::Decompressor::new(&raw[..], 4096).read_to_end(&mut plain).map(drop),
                _ => zstd::stream::read::Decoder::new(&raw[..]).unwrap().read_to_end(&mut plain).map(drop),
            }
            .unwrap();
            assert!(serde_json::from_slice::<Value>(&raw).is_err(), "{coding} is not plain JSON on the wire");
            let body: Value = serde_json::from_slice(&plain).unwrap();
            assert_eq!(
                (body[flag].as_bool(), body["headers"]["Accept-Encoding"].as_str()),
                (Some(true), Some("identity"))
            );
        }
        assert_eq!(fake.handle().state().sent, ["gzip", "deflate", "br", "zstd"]);
    }
}
