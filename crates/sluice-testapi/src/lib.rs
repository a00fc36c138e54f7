//! An in-process Kubernetes API server for tests, spoken to over real HTTP by the real `kube`
//! client. It models what sluice's controller relies on: discovery (`/api`, `/apis`, resource
//! lists, kinds added by applied CRDs), get and list (equality label selectors), server-side
//! apply with field-manager ownership and conflicts, JSON merge patch with `resourceVersion`
//! preconditions, the status subresource, delete with finalizers and `deletionTimestamp`, and
//! impersonation (`Impersonate-User`) checked against a small RBAC table, answering 403 in the
//! API server's words. docs/testing.md lists what it does not model.

// Errors here are finished HTTP responses handed straight back to axum; boxing them would
// only add noise to a test server.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A served resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// API group (`""` for core).
    pub group: String,
    /// Version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Plural (the URL segment).
    pub plural: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
}

fn builtin() -> Vec<Resource> {
    [
        ("", "v1", "ConfigMap", "configmaps", true),
        ("", "v1", "Secret", "secrets", true),
        ("", "v1", "Service", "services", true),
        ("", "v1", "ServiceAccount", "serviceaccounts", true),
        ("", "v1", "Namespace", "namespaces", false),
        ("", "v1", "Event", "events", true),
        ("events.k8s.io", "v1", "Event", "events", true),
        ("apps", "v1", "Deployment", "deployments", true),
        ("apps", "v1", "StatefulSet", "statefulsets", true),
        ("batch", "v1", "Job", "jobs", true),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
        ),
        ("coordination.k8s.io", "v1", "Lease", "leases", true),
        (
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
        ),
        (
            "source.toolkit.fluxcd.io",
            "v1",
            "GitRepository",
            "gitrepositories",
            true,
        ),
        ("source.toolkit.fluxcd.io", "v1", "Bucket", "buckets", true),
        (
            "source.toolkit.fluxcd.io",
            "v1",
            "ExternalArtifact",
            "externalartifacts",
            true,
        ),
        (
            "source.toolkit.fluxcd.io",
            "v1beta2",
            "OCIRepository",
            "ocirepositories",
            true,
        ),
        ("sluice.dev", "v1alpha1", "StageSet", "stagesets", true),
        ("sluice.dev", "v1alpha1", "Project", "projects", false),
    ]
    .into_iter()
    .map(|(g, v, k, p, n)| Resource {
        group: g.into(),
        version: v.into(),
        kind: k.into(),
        plural: p.into(),
        namespaced: n,
    })
    .collect()
}

type Key = (String, String, Option<String>, String);

#[derive(Debug)]
struct Grant {
    user: String,
    verbs: Vec<String>,
    resource: String,
    namespace: Option<String>,
}

/// One watch event: resourceVersion, type, and the object's key.
#[derive(Debug, Clone)]
struct Event {
    version: u64,
    kind: &'static str,
    key: Key,
    object: Value,
}

#[derive(Debug)]
struct Inner {
    resources: Vec<Resource>,
    objects: BTreeMap<Key, Value>,
    grants: Vec<Grant>,
    version: u64,
    writes: Vec<String>,
    events: Vec<Event>,
    wake: tokio::sync::broadcast::Sender<()>,
}

