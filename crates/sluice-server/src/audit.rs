//! Audit: every mutating call leaves a structured log line (who, what, when, from where,
//! result) and, when it targets a StageSet or Project, an event naming the actor.

use std::net::SocketAddr;

/// One audited action.
#[derive(Debug, Clone)]
pub struct AuditRecord<'a> {
    /// The authenticated caller (or the claimed username for logins).
    pub actor: &'a str,
    /// What was attempted (`login`, `reconcile`, `approve`, `create-token`, …).
    pub action: &'a str,
    /// RBAC resource.
    pub resource: &'a str,
    /// RBAC object.
    pub object: &'a str,
    /// Client address.
    pub remote: Option<SocketAddr>,
    /// `success`, `denied`, `failed: …`.
    pub result: &'a str,
}

/// Writes the audit line (target `audit`, so it can be routed on its own).
pub fn audit(record: &AuditRecord<'_>) {
    let remote = record
        .remote
        .map(|a| a.to_string())
        .unwrap_or_else(|| "-".into());
    tracing::info!(
        target: "audit",
        audit = true,
        actor = record.actor,
        action = record.action,
        resource = record.resource,
        object = record.object,
        remote = %remote,
        result = record.result,
        time = %now_rfc3339(),
        "audit: {} {} {} {}: {}",
        record.actor,
        record.action,
        record.resource,
        record.object,
        record.result
    );
}

/// Now as RFC 3339 UTC with seconds.
pub fn now_rfc3339() -> String {
    rfc3339(crate::now_secs())
}

/// Seconds since the epoch as RFC 3339 UTC.
pub fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
