//! Sessions, the caller's own account, local accounts and their API keys.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginRequest {
    username: String,
    password: String,
}

pub(super) async fn login(
    State(server): State<Server>,
    request: Request,
) -> Result<Response, ApiError> {
    let remote = remote(request.extensions());
    let JsonBody(body): JsonBody<LoginRequest> = JsonBody::from_request(request, &server).await?;
    let username = body.username.trim().to_owned();
    if username.is_empty() || body.password.is_empty() {
        return Err(ApiError::BadRequest(
            "username and password are required".into(),
        ));
    }
    if username.chars().any(char::is_control) {
        // Usernames reach log lines: no forged lines through embedded newlines (CWE-117).
        return Err(ApiError::BadRequest(
            "usernames cannot hold control characters".into(),
        ));
    }
    if username.chars().count() > MAX_USERNAME || body.password.len() > MAX_PASSWORD {
        return Err(ApiError::BadRequest(format!(
            "username longer than {MAX_USERNAME} characters or password longer than {MAX_PASSWORD} bytes"
        )));
    }
    let inner = &server.inner;
    let _permit = server.password_check_slot(&username).await?;
    // The generation is read with the hash: a password change racing this login makes the
    // token it issues invalid, instead of minting a valid token from the old password.
    let (hash, usable, generation) = {
        let state = server.state()?;
        match state.accounts.get(&username) {
            Some(a) if a.password_hash.is_some() => (
                a.password_hash.clone().unwrap_or_default(),
                a.enabled && a.can(Capability::Login),
                a.generation,
            ),
            // Unknown users cost one bcrypt check too: timing must not tell them apart.
            _ => (inner.dummy_hash.clone(), false, 0),
        }
    };
    let password = body.password;
    let matched =
        tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
    let from = remote.map(|r| r.to_string()).unwrap_or_default();
    if !(matched && usable) {
        let failures = inner.failures.fail(&username);
        if failures == inner.config.login_limits.threshold {
            tracing::error!(
                security = 5,
                CWE = 307,
                username = %username,
                remote = %from,
                failures,
                "brute force suspected: repeated failed logins; further attempts are delayed"
            );
        } else {
            tracing::warn!(security = 2, CWE = 287, username = %username, remote = %from, "login failed");
        }
        audit(&AuditRecord {
            actor: &username,
            action: "login",
            resource: "accounts",
            object: &username,
            remote,
            result: "failed",
        });
        return Err(ApiError::Unauthenticated(
            "invalid username or password".into(),
        ));
    }
    inner.failures.succeed(&username);

    let mut claims = Claims::new(
        username.clone(),
        TokenKind::Session,
        Some(inner.config.session_ttl.as_secs() as i64),
    );
    claims.generation = generation;
    let token = inner.signer.sign(&claims);
    tracing::info!(security = 1, username = %username, remote = %from, "login succeeded");
    audit(&AuditRecord {
        actor: &username,
        action: "login",
        resource: "accounts",
        object: &username,
        remote,
        result: "success",
    });
    Ok(axum::Json(json!({"token": token, "expiresAt": rfc3339(claims.exp)})).into_response())
}

pub(super) async fn logout(State(server): State<Server>, auth: Auth) -> Result<Response, ApiError> {
    let Some(jti) = auth.caller.jti.clone() else {
        return Err(ApiError::BadRequest(
            "OIDC tokens are revoked at the identity provider".into(),
        ));
    };
    let exp = auth.caller.exp;
    server
        .change_state(|state| {
            state.revoked.insert(jti.clone(), exp);
            Ok(())
        })
        .await?;
    ok_audit(&auth, "logout", "accounts", &auth.caller.name);
    Ok(axum::Json(json!({"revoked": jti})).into_response())
}

pub(super) async fn userinfo(auth: Auth) -> Response {
    axum::Json(json!({
        "username": auth.caller.name,
        "groups": auth.caller.subjects.iter().skip(1).collect::<Vec<_>>(),
        "kind": auth.caller.kind,
        "expiresAt": rfc3339(auth.caller.exp),
    }))
    .into_response()
}

pub(super) fn account_json(name: &str, account: &Account) -> Value {
    json!({
        "name": name,
        "enabled": account.enabled,
        "capabilities": account.capabilities,
        "passwordChangedAt": account.password_changed_at.map(rfc3339),
        "tokens": account.api_keys.iter().map(token_json).collect::<Vec<_>>(),
    })
}

pub(super) fn token_json(t: &TokenRecord) -> Value {
    json!({"id": t.id, "issuedAt": rfc3339(t.issued_at), "expiresAt": t.expires_at.map(rfc3339)})
}