impl Inner {
    /// Stores (or removes) an object and tells the watchers.
    fn record(&mut self, kind: &'static str, key: Key, object: Value) {
        let version = object["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(self.version);
        if kind == "DELETED" {
            self.objects.remove(&key);
        } else {
            self.objects.insert(key.clone(), object.clone());
        }
        self.events.push(Event {
            version,
            kind,
            key,
            object,
        });
        let _ = self.wake.send(());
    }
}

/// The server's state, shared with the test.
#[derive(Debug, Clone)]
pub struct Shared(Arc<Mutex<Inner>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running test API server.
pub struct TestApi {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    shared: Shared,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for TestApi {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl TestApi {
    /// Starts a server on a free loopback port, on its own runtime.
    pub fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            // Named, so benchmarks can tell the server's CPU from the client's.
            .thread_name("testapi")
            .enable_all()
            .build()?;
        let shared = Shared(Arc::new(Mutex::new(Inner {
            resources: builtin(),
            objects: BTreeMap::new(),
            grants: Vec::new(),
            version: 0,
            writes: Vec::new(),
            events: Vec::new(),
            wake: tokio::sync::broadcast::channel(1024).0,
        })));
        let listener =
            runtime.block_on(async { tokio::net::TcpListener::bind("127.0.0.1:0").await })?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url,
            shared,
            runtime: Some(runtime),
        })
    }

    /// Lets `user` do `verbs` (`*` = all) on `resource` (plural, `*` = all; `stagesets/status`
    /// for the subresource) in `namespace` (`None` = everywhere).
    pub fn allow(&self, user: &str, verbs: &[&str], resource: &str, namespace: Option<&str>) {
        self.shared.lock().grants.push(Grant {
            user: user.into(),
            verbs: verbs.iter().map(|v| (*v).into()).collect(),
            resource: resource.into(),
            namespace: namespace.map(Into::into),
        });
    }

    /// Every write request (`METHOD path`), in order.
    pub fn writes(&self) -> Vec<String> {
        self.shared.lock().writes.clone()
    }

    /// An object, read without authorization.
    pub fn peek(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let inner = self.shared.lock();
        let (group, _) = split_api_version(api_version);
        let plural = inner
            .resources
            .iter()
            .find(|r| r.group == group && r.kind == kind)?
            .plural
            .clone();
        inner
            .objects
            .get(&(group, plural, ns.map(Into::into), name.into()))
            .cloned()
    }

    /// Every object of a kind in a namespace (`None`: all), read without authorization.
    pub fn list(&self, api_version: &str, kind: &str, ns: Option<&str>) -> Vec<Value> {
        let inner = self.shared.lock();
        let (group, _) = split_api_version(api_version);
        let Some(plural) = inner
            .resources
            .iter()
            .find(|r| r.group == group && r.kind == kind)
            .map(|r| r.plural.clone())
        else {
            return Vec::new();
        };
        inner
            .objects
            .iter()
            .filter(|((g, p, n, _), _)| {
                *g == group && *p == plural && (ns.is_none() || n.as_deref() == ns)
            })
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// Plays a controller or the kubelet: replaces an object's status.
    pub fn set_status(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
        status: Value,
    ) {
        let mut inner = self.shared.lock();
        let (group, _) = split_api_version(api_version);
        let Some(plural) = inner
            .resources
            .iter()
            .find(|r| r.group == group && r.kind == kind)
            .map(|r| r.plural.clone())
        else {
            return;
        };
        inner.version += 1;
        let version = inner.version.to_string();
        let key = (group, plural, ns.map(Into::into), name.into());
        if let Some(mut o) = inner.objects.get(&key).cloned() {
            o["status"] = status;
            o["metadata"]["resourceVersion"] = Value::String(version);
            inner.record("MODIFIED", key, o);
        }
    }
}

fn split_api_version(api_version: &str) -> (String, String) {
    match api_version.rsplit_once('/') {
        Some((g, v)) => (g.into(), v.into()),
        None => (String::new(), api_version.into()),
    }
}

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    (
        code,
        axum::Json(json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                          "status": "Failure", "message": message, "reason": reason,
                          "code": code.as_u16()})),
    )
        .into_response()
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            if let Some(t) = target.as_object_mut() {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

struct Request {
    resource: Resource,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn discovery(inner: &Inner, path: &str) -> Option<Value> {
    if path == "/api" {
        return Some(
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
        );
    }
    let list = |group: &str, version: &str| {
        let resources: Vec<Value> = inner
            .resources
            .iter()
            .filter(|r| r.group == group && r.version == version)
            .flat_map(|r| {
                [
                    json!({"name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced,
                           "kind": r.kind, "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}),
                    json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced,
                           "kind": r.kind, "verbs": ["get", "patch", "update"]}),
                ]
            })
            .collect();
        let gv = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
    };
    if path == "/api/v1" {
        return Some(list("", "v1"));
    }
    if path == "/apis" {
        let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for r in inner.resources.iter().filter(|r| !r.group.is_empty()) {
            let versions = groups.entry(&r.group).or_default();
            if !versions.contains(&r.version.as_str()) {
                versions.push(&r.version);
            }
        }
        let groups: Vec<Value> = groups
            .into_iter()
            .map(|(g, vs)| {
                let versions: Vec<Value> = vs
                    .iter()
                    .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                    .collect();
                json!({"name": g, "versions": versions, "preferredVersion": versions[0]})
            })
            .collect();
        return Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}));
    }
    let rest: Vec<&str> = path.strip_prefix("/apis/")?.split('/').collect();
    if let [group, version] = rest.as_slice() {
        return Some(list(group, version));
    }
    None
}

