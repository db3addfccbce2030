//! The four patch flavours: JSON merge patch (RFC 7386), JSON patch (RFC 6902),
//! strategic merge patch (merge keys of the core kinds) and server-side apply (field sets
//! per manager, stored in `metadata.managedFields` in the real `FieldsV1` format).
//!
//! Everything here is pure: `Value` in, `Value` out. Which lists merge by which key comes
//! from [`ListKinds`], built by the caller from the kind (built-in tables) or from the CRD
//! schema (`x-kubernetes-list-type`/`x-kubernetes-list-map-keys`).

use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};

/// How a list is treated by server-side apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole.
    Atomic,
    /// Set of scalars: union, each value owned separately.
    Set,
    /// Associative list keyed by these fields.
    Map(Vec<String>),
}

/// How a list is treated by strategic merge patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmpList {
    /// Replaced by the patch's list.
    Replace,
    /// Scalars merged as a union (`patchStrategy: merge` on a primitive list).
    MergePrimitives,
    /// Items merged by this key (`patchMergeKey`).
    MergeKey(String),
}

/// List semantics for one kind, by field path (field names from the root, no indices).
pub trait ListKinds {
    /// Server-side apply list type at `path`.
    fn list_type(&self, path: &[String]) -> ListType;
    /// Strategic-merge list strategy at `path`.
    fn smp_list(&self, path: &[String]) -> SmpList;
}

/// Built-in kinds' list semantics (what the Kubernetes Go types declare), with two
/// conventions that also cover custom resources without schema hints: `conditions` are
/// keyed by `type`, `finalizers` are a set.
#[derive(Debug, Clone)]
pub struct BuiltinLists {
    /// Kind name, e.g. `Service`.
    pub kind: String,
}

fn p(path: &[String]) -> String {
    path.join(".")
}

impl ListKinds for BuiltinLists {
    fn list_type(&self, path: &[String]) -> ListType {
        let joined = p(path);
        let last = path.last().map(String::as_str).unwrap_or("");
        let keys = |k: &[&str]| ListType::Map(k.iter().map(|s| s.to_string()).collect());
        match (self.kind.as_str(), joined.as_str()) {
            (_, "metadata.finalizers") => ListType::Set,
            (_, "metadata.ownerReferences") => keys(&["uid"]),
            ("Service", "spec.ports") => keys(&["port", "protocol"]),
            ("Pod", "spec.containers" | "spec.initContainers" | "spec.volumes") => keys(&["name"]),
            ("Pod", j) if j.ends_with("containers.ports") => keys(&["containerPort", "protocol"]),
            ("Pod", j) if j.ends_with("containers.env") => keys(&["name"]),
            ("Node", "status.addresses") => keys(&["type"]),
            _ if last == "conditions" => keys(&["type"]),
            _ => ListType::Atomic,
        }
    }

    fn smp_list(&self, path: &[String]) -> SmpList {
        let joined = p(path);
        let last = path.last().map(String::as_str).unwrap_or("");
        let key = |k: &str| SmpList::MergeKey(k.to_string());
        match (self.kind.as_str(), joined.as_str()) {
            (_, "metadata.finalizers") => SmpList::MergePrimitives,
            (_, "metadata.ownerReferences") => key("uid"),
            ("Service", "spec.ports") => key("port"),
            ("Node", "status.addresses") => key("type"),
            (_, j) if j.ends_with("containers.ports") => key("containerPort"),
            _ => match last {
                "containers"
                | "initContainers"
                | "ephemeralContainers"
                | "env"
                | "volumes"
                | "imagePullSecrets" => key("name"),
                "volumeMounts" => key("mountPath"),
                "conditions" => key("type"),
                _ => SmpList::Replace,
            },
        }
    }
}

/// List semantics of a custom resource, read from its structural schema; falls back to
/// [`BuiltinLists`] conventions where the schema says nothing.
#[derive(Debug, Clone)]
pub struct SchemaLists<'a> {
    /// `openAPIV3Schema` of the served version.
    pub schema: &'a Value,
}

