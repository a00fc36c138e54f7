//! Labels and label selectors (`matchLabels` + `matchExpressions`), validated like the API server.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A label set. Ordered, so everything printed from it is deterministic.
pub type Labels = BTreeMap<String, String>;

/// A `metav1.LabelSelector` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelectorSpec {
    /// Equality requirements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
    /// Set-based requirements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_expressions: Option<Vec<ExpressionSpec>>,
}

/// One `matchExpressions` entry as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExpressionSpec {
    /// Label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values for `In` / `NotIn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

/// A set-based operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    /// The label is present with one of the values.
    In(Vec<String>),
    /// The label is absent or has none of the values.
    NotIn(Vec<String>),
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// Label key.
    pub key: String,
    /// What the value must satisfy.
    pub operator: Operator,
}

/// A compiled label selector: all requirements must hold. Empty selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// The requirements, `matchLabels` first (as `In` with one value).
    pub requirements: Vec<Requirement>,
}

impl Selector {
    /// The selector that matches everything (`{}`).
    pub fn everything() -> Self {
        Self::default()
    }

    /// Whether the selector is `{}`.
    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Equality selector from a label map.
    pub fn from_labels(labels: &Labels) -> Self {
        Self {
            requirements: labels
                .iter()
                .map(|(k, v)| Requirement {
                    key: k.clone(),
                    operator: Operator::In(vec![v.clone()]),
                })
                .collect(),
        }
    }

    /// Validates and compiles a written selector; errors are `(field suffix, message)`.
    pub fn compile(spec: &LabelSelectorSpec) -> Result<Self, (String, String)> {
        let mut requirements = Vec::new();
        if let Some(labels) = &spec.match_labels {
            for (key, value) in labels {
                let field = format!("matchLabels.{key}");
                check_key(key).map_err(|m| (field.clone(), m))?;
                check_value(value).map_err(|m| (field.clone(), m))?;
                requirements.push(Requirement {
                    key: key.clone(),
                    operator: Operator::In(vec![value.clone()]),
                });
            }
        }
        for (i, expr) in spec.match_expressions.iter().flatten().enumerate() {
            let field = format!("matchExpressions[{i}]");
            check_key(&expr.key).map_err(|m| (format!("{field}.key"), m))?;
            let values = expr.values.clone().unwrap_or_default();
            let operator = match expr.operator.as_str() {
                "In" | "NotIn" => {
                    if values.is_empty() {
                        return Err((
                            format!("{field}.values"),
                            format!("operator {} needs at least one value", expr.operator),
                        ));
                    }
                    for (j, v) in values.iter().enumerate() {
                        check_value(v).map_err(|m| (format!("{field}.values[{j}]"), m))?;
                    }
                    if expr.operator == "In" {
                        Operator::In(values)
                    } else {
                        Operator::NotIn(values)
                    }
                }
                "Exists" | "DoesNotExist" => {
                    if !values.is_empty() {
                        return Err((
                            format!("{field}.values"),
                            format!("operator {} takes no values", expr.operator),
                        ));
                    }
                    if expr.operator == "Exists" {
                        Operator::Exists
                    } else {
                        Operator::DoesNotExist
                    }
                }
                other => {
                    return Err((
                        format!("{field}.operator"),
                        format!(
                            "unknown operator {other:?} (expected In, NotIn, Exists or DoesNotExist)"
                        ),
                    ));
                }
            };
            requirements.push(Requirement {
                key: expr.key.clone(),
                operator,
            });
        }
        Ok(Self { requirements })
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// The selector back in API form (for rendering).
    pub fn to_spec(&self) -> LabelSelectorSpec {
        let mut match_labels = BTreeMap::new();
        let mut exprs = Vec::new();
        for r in &self.requirements {
            match &r.operator {
                Operator::In(v) if v.len() == 1 && !match_labels.contains_key(&r.key) => {
                    match_labels.insert(r.key.clone(), v[0].clone());
                }
                op => exprs.push(ExpressionSpec {
                    key: r.key.clone(),
                    operator: op.name().to_owned(),
                    values: match op {
                        Operator::In(v) | Operator::NotIn(v) => Some(v.clone()),
                        _ => None,
                    },
                }),
            }
        }
        LabelSelectorSpec {
            match_labels: (!match_labels.is_empty()).then_some(match_labels),
            match_expressions: (!exprs.is_empty()).then_some(exprs),
        }
    }
}

impl Requirement {
    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match &self.operator {
            Operator::In(values) => value.is_some_and(|v| values.iter().any(|x| x == v)),
            Operator::NotIn(values) => value.is_none_or(|v| values.iter().all(|x| x != v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

impl Operator {
    /// The API name of the operator.
    pub fn name(&self) -> &'static str {
        match self {
            Self::In(_) => "In",
            Self::NotIn(_) => "NotIn",
            Self::Exists => "Exists",
            Self::DoesNotExist => "DoesNotExist",
        }
    }
}

impl fmt::Display for Selector {
    /// kubectl's selector syntax: `app=web,tier in (a,b),!legacy`; `{}` prints as `<all>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.requirements.is_empty() {
            return f.write_str("<all>");
        }
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match &r.operator {
                Operator::In(v) if v.len() == 1 => write!(f, "{}={}", r.key, v[0])?,
                Operator::In(v) => write!(f, "{} in ({})", r.key, v.join(","))?,
                Operator::NotIn(v) => write!(f, "{} notin ({})", r.key, v.join(","))?,
                Operator::Exists => write!(f, "{}", r.key)?,
                Operator::DoesNotExist => write!(f, "!{}", r.key)?,
            }
        }
        Ok(())
    }
}

/// Checks a label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63
/// characters.
pub fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let ok = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            });
        if !ok {
            return Err(format!(
                "label key {key:?}: the prefix must be a lower-case DNS subdomain"
            ));
        }
    }
    if name.is_empty() {
        return Err(format!("label key {key:?}: the name part is empty"));
    }
    check_name_chars(name).map_err(|m| format!("label key {key:?}: {m}"))
}