fn parse(inner: &Inner, path: &str) -> Result<Request, Response> {
    let not_found = || {
        status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(not_found()),
    };
    let (namespace, plural, name, sub) = match rest {
        ["namespaces", ns, plural, tail @ ..] => (Some(*ns), *plural, tail.first(), tail.get(1)),
        [plural, tail @ ..] => (None, *plural, tail.first(), tail.get(1)),
        [] => return Err(not_found()),
    };
    let resource = inner
        .resources
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
        .cloned()
        .ok_or_else(not_found)?;
    Ok(Request {
        namespace: if resource.namespaced {
            namespace.map(Into::into)
        } else {
            None
        },
        resource,
        name: name.map(|s| (*s).to_owned()),
        subresource: sub.map(|s| (*s).to_owned()),
    })
}

fn authorize(inner: &Inner, user: &str, verb: &str, req: &Request) -> Result<(), Response> {
    if user == "admin" {
        return Ok(());
    }
    let resource = match &req.subresource {
        Some(s) => format!("{}/{s}", req.resource.plural),
        None => req.resource.plural.clone(),
    };
    let ok = inner.grants.iter().any(|g| {
        g.user == user
            && (g.verbs.iter().any(|v| v == verb || v == "*"))
            && (g.resource == "*" || g.resource == resource)
            && (g.namespace.is_none() || g.namespace == req.namespace)
    });
    if ok {
        return Ok(());
    }
    let place = match &req.namespace {
        Some(ns) => format!(" in the namespace \"{ns}\""),
        None => " at the cluster scope".into(),
    };
    Err(status(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!(
            "{resource} \"{}\" is forbidden: User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{}\"{place}",
            req.name.as_deref().unwrap_or(""),
            req.resource.group
        ),
    ))
}

