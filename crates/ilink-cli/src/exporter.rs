//! `--metrics ADDR`: the runtime's metrics (`ilink_client::metrics`) in the Prometheus text
//! format at `http://ADDR/metrics`, for the long-running commands (`echo`, `tail`).
//!
//! The recorder is `metrics-exporter-prometheus`'s; the listener is ours, so that port 0
//! works (the bound address is printed) and a taken address is a clear error before the
//! command starts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use ilink_client::metrics as names;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::error::{CliError, CliResult};

/// The path the metrics are served at.
pub const PATH: &str = "/metrics";
/// The content type of the Prometheus text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Scrapes served at once; more wait for a slot.
const MAX_CONNECTIONS: usize = 32;
/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How often histograms are folded into what a scrape shows.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The `--metrics` option of a long-running command.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Metrics")]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics while the command runs, e.g.
    /// 127.0.0.1:9898 (port 0: any free port; the address is printed on stderr). Keep it on
    /// loopback unless the network is trusted: the metrics name the bot accounts. The
    /// metrics and their labels: see README, "Metrics".
    #[arg(long, env = "ILINK_METRICS", value_name = "ADDR", value_parser = parse_addr)]
    pub metrics: Option<SocketAddr>,
}

/// `IP:PORT`.
fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!(
            "{s:?} is not IP:PORT, e.g. 127.0.0.1:9898, [::1]:9898, or 127.0.0.1:0 for any free \
             port"
        )
    })
}

/// The running exporter: serving stops when it is dropped (the recorder stays installed).
#[derive(Debug)]
pub struct Exporter {
    addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Exporter {
    /// The address it listens on.
    #[allow(dead_code)] // read by tests; the address is printed
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl MetricsArgs {
    /// Without `--metrics`: nothing. With it: bind the address, install the recorder, serve,
    /// and print the URL on stderr. Fails (exit 1) when the address cannot be bound.
    pub async fn serve(&self) -> CliResult<Option<Exporter>> {
        let Some(addr) = self.metrics else {
            return Ok(None);
        };
        let listener = bind(addr).await?;
        let addr = listener
            .local_addr()
            .map_err(|e| CliError::io("reading the metrics address", e))?;
        let handle = install()?;
        eprintln!("Metrics: http://{addr}{PATH}");
        let upkeep = {
            let handle = handle.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(UPKEEP_EVERY);
                loop {
                    every.tick().await;
                    handle.run_upkeep();
                }
            })
        };
        let server = tokio::spawn(accept_loop(listener, handle));
        Ok(Some(Exporter {
            addr,
            tasks: vec![upkeep, server],
        }))
    }
}

async fn bind(addr: SocketAddr) -> CliResult<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        let err = CliError::failure(format!("cannot serve metrics on {addr}: {e}"));
        match e.kind() {
            std::io::ErrorKind::AddrInUse => err.hint(
                "another process listens on that address: choose another port for --metrics, \
                 or port 0 for any free one",
            ),
            std::io::ErrorKind::AddrNotAvailable => {
                err.hint("that IP is not an address of this machine; try 127.0.0.1")
            }
            std::io::ErrorKind::PermissionDenied => {
                err.hint("ports below 1024 need privileges: choose a higher port")
            }
            _ => err,
        }
    })
}

/// The Prometheus recorder, installed process-wide, with the histograms bucketed as
/// `ilink_client::metrics` suggests, and every metric described.
fn install() -> CliResult<PrometheusHandle> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(names::POLL_LATENCY.to_owned()),
            names::POLL_LATENCY_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(names::HANDLER_DURATION.to_owned()),
                names::HANDLER_DURATION_BUCKETS,
            )
        })
        .map_err(|e| CliError::io("configuring the metrics", e))?;
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|e| CliError::io("installing the metrics recorder", e))?;
    names::describe();
    Ok(handle)
}

async fn accept_loop(listener: TcpListener, handle: PrometheusHandle) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "metrics: accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let handle = handle.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&req, &handle)) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "metrics: a connection failed");
            }
            drop(permit);
        });
    }
}

fn answer(req: &Request<Incoming>, handle: &PrometheusHandle) -> Response<Full<Bytes>> {
    let (status, body) = if req.uri().path() != PATH {
        (StatusCode::NOT_FOUND, format!("not found: try {PATH}\n"))
    } else if req.method() != Method::GET && req.method() != Method::HEAD {
        (StatusCode::METHOD_NOT_ALLOWED, "use GET\n".to_owned())
    } else {
        (StatusCode::OK, handle.render())
    };
    let content_type = if status == StatusCode::OK {
        CONTENT_TYPE
    } else {
        "text/plain; charset=utf-8"
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_or_say_what_is_expected() {
        assert_eq!(
            parse_addr("127.0.0.1:9898"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 9898)))
        );
        assert_eq!(parse_addr("[::1]:0").map(|a| a.port()), Ok(0));
        let e = parse_addr("localhost").unwrap_err();
        assert!(e.contains("IP:PORT"), "{e}");
        assert!(parse_addr("127.0.0.1").is_err());
        assert!(parse_addr("127.0.0.1:99999").is_err());
    }

    #[tokio::test]
    async fn a_taken_address_is_a_clear_failure() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let e = bind(addr).await.unwrap_err();
        assert_eq!(e.exit as i32, 1);
        assert!(e.message.contains(&addr.to_string()), "{}", e.message);
        assert!(
            e.hint.as_deref().is_some_and(|h| h.contains("port 0")),
            "{e}"
        );
    }
}