/// Checks a label value: empty, or at most 63 alphanumerics, `-`, `_`, `.` starting and ending
/// alphanumeric.
pub fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    check_name_chars(value).map_err(|m| format!("label value {value:?}: {m}"))
}

fn check_name_chars(s: &str) -> Result<(), String> {
    if s.len() > 63 {
        return Err("must be at most 63 characters".into());
    }
    let bytes = s.as_bytes();
    let inner_ok = bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let edges_ok = bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    if inner_ok && edges_ok {
        Ok(())
    } else {
        Err("must be alphanumerics, '-', '_' or '.', starting and ending alphanumeric".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn sel(json: &str) -> Selector {
        let spec: LabelSelectorSpec = serde_json::from_str(json).expect("spec");
        Selector::compile(&spec).expect("valid")
    }

    #[test]
    fn operators_follow_api_semantics() {
        let web = labels(&[("app", "web"), ("tier", "front")]);
        let bare = labels(&[]);
        assert!(sel("{}").matches(&bare));
        assert!(sel(r#"{"matchLabels":{"app":"web"}}"#).matches(&web));
        assert!(!sel(r#"{"matchLabels":{"app":"web"}}"#).matches(&bare));
        let not_in =
            sel(r#"{"matchExpressions":[{"key":"app","operator":"NotIn","values":["db"]}]}"#);
        assert!(not_in.matches(&web));
        assert!(not_in.matches(&bare), "NotIn matches pods without the key");
        let exists = sel(r#"{"matchExpressions":[{"key":"tier","operator":"Exists"}]}"#);
        assert!(exists.matches(&web) && !exists.matches(&bare));
        let absent = sel(r#"{"matchExpressions":[{"key":"tier","operator":"DoesNotExist"}]}"#);
        assert!(!absent.matches(&web) && absent.matches(&bare));
        let both = sel(
            r#"{"matchLabels":{"app":"web"},"matchExpressions":[{"key":"tier","operator":"In","values":["back"]}]}"#,
        );
        assert!(
            !both.matches(&web),
            "matchLabels and matchExpressions are ANDed"
        );
    }

    #[test]
    fn malformed_selectors_are_rejected_with_the_field() {
        let bad = |json: &str| {
            let spec: LabelSelectorSpec = serde_json::from_str(json).expect("spec");
            Selector::compile(&spec).expect_err("invalid")
        };
        assert_eq!(
            bad(r#"{"matchExpressions":[{"key":"a","operator":"In"}]}"#).0,
            "matchExpressions[0].values"
        );
        assert_eq!(
            bad(r#"{"matchExpressions":[{"key":"a","operator":"Exists","values":["x"]}]}"#).0,
            "matchExpressions[0].values"
        );
        assert!(
            bad(r#"{"matchExpressions":[{"key":"a","operator":"Equals","values":["x"]}]}"#)
                .1
                .contains("unknown operator")
        );
        assert_eq!(bad(r#"{"matchLabels":{"-a":"x"}}"#).0, "matchLabels.-a");
        assert_eq!(bad(r#"{"matchLabels":{"a":"x y"}}"#).0, "matchLabels.a");
        assert!(check_key("example.com/app").is_ok());
        assert!(check_key("Example.com/app").is_err());
    }

    #[test]
    fn display_and_round_trip() {
        let s = sel(
            r#"{"matchLabels":{"app":"web"},"matchExpressions":[{"key":"t","operator":"NotIn","values":["a","b"]},{"key":"x","operator":"DoesNotExist"}]}"#,
        );
        assert_eq!(s.to_string(), "app=web,t notin (a,b),!x");
        assert_eq!(Selector::compile(&s.to_spec()).expect("valid"), s);
    }
}
