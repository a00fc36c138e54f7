//! Leader election on a `coordination.k8s.io/v1` Lease, so several replicas can run and only
//! one reconciles. Taking over an expired lease is a write with a `resourceVersion`
//! precondition, so two candidates cannot both win.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// Who competes for which lease.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Lease name.
    pub name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a lease stays valid without renewal.
    pub duration: Duration,
}

fn micro_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Tries once to become (or stay) the leader; true when this replica holds the lease now.
pub async fn try_acquire(client: &kube::Client, config: &LeaseConfig) -> Result<bool, kube::Error> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    let now = Utc::now();
    let seconds = i32::try_from(config.duration.as_secs()).unwrap_or(i32::MAX);
    let Some(lease) = leases.get_opt(&config.name).await? else {
        let fresh = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": config.name, "namespace": config.namespace},
            "spec": {"holderIdentity": config.identity, "leaseDurationSeconds": seconds,
                     "acquireTime": micro_time(now), "renewTime": micro_time(now), "leaseTransitions": 0},
        });
        // Without force: if another replica created it first, this apply conflicts.
        return match leases
            .patch(
                &config.name,
                &PatchParams::apply("sluice-leader-election"),
                &Patch::Apply(&fresh),
            )
            .await
        {
            Ok(created) => Ok(holder(&created) == Some(config.identity.as_str())),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let mine = spec.holder_identity.as_deref() == Some(config.identity.as_str());
    let valid_for = spec.lease_duration_seconds.map_or(config.duration, |s| {
        Duration::from_secs(u64::try_from(s).unwrap_or(0))
    });
    let valid_ms = i64::try_from(valid_for.as_millis()).unwrap_or(i64::MAX);
    let expired = spec
        .renew_time
        .as_ref()
        .is_none_or(|t| now.timestamp_millis() > t.0.as_millisecond().saturating_add(valid_ms));
    if !mine && !expired {
        return Ok(false);
    }
    let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
    let mut patch = json!({
        "metadata": {"resourceVersion": lease.metadata.resource_version},
        "spec": {"holderIdentity": config.identity, "leaseDurationSeconds": seconds,
                 "renewTime": micro_time(now), "leaseTransitions": transitions},
    });
    if !mine {
        patch["spec"]["acquireTime"] = json!(micro_time(now));
    }
    match leases
        .patch(&config.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(updated) => Ok(holder(&updated) == Some(config.identity.as_str())),
        // Someone else renewed or took it between our read and write.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

fn holder(lease: &Lease) -> Option<&str> {
    lease.spec.as_ref()?.holder_identity.as_deref()
}

/// Waits until this replica leads, retrying every `duration / 3`.
pub async fn acquire(client: &kube::Client, config: &LeaseConfig) {
    loop {
        match try_acquire(client, config).await {
            Ok(true) => {
                tracing::info!(lease = %config.name, identity = %config.identity, "became the leader");
                return;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "leader election"),
        }
        tokio::time::sleep(config.duration / 3).await;
    }
}

/// Renews the lease every `duration / 3`; returns when it could not be renewed within its
/// duration (leadership lost: the caller must stop reconciling).
pub async fn hold(client: &kube::Client, config: &LeaseConfig) {
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(config.duration / 3).await;
        match try_acquire(client, config).await {
            Ok(true) => last = tokio::time::Instant::now(),
            Ok(false) => {
                tracing::error!(lease = %config.name, "another replica took the lease");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "renewing the lease"),
        }
        if last.elapsed() > config.duration {
            tracing::error!(lease = %config.name, "could not renew the lease in time");
            return;
        }
    }
}
