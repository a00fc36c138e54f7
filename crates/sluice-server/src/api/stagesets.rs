//! StageSets: lists, status, rendered manifests, diffs, reconcile requests, gates, events.

use super::*;

/// A StageSet as the API returns it: credentials in source URLs redacted.
pub(super) fn stageset_json(stageset: &sluice_api::StageSet) -> Value {
    let mut value = serde_json::to_value(stageset).unwrap_or_default();
    if let Some(stages) = value
        .pointer_mut("/spec/stages")
        .and_then(Value::as_array_mut)
    {
        for stage in stages {
            for kind in ["git", "http"] {
                if let Some(url) = stage.pointer_mut(&format!("/source/{kind}/url"))
                    && let Some(text) = url.as_str()
                {
                    *url = Value::String(redact_url(text));
                }
            }
        }
    }
    value
}

/// `https://user:secret@host/x?sig=abc` → `https://host/x?sig=++++++++`; anything unparsable
/// is masked whole.
pub(super) fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if !parsed.username().is_empty() || parsed.password().is_some() {
                let _ = parsed.set_username("");
                let _ = parsed.set_password(None);
            }
            // Query strings carry signatures and tokens (pre-signed URLs): keep the keys only.
            if parsed.query().is_some() {
                let keys: Vec<String> = parsed.query_pairs().map(|(k, _)| k.into_owned()).collect();
                parsed
                    .query_pairs_mut()
                    .clear()
                    .extend_pairs(keys.iter().map(|k| (k.as_str(), crate::redact::MASK)));
            }
            parsed.to_string()
        }
        // scp-like git@host:path has no secret in it.
        Err(_) if !url.contains("://") => url.to_owned(),
        Err(_) => crate::redact::MASK.to_owned(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListQuery {
    #[serde(default)]
    limit: Option<String>,
    #[serde(default, rename = "continue")]
    continue_: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

pub(super) fn decode_continue(token: &str) -> Result<String, ApiError> {
    use base64::Engine;
    let bad = || ApiError::BadRequest("invalid continue token".into());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    value["after"].as_str().map(str::to_owned).ok_or_else(bad)
}

pub(super) fn encode_continue(after: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!({"after": after}).to_string())
}

pub(super) async fn list_stagesets(
    State(server): State<Server>,
    auth: Auth,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = match query.limit.as_deref() {
        None | Some("") => MAX_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if n >= 1 => n.min(MAX_LIMIT),
            _ => {
                return Err(ApiError::BadRequest(
                    "limit must be a positive integer".into(),
                ));
            }
        },
    };
    let snapshot = server.inner.store.snapshot();
    let visible = server.visible_positions(&auth.caller, &snapshot);
    let start = match query.continue_.as_deref().filter(|c| !c.is_empty()) {
        Some(token) => {
            let after = decode_continue(token)?;
            let pos = snapshot.position_after(&after) as u32;
            visible.partition_point(|&i| i < pos)
        }
        None => 0,
    };
    let mut items = Vec::with_capacity(limit.min(visible.len()));
    let mut last = None;
    let mut next = None;
    for &i in &visible[start..] {
        let entry = &snapshot.stagesets[i as usize];
        if let Some(ns) = query.namespace.as_deref()
            && entry.stageset.metadata.namespace.as_deref() != Some(ns)
        {
            continue;
        }
        if items.len() == limit {
            next = last.map(encode_continue);
            break;
        }
        items.push(stageset_json(&entry.stageset));
        last = Some(entry.key.as_str());
    }
    Ok(axum::Json(json!({"items": items, "metadata": {"continue": next}})).into_response())
}

