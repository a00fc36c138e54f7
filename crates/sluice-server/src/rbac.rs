//! Authorization: Argo CD's policy CSV enforced with casbin; deny wins over allow.
//!
//! `p, <subject>, <resource>, <action>, <object>, <allow|deny>` grants or denies;
//! `g, <user-or-group>, <role>` assigns a role. Objects are `<project>/<namespace>/<name>`
//! for StageSets and gates, the project name for projects, the account name for accounts; `*`
//! in any field matches any text (including `/`).

use std::collections::HashMap;
use std::sync::RwLock;

use casbin::rhai::Dynamic;
use casbin::{CoreApi, DefaultModel, Enforcer, MemoryAdapter, MgmtApi};

/// Resources a policy can name.
pub const RESOURCES: &[&str] = &["stagesets", "projects", "accounts", "logs", "gates"];
/// Actions a policy can name.
pub const ACTIONS: &[&str] = &["get", "create", "update", "delete", "reconcile", "approve"];

/// The built-in roles, loaded before any user policy.
pub const BUILTIN_POLICY: &str = "\
p, role:readonly, stagesets, get, *, allow
p, role:readonly, projects, get, *, allow
p, role:readonly, logs, get, *, allow
p, role:readonly, gates, get, *, allow
p, role:readonly, accounts, get, *, allow
p, role:admin, *, *, *, allow
g, role:admin, role:readonly
g, admin, role:admin
";

const MODEL: &str = "
[request_definition]
r = sub, res, act, obj

[policy_definition]
p = sub, res, act, obj, eft

[role_definition]
g = _, _

[policy_effect]
e = EFFECT

[matchers]
m = g(r.sub, p.sub) && sluiceMatch(r.res, p.res) && sluiceMatch(r.act, p.act) && sluiceMatch(r.obj, p.obj)
";

/// A policy that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RbacError {
    /// A line is malformed.
    #[error("{origin}:{line}: {message}")]
    Line {
        /// The file (or project) it came from.
        origin: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// casbin refused the model or the policies.
    #[error("policy engine: {0}")]
    Engine(String),
}

/// One policy line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// `p, sub, res, act, obj, eft`.
    Permission {
        /// Subject (user, group or role).
        subject: String,
        /// Resource glob.
        resource: String,
        /// Action glob.
        action: String,
        /// Object glob.
        object: String,
        /// `allow` or `deny`.
        effect: String,
    },
    /// `g, member, role`.
    Grouping {
        /// User or group.
        member: String,
        /// Role.
        role: String,
    },
}

/// Parses policy CSV; a malformed line is an error naming its line number.
pub fn parse_policy(origin: &str, text: &str) -> Result<Vec<Rule>, RbacError> {
    let mut rules = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        rules.push(parse_line(line).map_err(|message| RbacError::Line {
            origin: origin.to_owned(),
            line: index + 1,
            message,
        })?);
    }
    Ok(rules)
}

fn parse_line(line: &str) -> Result<Rule, String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    if fields.iter().any(|f| f.is_empty()) {
        return Err(format!("empty field in {line:?}"));
    }
    if fields
        .iter()
        .any(|f| f.contains('"') || f.chars().any(char::is_control))
    {
        return Err("quotes and control characters are not allowed".into());
    }
    match fields.as_slice() {
        ["p", subject, resource, action, object, effect] => {
            if *resource != "*" && !RESOURCES.contains(resource) {
                return Err(format!(
                    "unknown resource {resource:?} (one of {}, or *)",
                    RESOURCES.join(", ")
                ));
            }
            if *action != "*" && !ACTIONS.contains(action) {
                return Err(format!(
                    "unknown action {action:?} (one of {}, or *)",
                    ACTIONS.join(", ")
                ));
            }
            if *effect != "allow" && *effect != "deny" {
                return Err(format!("effect must be allow or deny, not {effect:?}"));
            }
            Ok(Rule::Permission {
                subject: (*subject).to_owned(),
                resource: (*resource).to_owned(),
                action: (*action).to_owned(),
                object: (*object).to_owned(),
                effect: (*effect).to_owned(),
            })
        }
        ["p", ..] => Err(format!(
            "a p line has 6 fields (p, subject, resource, action, object, effect), this one has {}",
            fields.len()
        )),
        ["g", member, role] => Ok(Rule::Grouping {
            member: (*member).to_owned(),
            role: (*role).to_owned(),
        }),
        ["g", ..] => Err(format!(
            "a g line has 3 fields (g, member, role), this one has {}",
            fields.len()
        )),
        [kind, ..] => Err(format!("lines start with p or g, not {kind:?}")),
        [] => Err("empty line".into()),
    }
}