/// The sub-schema at `path` (through `properties`, `items` and `additionalProperties`).
pub fn schema_at<'a>(schema: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = schema;
    for seg in path {
        // Walk through arrays transparently: paths carry no indices.
        while cur.get("type").and_then(Value::as_str) == Some("array") {
            cur = cur.get("items")?;
        }
        cur = match cur.get("properties").and_then(|p| p.get(seg)) {
            Some(s) => s,
            None => cur.get("additionalProperties").filter(|a| a.is_object())?,
        };
    }
    Some(cur)
}

impl ListKinds for SchemaLists<'_> {
    fn list_type(&self, path: &[String]) -> ListType {
        if let Some(s) = schema_at(self.schema, path) {
            match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("map") => {
                    let keys = s
                        .get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|k| k.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default();
                    return ListType::Map(keys);
                }
                Some("set") => return ListType::Set,
                Some(_) => return ListType::Atomic,
                None => {}
            }
        }
        BuiltinLists {
            kind: String::new(),
        }
        .list_type(path)
    }

    fn smp_list(&self, path: &[String]) -> SmpList {
        BuiltinLists {
            kind: String::new(),
        }
        .smp_list(path)
    }
}

// === JSON merge patch and JSON patch ===

/// RFC 7386 merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// RFC 6902 JSON patch.
pub fn json_patch(target: &mut Value, patch: &Value) -> ApiResult<()> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON patch: {e}")))?;
    json_patch::patch(target, &ops).map_err(|e| ApiError::Invalid {
        kind: String::new(),
        name: String::new(),
        causes: vec![crate::error::Cause {
            reason: "FieldValueInvalid".into(),
            field: String::new(),
            message: format!("the JSON patch could not be applied: {e}"),
        }],
    })
}

// === strategic merge patch ===

/// Strategic merge patch with `$patch: replace|delete`, `$deleteFromPrimitiveList/...`,
/// and `$setElementOrder/...`/`$retainKeys` directives (the latter two accepted, ignored).
pub fn strategic_merge(target: &mut Value, patch: &Value, lists: &dyn ListKinds) {
    let mut path = Vec::new();
    smp_value(target, patch, &mut path, lists);
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

fn smp_value(target: &mut Value, patch: &Value, path: &mut Vec<String>, lists: &dyn ListKinds) {
    let Some(pm) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if pm.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = strip_directives(patch);
        return;
    }
    if !target.is_object() {
        *target = json!({});
    }
    for (k, v) in pm {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Some(del)) = (
                target.get_mut(field).and_then(Value::as_array_mut),
                v.as_array(),
            ) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        let Some(tm) = target.as_object_mut() else {
            return;
        };
        if v.is_null() || v.get("$patch").and_then(Value::as_str) == Some("delete") {
            tm.remove(k);
            continue;
        }
        path.push(k.clone());
        match v {
            Value::Object(_) => {
                smp_value(tm.entry(k.clone()).or_insert(Value::Null), v, path, lists)
            }
            Value::Array(items) => {
                let slot = tm.entry(k.clone()).or_insert(Value::Null);
                smp_list(slot, items, path, lists);
            }
            _ => {
                tm.insert(k.clone(), v.clone());
            }
        }
        path.pop();
    }
}