/// The StageSet `namespace/name` if the caller may see it; the same 404 otherwise.
pub(super) fn visible_stageset(
    server: &Server,
    auth: &Auth,
    namespace: &str,
    name: &str,
) -> Result<VisibleStageSet, ApiError> {
    let snapshot = server.inner.store.snapshot();
    let key = format!("{namespace}/{name}");
    match snapshot.position(&key) {
        Some(index)
            if server.allowed(
                &auth.caller,
                "stagesets",
                "get",
                &snapshot.stagesets[index].object,
            ) =>
        {
            Ok(VisibleStageSet { snapshot, index })
        }
        _ => Err(ApiError::NotFound(format!("stageset {key}"))),
    }
}

/// A StageSet the caller may see, borrowed from the snapshot it was found in (no copy on the
/// read path).
pub(super) struct VisibleStageSet {
    snapshot: std::sync::Arc<Snapshot>,
    index: usize,
}

impl std::ops::Deref for VisibleStageSet {
    type Target = crate::store::Entry;

    fn deref(&self) -> &Self::Target {
        &self.snapshot.stagesets[self.index]
    }
}

pub(super) async fn get_stageset(
    State(server): State<Server>,
    auth: Auth,
    UrlPath((namespace, name)): UrlPath<(String, String)>,
) -> Result<Response, ApiError> {
    let entry = visible_stageset(&server, &auth, &namespace, &name)?;
    Ok(axum::Json(stageset_json(&entry.stageset)).into_response())
}

pub(super) async fn get_stages(
    State(server): State<Server>,
    auth: Auth,
    UrlPath((namespace, name)): UrlPath<(String, String)>,
) -> Result<Response, ApiError> {
    let entry = visible_stageset(&server, &auth, &namespace, &name)?;
    let statuses = entry
        .stageset
        .status
        .as_ref()
        .map(|s| s.stages.clone())
        .unwrap_or_default();
    let annotations = entry
        .stageset
        .metadata
        .annotations
        .clone()
        .unwrap_or_default();
    let items: Vec<Value> = entry
        .stageset
        .spec
        .stages
        .iter()
        .map(|stage| {
            let status = statuses.iter().find(|s| s.name == stage.name);
            json!({
                "name": stage.name,
                "status": status,
                "approval": annotations.get(&format!("{GATE_ANNOTATION_PREFIX}{}", stage.name)),
            })
        })
        .collect();
    Ok(axum::Json(json!({"items": items})).into_response())
}

pub(super) async fn render_for(
    server: &Server,
    entry: &crate::store::Entry,
    stage_name: &str,
) -> Result<crate::render::Rendered, ApiError> {
    let stage = entry
        .stageset
        .spec
        .stages
        .iter()
        .find(|s| s.name == stage_name)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("stage {stage_name}")))?;
    let namespace = entry
        .stageset
        .metadata
        .namespace
        .clone()
        .unwrap_or_default();
    let call = RenderCall {
        stage,
        release_name: entry.stageset.metadata.name.clone().unwrap_or_default(),
        namespace: entry
            .stageset
            .spec
            .target_namespace
            .clone()
            .unwrap_or(namespace),
        source: None,
    };
    // Renders (and the fetch that pins them) are the expensive part of the API: one render
    // per stage definition serves every reader for RENDER_TTL.
    let key = format!(
        "{}\u{1f}{}\u{1f}{}",
        call.namespace,
        call.release_name,
        serde_json::to_string(&call.stage).unwrap_or_default()
    );
    if let Some(hit) = server.inner.rendered.get(&key) {
        return Ok(hit);
    }
    let _permit = server
        .inner
        .renders
        .acquire()
        .await
        .map_err(|_| ApiError::Unavailable("shutting down".into()))?;
    // Another request may have rendered it while this one waited.
    if let Some(hit) = server.inner.rendered.get(&key) {
        return Ok(hit);
    }
    let s = server.clone();
    let rendered = tokio::task::spawn_blocking(move || s.inner.config.renderer.render(&call))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| match e {
            crate::render::RenderError::Stage(message) => {
                ApiError::Conflict(format!("stage {stage_name} does not render: {message}"))
            }
            other => ApiError::Unavailable(other.to_string()),
        })?;
    server.inner.rendered.put(key, rendered.clone());
    Ok(rendered)
}

