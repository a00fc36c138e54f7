//! The OpenAPI 3.0 document of the API server (`GET /api/openapi.json`).

use serde_json::{Value, json};

fn error_responses(codes: &[u16]) -> serde_json::Map<String, Value> {
    codes
        .iter()
        .map(|code| {
            (
                code.to_string(),
                json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
            )
        })
        .collect()
}

fn op(summary: &str, ok: u16, errors: &[u16], params: &[&str], body: Option<&str>) -> Value {
    let mut responses = error_responses(errors);
    responses.insert(
        ok.to_string(),
        if ok == 204 {
            json!({"description": "done"})
        } else {
            json!({"description": "success", "content": {"application/json": {"schema": {"type": "object"}}}})
        },
    );
    let parameters: Vec<Value> = params
        .iter()
        .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string", "minLength": 1}}))
        .collect();
    let mut operation = json!({
        "summary": summary,
        "parameters": parameters,
        "responses": responses,
        "security": [{"bearer": []}],
    });
    if let Some(schema) = body {
        operation["requestBody"] = json!({
            "required": true,
            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
        });
    }
    operation
}

/// `get_api_v1_stagesets_namespace_name`-style ids, stable for tools that filter by them.
fn add_operation_ids(doc: &mut Value) {
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let slug: String = path
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>()
                .split('_')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("_");
            if let Some(methods) = item.as_object_mut() {
                for (method, operation) in methods.iter_mut() {
                    operation["operationId"] = Value::String(format!("{method}_{slug}"));
                }
            }
        }
    }
}

/// The document.
pub fn document() -> Value {
    let mut doc = paths_and_schemas();
    add_operation_ids(&mut doc);
    doc
}

fn paths_and_schemas() -> Value {
    const AUTH: &[u16] = &[401];
    const READ: &[u16] = &[401, 404];
    const WRITE: &[u16] = &[400, 401, 403, 404, 409, 413];
    let ss = &["namespace", "name"][..];
    let stage = &["namespace", "name", "stage"][..];
    let mut login = op(
        "Log in with a local account",
        200,
        &[400, 401, 413, 429],
        &[],
        Some("Login"),
    );
    login["security"] = json!([]);
    let mut list = op(
        "List StageSets the caller may see, a page at a time",
        200,
        &[400, 401],
        &[],
        None,
    );
    list["parameters"] = json!([
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
        {"name": "continue", "in": "query", "schema": {"type": "string"}},
        {"name": "namespace", "in": "query", "schema": {"type": "string"}}
    ]);
    let mut webhook = op(
        "Git host webhook (GitHub, GitLab or generic HMAC); requests reconciles of matching StageSets",
        202,
        &[400, 401, 413, 503],
        &[],
        None,
    );
    webhook["security"] = json!([]);
    webhook["requestBody"] =
        json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}});
    let token_body = json!({"required": false, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TokenRequest"}}}});
    let mut api_key = op("Create an API key", 201, WRITE, &["name"], None);
    api_key["requestBody"] = token_body.clone();
    let mut project_token = op(
        "Create a project role token",
        201,
        WRITE,
        &["project", "role"],
        None,
    );
    project_token["requestBody"] = token_body;
    json!({
        "openapi": "3.0.3",
        "info": {"title": "sluice API", "version": env!("CARGO_PKG_VERSION")},
        "paths": {
            "/api/v1/session": {
                "post": login,
                "delete": op("Revoke the caller's token", 200, &[400, 401], &[], None),
            },
            "/api/v1/session/userinfo": {"get": op("Who the caller is", 200, AUTH, &[], None)},
            "/api/v1/account": {"get": op("The caller's local account", 200, &[400, 401, 404], &[], None)},
            "/api/v1/account/password": {"put": op("Change the caller's password (revokes earlier tokens)", 200, &[400, 401, 403, 404, 413, 429], &[], Some("PasswordChange"))},
            "/api/v1/accounts": {
                "get": op("List local accounts", 200, AUTH, &[], None),
                "post": op("Create a local account", 201, WRITE, &[], Some("Account")),
            },
            "/api/v1/accounts/{name}": {
                "get": op("One local account", 200, READ, &["name"], None),
                "patch": op("Enable, disable, change capabilities or password", 200, WRITE, &["name"], Some("AccountUpdate")),
                "delete": op("Delete a local account", 204, WRITE, &["name"], None),
            },
            "/api/v1/accounts/{name}/tokens": {
                "get": op("List an account's API keys", 200, READ, &["name"], None),
                "post": api_key,
            },
            "/api/v1/accounts/{name}/tokens/{id}": {
                "delete": op("Revoke an API key", 204, WRITE, &["name", "id"], None),
            },
            "/api/v1/projects": {"get": op("List Projects the caller may see", 200, AUTH, &[], None)},
            "/api/v1/projects/{name}": {"get": op("One Project", 200, READ, &["name"], None)},
            "/api/v1/projects/{project}/roles/{role}/token": {"post": project_token},
            "/api/v1/projects/{project}/roles/{role}/token/{jti}": {
                "delete": op("Revoke a project role token", 204, WRITE, &["project", "role", "jti"], None),
            },
            "/api/v1/stagesets": {"get": list},
            "/api/v1/stagesets/{namespace}/{name}": {"get": op("One StageSet", 200, READ, ss, None)},
            "/api/v1/stagesets/{namespace}/{name}/stages": {"get": op("Per-stage status", 200, READ, ss, None)},
            "/api/v1/stagesets/{namespace}/{name}/stages/{stage}/manifests": {"get": op("A stage's rendered manifests (Secrets redacted)", 200, &[401, 404, 409, 503], stage, None)},
            "/api/v1/stagesets/{namespace}/{name}/stages/{stage}/diff": {"get": op("A stage's diff against the live state (Secrets redacted)", 200, &[401, 404, 409, 503], stage, None)},
            "/api/v1/stagesets/{namespace}/{name}/stages/{stage}/approve": {"post": op("Approve a stage's gate", 202, &[401, 403, 404], stage, None)},
            "/api/v1/stagesets/{namespace}/{name}/reconcile": {"post": op("Request a reconcile", 202, &[401, 403, 404], ss, None)},
            "/api/v1/stagesets/{namespace}/{name}/events": {"get": op("Events about a StageSet", 200, &[401, 403, 404], ss, None)},
            "/api/webhook": {"post": webhook},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "object", "required": ["code", "reason", "message"], "properties": {
                        "code": {"type": "integer"}, "reason": {"type": "string"}, "message": {"type": "string"}}}}
                },
                "Login": {"type": "object", "required": ["username", "password"], "additionalProperties": false, "properties": {
                    "username": {"type": "string"}, "password": {"type": "string"}}},
                "PasswordChange": {"type": "object", "required": ["currentPassword", "newPassword"], "additionalProperties": false, "properties": {
                    "currentPassword": {"type": "string"}, "newPassword": {"type": "string"}}},
                "Account": {"type": "object", "required": ["name"], "additionalProperties": false, "properties": {
                    "name": {"type": "string"},
                    "capabilities": {"type": "array", "items": {"type": "string", "enum": ["login", "apiKey"]}},
                    "password": {"type": "string"}, "enabled": {"type": "boolean"}}},
                "AccountUpdate": {"type": "object", "additionalProperties": false, "properties": {
                    "capabilities": {"type": "array", "items": {"type": "string", "enum": ["login", "apiKey"]}},
                    "password": {"type": "string"}, "enabled": {"type": "boolean"}}},
                "TokenRequest": {"type": "object", "additionalProperties": false, "properties": {
                    "expiresIn": {"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string"}]}}},
            }
        }
    })
}
