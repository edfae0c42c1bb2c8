//! Log setup for every function: Lambda's default subscriber, with the one dependency target
//! that would print secrets capped, writing through the process's scrubber, which also words
//! panics.
//!
//! Every log line, at every level and from every crate, is scrubbed of what the runs of this
//! process learned ([`Scrubber::process_scrub`]) on its way to stdout, and so is a panic's
//! message on its way to stderr.
//!
//! `lambda_runtime` logs every raw invocation event at TRACE (target
//! `lambda_runtime::layers::api_response`). An event can carry a `target_base_url` with
//! credentials in it, which we refuse without echoing, so that line would be the only place the
//! password shows up. The cap holds whatever `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG` say; everything
//! else follows them exactly as `lambda_runtime::tracing::init_default_subscriber` does (level,
//! and JSON when Lambda's log format is JSON).

use crate::secret::Scrubber;
use lambda_runtime::tracing::subscriber::filter::{Directive, EnvFilter, LevelFilter};
use std::io::Write;
use std::str::FromStr;

/// Targets that may print request or event bodies, and the most they may log.
const CAPPED: &[&str] = &["lambda_runtime::layers::api_response=debug"];

pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").or_else(|_| std::env::var("RUST_LOG"));
    let level = LevelFilter::from_str(level.as_deref().unwrap_or("INFO")).unwrap_or(LevelFilter::INFO);
    let collector = lambda_runtime::tracing::subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_writer(|| Scrubbed(std::io::stdout()))
        .with_env_filter(filter(EnvFilter::builder().with_default_directive(level.into()).from_env_lossy()));
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    if json {
        collector.json().init()
    } else {
        collector.init()
    }
    scrub_panics();
}

/// Panics print their message scrubbed, instead of through the default hook.
pub fn scrub_panics() {
    std::panic::set_hook(Box::new(|info| eprintln!("{}", Scrubber::process_scrub(&info.to_string()))));
}

/// Runs `future`; should it panic, the panic goes on with its message scrubbed, so what the
/// Lambda runtime reports of it ("Lambda panicked: ...") is scrubbed too.
pub async fn scrubbing_panics<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| future.as_mut().poll(cx))).unwrap_or_else(|payload| {
            let message = payload
                .downcast_ref::<&str>()
                .map(|text| text.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            std::panic::resume_unwind(Box::new(Scrubber::process_scrub(&message)))
        })
    })
    .await
}

/// A writer that scrubs what it is given before passing it on. The log formatter hands it one
/// whole line per write, so a value is never split across two writes.
pub struct Scrubbed<W>(pub W);

impl<W: Write> Write for Scrubbed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(Scrubber::process_scrub(&String::from_utf8_lossy(buf)).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

fn filter(mut filter: EnvFilter) -> EnvFilter {
    for capped in CAPPED {
        if let Ok(directive) = Directive::from_str(capped) {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_are_scrubbed_of_what_the_process_learned() {
        let mut run = Scrubber::default();
        run.add(&crate::secret::Secret::new("log-line-token-9c2e".into()));
        let mut out = Scrubbed(Vec::new());
        write!(out, "INFO sent Bearer log-line-token-9c2e").unwrap();
        assert_eq!(String::from_utf8(out.0).unwrap(), "INFO sent Bearer [REDACTED]");
    }

    #[tokio::test]
    async fn a_panic_goes_on_with_its_message_scrubbed() {
        let mut run = Scrubber::default();
        run.add(&crate::secret::Secret::new("panic-token-e81d".into()));
        let panicked = tokio::spawn(scrubbing_panics(async {
            let token = String::from("panic-token-e81d");
            if !token.is_empty() {
                panic!("lost token {token}");
            }
        }))
        .await
        .unwrap_err()
        .into_panic();
        assert_eq!(panicked.downcast_ref::<String>().map(String::as_str), Some("lost token [REDACTED]"));
    }

    #[test]
    fn the_raw_event_target_stays_capped_even_at_trace() {
        let capped = filter(EnvFilter::new("trace")).to_string();
        assert!(capped.contains("lambda_runtime::layers::api_response=debug"), "{capped}");
        for directive in CAPPED {
            assert!(Directive::from_str(directive).is_ok(), "{directive} must parse");
        }
    }
}
