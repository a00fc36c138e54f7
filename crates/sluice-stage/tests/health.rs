//! Readiness rules on live-object shapes as the Kubernetes controllers write them.

use serde_json::{Value, json};
use sluice_api::ReadyExpr;
use sluice_stage::health::{CelCheck, Health, builtin, health};

fn deployment(generation: i64, status: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "api", "namespace": "shop", "generation": generation},
           "spec": {"replicas": 3}, "status": status})
}

fn in_progress(h: &Health, needle: &str) -> bool {
    matches!(h, Health::InProgress(m) if m.contains(needle))
}

fn failed(h: &Health, needle: &str) -> bool {
    matches!(h, Health::Failed(m) if m.contains(needle))
}

#[test]
fn deployments_roll_out_step_by_step() {
    let h = builtin(&deployment(2, json!({"observedGeneration": 1})));
    assert!(in_progress(&h, "observe generation 2"), "{h:?}");
    let h = builtin(&deployment(
        2,
        json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 2}),
    ));
    assert!(in_progress(&h, "2/3 replicas updated"), "{h:?}");
    let h = builtin(&deployment(
        2,
        json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3}),
    ));
    assert!(
        in_progress(&h, "1 old replicas pending termination"),
        "{h:?}"
    );
    let h = builtin(&deployment(
        2,
        json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2, "readyReplicas": 3}),
    ));
    assert!(in_progress(&h, "2/3 replicas available"), "{h:?}");
    let h = builtin(&deployment(
        2,
        json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3, "readyReplicas": 3}),
    ));
    assert_eq!(h, Health::Current);
    let h = builtin(&deployment(
        2,
        json!({"observedGeneration": 2, "conditions": [{"type": "Progressing", "status": "False",
               "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet api-1 has timed out progressing."}]}),
    ));
    assert!(failed(&h, "timed out"), "{h:?}");
}

#[test]
fn statefulsets_daemonsets_replicasets() {
    let sts = |spec: Value, status: Value| {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "generation": 1},
               "spec": spec, "status": status})
    };
    let h = builtin(&sts(
        json!({"replicas": 3}),
        json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 3, "currentRevision": "db-1", "updateRevision": "db-2"}),
    ));
    assert!(in_progress(&h, "db-1 to db-2"), "{h:?}");
    let h = builtin(&sts(
        json!({"replicas": 3, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}),
        json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 1, "currentRevision": "db-1", "updateRevision": "db-2"}),
    ));
    assert_eq!(h, Health::Current, "only the pod above the partition rolls");
    let h = builtin(&sts(
        json!({"replicas": 3}),
        json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 3, "currentRevision": "db-2", "updateRevision": "db-2"}),
    ));
    assert_eq!(h, Health::Current);

    let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "generation": 4},
                    "status": {"observedGeneration": 4, "desiredNumberScheduled": 5, "updatedNumberScheduled": 5,
                               "numberAvailable": 4, "numberReady": 5}});
    assert!(in_progress(&builtin(&ds), "4/5 nodes available"));

    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "x"},
                    "spec": {"replicas": 2},
                    "status": {"conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                               "message": "pods \"x-\" is forbidden: exceeded quota"}]}});
    assert!(failed(&builtin(&rs), "exceeded quota"));
}