/// Recent renders, each kept for [`RENDER_TTL`], at most [`RENDER_CACHE`] of them.
#[derive(Debug, Default)]
pub(super) struct RenderCache {
    entries: Mutex<HashMap<String, (std::time::Instant, crate::render::Rendered)>>,
}

/// How long a render is served again (the controller shares pins for as long).
const RENDER_TTL: Duration = Duration::from_secs(10);
/// Renders kept at most.
const RENDER_CACHE: usize = 256;

impl RenderCache {
    fn get(&self, key: &str) -> Option<crate::render::Rendered> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < RENDER_TTL)
            .map(|(_, r)| r.clone())
    }

    fn put(&self, key: String, rendered: crate::render::Rendered) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= RENDER_CACHE {
            entries.retain(|_, (at, _)| at.elapsed() < RENDER_TTL);
            if entries.len() >= RENDER_CACHE
                && let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, (std::time::Instant::now(), rendered));
    }
}

pub(super) async fn get_manifests(
    State(server): State<Server>,
    auth: Auth,
    UrlPath((namespace, name, stage)): UrlPath<(String, String, String)>,
) -> Result<Response, ApiError> {
    let entry = visible_stageset(&server, &auth, &namespace, &name)?;
    let mut rendered = render_for(&server, &entry, &stage).await?;
    for object in &mut rendered.objects {
        crate::redact::redact(object);
    }
    Ok(axum::Json(json!({
        "revision": rendered.revision,
        "engine": rendered.engine,
        "objects": rendered.objects,
    }))
    .into_response())
}

pub(super) async fn get_diff(
    State(server): State<Server>,
    auth: Auth,
    UrlPath((namespace, name, stage)): UrlPath<(String, String, String)>,
) -> Result<Response, ApiError> {
    let entry = visible_stageset(&server, &auth, &namespace, &name)?;
    let rendered = render_for(&server, &entry, &stage).await?;
    let snapshot = server.inner.store.snapshot();
    let default_ns = entry
        .stageset
        .spec
        .target_namespace
        .clone()
        .or(entry.stageset.metadata.namespace.clone())
        .unwrap_or_default();
    let mut items = Vec::new();
    for object in rendered.objects {
        let mut key_source = object.clone();
        if key_source["metadata"]["namespace"].is_null() && !is_cluster_scoped(&object) {
            key_source["metadata"]["namespace"] = Value::String(default_ns.clone());
        }
        let key = crate::store::live_key(&key_source);
        let mut live = match &server.inner.backend {
            Backend::Local { .. } => snapshot.live.get(&key).cloned(),
            Backend::Cluster(_) => {
                let s = server.clone();
                tokio::task::spawn_blocking(move || match &s.inner.backend {
                    Backend::Cluster(cluster) => cluster.live_object(&key_source),
                    Backend::Local { .. } => Ok(None),
                })
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))??
            }
        };
        let mut desired = Some(object);
        let change = match &live {
            None => "added",
            Some(l) if subset(desired.as_ref().unwrap_or(&Value::Null), l) => "unchanged",
            Some(_) => "modified",
        };
        crate::redact::redact_pair(&mut desired, &mut live);
        items.push(json!({"key": key, "change": change, "desired": desired, "live": live}));
    }
    Ok(axum::Json(json!({"revision": rendered.revision, "items": items})).into_response())
}

pub(super) fn is_cluster_scoped(object: &Value) -> bool {
    matches!(
        object["kind"].as_str(),
        Some(
            "Namespace"
                | "CustomResourceDefinition"
                | "ClusterRole"
                | "ClusterRoleBinding"
                | "PersistentVolume"
                | "StorageClass"
                | "PriorityClass"
        )
    )
}