fn smp_list(slot: &mut Value, items: &[Value], path: &mut Vec<String>, lists: &dyn ListKinds) {
    // A `{"$patch": "replace"}` item anywhere means: the list is exactly the other items.
    let replace = items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"));
    let strategy = if replace {
        SmpList::Replace
    } else {
        lists.smp_list(path)
    };
    match strategy {
        SmpList::Replace => {
            let kept: Vec<Value> = items
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .map(strip_directives)
                .collect();
            *slot = Value::Array(kept);
        }
        SmpList::MergePrimitives => {
            if !slot.is_array() {
                *slot = json!([]);
            }
            let list = slot.as_array_mut().expect("just made an array");
            for i in items {
                if !list.contains(i) {
                    list.push(i.clone());
                }
            }
        }
        SmpList::MergeKey(key) => {
            if !slot.is_array() {
                *slot = json!([]);
            }
            let list = slot.as_array_mut().expect("just made an array");
            for item in items {
                let Some(kv) = item.get(&key) else {
                    list.push(strip_directives(item));
                    continue;
                };
                let pos = list.iter().position(|l| l.get(&key) == Some(kv));
                let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                match (pos, delete) {
                    (Some(i), true) => {
                        list.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => smp_value(&mut list[i], item, path, lists),
                    (None, false) => list.push(strip_directives(item)),
                }
            }
        }
    }
}

// === server-side apply ===

/// A field set in `FieldsV1` form: `{"f:spec": {"f:ports": {"k:{\"port\":80}": {".": {}}}}}`.
pub type FieldSet = Map<String, Value>;

/// The field set an applied configuration claims.
pub fn fieldset_of(config: &Value, lists: &dyn ListKinds) -> FieldSet {
    let mut path = Vec::new();
    fields_of_object(config, &mut path, lists)
}

fn fields_of_object(v: &Value, path: &mut Vec<String>, lists: &dyn ListKinds) -> FieldSet {
    let mut out = Map::new();
    let Some(m) = v.as_object() else { return out };
    for (k, child) in m {
        path.push(k.clone());
        let sub = fields_of_value(child, path, lists);
        out.insert(format!("f:{k}"), Value::Object(sub));
        path.pop();
    }
    out
}

fn fields_of_value(v: &Value, path: &mut Vec<String>, lists: &dyn ListKinds) -> FieldSet {
    match v {
        Value::Object(_) => fields_of_object(v, path, lists),
        Value::Array(items) => match lists.list_type(path) {
            ListType::Atomic => Map::new(),
            ListType::Set => items
                .iter()
                .map(|i| (format!("v:{i}"), json!({})))
                .collect(),
            ListType::Map(keys) => {
                let mut out = Map::new();
                for item in items {
                    let mut sub = fields_of_object(item, path, lists);
                    sub.insert(".".into(), json!({}));
                    out.insert(format!("k:{}", item_key(item, &keys)), Value::Object(sub));
                }
                out
            }
        },
        _ => Map::new(),
    }
}

/// `{"port":80,"protocol":"TCP"}`: the key fields of an associative-list item (sorted map).
fn item_key(item: &Value, keys: &[String]) -> Value {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = item.get(k) {
            m.insert(k.clone(), v.clone());
        }
    }
    Value::Object(m)
}

fn matches_key(item: &Value, key: &Value) -> bool {
    key.as_object()
        .is_some_and(|km| km.iter().all(|(k, v)| item.get(k) == Some(v)))
}

/// Remove from `live` what the manager owned before (`prev`) and no longer applies
/// (`new`), unless another manager owns it too.
pub fn remove_disowned(live: &mut Value, prev: &FieldSet, new: &FieldSet, others: &[&FieldSet]) {
    for (key, prev_child) in prev {
        if key == "." {
            continue;
        }
        let new_child = new.get(key).and_then(Value::as_object);
        let other_children: Vec<&FieldSet> = others
            .iter()
            .filter_map(|o| o.get(key).and_then(Value::as_object))
            .collect();
        if new_child.is_none() && other_children.is_empty() {
            delete_element(live, key);
            continue;
        }
        let Some(prev_child) = prev_child.as_object() else {
            continue;
        };
        if prev_child.is_empty() {
            continue;
        }
        let empty = Map::new();
        if let Some(element) = element_mut(live, key) {
            remove_disowned(
                element,
                prev_child,
                new_child.unwrap_or(&empty),
                &other_children,
            );
        }
    }
}

fn element_mut<'a>(live: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    if let Some(f) = key.strip_prefix("f:") {
        live.as_object_mut()?.get_mut(f)
    } else if let Some(k) = key.strip_prefix("k:") {
        let kv: Value = serde_json::from_str(k).ok()?;
        live.as_array_mut()?
            .iter_mut()
            .find(|i| matches_key(i, &kv))
    } else {
        None
    }
}