#[test]
fn jobs_pods_claims_services_crds() {
    let job = |conditions: Value| {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
               "spec": {"completions": 1}, "status": {"conditions": conditions}})
    };
    assert!(in_progress(&builtin(&job(json!([]))), "0/1 completions"));
    assert_eq!(
        builtin(&job(json!([{"type": "Complete", "status": "True"}]))),
        Health::Current
    );
    assert!(failed(
        &builtin(&job(
            json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}])
        )),
        "BackoffLimitExceeded"
    ));

    let pod = |status: Value| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "status": status});
    assert!(failed(
        &builtin(&pod(json!({"phase": "Running", "containerStatuses": [
            {"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}))),
        "container app: CrashLoopBackOff"
    ));
    assert!(in_progress(
        &builtin(&pod(
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]})
        )),
        "not ready"
    ));
    assert_eq!(
        builtin(&pod(
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]})
        )),
        Health::Current
    );

    let pvc = |phase: &str| json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "d"}, "status": {"phase": phase}});
    assert_eq!(builtin(&pvc("Bound")), Health::Current);
    assert!(in_progress(&builtin(&pvc("Pending")), "Pending"));
    assert!(failed(&builtin(&pvc("Lost")), "lost"));

    let lb = |status: Value| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                                    "spec": {"type": "LoadBalancer"}, "status": status})
    };
    assert!(in_progress(&builtin(&lb(json!({}))), "load balancer"));
    assert_eq!(
        builtin(&lb(
            json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}})
        )),
        Health::Current
    );
    let cluster_ip = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "ClusterIP"}});
    assert_eq!(builtin(&cluster_ip), Health::Current);

    let crd = |conditions: Value| {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                                         "metadata": {"name": "widgets.example.com"}, "status": {"conditions": conditions}})
    };
    assert!(in_progress(&builtin(&crd(json!([]))), "Established"));
    assert_eq!(
        builtin(&crd(json!([{"type": "Established", "status": "True"}]))),
        Health::Current
    );
    assert!(failed(
        &builtin(&crd(
            json!([{"type": "NamesAccepted", "status": "False", "reason": "MultipleNamesNotAllowed"}])
        )),
        "MultipleNamesNotAllowed"
    ));
}

#[test]
fn generic_objects_follow_observed_generation_and_kstatus_conditions() {
    let cm =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
    assert_eq!(builtin(&cm), Health::Current);
    let custom = |generation: i64, status: Value| json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "generation": generation}, "status": status});
    assert!(in_progress(
        &builtin(&custom(3, json!({"observedGeneration": 2}))),
        "generation 3"
    ));
    assert!(in_progress(
        &builtin(&custom(
            3,
            json!({"observedGeneration": 3, "conditions": [{"type": "Ready", "status": "False", "reason": "Provisioning"}]})
        )),
        "Provisioning"
    ));
    assert!(failed(
        &builtin(&custom(
            3,
            json!({"observedGeneration": 3, "conditions": [{"type": "Stalled", "status": "True", "message": "quota"}]})
        )),
        "quota"
    ));
    assert_eq!(
        builtin(&custom(
            3,
            json!({"observedGeneration": 3, "conditions": [{"type": "Ready", "status": "True"}]})
        )),
        Health::Current
    );
}

#[test]
fn cel_expressions_decide_for_their_kind() {
    let check = CelCheck::compile(&ReadyExpr {
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        current: "status.phase == 'Ready'".into(),
        in_progress: Some("status.phase == 'Provisioning'".into()),
        failed: Some("status.phase == 'Failed'".into()),
    })
    .expect("compile");
    let widget = |status: Value| json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "status": status});
    let checks = [check];
    assert_eq!(
        health(&widget(json!({"phase": "Ready"})), &checks),
        Health::Current
    );
    assert!(matches!(
        health(&widget(json!({"phase": "Provisioning"})), &checks),
        Health::InProgress(_)
    ));
    assert!(failed(
        &health(&widget(json!({"phase": "Failed"})), &checks),
        "Failed"
    ));
    // No status yet: not ready, not broken.
    let fresh =
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
    assert!(
        matches!(health(&fresh, &checks), Health::InProgress(_)),
        "{:?}",
        health(&fresh, &checks)
    );
    // Other kinds keep the built-in rules.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    assert_eq!(health(&cm, &checks), Health::Current);

    let broken = CelCheck::compile(&ReadyExpr {
        api_version: "v1".into(),
        kind: "X".into(),
        current: "status.phase ==".into(),
        in_progress: None,
        failed: None,
    });
    assert!(broken.is_err_and(|e| e.contains("current")));
    let not_bool = CelCheck::compile(&ReadyExpr {
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        current: "status.phase".into(),
        in_progress: None,
        failed: None,
    })
    .expect("compile");
    assert!(failed(
        &not_bool.evaluate(&widget(json!({"phase": "Ready"}))),
        "not a bool"
    ));
}
