//! A step's `sign`: an HMAC-SHA256 of the request, as APIs that verify their callers by a shared
//! key ask for (webhook-style: a timestamp and the exact body, compared in constant time within
//! a time window).
//!
//! Each attempt is signed as it is sent: a retry or a poll gets a fresh `{{now.*}}`, in the
//! signature and in the step's headers that name it (a timestamp header the server compares
//! with the signed one), so a server's time window never refuses a later attempt. The body, the
//! path and `{{uuid}}` stay as the step was rendered: an idempotent retry sends the same write.
//!
//! The HMAC is aws-lc-rs's, the crypto the TLS stack already builds. The key is a secret: it is
//! never in a `Debug`, and the recorder scrubs it from everything a run hands on.

use super::file::SignEncoding;
use super::template::{GeneratedValues, PerAttempt, Sent};
use crate::http::HttpRequest;
use crate::secret::Secret;
use aws_lc_rs::hmac;
use base64::Engine;
use std::fmt;

/// A step's `sign`, rendered for one run: all but what each attempt supplies.
#[derive(Clone)]
pub struct Signing {
    pub key: Secret<String>,
    pub message: PerAttempt,
    pub header: String,
    pub prefix: PerAttempt,
    pub encoding: SignEncoding,
    /// The step's headers that name `{{now.*}}`: they move with the signature.
    pub moving_headers: Vec<(String, PerAttempt)>,
    /// The values the step was rendered with: the first attempt's, so its headers, body and
    /// signature name one instant.
    pub rendered: GeneratedValues,
}

impl Signing {
    /// Signs `request` for one attempt made at `now`: the moving headers take `now`'s values,
    /// then the signature header (the only one of its name) is added over the request as it is.
    pub fn sign(&self, request: &mut HttpRequest, now: &GeneratedValues) {
        for (name, value) in &self.moving_headers {
            if let Some((_, slot)) = request.headers.iter_mut().find(|(h, _)| h.eq_ignore_ascii_case(name)) {
                *slot = value.text(now);
            }
        }
        let path = &request.url[url::Position::BeforePath..url::Position::AfterQuery];
        let body = request.body.as_ref().map_or(&[][..], |b| b.bytes.expose().as_slice());
        let mut message = Vec::new();
        self.message.write(&mut message, now, &Sent { method: request.method.as_str(), path, body });
        let tag = hmac_sha256(self.key.expose().as_bytes(), &message);
        let signature = format!("{}{}", self.prefix.text(now), encode(&tag, self.encoding));
        request.headers.retain(|(h, _)| !h.eq_ignore_ascii_case(&self.header));
        request.headers.push((self.header.clone(), signature));
    }
}

impl fmt::Debug for Signing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signing {{ header: {:?}, encoding: {:?}, key: {} }}", self.header, self.encoding, self.key)
    }
}

/// HMAC-SHA256 of `message` under `key` (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message).as_ref().to_vec()
}

pub fn encode(bytes: &[u8], encoding: SignEncoding) -> String {
    match encoding {
        SignEncoding::Hex => hex::encode(bytes),
        SignEncoding::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231, test cases 1 and 2.
        let tag = hmac_sha256(&[0x0b; 20], b"Hi There");
        assert_eq!(hex::encode(&tag), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
        let tag = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(encode(&tag, SignEncoding::Hex), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert_eq!(encode(&tag, SignEncoding::Base64), "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=");
    }
}