fn labels_match(object: &Value, selector: &str) -> bool {
    selector
        .split(',')
        .filter(|s| !s.is_empty())
        .all(|term| match term.split_once('=') {
            Some((k, v)) => {
                object["metadata"]["labels"][k.trim_end_matches('=')] == v.trim_start_matches('=')
            }
            None => object["metadata"]["labels"].get(term).is_some(),
        })
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query: BTreeMap<String, String> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            (
                k.to_owned(),
                v.replace("%3D", "=")
                    .replace("%2C", ",")
                    .replace("%2F", "/"),
            )
        })
        .collect();
    let user = headers
        .get("impersonate-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("admin")
        .to_owned();
    let mut inner = shared.lock();
    if path == "/debug/writes" {
        // For benchmarks that run the server in another process.
        return axum::Json(json!({"writes": inner.writes.len()})).into_response();
    }
    if method == Method::GET
        && let Some(d) = discovery(&inner, &path)
    {
        return axum::Json(d).into_response();
    }
    let req = match parse(&inner, &path) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let key = |name: &str| {
        (
            req.resource.group.clone(),
            req.resource.plural.clone(),
            req.namespace.clone(),
            name.to_owned(),
        )
    };
    match (method.clone(), req.name.clone()) {
        (Method::GET, None) => {
            if let Err(r) = authorize(&inner, &user, "list", &req) {
                return r;
            }
            if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
                let from: u64 = query
                    .get("resourceVersion")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(inner.version);
                let timeout: u64 = query
                    .get("timeoutSeconds")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(30)
                    .min(30);
                let selector = query.get("labelSelector").cloned().unwrap_or_default();
                let wake = inner.wake.subscribe();
                drop(inner);
                return watch(shared.clone(), req, from, timeout, selector, wake);
            }
            let selector = query.get("labelSelector").cloned().unwrap_or_default();
            // Keys sort by group, plural, namespace: start at the first possible match.
            let start = (
                req.resource.group.clone(),
                req.resource.plural.clone(),
                req.namespace.clone(),
                String::new(),
            );
            let items: Vec<Value> = inner
                .objects
                .range(start..)
                .take_while(|((g, p, ns, _), _)| {
                    *g == req.resource.group
                        && *p == req.resource.plural
                        && (req.namespace.is_none() || *ns == req.namespace)
                })
                .filter(|((g, p, ns, _), _)| {
                    *g == req.resource.group
                        && *p == req.resource.plural
                        && (req.namespace.is_none() || *ns == req.namespace)
                })
                .map(|(_, o)| o.clone())
                .filter(|o| labels_match(o, &selector))
                .collect();
            let gv = if req.resource.group.is_empty() {
                req.resource.version.clone()
            } else {
                format!("{}/{}", req.resource.group, req.resource.version)
            };
            axum::Json(json!({"kind": format!("{}List", req.resource.kind), "apiVersion": gv,
                              "metadata": {"resourceVersion": inner.version.to_string()}, "items": items}))
                .into_response()
        }
        (Method::GET, Some(name)) => {
            if let Err(r) = authorize(&inner, &user, "get", &req) {
                return r;
            }
            match inner.objects.get(&key(&name)) {
                Some(o) => axum::Json(o.clone()).into_response(),
                None => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("{} \"{name}\" not found", req.resource.plural),
                ),
            }
        }
        (Method::PATCH, Some(name)) => {
            inner.writes.push(format!("PATCH {path}"));
            let content_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "the body is not JSON".into(),
                );
            };
            let existing = inner.objects.get(&key(&name)).cloned();
            let verb = if existing.is_none() && content_type.starts_with("application/apply-patch")
            {
                "create"
            } else {
                "patch"
            };
            if let Err(r) = authorize(&inner, &user, verb, &req) {
                return r;
            }
            inner.version += 1;
            let version = inner.version.to_string();
            let result = if content_type.starts_with("application/apply-patch") {
                let Some(manager) = query.get("fieldManager").cloned() else {
                    return status(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "fieldManager is required for apply".into(),
                    );
                };
                let force = query.get("force").is_some_and(|f| f == "true");
                apply(
                    existing,
                    patch,
                    &manager,
                    force,
                    &version,
                    req.subresource.as_deref(),
                )
            } else if content_type.starts_with("application/merge-patch") {
                let Some(mut object) = existing else {
                    return status(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        format!("{} \"{name}\" not found", req.resource.plural),
                    );
                };
                let precondition = patch["metadata"]["resourceVersion"].as_str();
                if precondition
                    .is_some_and(|rv| Some(rv) != object["metadata"]["resourceVersion"].as_str())
                {
                    return status(
                        StatusCode::CONFLICT,
                        "Conflict",
                        format!(
                            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                            req.resource.plural
                        ),
                    );
                }
                let spec_before = object.get("spec").cloned();
                if req.subresource.as_deref() == Some("status") {
                    merge_patch(&mut object["status"], &patch["status"]);
                } else {
                    let mut p = patch.clone();
                    if let Some(m) = p.as_object_mut() {
                        m.remove("status");
                    }
                    merge_patch(&mut object, &p);
                    if object.get("spec") != spec_before.as_ref() {
                        let g = object["metadata"]["generation"].as_i64().unwrap_or(1);
                        object["metadata"]["generation"] = json!(g + 1);
                    }
                }
                object["metadata"]["resourceVersion"] = Value::String(version);
                Ok(object)
            } else {
                return status(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    format!("{content_type} is not modelled"),
                );
            };
            let object = match result {
                Ok(o) => o,
                Err(message) => return status(StatusCode::CONFLICT, "Conflict", message),
            };
            // Removing the last finalizer of an object being deleted deletes it.
            let finalizers_done = object["metadata"]["finalizers"]
                .as_array()
                .is_none_or(Vec::is_empty);
            if object["metadata"].get("deletionTimestamp").is_some() && finalizers_done {
                inner.record("DELETED", key(&name), object.clone());
                return axum::Json(object).into_response();
            }
            if req.resource.kind == "CustomResourceDefinition" {
                register_crd(&mut inner, &object);
            }
            let kind = if inner.objects.contains_key(&key(&name)) {
                "MODIFIED"
            } else {
                "ADDED"
            };
            inner.record(kind, key(&name), object.clone());
            axum::Json(object).into_response()
        }
        (Method::POST, None) => {
            inner.writes.push(format!("POST {path}"));
            if let Err(r) = authorize(&inner, &user, "create", &req) {
                return r;
            }
            let Ok(mut object) = serde_json::from_slice::<Value>(&body) else {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "the body is not JSON".into(),
                );
            };
            inner.version += 1;
            let version = inner.version;
            let name = match object["metadata"]["name"].as_str() {
                Some(n) if !n.is_empty() => n.to_owned(),
                _ => format!(
                    "{}{version:05}",
                    object["metadata"]["generateName"]
                        .as_str()
                        .unwrap_or("object-")
                ),
            };
            if inner.objects.contains_key(&key(&name)) {
                return status(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    format!("{} \"{name}\" already exists", req.resource.plural),
                );
            }
            object["metadata"]["name"] = json!(name);
            if let Some(ns) = &req.namespace {
                object["metadata"]["namespace"] = json!(ns);
            }
            object["metadata"]["resourceVersion"] = json!(version.to_string());
            object["metadata"]["uid"] = json!(format!("uid-{version}"));
            object["metadata"]["generation"] = json!(1);
            inner.record("ADDED", key(&name), object.clone());
            (StatusCode::CREATED, axum::Json(object)).into_response()
        }
        (Method::DELETE, Some(name)) => {
            inner.writes.push(format!("DELETE {path}"));
            if let Err(r) = authorize(&inner, &user, "delete", &req) {
                return r;
            }
            let k = key(&name);
            let Some(mut object) = inner.objects.get(&k).cloned() else {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("{} \"{name}\" not found", req.resource.plural),
                );
            };
            if object["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty())
            {
                inner.version += 1;
                object["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
                object["metadata"]["resourceVersion"] = Value::String(inner.version.to_string());
                inner.record("MODIFIED", k, object.clone());
                return axum::Json(object).into_response();
            }
            inner.version += 1;
            object["metadata"]["resourceVersion"] = Value::String(inner.version.to_string());
            inner.record("DELETED", k, object);
            axum::Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}))
                .into_response()
        }
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{method} {path} is not modelled"),
        ),
    }
}

