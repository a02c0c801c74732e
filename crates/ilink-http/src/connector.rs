//! The TCP connector: direct, or through an HTTP proxy with a `CONNECT` tunnel.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

use crate::error::{BoxError, ProxyFailure};

type ConnectFuture = Pin<Box<dyn Future<Output = Result<TokioIo<TcpStream>, BoxError>> + Send>>;

/// Opens TCP connections, either directly or through a `CONNECT` tunnel of the configured proxy.
/// TLS (for `https`) is layered on top by hyper-rustls.
#[derive(Clone)]
pub(crate) struct Connector {
    direct: HttpConnector,
    tunnel: Option<Tunnel<HttpConnector>>,
    proxy_loopback: bool,
}

impl Connector {
    pub(crate) fn new(
        direct: HttpConnector,
        tunnel: Option<Tunnel<HttpConnector>>,
        proxy_loopback: bool,
    ) -> Self {
        Self {
            direct,
            tunnel,
            proxy_loopback,
        }
    }
}

/// True for `localhost`, `127.0.0.0/8` and `::1`.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// hyper-util's tunnel assumes port 443 when the URI has none; give it the scheme's port.
fn with_explicit_port(dst: Uri) -> Uri {
    if dst.port().is_some() {
        return dst;
    }
    let port = if dst.scheme_str() == Some("http") {
        80
    } else {
        443
    };
    let Some(host) = dst.host() else {
        return dst;
    };
    let authority = format!("{host}:{port}");
    let mut parts = dst.clone().into_parts();
    match authority.parse() {
        Ok(a) => parts.authority = Some(a),
        Err(_) => return dst,
    }
    Uri::from_parts(parts).unwrap_or(dst)
}

impl Service<Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if let Some(tunnel) = &mut self.tunnel {
            match tunnel.poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(Box::new(ProxyFailure(e.into())))),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.direct.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let bypass = !self.proxy_loopback && dst.host().is_some_and(is_loopback_host);
        match &mut self.tunnel {
            Some(tunnel) if !bypass => {
                let fut = tunnel.call(with_explicit_port(dst));
                Box::pin(async move {
                    fut.await
                        .map_err(|e| Box::new(ProxyFailure(Box::new(e))) as BoxError)
                })
            }
            _ => {
                let fut = self.direct.call(dst);
                Box::pin(async move { fut.await.map_err(Into::into) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback_host("127.0.0.1"));
        assert!(is_loopback_host("127.3.2.1"));
        assert!(is_loopback_host("[::1]"));
        assert!(is_loopback_host("LOCALHOST"));
        assert!(!is_loopback_host("ilinkai.weixin.qq.com"));
        assert!(!is_loopback_host("10.0.0.1"));
    }

    #[test]
    fn explicit_port_by_scheme() {
        let u: Uri = "http://example.com/a?b=c".parse().unwrap();
        assert_eq!(
            with_explicit_port(u).to_string(),
            "http://example.com:80/a?b=c"
        );
        let u: Uri = "https://example.com/".parse().unwrap();
        assert_eq!(
            with_explicit_port(u).to_string(),
            "https://example.com:443/"
        );
        let u: Uri = "https://example.com:8443/".parse().unwrap();
        assert_eq!(
            with_explicit_port(u).to_string(),
            "https://example.com:8443/"
        );
    }
}
