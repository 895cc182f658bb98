//! Health of connections: each declared health probe sent with the connection's
//! credentials, with its latency, the circuit state recorded by runs, the error rate of
//! the last hour's calls, and an overall score (healthy connections / connections).

use std::time::Duration;

use serde::Serialize;

use crate::catalog::Compiled;
use crate::driver::Driver;
use crate::vault::{Vault, now_ms};

/// One connection's health.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub integration: String,
    pub owner: String,
    /// `healthy`, `unhealthy` or `inactive`.
    pub status: String,
    pub latency_ms: Option<u64>,
    /// `closed`, `open` or `half-open`, as last recorded.
    pub circuit: String,
    /// Failed calls / calls over the last hour (`None`: no calls).
    pub error_rate: Option<f64>,
    pub calls_last_hour: u64,
    pub message: Option<String>,
}

/// The reports and the score.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub connections: Vec<Report>,
    pub healthy: usize,
    pub total: usize,
    /// Audit rows and breaker states the vault could not write while probing (each was
    /// logged when it failed).
    pub audit_write_failures: u64,
}

/// Probes every connection of the given integrations (of `owner` only, when given).
pub async fn check(
    driver: &Driver,
    vault: &Vault,
    integrations: &[Compiled],
    owner: Option<&str>,
) -> Summary {
    let mut reports = Vec::new();
    for c in integrations {
        let Some(integ) = c.integration() else {
            continue;
        };
        let infos = vault.list(Some(&integ.name)).unwrap_or_default();
        for info in infos.iter().filter(|i| owner.is_none_or(|o| i.owner == o)) {
            let (calls, errors) = vault
                .recent_calls(&integ.name, &info.owner, now_ms() - 3_600_000)
                .unwrap_or((0, 0));
            let mut report = Report {
                integration: integ.name.clone(),
                owner: info.owner.clone(),
                status: "inactive".into(),
                latency_ms: None,
                circuit: "closed".into(),
                error_rate: (calls > 0).then(|| errors as f64 / calls as f64),
                calls_last_hour: calls,
                message: None,
            };
            if info.active {
                match driver.connections().load(&integ.name, Some(&info.owner)) {
                    Ok(conn) => {
                        let probe = tokio::time::timeout(
                            Duration::from_secs(30),
                            driver.probe(&c.program, c.index, &conn),
                        )
                        .await;
                        match probe {
                            Ok(Ok(latency)) => {
                                report.status = "healthy".into();
                                report.latency_ms = Some(latency.as_millis() as u64);
                            }
                            Ok(Err(e)) => {
                                report.status = "unhealthy".into();
                                report.message = Some(e.message);
                            }
                            Err(_) => {
                                report.status = "unhealthy".into();
                                report.message = Some("no answer within 30s".into());
                            }
                        }
                    }
                    Err(e) => {
                        report.status = "unhealthy".into();
                        report.message = Some(e.to_string());
                    }
                }
            }
            vault.flush();
            if let Ok(Some(b)) = vault.breaker(&integ.name, &info.owner) {
                report.circuit = b.state;
            }
            reports.push(report);
        }
    }
    let healthy = reports.iter().filter(|r| r.status == "healthy").count();
    let total = reports.len();
    Summary {
        connections: reports,
        healthy,
        total,
        audit_write_failures: vault.write_failures(),
    }
}
