//! Hostile and broken HTTP targets on loopback, speaking raw TCP so they can misbehave in ways a
//! well-mannered HTTP framework will not: hang, drip, flood, lie, loop, reset.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hostility {
    /// Accepts, reads the request, never answers.
    Hang,
    /// Sends headers, then one body byte every 200 ms.
    SlowDrip,
    /// A 50 MB body that is valid JSON with the data a check asks for: only the body cap can
    /// fail it.
    HugeBody,
    /// 200 with an HTML page where JSON was promised.
    NonJson,
    /// 200 with bytes that are not UTF-8.
    InvalidUtf8,
    /// Redirects to itself forever.
    RedirectLoop,
    /// Resets the connection (RST) after reading the request.
    Reset,
}

pub struct HostileServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl HostileServer {
    pub async fn start(mode: Hostility) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(misbehave(stream, mode));
            }
        });
        Ok(HostileServer { addr, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The same server addressed as HTTPS: a TLS client meets plain HTTP and must fail cleanly.
    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback address nothing listens on: connections are refused at once.
pub async fn refused_url() -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    drop(listener);
    Ok(format!("http://{addr}"))
}

async fn misbehave(mut stream: TcpStream, mode: Hostility) {
    let mut buffer = [0u8; 8192];
    if stream.read(&mut buffer).await.is_err() {
        return;
    }
    // Write errors mean the client gave up, which is what the client side is tested for.
    let _ = match mode {
        Hostility::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
        Hostility::SlowDrip => drip(&mut stream).await,
        Hostility::HugeBody => flood(&mut stream).await,
        Hostility::NonJson => {
            respond(&mut stream, "200 OK", "application/json", b"<html><body>Maintenance</body></html>").await
        }
        Hostility::InvalidUtf8 => {
            respond(&mut stream, "200 OK", "application/json", &[0xff, 0xfe, 0xfd, b'{', 0x80]).await
        }
        Hostility::RedirectLoop => {
            let head = "HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n";
            stream.write_all(head.as_bytes()).await
        }
        Hostility::Reset => {
            // Zero linger turns the close into an RST instead of an orderly FIN; with a zero
            // timeout the close cannot block, which is what the deprecation warns about.
            #[allow(deprecated)]
            let _ = stream.set_linger(Some(Duration::ZERO));
            drop(stream);
            Ok(())
        }
    };
}

async fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await
}

async fn drip(stream: &mut TcpStream) -> std::io::Result<()> {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n";
    stream.write_all(head.as_bytes()).await?;
    for _ in 0..100_000 {
        stream.write_all(b" ").await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

async fn flood(stream: &mut TcpStream) -> std::io::Result<()> {
    // `{"data":[0,0,…,0]}`: valid JSON whose `/data` has millions of items.
    const SIZE: usize = 50 * 1024 * 1024;
    const OPEN: &[u8] = b"{\"data\":[";
    const CLOSE: &[u8] = b"0]}";
    let head = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {SIZE}\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(OPEN).await?;
    let chunk = b"0,".repeat(32 * 1024);
    let mut left = SIZE - OPEN.len() - CLOSE.len();
    while left > 0 {
        // `left` stays even: SIZE, OPEN (9) and CLOSE (3) leave an even count of "0," bytes.
        let n = left.min(chunk.len());
        stream.write_all(&chunk[..n]).await?;
        left -= n;
    }
    stream.write_all(CLOSE).await
}
