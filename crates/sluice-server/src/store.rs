//! What the server serves: StageSets, Projects and Flux sources, as an immutable snapshot
//! swapped on change, so reads never wait for a writer.
//!
//! Local mode (`--local DIR`) loads the YAML files of a directory; reconcile requests and gate
//! approvals become annotations on the in-memory StageSet and events are kept in memory.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use serde_json::Value;
use sluice_api::{Project, StageSet};
use sluice_stage::load::Bundle;

/// Annotation a reconcile request sets (the controller reacts to any change of it).
pub const RECONCILE_ANNOTATION: &str = "sluice.dev/reconcile-requested-at";
/// Prefix of the annotation recording a gate approval (`gates.sluice.dev/<stage>`).
pub const GATE_ANNOTATION_PREFIX: &str = "gates.sluice.dev/";
/// The project of StageSets that name none.
pub const DEFAULT_PROJECT: &str = "default";
/// Events kept per object.
const EVENTS_PER_OBJECT: usize = 100;
/// Objects with events kept (older ones are dropped first).
const EVENT_OBJECTS: usize = 10_000;

/// Errors loading a directory.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be loaded.
    #[error(transparent)]
    Load(#[from] sluice_stage::Error),
    /// Two objects with one name.
    #[error("{0} is defined twice")]
    Duplicate(String),
    /// A file cannot be read or is not YAML.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The directory is missing.
    #[error("{0}: not a directory")]
    NotADirectory(PathBuf),
}

/// A StageSet as the API sees it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// `namespace/name`.
    pub key: String,
    /// RBAC object: `project/namespace/name`.
    pub object: String,
    /// The StageSet.
    pub stageset: StageSet,
}

/// One immutable view of everything served.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// StageSets sorted by `namespace/name`.
    pub stagesets: Vec<Entry>,
    index: HashMap<String, usize>,
    /// Projects by name.
    pub projects: BTreeMap<String, Project>,
    /// Flux source objects (for webhook matching).
    pub flux_sources: Vec<Value>,
    /// Objects of the live state (local mode: `DIR/live/`), by `kind/namespace/name`.
    pub live: HashMap<String, Value>,
    /// Bumped on every change (list caches key on it).
    pub generation: u64,
}

impl Snapshot {
    /// A snapshot of these objects.
    pub fn new(
        stagesets: Vec<StageSet>,
        projects: Vec<Project>,
        flux_sources: Vec<Value>,
        live: Vec<Value>,
    ) -> Result<Self, StoreError> {
        let mut entries: Vec<Entry> = stagesets.into_iter().map(entry).collect();
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        let mut index = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            if index.insert(e.key.clone(), i).is_some() {
                return Err(StoreError::Duplicate(format!("StageSet {}", e.key)));
            }
        }
        let mut by_name = BTreeMap::new();
        for p in projects {
            let name = p.metadata.name.clone().unwrap_or_default();
            if by_name.insert(name.clone(), p).is_some() {
                return Err(StoreError::Duplicate(format!("Project {name}")));
            }
        }
        let live = live.into_iter().map(|o| (live_key(&o), o)).collect();
        Ok(Self {
            stagesets: entries,
            index,
            projects: by_name,
            flux_sources,
            live,
            generation: 0,
        })
    }

    /// The StageSet `namespace/name`.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.position(key).map(|i| &self.stagesets[i])
    }

    /// Where the StageSet `namespace/name` is in [`Snapshot::stagesets`].
    pub fn position(&self, key: &str) -> Option<usize> {
        self.index.get(key).copied()
    }

    /// Position of the first StageSet whose key is after `key`.
    pub fn position_after(&self, key: &str) -> usize {
        self.stagesets.partition_point(|e| e.key.as_str() <= key)
    }
}

/// `kind/namespace/name` of an object (namespace empty for cluster-scoped ones).
pub fn live_key(object: &Value) -> String {
    format!(
        "{}/{}/{}",
        object["kind"].as_str().unwrap_or_default(),
        object["metadata"]["namespace"].as_str().unwrap_or_default(),
        object["metadata"]["name"].as_str().unwrap_or_default()
    )
}

fn entry(stageset: StageSet) -> Entry {
    let namespace = stageset.metadata.namespace.clone().unwrap_or_default();
    let name = stageset.metadata.name.clone().unwrap_or_default();
    let project = stageset
        .spec
        .project
        .clone()
        .unwrap_or_else(|| DEFAULT_PROJECT.to_owned());
    Entry {
        key: format!("{namespace}/{name}"),
        object: format!("{project}/{namespace}/{name}"),
        stageset,
    }
}

/// An event about a StageSet or Project.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Machine-readable reason.
    pub reason: String,
    /// What happened, naming the actor.
    pub message: String,
    /// Who caused it.
    pub actor: String,
    /// RFC 3339 time.
    pub time: String,
}

/// Events per object, and the objects in the order they got their first event.
type EventLog = (HashMap<String, VecDeque<Event>>, VecDeque<String>);

