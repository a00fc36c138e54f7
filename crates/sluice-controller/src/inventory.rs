//! Stage inventories: which objects a stage applied, kept in ConfigMaps in the controller's
//! namespace, sharded so a stage of any size stays under the 1 MiB object limit.

use serde_json::{Value, json};

use crate::cluster::ObjectKey;

/// Bytes of keys per ConfigMap shard: well under the 1 MiB object limit with metadata.
pub const SHARD_BYTES: usize = 512 * 1024;

/// The ConfigMaps holding `keys` for one stage: `sluice-inv-<ns>.<stageset>.<stage>-<n>`.
pub fn shards(controller_ns: &str, owner: &str, stage: &str, keys: &[ObjectKey]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut current = String::new();
    let flush = |current: &mut String, out: &mut Vec<Value>| {
        let name = format!("sluice-inv-{owner}.{stage}-{}", out.len());
        out.push(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": controller_ns,
                         "labels": {"app.kubernetes.io/managed-by": "sluice", "sluice.dev/inventory": "true"}},
            "data": {"objects": std::mem::take(current)},
        }));
    };
    for key in keys {
        let line = key.encode();
        if !current.is_empty() && current.len() + line.len() + 1 > SHARD_BYTES {
            flush(&mut current, &mut out);
        }
        current.push_str(&line);
        current.push('\n');
    }
    if !current.is_empty() || out.is_empty() {
        flush(&mut current, &mut out);
    }
    out
}

/// The keys recorded in some shards (lines that do not parse are skipped).
pub fn read(shards: &[Value]) -> Vec<ObjectKey> {
    shards
        .iter()
        .filter_map(|s| s["data"]["objects"].as_str())
        .flat_map(str::lines)
        .filter_map(ObjectKey::decode)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_stages_shard_and_read_back_in_order() {
        let keys: Vec<ObjectKey> = (0..20_000)
            .map(|i| ObjectKey {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: Some(format!("team-{}", i % 7)),
                name: format!("a-rather-long-deployment-name-for-the-shard-test-{i:06}"),
            })
            .collect();
        let shards = shards("sluice-system", "shop.webshop", "app", &keys);
        assert!(shards.len() > 1, "20k keys need several shards");
        for (i, s) in shards.iter().enumerate() {
            let data = s["data"]["objects"].as_str().expect("data");
            assert!(
                data.len() <= SHARD_BYTES,
                "shard {i} is {} bytes",
                data.len()
            );
            assert_eq!(
                s["metadata"]["name"],
                format!("sluice-inv-shop.webshop.app-{i}")
            );
        }
        assert_eq!(read(&shards), keys);
        // An empty stage still has one (empty) shard, so its inventory is known to be empty.
        let empty = super::shards("ns", "o", "s", &[]);
        assert_eq!(empty.len(), 1);
        assert!(read(&empty).is_empty());
        // Cluster-scoped keys round-trip without a namespace.
        let crd = ObjectKey {
            api_version: "apiextensions.k8s.io/v1".into(),
            kind: "CustomResourceDefinition".into(),
            namespace: None,
            name: "widgets.example.com".into(),
        };
        assert_eq!(ObjectKey::decode(&crd.encode()), Some(crd));
        assert_eq!(ObjectKey::decode("v1|ConfigMap|x"), None);
    }
}
