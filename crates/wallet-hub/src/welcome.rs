//! `wallet-hub ready`: waits until the service of these settings answers readiness, then
//! tells a newcomer where everything is: the API, its docs, the metrics, and how to get a
//! token. `scripts/run` prints it once the service it started is serving.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::Settings;

/// The URLs a newcomer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    pub api: String,
    pub docs: String,
    pub metrics: String,
    /// The admin server's readiness probe.
    pub ready: String,
}

impl Welcome {
    pub fn new(settings: &Settings) -> Self {
        let api = base_url(settings.api.listen);
        let admin = base_url(settings.admin.listen);
        Self {
            docs: format!("{api}/docs"),
            metrics: format!("{admin}/metrics"),
            ready: format!("{admin}/health/ready"),
            api,
        }
    }
}

/// `http://host:port` of a listen address; one on every interface is reached on loopback.
fn base_url(listen: SocketAddr) -> String {
    let host = match listen.ip() {
        ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(host, listen.port()))
}

impl fmt::Display for Welcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Wallet Hub is ready.")?;
        writeln!(f, "  API      {}", self.api)?;
        writeln!(f, "  docs     {} (OpenAPI at /openapi.json)", self.docs)?;
        writeln!(f, "  metrics  {}", self.metrics)?;
        writeln!(
            f,
            "  a token  target/debug/wallet-hub token --sub alice [--scope wallets:deposit]"
        )?;
        write!(
            f,
            "           then: curl -H \"authorization: Bearer $TOKEN\" {}/v1/... (README, Try it)",
            self.api
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("cannot build an HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("{url} did not answer ready within {seconds} s")]
    Timeout { url: String, seconds: u64 },
}

/// Polls the readiness probe until it answers 200, for at most `timeout`.
pub async fn wait_ready(welcome: &Welcome, timeout: Duration) -> Result<(), NotReady> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(NotReady::Client)?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let ready = client
            .get(&welcome.ready)
            .send()
            .await
            .is_ok_and(|response| response.status().is_success());
        if ready {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(NotReady::Timeout {
                url: welcome.ready.clone(),
                seconds: timeout.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_on_every_interface_is_shown_on_loopback() {
        assert_eq!(
            base_url("0.0.0.0:8080".parse().expect("address")),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            base_url("10.1.2.3:9464".parse().expect("address")),
            "http://10.1.2.3:9464"
        );
    }
}