/// The served objects plus the events recorded about them.
#[derive(Debug)]
pub struct Store {
    snapshot: RwLock<Arc<Snapshot>>,
    events: Mutex<EventLog>,
    /// Where the files came from, in local mode.
    pub dir: Option<PathBuf>,
    /// Whether the snapshot is complete (cluster mode: after the first full list).
    ready: std::sync::atomic::AtomicBool,
}

impl Store {
    /// A store holding `snapshot`.
    pub fn new(snapshot: Snapshot, dir: Option<PathBuf>) -> Self {
        Self {
            snapshot: RwLock::new(Arc::new(snapshot)),
            ready: std::sync::atomic::AtomicBool::new(dir.is_some()),
            events: Mutex::new((HashMap::new(), VecDeque::new())),
            dir,
        }
    }

    /// Loads every YAML file of `dir` (local mode).
    pub fn load_dir(dir: &Path) -> Result<Self, StoreError> {
        if !dir.is_dir() {
            return Err(StoreError::NotADirectory(dir.to_path_buf()));
        }
        let mut bundle = Bundle::default();
        let mut flux_sources = Vec::new();
        let mut live = Vec::new();
        let live_dir = dir.join("live");
        let sources_dir = dir.join("sources");
        for file in sluice_stage::plan::yaml_files(dir) {
            if file.file_name().is_some_and(|n| {
                n == crate::state::STATE_FILE || n.to_string_lossy().starts_with('.')
            }) {
                continue;
            }
            let text = std::fs::read_to_string(&file).map_err(|e| StoreError::File {
                path: file.clone(),
                message: e.to_string(),
            })?;
            let docs = sluice_manifest::parse_documents(&text, &Default::default());
            // Stand-in source trees may hold templates that are not YAML yet; anything else
            // that does not parse would silently lose its StageSets.
            if let Err(e) = &docs
                && !file.starts_with(&sources_dir)
            {
                return Err(StoreError::File {
                    path: file.clone(),
                    message: e.to_string(),
                });
            }
            if file.starts_with(&live_dir) {
                live.extend(docs.into_iter().flatten().filter(Value::is_object));
                continue;
            }
            bundle.add_file(&file, true)?;
            for doc in docs.into_iter().flatten() {
                if doc["apiVersion"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("source.toolkit.fluxcd.io/"))
                {
                    flux_sources.push(doc);
                }
            }
        }
        let snapshot = Snapshot::new(
            bundle.stagesets.into_iter().map(|(_, s)| s).collect(),
            bundle.projects.into_iter().map(|(_, p)| p).collect(),
            flux_sources,
            live,
        )?;
        Ok(Self::new(snapshot, Some(dir.to_path_buf())))
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .map(|s| Arc::clone(&s))
            .unwrap_or_default()
    }

    /// Whether the snapshot is complete; until then lists would be wrong, not just short.
    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Marks the snapshot complete.
    pub fn mark_ready(&self) {
        self.ready.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Replaces the snapshot (cluster mode: after the watchers saw changes).
    pub fn publish(&self, mut snapshot: Snapshot) {
        if let Ok(mut guard) = self.snapshot.write() {
            snapshot.generation = guard.generation + 1;
            *guard = Arc::new(snapshot);
        }
    }

    /// Applies `change` to a copy of the StageSet `key` and publishes a new snapshot.
    pub fn update_stageset(&self, key: &str, change: impl FnOnce(&mut StageSet)) -> bool {
        let Ok(mut guard) = self.snapshot.write() else {
            return false;
        };
        let current = Arc::clone(&guard);
        let Some(&i) = current.index.get(key) else {
            return false;
        };
        let mut stagesets: Vec<Entry> = current.stagesets.clone();
        change(&mut stagesets[i].stageset);
        *guard = Arc::new(Snapshot {
            stagesets,
            index: current.index.clone(),
            projects: current.projects.clone(),
            flux_sources: current.flux_sources.clone(),
            live: current.live.clone(),
            generation: current.generation + 1,
        });
        true
    }

    /// Records an event about `object` (`stagesets/ns/name` or `projects/name`).
    pub fn record(&self, object: &str, event: Event) {
        let Ok(mut guard) = self.events.lock() else {
            return;
        };
        let (by_object, order) = &mut *guard;
        if !by_object.contains_key(object) {
            if by_object.len() >= EVENT_OBJECTS
                && let Some(oldest) = order.pop_front()
            {
                by_object.remove(&oldest);
            }
            order.push_back(object.to_owned());
        }
        let events = by_object.entry(object.to_owned()).or_default();
        if events.len() >= EVENTS_PER_OBJECT {
            events.pop_front();
        }
        events.push_back(event);
    }

    /// The events about `object`, oldest first.
    pub fn events(&self, object: &str) -> Vec<Event> {
        self.events
            .lock()
            .ok()
            .and_then(|g| g.0.get(object).map(|e| e.iter().cloned().collect()))
            .unwrap_or_default()
    }
}

/// Sets an annotation on a StageSet.
pub fn annotate(stageset: &mut StageSet, key: &str, value: String) {
    stageset
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(key.to_owned(), value);
}
