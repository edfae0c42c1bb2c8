//! HTTPS targets on loopback with certificates made in the test: a private CA ([`TestCa`]) and a
//! server ([`TlsTarget`]) whose leaf certificate, signed by that CA, expires when the test says.
//! It answers every request with the healthy `/health` body and counts the requests, so a test
//! can prove that reading the certificate cost no request of its own.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use time::{Duration, OffsetDateTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types::PrivateKeyDer, pki_types::PrivatePkcs8KeyDer};

/// The subject every leaf gets, so a test can look for it in a summary.
pub const LEAF_SUBJECT: &str = "CN=tls-target.test";

/// A private certificate authority, and its certificate as a PEM bundle file for
/// `TARGET_CA_BUNDLE`. The file is removed when the CA is dropped.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    bundle: PathBuf,
}

impl TestCa {
    pub fn new(name: &str) -> Result<Self, String> {
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.not_before = OffsetDateTime::now_utc() - Duration::days(30);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(3650);
        let pem = params.self_signed(&key).map_err(|e| e.to_string())?.pem();
        let bundle = std::env::temp_dir().join(format!("synthetic-test-ca-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&bundle, &pem).map_err(|e| format!("{}: {e}", bundle.display()))?;
        Ok(TestCa { issuer: Issuer::new(params, key), pem, bundle })
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The PEM file holding this CA, for `TARGET_CA_BUNDLE`.
    pub fn bundle_path(&self) -> &Path {
        &self.bundle
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.bundle);
    }
}

/// When a leaf certificate is valid, relative to now.
#[derive(Clone, Copy, Debug)]
pub enum Validity {
    /// Valid since yesterday, until `days` days and an hour from now (the hour keeps the whole
    /// days left at `days` for the length of a test).
    ExpiresInDays(i64),
    /// Valid for a month until yesterday.
    ExpiredYesterday,
}

/// An HTTPS server on 127.0.0.1 with a leaf certificate for `127.0.0.1` and `localhost`.
pub struct TlsTarget {
    port: u16,
    leaf_der: Vec<u8>,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TlsTarget {
    pub async fn start(ca: &TestCa, validity: Validity) -> Result<Self, String> {
        let now = OffsetDateTime::now_utc();
        let (not_before, not_after) = match validity {
            Validity::ExpiresInDays(days) => (now - Duration::days(1), now + Duration::days(days) + Duration::hours(1)),
            Validity::ExpiredYesterday => (now - Duration::days(31), now - Duration::days(1)),
        };
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .map_err(|e| e.to_string())?;
        params.distinguished_name.push(DnType::CommonName, "tls-target.test");
        params.not_before = not_before;
        params.not_after = not_after;
        let leaf = params.signed_by(&key, &ca.issuer).map_err(|e| e.to_string())?;
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], private)
            .map_err(|e| e.to_string())?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, counted) = (acceptor.clone(), counted.clone());
                tokio::spawn(async move {
                    // A refused handshake (the client does not trust the certificate) just ends
                    // the connection, as a real server's would.
                    if let Ok(tls) = acceptor.accept(stream).await {
                        serve(tls, &counted).await;
                    }
                });
            }
        });
        Ok(TlsTarget { port, leaf_der: leaf.der().to_vec(), requests, task })
    }

    /// `https://127.0.0.1:<port>`, for `TARGET_BASE_URL`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The leaf certificate the server presents, DER.
    pub fn leaf_der(&self) -> &[u8] {
        &self.leaf_der
    }

    /// Requests answered so far (handshakes that failed are not requests).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for TlsTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const HEALTHY: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}";

/// Answers each request on the connection (keep-alive included) with [`HEALTHY`]. Requests
/// have no body here (the health journey is a GET), so the end of the headers ends a request.
async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut stream: S, counted: &AtomicUsize) {
    let mut pending = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            pending.drain(..end + 4);
            counted.fetch_add(1, Ordering::SeqCst);
            if stream.write_all(HEALTHY).await.is_err() || stream.flush().await.is_err() {
                return;
            }
        }
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => pending.extend_from_slice(&buffer[..read]),
        }
    }
}
