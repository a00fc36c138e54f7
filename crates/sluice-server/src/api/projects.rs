//! Projects and project role tokens.

use super::*;

pub(super) fn project_json(server: &Server, name: &str, project: &sluice_api::Project) -> Value {
    let mut value = serde_json::to_value(project).unwrap_or_default();
    let state = server.inner.state.read();
    if let Ok(state) = state
        && let Some(roles) = state.project_tokens.get(name)
    {
        let tokens: serde_json::Map<String, Value> = roles
            .iter()
            .map(|(role, list)| {
                (
                    role.clone(),
                    Value::Array(list.iter().map(|t| Value::String(t.id.clone())).collect()),
                )
            })
            .collect();
        value["status"]["tokens"] = Value::Object(tokens);
    }
    value
}

/// Cluster mode: mirrors a project's token ids into its `status.tokens`.
pub(super) async fn publish_project_tokens(server: &Server, project: &str) {
    if let Backend::Cluster(cluster) = &server.inner.backend {
        let tokens = server
            .inner
            .state
            .read()
            .ok()
            .and_then(|s| s.project_tokens.get(project).cloned())
            .unwrap_or_default()
            .into_iter()
            .map(|(role, list)| (role, list.into_iter().map(|t| t.id).collect()))
            .collect();
        cluster.set_project_tokens(project, tokens).await;
    }
}

pub(super) async fn list_projects(
    State(server): State<Server>,
    auth: Auth,
) -> Result<Response, ApiError> {
    let snapshot = server.inner.store.snapshot();
    let items: Vec<Value> = snapshot
        .projects
        .iter()
        .filter(|(name, _)| server.allowed(&auth.caller, "projects", "get", name))
        .map(|(name, p)| project_json(&server, name, p))
        .collect();
    Ok(axum::Json(json!({"items": items})).into_response())
}

pub(super) fn visible_project(
    server: &Server,
    auth: &Auth,
    name: &str,
) -> Result<sluice_api::Project, ApiError> {
    let snapshot = server.inner.store.snapshot();
    match snapshot.projects.get(name) {
        Some(p) if server.allowed(&auth.caller, "projects", "get", name) => Ok(p.clone()),
        _ => Err(ApiError::NotFound(format!("project {name}"))),
    }
}

pub(super) async fn get_project(
    State(server): State<Server>,
    auth: Auth,
    UrlPath(name): UrlPath<String>,
) -> Result<Response, ApiError> {
    let project = visible_project(&server, &auth, &name)?;
    Ok(axum::Json(project_json(&server, &name, &project)).into_response())
}

pub(super) async fn create_project_token(
    State(server): State<Server>,
    auth: Auth,
    UrlPath((project, role)): UrlPath<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = TokenRequest::parse(&body)?;
    let p = visible_project(&server, &auth, &project)?;
    require(&server, &auth, "projects", "update", &project)?;
    if !p.spec.roles.iter().any(|r| r.name == role) {
        return Err(ApiError::NotFound(format!(
            "role {role} of project {project}"
        )));
    }
    let ttl = expires_in(request.expires_in.as_ref())?;
    let mut claims = Claims::new(
        project_role_subject(&project, &role),
        TokenKind::Project,
        ttl,
    );
    claims.project = Some(project.clone());
    claims.role = Some(role.clone());
    server
        .change_state(|state| {
            state
                .project_tokens
                .entry(project.clone())
                .or_default()
                .entry(role.clone())
                .or_default()
                .push(TokenRecord {
                    id: claims.jti.clone(),
                    issued_at: claims.iat,
                    expires_at: ttl.map(|_| claims.exp),
                });
            Ok(())
        })
        .await?;
    event(
        &server,
        &format!("projects/{project}"),
        project_ref(&p),
        "TokenCreated",
        &auth.caller.name,
        format!(
            "{} created token {} for role {role} of project {project}",
            auth.caller.name, claims.jti
        ),
    )
    .await;
    publish_project_tokens(&server, &project).await;
    ok_audit(&auth, "create-token", "projects", &project);
    Ok(token_created(&server, &claims, ttl))
}

pub(super) async fn delete_project_token(
    State(server): State<Server>,
    auth: Auth,
    UrlPath((project, role, jti)): UrlPath<(String, String, String)>,
) -> Result<Response, ApiError> {
    let p = visible_project(&server, &auth, &project)?;
    require(&server, &auth, "projects", "update", &project)?;
    server
        .change_state(|state| {
            let list = state
                .project_tokens
                .get_mut(&project)
                .and_then(|roles| roles.get_mut(&role))
                .ok_or_else(|| ApiError::NotFound(format!("token {jti}")))?;
            let pos = list
                .iter()
                .position(|t| t.id == jti)
                .ok_or_else(|| ApiError::NotFound(format!("token {jti}")))?;
            let record = list.remove(pos);
            state
                .revoked
                .insert(record.id, record.expires_at.unwrap_or(i64::MAX / 2));
            Ok(())
        })
        .await?;
    event(
        &server,
        &format!("projects/{project}"),
        project_ref(&p),
        "TokenRevoked",
        &auth.caller.name,
        format!(
            "{} revoked token {jti} of role {role} of project {project}",
            auth.caller.name
        ),
    )
    .await;
    publish_project_tokens(&server, &project).await;
    ok_audit(&auth, "delete-token", "projects", &project);
    Ok(StatusCode::NO_CONTENT.into_response())
}