/// The subject of a project role.
pub fn project_role_subject(project: &str, role: &str) -> String {
    format!("proj:{project}:{role}")
}

/// Checks a project role's policy lines: each must name the role itself as subject and only
/// objects inside the project, so a project's owners can never grant beyond it.
pub fn project_role_rules(
    project: &str,
    role: &str,
    policies: &[String],
    groups: &[String],
) -> Result<Vec<Rule>, RbacError> {
    let origin = format!("project {project} role {role}");
    let subject = project_role_subject(project, role);
    let mut rules = Vec::new();
    for (index, text) in policies.iter().enumerate() {
        let err = |message: String| RbacError::Line {
            origin: origin.clone(),
            line: index + 1,
            message,
        };
        let rule = parse_line(text.trim()).map_err(err)?;
        let Rule::Permission {
            subject: s,
            resource,
            object,
            ..
        } = &rule
        else {
            return Err(err("project roles hold p lines only".into()));
        };
        if s != &subject {
            return Err(err(format!("the subject must be {subject}, not {s}")));
        }
        let inside = match resource.as_str() {
            "projects" => object == project,
            "stagesets" | "gates" | "logs" => object
                .strip_prefix(project)
                .is_some_and(|rest| rest.starts_with('/')),
            _ => false,
        };
        if !inside {
            return Err(err(format!(
                "a project role may only name stagesets, gates and logs under {project}/ or the project itself; not {resource} {object}"
            )));
        }
        rules.push(rule);
    }
    for group in groups {
        if group.trim().is_empty() || group.contains(',') {
            return Err(RbacError::Line {
                origin: origin.clone(),
                line: 0,
                message: format!("invalid group {group:?}"),
            });
        }
        rules.push(Rule::Grouping {
            member: group.clone(),
            role: subject.clone(),
        });
    }
    Ok(rules)
}

/// `*` matches any run of characters, everything else itself.
pub fn glob_matches(text: &str, pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let (t, p) = (text.as_bytes(), pattern.as_bytes());
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

fn sluice_match(text: Dynamic, pattern: Dynamic) -> Dynamic {
    let text = text.into_string().unwrap_or_default();
    let pattern = pattern.into_string().unwrap_or_default();
    glob_matches(&text, &pattern).into()
}

async fn enforcer(effect: &str, rules: &[Rule]) -> Result<Enforcer, RbacError> {
    let engine = |e: casbin::Error| RbacError::Engine(e.to_string());
    let model = DefaultModel::from_str(&MODEL.replace("EFFECT", effect))
        .await
        .map_err(engine)?;
    let mut enforcer = Enforcer::new(model, MemoryAdapter::default())
        .await
        .map_err(engine)?;
    enforcer.add_function(
        "sluiceMatch",
        casbin::function_map::OperatorFunction::Arg2(sluice_match),
    );
    let mut permissions = Vec::new();
    let mut groupings = Vec::new();
    for rule in rules {
        match rule {
            Rule::Permission {
                subject,
                resource,
                action,
                object,
                effect,
            } => permissions.push(vec![
                subject.clone(),
                resource.clone(),
                action.clone(),
                object.clone(),
                effect.clone(),
            ]),
            Rule::Grouping { member, role } => groupings.push(vec![member.clone(), role.clone()]),
        }
    }
    // Duplicates (the same line in two places) are harmless; casbin reports them as "not
    // added", which is not an error here.
    for p in permissions {
        enforcer.add_policy(p).await.map_err(engine)?;
    }
    for g in groupings {
        enforcer.add_grouping_policy(g).await.map_err(engine)?;
    }
    Ok(enforcer)
}

/// The enforcer: built-in roles, the policy file, project roles, a default role.
pub struct Rbac {
    allow: Enforcer,
    no_deny: Enforcer,
    default_role: Option<String>,
    decisions: RwLock<HashMap<String, bool>>,
}

impl std::fmt::Debug for Rbac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rbac")
            .field("default_role", &self.default_role)
            .finish_non_exhaustive()
    }
}

/// Cached decisions before the cache is cleared (bounded memory).
const DECISION_CACHE: usize = 200_000;

impl Rbac {
    /// Builds the enforcer from the built-in policy plus `rules`.
    pub async fn new(rules: Vec<Rule>, default_role: Option<String>) -> Result<Self, RbacError> {
        let mut all = parse_policy("built-in", BUILTIN_POLICY)?;
        all.extend(rules);
        Ok(Self {
            allow: enforcer(
                "some(where (p.eft == allow)) && !some(where (p.eft == deny))",
                &all,
            )
            .await?,
            // casbin knows a fixed set of effects; this one is true when no deny matched.
            no_deny: enforcer("!some(where (p.eft == deny))", &all).await?,
            default_role,
            decisions: RwLock::new(HashMap::new()),
        })
    }