/// Whether every field `desired` sets has the same value in `live` (server-side apply only
/// owns what it sets; defaults the API server adds are not drift).
pub(super) fn subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d
            .iter()
            .all(|(k, v)| l.get(k).is_some_and(|lv| subset(v, lv))),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(a, b)| subset(a, b))
        }
        _ => desired == live,
    }
}

pub(super) async fn request_reconcile(
    State(server): State<Server>,
    auth: Auth,
    UrlPath((namespace, name)): UrlPath<(String, String)>,
) -> Result<Response, ApiError> {
    let entry = visible_stageset(&server, &auth, &namespace, &name)?;
    require(&server, &auth, "stagesets", "reconcile", &entry.object)?;
    let at = now_rfc3339();
    reconcile(&server, &entry, &auth.caller.name, &at).await?;
    ok_audit(&auth, "reconcile", "stagesets", &entry.object);
    Ok((StatusCode::ACCEPTED, axum::Json(json!({"requestedAt": at}))).into_response())
}

pub(super) async fn reconcile(
    server: &Server,
    entry: &crate::store::Entry,
    actor: &str,
    at: &str,
) -> Result<(), ApiError> {
    let key = &entry.key;
    annotate_stageset(server, key, RECONCILE_ANNOTATION, at).await?;
    event(
        server,
        &format!("stagesets/{key}"),
        stageset_ref(&entry.stageset),
        "ReconcileRequested",
        actor,
        format!("{actor} requested reconcile of stageset {key}"),
    )
    .await;
    Ok(())
}

pub(super) async fn approve_gate(
    State(server): State<Server>,
    auth: Auth,
    UrlPath((namespace, name, stage)): UrlPath<(String, String, String)>,
) -> Result<Response, ApiError> {
    let entry = visible_stageset(&server, &auth, &namespace, &name)?;
    if !entry.stageset.spec.stages.iter().any(|s| s.name == stage) {
        return Err(ApiError::NotFound(format!("stage {stage}")));
    }
    require(&server, &auth, "gates", "approve", &entry.object)?;
    let at = now_rfc3339();
    let value = format!("approved by {} at {at}", auth.caller.name);
    annotate_stageset(
        &server,
        &entry.key,
        &format!("{GATE_ANNOTATION_PREFIX}{stage}"),
        &value,
    )
    .await?;
    event(
        &server,
        &format!("stagesets/{}", entry.key),
        stageset_ref(&entry.stageset),
        "GateApproved",
        &auth.caller.name,
        format!(
            "{} approved the gate of stage {stage} of stageset {}",
            auth.caller.name, entry.key
        ),
    )
    .await;
    ok_audit(&auth, "approve", "gates", &entry.object);
    Ok((StatusCode::ACCEPTED, axum::Json(json!({"approvedAt": at}))).into_response())
}

pub(super) async fn get_events(
    State(server): State<Server>,
    auth: Auth,
    UrlPath((namespace, name)): UrlPath<(String, String)>,
) -> Result<Response, ApiError> {
    let entry = visible_stageset(&server, &auth, &namespace, &name)?;
    require(&server, &auth, "logs", "get", &entry.object)?;
    let items = server
        .inner
        .store
        .events(&format!("stagesets/{}", entry.key));
    Ok(axum::Json(json!({"items": items})).into_response())
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn urls_lose_their_secrets() {
        assert_eq!(
            redact_url("https://bot:t0ken@git.example.com/org/app.git"),
            "https://git.example.com/org/app.git"
        );
        let signed = redact_url("https://bucket.example.com/a.tgz?X-Amz-Signature=s3cr3t&v=1");
        assert!(
            !signed.contains("s3cr3t") && signed.contains("X-Amz-Signature="),
            "{signed}"
        );
        assert_eq!(
            redact_url("git@github.com:org/app.git"),
            "git@github.com:org/app.git"
        );
        assert_eq!(redact_url("https://[::1"), crate::redact::MASK);
    }
}