fn delete_element(live: &mut Value, key: &str) {
    if let Some(f) = key.strip_prefix("f:") {
        if let Some(m) = live.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(k) = key.strip_prefix("k:") {
        if let (Ok(kv), Some(a)) = (serde_json::from_str::<Value>(k), live.as_array_mut()) {
            a.retain(|i| !matches_key(i, &kv));
        }
    } else if let Some(v) = key.strip_prefix("v:") {
        if let (Ok(val), Some(a)) = (serde_json::from_str::<Value>(v), live.as_array_mut()) {
            a.retain(|i| *i != val);
        }
    }
}

/// Merge an applied configuration into the live object: maps recursively, associative
/// lists by key, sets by union, everything else replaced.
pub fn apply_merge(live: &mut Value, config: &Value, lists: &dyn ListKinds) {
    let mut path = Vec::new();
    apply_value(live, config, &mut path, lists);
}

fn apply_value(live: &mut Value, config: &Value, path: &mut Vec<String>, lists: &dyn ListKinds) {
    match config {
        Value::Object(cm) => {
            if !live.is_object() {
                *live = json!({});
            }
            let lm = live.as_object_mut().expect("just made an object");
            for (k, v) in cm {
                if v.is_null() {
                    lm.remove(k);
                    continue;
                }
                path.push(k.clone());
                apply_value(lm.entry(k.clone()).or_insert(Value::Null), v, path, lists);
                path.pop();
            }
        }
        Value::Array(items) => match lists.list_type(path) {
            ListType::Atomic => *live = config.clone(),
            ListType::Set => {
                if !live.is_array() {
                    *live = json!([]);
                }
                let l = live.as_array_mut().expect("just made an array");
                for i in items {
                    if !l.contains(i) {
                        l.push(i.clone());
                    }
                }
            }
            ListType::Map(keys) => {
                if !live.is_array() {
                    *live = json!([]);
                }
                let l = live.as_array_mut().expect("just made an array");
                for item in items {
                    let key = item_key(item, &keys);
                    match l.iter_mut().find(|x| matches_key(x, &key)) {
                        Some(existing) => apply_value(existing, item, path, lists),
                        None => l.push(item.clone()),
                    }
                }
            }
        },
        other => *live = other.clone(),
    }
}

/// One server-side apply: `live` (None when the object does not exist yet) plus the
/// manager's configuration → the new object, with `metadata.managedFields` updated.
/// `subresource` is `Some("status")` for applies to `/status`. Without `force`, fields
/// another manager owns with a different value are returned as conflicts.
#[allow(clippy::too_many_arguments)]
pub fn server_side_apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    subresource: Option<&str>,
    api_version: &str,
    now: &str,
    force: bool,
    lists: &dyn ListKinds,
) -> Result<Value, Vec<Conflict>> {
    let mut config = config.clone();
    if let Some(md) = config.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "managedFields",
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
        ] {
            md.remove(k);
        }
    }
    let mut obj = live.cloned().unwrap_or_else(|| json!({}));
    let managed: Vec<Value> = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let is_mine = |e: &Value| {
        e.get("manager").and_then(Value::as_str) == Some(manager)
            && e.get("operation").and_then(Value::as_str) == Some("Apply")
            && e.get("subresource").and_then(Value::as_str) == subresource
    };
    let fields_of = |e: &Value| {
        e.get("fieldsV1")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let prev = managed
        .iter()
        .find(|e| is_mine(e))
        .map(fields_of)
        .unwrap_or_default();
    let mut others: Vec<FieldSet> = managed
        .iter()
        .filter(|e| !is_mine(e))
        .map(fields_of)
        .collect();

    // Ownership of identity fields is not tracked: they are not the manager's to remove.
    let mut owned_config = config.clone();
    if let Some(m) = owned_config.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
        if let Some(md) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            md.remove("name");
            md.remove("namespace");
            md.remove("generateName");
            if md.is_empty() {
                m.remove("metadata");
            }
        }
    }
    let new_set = fieldset_of(&owned_config, lists);

    // A field another manager owns with a different value is a conflict; with force the
    // field changes hands instead.
    let other_names: Vec<String> = managed
        .iter()
        .filter(|e| !is_mine(e))
        .map(|e| {
            e.get("manager")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        })
        .collect();
    let mut conflicts = Vec::new();
    for (i, set) in others.iter_mut().enumerate() {
        let mut shared = Vec::new();
        common_leaves(&new_set, set, &mut Vec::new(), &mut shared);
        for path in shared {
            let applied = value_at(&config, &path);
            // Maps are containers, not values: only their leaves can conflict.
            if !applied.is_some_and(Value::is_object) && applied != value_at(&obj, &path) {
                if force {
                    remove_path(set, &path);
                } else {
                    conflicts.push(Conflict {
                        manager: other_names[i].clone(),
                        path: render_path(&path),
                    });
                }
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    let other_refs: Vec<&FieldSet> = others.iter().collect();
    remove_disowned(&mut obj, &prev, &new_set, &other_refs);
    apply_merge(&mut obj, &config, lists);

    let mut entries: Vec<Value> = managed
        .into_iter()
        .filter(|e| !is_mine(e))
        .zip(others)
        .filter(|(_, set)| !set.is_empty())
        .map(|(mut e, set)| {
            e["fieldsV1"] = Value::Object(set);
            e
        })
        .collect();
    if !new_set.is_empty() {
        let mut entry = json!({
            "manager": manager,
            "operation": "Apply",
            "apiVersion": api_version,
            "time": now,
            "fieldsType": "FieldsV1",
            "fieldsV1": Value::Object(new_set),
        });
        if let Some(s) = subresource {
            entry["subresource"] = json!(s);
        }
        entries.push(entry);
    }
    let md = obj
        .as_object_mut()
        .expect("object")
        .entry("metadata")
        .or_insert_with(|| json!({}));
    if entries.is_empty() {
        if let Some(m) = md.as_object_mut() {
            m.remove("managedFields");
        }
    } else {
        md["managedFields"] = Value::Array(entries);
    }
    Ok(obj)
}

/// A field another manager owns (server-side apply without force).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager.
    pub manager: String,
    /// The field, e.g. `.spec.ports[port=80,protocol="TCP"].targetPort`.
    pub path: String,
}

/// Paths (as FieldsV1 keys) that are leaves in `a` and present in `b`.
fn common_leaves(a: &FieldSet, b: &FieldSet, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    for (k, a_child) in a {
        if k == "." {
            continue;
        }
        let Some(b_child) = b.get(k).and_then(Value::as_object) else {
            continue;
        };
        prefix.push(k.clone());
        match a_child.as_object() {
            Some(m) if !(m.is_empty() || m.len() == 1 && m.contains_key(".")) => {
                common_leaves(m, b_child, prefix, out)
            }
            _ => out.push(prefix.clone()),
        }
        prefix.pop();
    }
}

fn value_at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        cur = if let Some(f) = key.strip_prefix("f:") {
            cur.get(f)?
        } else if let Some(k) = key.strip_prefix("k:") {
            let kv: Value = serde_json::from_str(k).ok()?;
            cur.as_array()?.iter().find(|i| matches_key(i, &kv))?
        } else {
            return Some(cur);
        };
    }
    Some(cur)
}