    /// Whether any of `subjects` (a user and their groups) may `action` on `resource`
    /// `object`: allowed for at least one, denied for none. The default role, if set, is
    /// one more subject.
    pub fn can(&self, subjects: &[String], resource: &str, action: &str, object: &str) -> bool {
        let mut key = String::with_capacity(64);
        for s in subjects {
            key.push_str(s);
            key.push('\u{1f}');
        }
        key.push('\u{1e}');
        key.push_str(resource);
        key.push('\u{1f}');
        key.push_str(action);
        key.push('\u{1f}');
        key.push_str(object);
        if let Ok(cache) = self.decisions.read()
            && let Some(&hit) = cache.get(&key)
        {
            return hit;
        }
        let decision = self.decide(subjects, resource, action, object);
        if let Ok(mut cache) = self.decisions.write() {
            if cache.len() >= DECISION_CACHE {
                cache.clear();
            }
            cache.insert(key, decision);
        }
        decision
    }

    fn decide(&self, subjects: &[String], resource: &str, action: &str, object: &str) -> bool {
        let mut all: Vec<&str> = subjects.iter().map(String::as_str).collect();
        if let Some(role) = &self.default_role {
            all.push(role);
        }
        // casbin errors only on a broken model, which `new` has already built: deny.
        let ask = |e: &Enforcer, s: &str| e.enforce((s, resource, action, object)).ok();
        if all.iter().any(|s| ask(&self.no_deny, s) != Some(true)) {
            return false;
        }
        all.iter().any(|s| ask(&self.allow, s) == Some(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_matches("shop/prod/web", "shop/*"));
        assert!(glob_matches("shop/prod/web", "*/prod/*"));
        assert!(!glob_matches("shop/prod/web", "shop/dev/*"));
        assert!(glob_matches("a", "a"));
        assert!(!glob_matches("ab", "a"));
        assert!(glob_matches("", "*"));
        // `?` is literal, as in Argo CD's globs.
        assert!(!glob_matches("web-1", "web-?"));
    }

    #[test]
    fn malformed_lines_name_their_number() {
        let err = parse_policy(
            "policy.csv",
            "# c\np, a, stagesets, get, *, allow\np, a, b\n",
        )
        .expect_err("malformed");
        assert!(err.to_string().starts_with("policy.csv:3:"), "{err}");
        let err = parse_policy("f", "p, a, stagesetz, get, *, allow").expect_err("resource");
        assert!(err.to_string().contains("unknown resource"), "{err}");
        let err = parse_policy("f", "p, a, stagesets, get, *, maybe").expect_err("effect");
        assert!(err.to_string().contains("allow or deny"), "{err}");
    }

    #[tokio::test]
    async fn deny_wins_across_subjects() {
        let rules = parse_policy(
            "t",
            "p, role:dev, stagesets, get, shop/*, allow\n\
             p, contractors, stagesets, get, shop/prod/*, deny\n\
             g, devs, role:dev\n",
        )
        .expect("policy");
        let rbac = Rbac::new(rules, None).await.expect("rbac");
        let alice = ["alice".to_owned(), "devs".to_owned()];
        let bob = [
            "bob".to_owned(),
            "devs".to_owned(),
            "contractors".to_owned(),
        ];
        assert!(rbac.can(&alice, "stagesets", "get", "shop/prod/web"));
        assert!(!rbac.can(&bob, "stagesets", "get", "shop/prod/web"));
        assert!(rbac.can(&bob, "stagesets", "get", "shop/dev/web"));
        assert!(!rbac.can(&alice, "stagesets", "delete", "shop/prod/web"));
        assert!(!rbac.can(&["nobody".to_owned()], "stagesets", "get", "shop/x/y"));
        assert!(rbac.can(&["admin".to_owned()], "accounts", "update", "admin"));
    }

    #[test]
    fn project_roles_stay_inside_their_project() {
        let ok = project_role_rules(
            "shop",
            "ci",
            &["p, proj:shop:ci, stagesets, reconcile, shop/*, allow".into()],
            &[],
        );
        assert!(ok.is_ok());
        for bad in [
            "p, proj:shop:ci, stagesets, get, other/*, allow",
            "p, proj:shop:ci, stagesets, get, *, allow",
            "p, proj:shop:ci, stagesets, get, shopping/*, allow",
            "p, role:admin, stagesets, get, shop/*, allow",
            "p, proj:shop:ci, accounts, get, shop/*, allow",
            "g, proj:shop:ci, role:admin",
        ] {
            assert!(
                project_role_rules("shop", "ci", &[bad.into()], &[]).is_err(),
                "{bad}"
            );
        }
    }
}
