//! `demo-shop`: runs the demo shop (see `synthetic_e2e::shop`) as a
//! standalone server, for `make demo` and for poking at it by hand.
//!
//! Prints exactly one line, `listening on http://ADDR`, once it accepts
//! connections, so a wrapper script can wait for it and learn the port.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use synthetic_e2e::shop::{self, ShopConfig};

const USAGE: &str = "\
usage: demo-shop [--addr IP:PORT] [--email EMAIL] [--password PASSWORD]

  --addr      address to listen on (default 127.0.0.1:0, an OS-chosen port)
  --email     synthetic account email (env SHOP_EMAIL, default synthetic-monitor@example.com)
  --password  synthetic account password (env SHOP_PASSWORD, default correct-horse-battery-staple)

Faults are injected at run time through the admin API, e.g.
  curl -X PUT localhost:PORT/admin/faults/products -d '{\"fault\":\"500\"}'";

struct Args {
    addr: SocketAddr,
    cfg: ShopConfig,
}

/// `Ok(None)` means `--help` was asked for.
fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut cfg = ShopConfig::default();
    if let Ok(email) = std::env::var("SHOP_EMAIL") {
        cfg.email = email;
    }
    if let Ok(password) = std::env::var("SHOP_PASSWORD") {
        cfg.password = password;
    }
    let mut addr = SocketAddr::from(([127, 0, 0, 1], 0));
    while let Some(arg) = argv.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg, None),
        };
        let mut value = || inline.clone().or_else(|| argv.next()).ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => {
                let v = value()?;
                addr = v.parse().map_err(|e| format!("--addr {v:?} is not IP:PORT: {e}"))?;
            }
            "--email" => cfg.email = value()?,
            "--password" => cfg.password = value()?,
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    if cfg.email.is_empty() || cfg.password.is_empty() {
        return Err("email and password must not be empty".to_owned());
    }
    Ok(Some(Args { addr, cfg }))
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("demo-shop: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let running = match shop::spawn_on(args.addr, args.cfg).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("demo-shop: cannot listen on {}: {e}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    // The wrapper waits for this line; an unflushed pipe would hang it.
    if writeln!(out, "listening on {}", running.base_url()).and_then(|()| out.flush()).is_err() {
        return ExitCode::FAILURE;
    }
    drop(out);
    if let Err(e) = shutdown_signal().await {
        eprintln!("demo-shop: cannot wait for signals: {e}");
    }
    match running.stop().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo-shop: {e}");
            ExitCode::FAILURE
        }
    }
}