pub(super) fn local_account(auth: &Auth) -> Result<String, ApiError> {
    match auth.caller.kind {
        "session" | "apiKey" => Ok(auth.caller.name.clone()),
        _ => Err(ApiError::BadRequest(
            "only local accounts have an account here".into(),
        )),
    }
}

pub(super) async fn own_account(
    State(server): State<Server>,
    auth: Auth,
) -> Result<Response, ApiError> {
    let name = local_account(&auth)?;
    let state = server.state()?;
    let account = state
        .accounts
        .get(&name)
        .ok_or_else(|| ApiError::NotFound(format!("account {name}")))?;
    Ok(axum::Json(account_json(&name, account)).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct PasswordChange {
    current_password: String,
    new_password: String,
}

pub(super) fn check_new_password(password: &str) -> Result<(), ApiError> {
    if password.len() < MIN_PASSWORD || password.len() > MAX_PASSWORD || password.trim().is_empty()
    {
        return Err(ApiError::BadRequest(format!(
            "the new password must be {MIN_PASSWORD} to {MAX_PASSWORD} bytes long"
        )));
    }
    Ok(())
}

pub(super) async fn change_password(
    State(server): State<Server>,
    auth: Auth,
    JsonBody(body): JsonBody<PasswordChange>,
) -> Result<Response, ApiError> {
    let name = local_account(&auth)?;
    if body.current_password.is_empty() || body.current_password.len() > MAX_PASSWORD {
        return Err(ApiError::BadRequest("currentPassword is required".into()));
    }
    check_new_password(&body.new_password)?;
    let inner = &server.inner;
    let _permit = server.password_check_slot(&name).await?;
    let hash = {
        let state = server.state()?;
        state
            .accounts
            .get(&name)
            .and_then(|a| a.password_hash.clone())
    };
    let cost = inner.config.bcrypt_cost;
    let (current, new) = (body.current_password, body.new_password);
    let dummy = inner.dummy_hash.clone();
    let (matched, new_hash) = tokio::task::spawn_blocking(move || {
        let matched = bcrypt::verify(current, hash.as_deref().unwrap_or(&dummy)).unwrap_or(false)
            && hash.is_some();
        (matched, matched.then(|| hash_password(&new, cost)))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    if !matched {
        inner.failures.fail(&name);
        tracing::warn!(security = 2, CWE = 287, username = %name, "password change with a wrong current password");
        audit(&AuditRecord {
            actor: &name,
            action: "change-password",
            resource: "accounts",
            object: &name,
            remote: auth.remote,
            result: "failed",
        });
        return Err(ApiError::Forbidden(
            "the current password does not match".into(),
        ));
    }
    let new_hash = new_hash
        .unwrap_or_else(|| Err("no hash".into()))
        .map_err(ApiError::Internal)?;
    server
        .change_state(|state| {
            let account = state
                .accounts
                .get_mut(&name)
                .ok_or_else(|| ApiError::NotFound(format!("account {name}")))?;
            account.password_hash = Some(new_hash);
            account.generation += 1;
            account.password_changed_at = Some(crate::now_secs());
            // API keys were minted with the old password; they go too.
            account.api_keys.clear();
            Ok(())
        })
        .await?;
    if name == "admin" {
        server.forget_initial_password().await;
    }
    ok_audit(&auth, "change-password", "accounts", &name);
    Ok(axum::Json(
        json!({"message": "password changed; every earlier token of this account is revoked"}),
    )
    .into_response())
}

pub(super) async fn list_accounts(
    State(server): State<Server>,
    auth: Auth,
) -> Result<Response, ApiError> {
    let state = server.state()?;
    let items: Vec<Value> = state
        .accounts
        .iter()
        .filter(|(name, _)| server.allowed(&auth.caller, "accounts", "get", name))
        .map(|(name, a)| account_json(name, a))
        .collect();
    Ok(axum::Json(json!({"items": items})).into_response())
}

pub(super) fn visible_account(server: &Server, auth: &Auth, name: &str) -> Result<(), ApiError> {
    let exists = server
        .inner
        .state
        .read()
        .map(|s| s.accounts.contains_key(name))
        .unwrap_or(false);
    if !exists || !server.allowed(&auth.caller, "accounts", "get", name) {
        return Err(ApiError::NotFound(format!("account {name}")));
    }
    Ok(())
}

pub(super) async fn get_account(
    State(server): State<Server>,
    auth: Auth,
    UrlPath(name): UrlPath<String>,
) -> Result<Response, ApiError> {
    visible_account(&server, &auth, &name)?;
    let state = server.state()?;
    let account = state
        .accounts
        .get(&name)
        .ok_or_else(|| ApiError::NotFound(format!("account {name}")))?;
    Ok(axum::Json(account_json(&name, account)).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct AccountRequest {
    name: String,
    #[serde(default)]
    capabilities: Vec<Capability>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
}

pub(super) fn valid_account_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_USERNAME
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with("proj:")
}

pub(super) async fn hash_off_thread(
    server: &Server,
    password: Option<String>,
) -> Result<Option<String>, ApiError> {
    let Some(password) = password else {
        return Ok(None);
    };
    check_new_password(&password)?;
    let cost = server.inner.config.bcrypt_cost;
    tokio::task::spawn_blocking(move || hash_password(&password, cost))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map(Some)
        .map_err(ApiError::Internal)
}

pub(super) async fn create_account(
    State(server): State<Server>,
    auth: Auth,
    JsonBody(body): JsonBody<AccountRequest>,
) -> Result<Response, ApiError> {
    if !valid_account_name(&body.name) {
        return Err(ApiError::BadRequest(format!(
            "account names are 1 to {MAX_USERNAME} characters of a-z, 0-9, '-', '_' and '.'"
        )));
    }
    require(&server, &auth, "accounts", "create", &body.name)?;
    let hash = hash_off_thread(&server, body.password).await?;
    let mut capabilities = body.capabilities;
    capabilities.sort();
    capabilities.dedup();
    let account = Account {
        password_hash: hash,
        capabilities,
        enabled: body.enabled.unwrap_or(true),
        // Never 0 again after a delete: tokens of an earlier account with this name must not
        // come back to life.
        generation: crate::state::fresh_generation(),
        password_changed_at: None,
        api_keys: Vec::new(),
    };
    let view = account_json(&body.name, &account);
    server
        .change_state(|state| {
            if state.accounts.contains_key(&body.name) {
                return Err(ApiError::Conflict(format!("account {} exists", body.name)));
            }
            state.accounts.insert(body.name.clone(), account);
            Ok(())
        })
        .await?;
    ok_audit(&auth, "create", "accounts", &body.name);
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct AccountUpdate {
    #[serde(default)]
    capabilities: Option<Vec<Capability>>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
}

pub(super) async fn update_account(
    State(server): State<Server>,
    auth: Auth,
    UrlPath(name): UrlPath<String>,
    JsonBody(body): JsonBody<AccountUpdate>,
) -> Result<Response, ApiError> {
    visible_account(&server, &auth, &name)?;
    require(&server, &auth, "accounts", "update", &name)?;
    if name == auth.caller.name && auth.caller.kind != "oidc" {
        // A stolen session must not be able to take the account over or lock its owner out.
        if body.password.is_some() {
            return Err(ApiError::Conflict(
                "change your own password with PUT /api/v1/account/password (it needs the current one)".into(),
            ));
        }
        if body.enabled == Some(false)
            || body
                .capabilities
                .as_ref()
                .is_some_and(|c| !c.contains(&Capability::Login))
        {
            return Err(ApiError::Conflict(
                "you cannot disable your own account or remove its login capability".into(),
            ));
        }
    }
    let hash = hash_off_thread(&server, body.password).await?;
    let view = server
        .change_state(|state| {
            let account = state
                .accounts
                .get_mut(&name)
                .ok_or_else(|| ApiError::NotFound(format!("account {name}")))?;
            if let Some(mut caps) = body.capabilities {
                caps.sort();
                caps.dedup();
                if !caps.contains(&Capability::ApiKey) {
                    account.api_keys.clear();
                }
                account.capabilities = caps;
            }
            if let Some(enabled) = body.enabled {
                account.enabled = enabled;
            }
            if let Some(hash) = hash {
                account.password_hash = Some(hash);
                account.generation += 1;
                account.password_changed_at = Some(crate::now_secs());
                account.api_keys.clear();
            }
            Ok(account_json(&name, account))
        })
        .await?;
    ok_audit(&auth, "update", "accounts", &name);
    Ok(axum::Json(view).into_response())
}

pub(super) async fn delete_account(
    State(server): State<Server>,
    auth: Auth,
    UrlPath(name): UrlPath<String>,
) -> Result<Response, ApiError> {
    visible_account(&server, &auth, &name)?;
    require(&server, &auth, "accounts", "delete", &name)?;
    if name == "admin" {
        return Err(ApiError::Conflict(
            "the admin account cannot be deleted; disable it instead".into(),
        ));
    }
    server
        .change_state(|state| {
            state.accounts.remove(&name);
            Ok(())
        })
        .await?;
    ok_audit(&auth, "delete", "accounts", &name);
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct TokenRequest {
    /// Seconds, or a duration like `90d`, `24h`, `30m`.
    #[serde(default)]
    pub(super) expires_in: Option<Value>,
}

impl TokenRequest {
    /// The request of a token endpoint; an empty body asks for a token without expiry.
    pub(super) fn parse(body: &[u8]) -> Result<Self, ApiError> {
        if body.is_empty() {
            return Ok(Self::default());
        }
        serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid request body: {e}")))
    }
}

/// 201 with a freshly signed token: `{id, token, expiresAt}`.
pub(super) fn token_created(server: &Server, claims: &Claims, ttl: Option<i64>) -> Response {
    let token = server.inner.signer.sign(claims);
    (
        StatusCode::CREATED,
        axum::Json(json!({"id": claims.jti, "token": token, "expiresAt": ttl.map(|_| rfc3339(claims.exp))})),
    )
        .into_response()
}

/// Seconds from `expiresIn` (a number of seconds or a duration string); `None`: no expiry.
pub(super) fn expires_in(value: Option<&Value>) -> Result<Option<i64>, ApiError> {
    let bad = || {
        ApiError::BadRequest(
            "expiresIn is a positive number of seconds or a duration such as 30m, 24h, 90d".into(),
        )
    };
    let secs = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(bad)?,
        Some(Value::String(s)) => {
            let s = s.trim();
            if let Some(days) = s.strip_suffix('d') {
                days.parse::<i64>()
                    .map_err(|_| bad())?
                    .checked_mul(86_400)
                    .ok_or_else(bad)?
            } else {
                let ms = sluice_stage::load::parse_duration_ms(s).ok_or_else(bad)?;
                i64::try_from(ms / 1000).map_err(|_| bad())?
            }
        }
        Some(_) => return Err(bad()),
    };
    if secs <= 0 || secs > 10 * 365 * 86_400 {
        return Err(bad());
    }
    Ok(Some(secs))
}

pub(super) async fn create_api_key(
    State(server): State<Server>,
    auth: Auth,
    UrlPath(name): UrlPath<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = TokenRequest::parse(&body)?;
    visible_account(&server, &auth, &name)?;
    require(&server, &auth, "accounts", "update", &name)?;
    let ttl = expires_in(request.expires_in.as_ref())?;
    let claims = server
        .change_state(|state| {
            let account = state
                .accounts
                .get_mut(&name)
                .ok_or_else(|| ApiError::NotFound(format!("account {name}")))?;
            if !account.can(Capability::ApiKey) {
                return Err(ApiError::Conflict(format!(
                    "account {name} lacks the apiKey capability"
                )));
            }
            if !account.enabled {
                return Err(ApiError::Conflict(format!("account {name} is disabled")));
            }
            let mut claims = Claims::new(name.clone(), TokenKind::ApiKey, ttl);
            claims.generation = account.generation;
            account.api_keys.push(TokenRecord {
                id: claims.jti.clone(),
                issued_at: claims.iat,
                expires_at: ttl.map(|_| claims.exp),
            });
            Ok(claims)
        })
        .await?;
    ok_audit(&auth, "create-token", "accounts", &name);
    Ok(token_created(&server, &claims, ttl))
}

pub(super) async fn list_api_keys(
    State(server): State<Server>,
    auth: Auth,
    UrlPath(name): UrlPath<String>,
) -> Result<Response, ApiError> {
    visible_account(&server, &auth, &name)?;
    let state = server.state()?;
    let items: Vec<Value> = state
        .accounts
        .get(&name)
        .map(|a| a.api_keys.iter().map(token_json).collect())
        .unwrap_or_default();
    Ok(axum::Json(json!({"items": items})).into_response())
}

pub(super) async fn delete_api_key(
    State(server): State<Server>,
    auth: Auth,
    UrlPath((name, id)): UrlPath<(String, String)>,
) -> Result<Response, ApiError> {
    visible_account(&server, &auth, &name)?;
    require(&server, &auth, "accounts", "update", &name)?;
    server
        .change_state(|state| {
            let account = state
                .accounts
                .get_mut(&name)
                .ok_or_else(|| ApiError::NotFound(format!("account {name}")))?;
            let Some(pos) = account.api_keys.iter().position(|k| k.id == id) else {
                return Err(ApiError::NotFound(format!("token {id}")));
            };
            let record = account.api_keys.remove(pos);
            state
                .revoked
                .insert(record.id, record.expires_at.unwrap_or(i64::MAX / 2));
            Ok(())
        })
        .await?;
    ok_audit(&auth, "delete-token", "accounts", &name);
    Ok(StatusCode::NO_CONTENT.into_response())
}