/// Server-side apply: the fields a manager sets are its own; another manager's apply of an
/// owned field conflicts unless forced (ownership is tracked per top-level section here, a
/// coarser grain than the real field sets).
fn apply(
    existing: Option<Value>,
    applied: Value,
    manager: &str,
    force: bool,
    version: &str,
    subresource: Option<&str>,
) -> Result<Value, String> {
    let sections = |v: &Value| -> Vec<String> {
        v.as_object()
            .map(|m| {
                m.keys()
                    .filter(|k| {
                        !matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status")
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut object = existing.clone().unwrap_or_else(|| json!({}));
    let mut managed: Vec<Value> = object["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if subresource == Some("status") {
        object["status"] = applied["status"].clone();
    } else {
        let mine = sections(&applied);
        for entry in &managed {
            let other = entry["manager"].as_str().unwrap_or_default();
            if other == manager || force {
                continue;
            }
            let theirs: Vec<String> = entry["sections"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect();
            if let Some(clash) = mine.iter().find(|s| theirs.contains(s)) {
                return Err(format!(
                    "Apply failed with 1 conflict: conflict with \"{other}\": .{clash}"
                ));
            }
        }
        let spec_before = object.get("spec").cloned();
        // Fields this manager set before and dropped now go away; others' stay.
        let previous: Vec<String> = managed
            .iter()
            .filter(|e| e["manager"] == manager)
            .flat_map(|e| e["sections"].as_array().cloned().unwrap_or_default())
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect();
        if let Some(m) = object.as_object_mut() {
            for gone in previous.iter().filter(|s| !mine.contains(s)) {
                m.remove(gone);
            }
        }
        for (k, v) in applied.as_object().into_iter().flatten() {
            match k.as_str() {
                "metadata" => {
                    for field in ["name", "namespace", "labels", "annotations", "finalizers"] {
                        if let Some(val) = v.get(field) {
                            object["metadata"][field] = val.clone();
                        }
                    }
                }
                "status" => {}
                _ => object[k] = v.clone(),
            }
        }
        for entry in &mut managed {
            if force
                && entry["manager"] != manager
                && let Some(list) = entry["sections"].as_array_mut()
            {
                list.retain(|s| !mine.iter().any(|m| s == m));
            }
        }
        managed.retain(|e| e["manager"] != manager);
        managed.push(json!({"manager": manager, "operation": "Apply", "sections": mine}));
        let generation = object["metadata"]["generation"].as_i64();
        object["metadata"]["generation"] = json!(match (generation, existing.is_some()) {
            (Some(g), true) if object.get("spec") != spec_before.as_ref() => g + 1,
            (Some(g), true) => g,
            _ => 1,
        });
        if existing.is_none() {
            object["metadata"]["uid"] = json!(format!("uid-{version}"));
            object["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
    }
    object["metadata"]["managedFields"] = Value::Array(managed);
    object["metadata"]["resourceVersion"] = Value::String(version.to_owned());
    Ok(object)
}

/// A watch: events after `from` for the resource (and namespace), one JSON object per line,
/// until `timeout` seconds pass (the client then watches again from its last version).
fn watch(
    shared: Shared,
    req: Request,
    from: u64,
    timeout: u64,
    selector: String,
    wake: tokio::sync::broadcast::Receiver<()>,
) -> Response {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(timeout);
    let state = (shared, req, from, selector, wake);
    let stream = futures_util::stream::unfold(
        state,
        move |(shared, req, mut last, selector, mut wake)| async move {
            loop {
                let batch: Vec<Event> = {
                    let inner = shared.lock();
                    inner
                        .events
                        .iter()
                        .filter(|e| {
                            e.version > last
                                && e.key.0 == req.resource.group
                                && e.key.1 == req.resource.plural
                                && (req.namespace.is_none() || e.key.2 == req.namespace)
                                && labels_match(&e.object, &selector)
                        })
                        .cloned()
                        .collect()
                };
                if !batch.is_empty() {
                    let mut bytes = Vec::new();
                    for e in &batch {
                        last = last.max(e.version);
                        let line = json!({"type": e.kind, "object": e.object});
                        bytes.extend_from_slice(line.to_string().as_bytes());
                        bytes.push(b'\n');
                    }
                    return Some((
                        Ok::<_, std::io::Error>(Bytes::from(bytes)),
                        (shared, req, last, selector, wake),
                    ));
                }
                match tokio::time::timeout_at(deadline, wake.recv()).await {
                    Err(_) => return None,
                    Ok(_) => continue,
                }
            }
        },
    );
    Response::builder()
        .header("content-type", "application/json")
        .body(axum::body::Body::from_stream(stream))
        .unwrap_or_else(|_| {
            status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "watch".into(),
            )
        })
}

fn register_crd(inner: &mut Inner, crd: &Value) {
    let spec = &crd["spec"];
    let (Some(group), Some(kind), Some(plural)) = (
        spec["group"].as_str(),
        spec["names"]["kind"].as_str(),
        spec["names"]["plural"].as_str(),
    ) else {
        return;
    };
    for v in spec["versions"].as_array().into_iter().flatten() {
        let Some(version) = v["name"].as_str() else {
            continue;
        };
        let r = Resource {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            namespaced: spec["scope"] != "Cluster",
        };
        if !inner.resources.contains(&r) {
            inner.resources.push(r);
        }
    }
}