fn remove_path(set: &mut FieldSet, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        set.remove(first);
        return;
    }
    if let Some(child) = set.get_mut(first).and_then(Value::as_object_mut) {
        remove_path(child, rest);
        if child.is_empty() {
            set.remove(first);
        }
    }
}

fn render_path(path: &[String]) -> String {
    let mut out = String::new();
    for key in path {
        if let Some(f) = key.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = key.strip_prefix("k:") {
            let kv: Value = serde_json::from_str(k).unwrap_or(Value::Null);
            let parts: Vec<String> = kv
                .as_object()
                .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                .unwrap_or_default();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = key.strip_prefix("v:") {
            out.push_str(&format!("[={v}]"));
        }
    }
    out
}

/// Decode a request body that may be JSON or YAML (apply patches may be either).
pub fn decode_body(body: &[u8]) -> ApiResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest("the request body is empty".into()));
    }
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(json_err) => {
            let y: serde_yaml::Value = serde_yaml::from_slice(body).map_err(|e| {
                ApiError::BadRequest(format!("body is neither JSON ({json_err}) nor YAML ({e})"))
            })?;
            serde_json::to_value(y)
                .map_err(|e| ApiError::BadRequest(format!("YAML body is not JSON-compatible: {e}")))
        }
    }
}

#[cfg(test)]
#[path = "patch_tests.rs"]
mod tests;
