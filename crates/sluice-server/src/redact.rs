//! Secret redaction: values of a Secret's `data` and `stringData` never leave the server.

use serde_json::Value;

/// What a redacted value looks like.
pub const MASK: &str = "++++++++";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Whether `object` is a core/v1 Secret.
pub fn is_secret(object: &Value) -> bool {
    object["kind"] == "Secret" && object["apiVersion"] == "v1"
}

/// Masks every value of a Secret's `data`/`stringData` and strips the last-applied
/// annotation (which repeats them in clear). Other objects are returned unchanged.
pub fn redact(object: &mut Value) {
    if !is_secret(object) {
        return;
    }
    for field in ["data", "stringData"] {
        if let Some(map) = object.get_mut(field).and_then(Value::as_object_mut) {
            for value in map.values_mut() {
                *value = Value::String(MASK.to_owned());
            }
        }
    }
    strip_last_applied(object);
}

fn strip_last_applied(object: &mut Value) {
    if let Some(annotations) = object
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(LAST_APPLIED);
    }
}

/// Redacts a desired/live pair for a diff: equal values get the same mask, values that
/// differ get masks of different lengths, so a diff shows *that* a key changed, never *what*.
pub fn redact_pair(desired: &mut Option<Value>, live: &mut Option<Value>) {
    let secret = desired.as_ref().is_some_and(is_secret) || live.as_ref().is_some_and(is_secret);
    if !secret {
        return;
    }
    for field in ["data", "stringData"] {
        let before = live
            .as_ref()
            .and_then(|l| l.get(field))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(map) = desired
            .as_mut()
            .and_then(|d| d.get_mut(field))
            .and_then(Value::as_object_mut)
        {
            for (key, value) in map.iter_mut() {
                let changed = before.get(key).is_some_and(|b| b != value);
                let mask = if changed {
                    format!("{MASK}+")
                } else {
                    MASK.to_owned()
                };
                *value = Value::String(mask);
            }
        }
        if let Some(map) = live
            .as_mut()
            .and_then(|l| l.get_mut(field))
            .and_then(Value::as_object_mut)
        {
            for value in map.values_mut() {
                *value = Value::String(MASK.to_owned());
            }
        }
    }
    for object in [desired.as_mut(), live.as_mut()].into_iter().flatten() {
        if is_secret(object) {
            strip_last_applied(object);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_masked_and_other_kinds_untouched() {
        let mut s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s",
            "annotations": {LAST_APPLIED: "{\"data\":{\"k\":\"aHVudGVyMg==\"}}", "keep": "x"}},
            "data": {"k": "aHVudGVyMg=="}, "stringData": {"p": "hunter2"}});
        redact(&mut s);
        let text = s.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("aHVudGVyMg"),
            "{text}"
        );
        assert_eq!(s["metadata"]["annotations"]["keep"], "x");
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}});
        redact(&mut cm);
        assert_eq!(cm["data"]["k"], "v");
    }

    #[test]
    fn pairs_show_change_not_content() {
        let mut d = Some(
            json!({"apiVersion": "v1", "kind": "Secret", "data": {"a": "bmV3", "b": "c2FtZQ=="}}),
        );
        let mut l = Some(
            json!({"apiVersion": "v1", "kind": "Secret", "data": {"a": "b2xk", "b": "c2FtZQ=="}}),
        );
        redact_pair(&mut d, &mut l);
        let (d, l) = (d.unwrap_or_default(), l.unwrap_or_default());
        assert_ne!(d["data"]["a"], l["data"]["a"]);
        assert_eq!(d["data"]["b"], l["data"]["b"]);
        assert!(!format!("{d}{l}").contains("c2FtZQ"));
    }
}
