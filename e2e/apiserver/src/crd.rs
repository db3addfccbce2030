//! CustomResourceDefinitions: what a CRD makes the server serve, the status the real
//! server writes onto it, and structural-schema defaulting, pruning and type checks for
//! the custom objects.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::error::Cause;
use crate::registry::ResourceInfo;

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn strings(v: &Value, ptr: &str) -> Vec<String> {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Validate a CRD the way the real server does for the fields that matter here.
pub fn validate(crd: &Value) -> Vec<Cause> {
    let mut c = Vec::new();
    let group = s(crd, "/spec/group");
    let plural = s(crd, "/spec/names/plural");
    let name = s(crd, "/metadata/name");
    if group.is_empty() {
        c.push(Cause::required("spec.group"));
    }
    if plural.is_empty() {
        c.push(Cause::required("spec.names.plural"));
    }
    if s(crd, "/spec/names/kind").is_empty() {
        c.push(Cause::required("spec.names.kind"));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        c.push(Cause::invalid(
            "metadata.name",
            format!("\"{name}\""),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let scope = s(crd, "/spec/scope");
    if !["Namespaced", "Cluster"].contains(&scope) {
        c.push(Cause::not_supported(
            "spec.scope",
            format!("\"{scope}\""),
            &["Cluster", "Namespaced"],
        ));
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        c.push(Cause::required("spec.versions"));
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if !versions.is_empty() && storage != 1 {
        c.push(Cause::invalid(
            "spec.versions",
            format!("{storage} storage versions"),
            "must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if v.pointer("/schema/openAPIV3Schema").is_none() {
            c.push(Cause::required(format!(
                "spec.versions[{i}].schema.openAPIV3Schema"
            )));
        }
    }
    c
}

/// The resources a CRD serves: one per served version; and the storage version.
pub fn resources_of(crd: &Value) -> (Vec<ResourceInfo>, String) {
    let group = s(crd, "/spec/group").to_string();
    let plural = s(crd, "/spec/names/plural").to_string();
    let kind = s(crd, "/spec/names/kind").to_string();
    let singular = match s(crd, "/spec/names/singular") {
        "" => kind.to_lowercase(),
        x => x.to_string(),
    };
    let list_kind = match s(crd, "/spec/names/listKind") {
        "" => format!("{kind}List"),
        x => x.to_string(),
    };
    let namespaced = s(crd, "/spec/scope") == "Namespaced";
    let mut out = Vec::new();
    let mut storage = String::new();
    for v in crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = s(v, "/name").to_string();
        if v.get("storage").and_then(Value::as_bool) == Some(true) {
            storage = name.clone();
        }
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        out.push(ResourceInfo {
            group: group.clone(),
            version: name,
            plural: plural.clone(),
            singular: singular.clone(),
            kind: kind.clone(),
            list_kind: list_kind.clone(),
            namespaced,
            short_names: strings(crd, "/spec/names/shortNames"),
            categories: strings(crd, "/spec/names/categories"),
            status_subresource: v.pointer("/subresources/status").is_some(),
            schema: v.pointer("/schema/openAPIV3Schema").cloned().map(Arc::new),
            printer_columns: v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            custom: true,
        });
    }
    (out, storage)
}

/// The status the real server writes once it serves a CRD.
pub fn established_status(crd: &Value, now: &str) -> Value {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let mut accepted = names.clone();
    if accepted.get("singular").is_none() {
        accepted["singular"] = json!(s(crd, "/spec/names/kind").to_lowercase());
    }
    if accepted.get("listKind").is_none() {
        accepted["listKind"] = json!(format!("{}List", s(crd, "/spec/names/kind")));
    }
    let storage: Vec<String> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .map(|v| s(v, "/name").to_string())
        .collect();
    json!({
        "acceptedNames": accepted,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now, "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": now, "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
        ],
        "storedVersions": storage,
    })
}

// === structural schema: pruning, defaulting, validation ===

fn is_true(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

/// Prune unknown fields, drop non-nullable nulls and apply `default`s, as the real server
/// does on every write of a custom object. `apiVersion`, `kind` and `metadata` at the root
/// are left alone. Returns the paths of the unknown fields it pruned (what
/// `fieldValidation=Strict` rejects).
pub fn prune_and_default(obj: &mut Value, schema: &Value) -> Vec<String> {
    let mut pruned = Vec::new();
    walk(obj, schema, true, "", &mut pruned);
    pruned
}

fn walk(v: &mut Value, schema: &Value, root: bool, path: &str, pruned: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if is_true(schema, "x-kubernetes-int-or-string") {
                return;
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let preserve = is_true(schema, "x-kubernetes-preserve-unknown-fields");
            let embedded = root || is_true(schema, "x-kubernetes-embedded-resource");
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if embedded && ["apiVersion", "kind", "metadata"].contains(&k.as_str()) {
                    continue;
                }
                let sub = props
                    .and_then(|p| p.get(&k))
                    .or(additional.filter(|a| a.is_object()));
                match sub {
                    Some(sub) => {
                        if m[&k].is_null() && !is_true(sub, "nullable") {
                            m.remove(&k);
                        } else if let Some(child) = m.get_mut(&k) {
                            walk(child, sub, false, &join(path, &k), pruned);
                        }
                    }
                    None if preserve || additional.and_then(Value::as_bool) == Some(true) => {}
                    None => {
                        m.remove(&k);
                        pruned.push(join(path, &k));
                    }
                }
            }
            if let Some(props) = props {
                for (k, sub) in props {
                    if m.contains_key(k) {
                        continue;
                    }
                    if let Some(d) = sub.get("default") {
                        let mut d = d.clone();
                        walk(&mut d, sub, false, &join(path, k), &mut Vec::new());
                        m.insert(k.clone(), d);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (n, i) in items.iter_mut().enumerate() {
                    walk(i, item_schema, false, &format!("{path}[{n}]"), pruned);
                }
            }
        }
        _ => {}
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Type, enum, required, bounds and size checks of a custom object against its schema.
pub fn validate_object(obj: &Value, schema: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    check(obj, schema, "", &mut causes, true);
    causes
}

/// The schema's `x-kubernetes-validations` (CEL) rules on `obj`, evaluated with the
/// Kubernetes CEL libraries (kube-cel). Transition rules (`oldSelf`) are not evaluated:
/// the old object is not passed.
pub fn validate_cel(obj: &Value, schema: &Value) -> Vec<Cause> {
    match kube_cel::validate(schema, obj, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .into_vec()
            .into_iter()
            .map(|e| {
                // As kube-apiserver prints it: the type of the offending value.
                let at = jsonpath(obj, &format!(".{}", e.field_path));
                let kind = at.as_ref().map_or("object", type_name);
                Cause {
                    reason: e.reason.unwrap_or_else(|| "FieldValueInvalid".into()),
                    message: format!("Invalid value: \"{kind}\": {}", e.message),
                    field: e.field_path,
                }
            })
            .collect(),
    }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

fn check(v: &Value, schema: &Value, path: &str, out: &mut Vec<Cause>, root: bool) {
    if v.is_null() {
        return;
    }
    if is_true(schema, "x-kubernetes-int-or-string") {
        if !matches!(type_name(v), "integer" | "string") {
            out.push(Cause::invalid(
                path,
                format!("\"{}\"", type_name(v)),
                &format!("{path} in body must be of type int-or-string"),
            ));
        }
        return;
    }
    if let Some(want) = schema.get("type").and_then(Value::as_str) {
        let have = type_name(v);
        let ok = have == want || (want == "number" && have == "integer");
        if !ok {
            out.push(Cause::invalid(
                path,
                format!("\"{have}\""),
                &format!("{path} in body must be of type {want}: \"{have}\""),
            ));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(v) {
            let names: Vec<String> = allowed
                .iter()
                .map(|a| {
                    a.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| a.to_string())
                })
                .collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            out.push(Cause::not_supported(path, v, &refs));
        }
    }
    if let Some(n) = v.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
            if n < min {
                out.push(Cause::invalid(
                    path,
                    v,
                    &format!("{path} in body should be greater than or equal to {min}"),
                ));
            }
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
            if n > max {
                out.push(Cause::invalid(
                    path,
                    v,
                    &format!("{path} in body should be less than or equal to {max}"),
                ));
            }
        }
    }
    if let Some(st) = v.as_str() {
        let len = st.chars().count() as u64;
        if schema
            .get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len > m)
        {
            out.push(Cause::invalid(path, format!("\"{st}\""), "too long"));
        }
        if schema
            .get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
        {
            out.push(Cause::invalid(path, format!("\"{st}\""), "too short"));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            if matches_pattern(pattern, st) == Some(false) {
                out.push(Cause::invalid(
                    path,
                    format!("\"{st}\""),
                    &format!("{path} in body should match '{pattern}'"),
                ));
            }
        }
    }
    match v {
        Value::Object(m) => {
            for req in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(r) = req.as_str() {
                    if !m.contains_key(r) {
                        out.push(Cause::required(join(path, r)));
                    }
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in m {
                if root && ["apiVersion", "kind", "metadata"].contains(&k.as_str()) {
                    continue;
                }
                if let Some(sub) = props.and_then(|p| p.get(k)).or(additional) {
                    check(child, sub, &join(path, k), out, false);
                }
            }
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if schema
                .get("maxItems")
                .and_then(Value::as_u64)
                .is_some_and(|m| n > m)
            {
                out.push(Cause::invalid(path, n, "too many items"));
            }
            if schema
                .get("minItems")
                .and_then(Value::as_u64)
                .is_some_and(|m| n < m)
            {
                out.push(Cause::invalid(path, n, "too few items"));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item, item_schema, &format!("{path}[{i}]"), out, false);
                }
            }
        }
        _ => {}
    }
}

/// Whether `s` matches an OpenAPI `pattern` (None when the pattern does not compile).
/// Compiled patterns are cached: the same few schemas are checked on every write.
fn matches_pattern(pattern: &str, s: &str) -> Option<bool> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let re = cache
        .entry(pattern.to_string())
        .or_insert_with(|| regex::Regex::new(pattern).ok());
    re.as_ref().map(|r| r.is_match(s))
}

/// Evaluate the JSONPath subset printer columns use: `.a.b`, `[N]`, `[*]` and
/// `[?(@.field=="value")]`. The first result wins, as in a table cell.
pub fn jsonpath(obj: &Value, path: &str) -> Option<Value> {
    let mut current: Vec<&Value> = vec![obj];
    let mut rest = path.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let field = &r[..end];
            current = current.into_iter().filter_map(|v| v.get(field)).collect();
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = &r[..end];
            rest = &r[end + 1..];
            let items: Vec<&Value> = current
                .into_iter()
                .filter_map(Value::as_array)
                .flatten()
                .collect::<Vec<_>>();
            current = if inner == "*" {
                items
            } else if let Ok(n) = inner.parse::<usize>() {
                items.get(n).copied().into_iter().collect()
            } else if let Some(cond) = inner.strip_prefix("?(@.").and_then(|c| c.strip_suffix(')'))
            {
                let (field, want) = cond.split_once("==")?;
                let want = want.trim().trim_matches(|c| c == '"' || c == '\'');
                items
                    .into_iter()
                    .filter(|i| match i.get(field.trim()) {
                        Some(Value::String(s)) => s == want,
                        Some(other) => {
                            serde_json::from_str::<Value>(want).is_ok_and(|w| w == *other)
                        }
                        None => false,
                    })
                    .collect()
            } else {
                return None;
            };
        } else {
            return None;
        }
    }
    current.first().map(|v| (*v).clone())
}

/// Printer columns of a custom kind as Table column definitions and cell values.
pub fn printer_cells(columns: &[Value], obj: &Value) -> Vec<Value> {
    columns
        .iter()
        .map(|c| {
            let path = c.get("jsonPath").and_then(Value::as_str).unwrap_or("");
            jsonpath(obj, path).unwrap_or(Value::Null)
        })
        .collect()
}

#[cfg(test)]
#[path = "crd_tests.rs"]
mod tests;
