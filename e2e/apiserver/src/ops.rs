//! The verbs: create, update, patch, delete, deletecollection, get and list, with the
//! metadata bookkeeping and per-kind behaviour of the real server. Each write runs as one
//! read-check-write under the store's write lock.

use std::sync::{Arc, RwLock};

use chrono::{SecondsFormat, Utc};
use rand::Rng;
use serde_json::{json, Value};

use crate::convert;
use crate::crd;
use crate::error::{ApiError, ApiResult, Cause};
use crate::patch::{self, BuiltinLists, ListKinds, SchemaLists};
use crate::registry::{Registry, ResKey, ResourceInfo};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::services;
use crate::store::{Inner, Store};
use crate::validation;

/// RFC 3339 timestamp with second precision, as metadata timestamps are.
pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The kind of patch, from the request's Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// application/merge-patch+json
    Merge,
    /// application/strategic-merge-patch+json
    Strategic,
    /// application/json-patch+json
    Json,
    /// application/apply-patch+yaml
    Apply,
}

impl PatchType {
    /// From a Content-Type header.
    pub fn from_content_type(ct: &str) -> ApiResult<PatchType> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/apply-patch+yaml" | "application/apply-patch+json" | "application/apply-patch+cbor" => {
                Ok(PatchType::Apply)
            }
            _ => Err(ApiError::UnsupportedMediaType(
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json".into(),
            )),
        }
    }
}

/// Options of a write request.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    /// `fieldManager`.
    pub field_manager: Option<String>,
    /// `force` (apply).
    pub force: bool,
    /// `dryRun=All`: validate and answer, store nothing.
    pub dry_run: bool,
    /// `fieldValidation=Strict`: unknown fields of custom resources are an error.
    pub strict_fields: bool,
}

/// List query.
#[derive(Debug, Clone, Default)]
pub struct ListOpts {
    /// Parsed `labelSelector`.
    pub labels: LabelSelector,
    /// Parsed `fieldSelector`.
    pub fields: FieldSelector,
    /// `limit` (0: none).
    pub limit: usize,
    /// `continue` token.
    pub continue_token: Option<String>,
}

/// A page of a list.
#[derive(Debug)]
pub struct ListPage {
    /// Items in the requested version's form.
    pub items: Vec<Value>,
    /// List resourceVersion.
    pub rv: u64,
    /// Token for the next page.
    pub continue_token: Option<String>,
    /// How many matching items remain after this page (when known).
    pub remaining: Option<usize>,
}

/// The served cluster: storage plus the registry of kinds.
#[derive(Debug)]
pub struct Cluster {
    /// Objects.
    pub store: Store,
    /// Served kinds (built-in + CRDs).
    pub registry: RwLock<Registry>,
}

fn md_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn namespace_key() -> ResKey {
    ResKey {
        group: String::new(),
        plural: "namespaces".into(),
    }
}

/// Random suffix as the real server generates for `generateName`.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn invalid(info: &ResourceInfo, name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::Invalid {
        kind: info.kind.clone(),
        name: name.to_string(),
        causes,
    }
}

/// Everything but metadata and status: what a generation bump is about.
fn spec_part(obj: &Value) -> Value {
    match obj {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| {
                    !["metadata", "status", "apiVersion", "kind"].contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The object without what changes on every write (resourceVersion, managedFields times).
fn comparable(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(md) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        md.remove("resourceVersion");
        if let Some(mf) = md.get_mut("managedFields").and_then(Value::as_array_mut) {
            for e in mf {
                if let Some(e) = e.as_object_mut() {
                    e.remove("time");
                }
            }
        }
    }
    v
}

fn list_kinds(info: &ResourceInfo) -> Box<dyn ListKinds + '_> {
    match &info.schema {
        Some(schema) => Box::new(SchemaLists { schema }),
        None => Box::new(BuiltinLists {
            kind: info.kind.clone(),
        }),
    }
}

impl Cluster {
    /// A cluster with the built-in kinds and the namespaces every cluster has.
    pub fn new(store: Store) -> Cluster {
        let cluster = Cluster {
            store,
            registry: RwLock::new(Registry::with_builtins()),
        };
        let ns_info = cluster.info("", "v1", "namespaces").expect("built-in");
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            cluster
                .create(&ns_info, None, body, &WriteOpts::default())
                .expect("bootstrap namespace");
        }
        cluster
    }

    /// Look a served resource up.
    pub fn info(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.registry().get(group, version, plural)
    }

    /// Read access to the registry.
    pub fn registry(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|p| p.into_inner())
    }

    fn registry_mut(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.registry.write().unwrap_or_else(|p| p.into_inner())
    }

    fn storage_key(info: &ResourceInfo) -> ResKey {
        if info.group == "events.k8s.io" && info.plural == "events" {
            ResKey {
                group: String::new(),
                plural: "events".into(),
            }
        } else {
            info.key()
        }
    }

    /// The key under which a resource's objects are stored.
    pub fn key_of(info: &ResourceInfo) -> ResKey {
        Self::storage_key(info)
    }

    fn check_type(info: &ResourceInfo, obj: &mut Value) -> ApiResult<()> {
        if !obj.is_object() {
            return Err(ApiError::BadRequest(
                "the request body is not an object".into(),
            ));
        }
        let want = info.api_version();
        match obj.get("apiVersion").and_then(Value::as_str) {
            None | Some("") => obj["apiVersion"] = json!(want),
            Some(av) if av == want => {}
            Some(av) => {
                return Err(ApiError::BadRequest(format!(
                    "the API version in the data ({av}) does not match the expected API version ({want})"
                )))
            }
        }
        match obj.get("kind").and_then(Value::as_str) {
            None | Some("") => obj["kind"] = json!(info.kind),
            Some(k) if k == info.kind => {}
            Some(k) => {
                return Err(ApiError::BadRequest(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    info.kind
                )))
            }
        }
        if !obj.get("metadata").is_some_and(Value::is_object) {
            obj["metadata"] = json!({});
        }
        Ok(())
    }

    fn set_namespace(info: &ResourceInfo, ns: Option<&str>, obj: &mut Value) -> ApiResult<()> {
        let md = &mut obj["metadata"];
        if info.namespaced {
            let url_ns = ns.unwrap_or("default");
            match md.get("namespace").and_then(Value::as_str) {
                Some(n) if !n.is_empty() && n != url_ns => {
                    return Err(ApiError::BadRequest(
                        "the namespace of the provided object does not match the namespace sent on the request".into(),
                    ))
                }
                _ => md["namespace"] = json!(url_ns),
            }
        } else if let Some(m) = md.as_object_mut() {
            m.remove("namespace");
        }
        Ok(())
    }

    // === create ===

    /// Create an object (`POST`). Returns the stored object (storage form).
    pub fn create(
        &self,
        info: &Arc<ResourceInfo>,
        ns: Option<&str>,
        mut obj: Value,
        opts: &WriteOpts,
    ) -> ApiResult<Arc<Value>> {
        Self::check_type(info, &mut obj)?;
        if info.group == "events.k8s.io" {
            let causes = validation::validate_events_v1(&obj);
            if !causes.is_empty() {
                let name = md_str(&obj, "name").to_string();
                return Err(invalid(info, &name, causes));
            }
        }
        let obj = convert::to_storage(info, obj);
        let mut w = self.store.write();
        self.create_locked(&mut w, info, ns, obj, opts)
    }

    fn create_locked(
        &self,
        w: &mut Inner,
        info: &Arc<ResourceInfo>,
        ns: Option<&str>,
        mut obj: Value,
        opts: &WriteOpts,
    ) -> ApiResult<Arc<Value>> {
        Self::set_namespace(info, ns, &mut obj)?;
        let key = Self::storage_key(info);
        let ns = md_str(&obj, "namespace").to_string();
        if info.namespaced && w.get(&namespace_key(), "", &ns).is_none() {
            return Err(ApiError::NotFound {
                resource: "namespaces".into(),
                name: ns,
            });
        }
        if md_str(&obj, "name").is_empty() {
            let prefix = md_str(&obj, "generateName").to_string();
            if !prefix.is_empty() {
                let name = loop {
                    let candidate = format!("{prefix}{}", random_suffix());
                    if w.get(&key, &ns, &candidate).is_none() {
                        break candidate;
                    }
                };
                obj["metadata"]["name"] = json!(name);
            }
        }
        let name = md_str(&obj, "name").to_string();
        let now = now();
        {
            let md = obj["metadata"].as_object_mut().expect("checked object");
            for k in [
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "resourceVersion",
                "generation",
                "selfLink",
            ] {
                md.remove(k);
            }
            md.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            md.insert("creationTimestamp".into(), json!(now));
            if info.tracks_generation() {
                md.insert("generation".into(), json!(1));
            }
        }
        if info.status_subresource && info.kind != "Node" {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        let mut causes = validation::validate_metadata(&info.kind, &obj);
        if !causes.is_empty() {
            return Err(invalid(info, &name, causes));
        }
        if w.get(&key, &ns, &name).is_some() {
            return Err(ApiError::AlreadyExists {
                resource: info.qualified(),
                name,
            });
        }
        match (info.group.as_str(), info.kind.as_str()) {
            ("", "Service") => {
                services::prepare_create(&mut obj, &mut w.services)
                    .map_err(|c| invalid(info, &name, c))?;
                if opts.dry_run {
                    w.services.release_service(&obj);
                }
            }
            ("", "Namespace") => {
                obj["status"] = json!({"phase": "Active"});
                if obj.get("spec").is_none() {
                    obj["spec"] = json!({"finalizers": ["kubernetes"]});
                }
                obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            }
            ("", "Pod") => {
                obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
            }
            ("", "Secret") => secret_rules(info, &name, &mut obj)?,
            ("apiextensions.k8s.io", "CustomResourceDefinition") => {
                causes = crd::validate(&obj);
                if !causes.is_empty() {
                    return Err(invalid(info, &name, causes));
                }
                obj["status"] = crd::established_status(&obj, &now);
            }
            _ if info.custom => self.custom_checks(info, &name, &mut obj, opts)?,
            _ => {}
        }
        if opts.dry_run {
            return Ok(Arc::new(obj));
        }
        let stored = w.put(&key, obj);
        if info.kind == "CustomResourceDefinition" && info.group == "apiextensions.k8s.io" {
            self.serve_crd(&stored);
        }
        Ok(stored)
    }

    fn custom_checks(
        &self,
        info: &ResourceInfo,
        name: &str,
        obj: &mut Value,
        opts: &WriteOpts,
    ) -> ApiResult<()> {
        if let Some(schema) = &info.schema {
            let pruned = crd::prune_and_default(obj, schema);
            if opts.strict_fields && !pruned.is_empty() {
                let fields: Vec<String> = pruned
                    .iter()
                    .map(|p| format!("unknown field \"{p}\""))
                    .collect();
                return Err(ApiError::BadRequest(format!(
                    "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                    info.kind,
                    info.version,
                    info.kind,
                    fields.join(", ")
                )));
            }
            let mut causes = crd::validate_object(obj, schema);
            if causes.is_empty() {
                // As the real apiserver: CEL rules run on a structurally valid object.
                causes = crd::validate_cel(obj, schema);
            }
            if !causes.is_empty() {
                return Err(invalid(info, name, causes));
            }
        }
        Ok(())
    }

    fn serve_crd(&self, crd_obj: &Value) {
        let (resources, storage) = crd::resources_of(crd_obj);
        let group = crd_obj
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or("");
        let plural = crd_obj
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or("");
        let mut reg = self.registry_mut();
        reg.remove(group, plural);
        for r in resources {
            reg.insert(r);
        }
        if !storage.is_empty() {
            reg.set_preferred(group, &storage);
        }
        tracing::debug!(group, plural, "serving custom resource");
    }

    // === update and patch ===

    /// Replace an object (`PUT`), on the main resource or the `status` subresource.
    pub fn update(
        &self,
        info: &Arc<ResourceInfo>,
        ns: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        mut body: Value,
        opts: &WriteOpts,
    ) -> ApiResult<Arc<Value>> {
        Self::check_type(info, &mut body)?;
        let mut body = convert::to_storage(info, body);
        match md_str(&body, "name") {
            "" => body["metadata"]["name"] = json!(name),
            n if n != name => {
                return Err(ApiError::BadRequest(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )))
            }
            _ => {}
        }
        Self::set_namespace(info, ns, &mut body)?;
        let key = Self::storage_key(info);
        let ns_str = md_str(&body, "namespace").to_string();
        let mut w = self.store.write();
        let Some(old) = w.get(&key, &ns_str, name) else {
            if info.allow_create_on_update() && subresource.is_none() {
                return self.create_locked(&mut w, info, ns, body, opts);
            }
            return Err(ApiError::NotFound {
                resource: info.qualified(),
                name: name.into(),
            });
        };
        let rv = md_str(&body, "resourceVersion");
        if !rv.is_empty() && rv != md_str(&old, "resourceVersion") {
            return Err(conflict(info, name));
        }
        self.finish_update(&mut w, info, &old, body, subresource, opts)
    }

    /// Patch an object (`PATCH`); apply patches create missing objects.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        info: &Arc<ResourceInfo>,
        ns: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        ty: PatchType,
        body: &[u8],
        opts: &WriteOpts,
    ) -> ApiResult<(Arc<Value>, bool)> {
        if ty == PatchType::Strategic && info.custom {
            return Err(ApiError::UnsupportedMediaType(
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into(),
            ));
        }
        let manager = opts.field_manager.clone().unwrap_or_default();
        if ty == PatchType::Apply && manager.is_empty() {
            return Err(ApiError::BadRequest(
                "PATCH, application/apply-patch+yaml requires fieldManager to be set".into(),
            ));
        }
        let patch_doc = patch::decode_body(body)?;
        let key = Self::storage_key(info);
        let ns_str = if info.namespaced {
            ns.unwrap_or("default")
        } else {
            ""
        };
        let lists = list_kinds(info);
        let mut w = self.store.write();
        let old = w.get(&key, ns_str, name);
        if ty == PatchType::Apply {
            let mut config = patch_doc;
            Self::check_type(info, &mut config)?;
            match md_str(&config, "name") {
                "" => config["metadata"]["name"] = json!(name),
                n if n != name => {
                    return Err(ApiError::BadRequest(format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    )))
                }
                _ => {}
            }
            if let Some(old) = &old {
                let rv = md_str(&config, "resourceVersion");
                if !rv.is_empty() && rv != md_str(old, "resourceVersion") {
                    return Err(conflict(info, name));
                }
            }
            // Only the part a subresource owns is applied through it.
            let has_status = info.status_subresource;
            if let Some(m) = config.as_object_mut() {
                if subresource == Some("status") {
                    m.retain(|k, _| {
                        ["apiVersion", "kind", "metadata", "status"].contains(&k.as_str())
                    });
                    if let Some(md) = m.get_mut("metadata").and_then(Value::as_object_mut) {
                        md.retain(|k, _| ["name", "namespace"].contains(&k.as_str()));
                    }
                } else if has_status {
                    m.remove("status");
                }
            }
            let view = old
                .as_ref()
                .map(|o| convert::from_storage(info, o).into_owned());
            let merged = patch::server_side_apply(
                view.as_ref(),
                &config,
                &manager,
                subresource,
                &info.api_version(),
                &now(),
                opts.force,
                lists.as_ref(),
            )
            .map_err(|conflicts| ApiError::ApplyConflict {
                causes: conflicts
                    .iter()
                    .map(|c| Cause {
                        reason: "FieldManagerConflict".into(),
                        field: c.path.clone(),
                        message: format!("conflict with \"{}\"", c.manager),
                    })
                    .collect(),
            })?;
            let merged = convert::to_storage(info, merged);
            return match old {
                None if subresource.is_some() => Err(ApiError::NotFound {
                    resource: info.qualified(),
                    name: name.into(),
                }),
                None => self
                    .create_locked(&mut w, info, ns, merged, opts)
                    .map(|o| (o, true)),
                Some(old) => self
                    .finish_update(&mut w, info, &old, merged, subresource, opts)
                    .map(|o| (o, false)),
            };
        }
        let Some(old) = old else {
            return Err(ApiError::NotFound {
                resource: info.qualified(),
                name: name.into(),
            });
        };
        let mut doc = convert::from_storage(info, &old).into_owned();
        match ty {
            PatchType::Merge => patch::merge_patch(&mut doc, &patch_doc),
            PatchType::Strategic => patch::strategic_merge(&mut doc, &patch_doc, lists.as_ref()),
            PatchType::Json => patch::json_patch(&mut doc, &patch_doc).map_err(|e| match e {
                ApiError::Invalid { causes, .. } => invalid(info, name, causes),
                other => other,
            })?,
            PatchType::Apply => unreachable!("handled above"),
        }
        Self::check_type(info, &mut doc)?;
        let doc = convert::to_storage(info, doc);
        let rv = md_str(&doc, "resourceVersion");
        if !rv.is_empty() && rv != md_str(&old, "resourceVersion") {
            return Err(conflict(info, name));
        }
        if md_str(&doc, "name") != name {
            return Err(ApiError::BadRequest(
                "metadata.name: the name of an object cannot be changed by a patch".into(),
            ));
        }
        self.finish_update(&mut w, info, &old, doc, subresource, opts)
            .map(|o| (o, false))
    }

    /// Turn a client's new version into what gets stored: subresource rules, immutable
    /// metadata, per-kind rules, generation, no-op detection, finalizer completion.
    fn finish_update(
        &self,
        w: &mut Inner,
        info: &Arc<ResourceInfo>,
        old: &Arc<Value>,
        body: Value,
        subresource: Option<&str>,
        opts: &WriteOpts,
    ) -> ApiResult<Arc<Value>> {
        let key = Self::storage_key(info);
        let name = md_str(old, "name").to_string();
        let mut new = if subresource == Some("status") {
            let mut n = (**old).clone();
            match body.get("status") {
                Some(s) => n["status"] = s.clone(),
                None => {
                    if let Some(m) = n.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            if let Some(mf) = body.pointer("/metadata/managedFields") {
                n["metadata"]["managedFields"] = mf.clone();
            }
            n
        } else {
            let mut n = body;
            if info.status_subresource {
                match old.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        if let Some(m) = n.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            n
        };
        {
            let old_md = old["metadata"].as_object().cloned().unwrap_or_default();
            if !new.get("metadata").is_some_and(Value::is_object) {
                new["metadata"] = json!({});
            }
            let md = new["metadata"].as_object_mut().expect("object");
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
                "name",
            ] {
                match old_md.get(k) {
                    Some(v) => md.insert(k.to_string(), v.clone()),
                    None => md.remove(k),
                };
            }
            if !md.contains_key("managedFields") {
                if let Some(mf) = old_md.get("managedFields") {
                    md.insert("managedFields".into(), mf.clone());
                }
            }
            // A deleting object may lose finalizers but gain none.
            if old_md.contains_key("deletionTimestamp") {
                let old_f: Vec<Value> = old_md
                    .get("finalizers")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let new_f: Vec<Value> = md
                    .get("finalizers")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if new_f.iter().any(|f| !old_f.contains(f)) {
                    return Err(invalid(
                        info,
                        &name,
                        vec![Cause::forbidden(
                            "metadata.finalizers",
                            "no new finalizers can be added if the object is being deleted",
                        )],
                    ));
                }
            }
        }
        new["apiVersion"] = old["apiVersion"].clone();
        new["kind"] = old["kind"].clone();
        let causes = validation::validate_metadata(&info.kind, &new);
        if !causes.is_empty() {
            return Err(invalid(info, &name, causes));
        }
        let mut reallocated = false;
        match (info.group.as_str(), info.kind.as_str()) {
            ("", "Service") if subresource.is_none() => {
                services::prepare_update(&mut new, old, &mut w.services)
                    .map_err(|c| invalid(info, &name, c))?;
                reallocated = true;
            }
            ("", "Secret") => secret_rules(info, &name, &mut new)?,
            ("", "Namespace") => {
                if new.pointer("/status/phase").is_none() {
                    new["status"]["phase"] = json!("Active");
                }
                new["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            }
            ("apiextensions.k8s.io", "CustomResourceDefinition") => {
                let causes = crd::validate(&new);
                if !causes.is_empty() {
                    return Err(invalid(info, &name, causes));
                }
                new["status"] = old["status"].clone();
                if old.get("spec") != new.get("spec") {
                    new["status"] = crd::established_status(&new, &now());
                }
            }
            _ if info.custom => self.custom_checks(info, &name, &mut new, opts)?,
            _ => {}
        }
        if info.tracks_generation() && spec_part(old) != spec_part(&new) {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            new["metadata"]["generation"] = json!(g + 1);
        }
        if comparable(old) == comparable(&new) {
            return Ok(old.clone());
        }
        if opts.dry_run {
            if reallocated {
                w.services.release_service(&new);
                w.services.restore_service(old);
            }
            return Ok(Arc::new(new));
        }
        let deleting = new.pointer("/metadata/deletionTimestamp").is_some();
        let no_finalizers = new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty());
        if deleting && no_finalizers {
            let ns = md_str(&new, "namespace").to_string();
            w.put(&key, new);
            return Ok(self
                .remove_now(w, info, &ns, &name, true)
                .expect("just stored"));
        }
        let stored = w.put(&key, new);
        if info.kind == "CustomResourceDefinition" && info.group == "apiextensions.k8s.io" {
            self.serve_crd(&stored);
        }
        Ok(stored)
    }

    // === delete ===

    /// Delete an object: marks it when it has finalizers, removes it otherwise.
    pub fn delete(
        &self,
        info: &Arc<ResourceInfo>,
        ns: Option<&str>,
        name: &str,
        options: Option<&Value>,
        opts: &WriteOpts,
    ) -> ApiResult<Arc<Value>> {
        let key = Self::storage_key(info);
        let ns_str = if info.namespaced {
            ns.unwrap_or("default")
        } else {
            ""
        };
        let mut w = self.store.write();
        let old = w
            .get(&key, ns_str, name)
            .ok_or_else(|| ApiError::NotFound {
                resource: info.qualified(),
                name: name.into(),
            })?;
        if let Some(pre) = options.and_then(|o| o.get("preconditions")) {
            let uid = pre.get("uid").and_then(Value::as_str);
            let rv = pre.get("resourceVersion").and_then(Value::as_str);
            if uid.is_some_and(|u| u != md_str(&old, "uid"))
                || rv.is_some_and(|r| r != md_str(&old, "resourceVersion"))
            {
                return Err(ApiError::Conflict {
                    resource: info.qualified(),
                    name: name.into(),
                    why: "the precondition for the delete did not hold".into(),
                });
            }
        }
        if opts.dry_run {
            return Ok(old);
        }
        let orphan = options.is_some_and(|o| {
            o.get("propagationPolicy").and_then(Value::as_str) == Some("Orphan")
                || o.get("orphanDependents").and_then(Value::as_bool) == Some(true)
        });
        self.delete_locked(&mut w, info, &old, !orphan)
    }

    fn delete_locked(
        &self,
        w: &mut Inner,
        info: &ResourceInfo,
        old: &Arc<Value>,
        gc: bool,
    ) -> ApiResult<Arc<Value>> {
        let key = Self::storage_key(info);
        let ns = md_str(old, "namespace").to_string();
        let name = md_str(old, "name").to_string();
        let has_finalizers = old
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if old.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(old.clone());
            }
            let mut marked = (**old).clone();
            marked["metadata"]["deletionTimestamp"] = json!(now());
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            if info.tracks_generation() {
                let g = old
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                marked["metadata"]["generation"] = json!(g + 1);
            }
            return Ok(w.put(&key, marked));
        }
        self.remove_now(w, info, &ns, &name, gc)
            .ok_or_else(|| ApiError::NotFound {
                resource: info.qualified(),
                name,
            })
    }

    /// Remove an object for good, with what its kind's removal implies, and garbage
    /// collect the objects it owned (background propagation) unless told to orphan them.
    fn remove_now(
        &self,
        w: &mut Inner,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        gc: bool,
    ) -> Option<Arc<Value>> {
        let key = Self::storage_key(info);
        let gone = w.remove(&key, ns, name)?;
        if let Some(uid) = gone.pointer("/metadata/uid").and_then(Value::as_str) {
            if gc {
                self.collect_garbage(w, uid);
            }
        }
        match (info.group.as_str(), info.kind.as_str()) {
            ("", "Service") => w.services.release_service(&gone),
            ("", "Namespace") => self.empty_namespace(w, name),
            ("apiextensions.k8s.io", "CustomResourceDefinition") => {
                let group = gone
                    .pointer("/spec/group")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let plural = gone
                    .pointer("/spec/names/plural")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                self.registry_mut().remove(&group, &plural);
                w.drop_collection(&ResKey { group, plural });
            }
            _ => {}
        }
        Some(gone)
    }

    fn info_for_key(&self, key: &ResKey) -> Option<Arc<ResourceInfo>> {
        let reg = self.registry();
        let found = reg
            .all()
            .find(|i| &Self::storage_key(i) == key && i.group != "events.k8s.io")
            .cloned();
        found
    }

    /// Delete the dependents of a removed owner that have no live owner left.
    fn collect_garbage(&self, w: &mut Inner, owner_uid: &str) {
        for (key, ns, name) in w.dependents_of(owner_uid) {
            let Some(obj) = w.get(&key, &ns, &name) else {
                continue;
            };
            if !w.orphaned(&obj) {
                continue;
            }
            if let Some(info) = self.info_for_key(&key) {
                let _ = self.delete_locked(w, &info, &obj, true);
            }
        }
    }

    fn empty_namespace(&self, w: &mut Inner, ns: &str) {
        let infos: Vec<Arc<ResourceInfo>> = {
            let reg = self.registry();
            let mut seen = std::collections::HashSet::new();
            reg.all()
                .filter(|i| i.namespaced && seen.insert(Self::storage_key(i)))
                .cloned()
                .collect()
        };
        for info in infos {
            let key = Self::storage_key(&info);
            let objs: Vec<Arc<Value>> = w
                .collection(&key)
                .map(|c| c.range(Some(ns), None).map(|(_, o)| o.clone()).collect())
                .unwrap_or_default();
            for o in objs {
                let _ = self.delete_locked(w, &info, &o, true);
            }
        }
    }

    /// Delete every object matching the selectors (`DELETE` on a collection).
    pub fn delete_collection(
        &self,
        info: &Arc<ResourceInfo>,
        ns: Option<&str>,
        q: &ListOpts,
        opts: &WriteOpts,
    ) -> ApiResult<Vec<Value>> {
        let key = Self::storage_key(info);
        let mut w = self.store.write();
        let victims: Vec<Arc<Value>> = w
            .collection(&key)
            .map(|c| {
                c.range(ns, None)
                    .map(|(_, o)| o)
                    .filter(|o| {
                        let view = convert::from_storage(info, o);
                        q.labels.matches_object(&view) && q.fields.matches(&view)
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let mut out = Vec::new();
        for v in victims {
            if opts.dry_run {
                out.push(convert::from_storage(info, &v).into_owned());
            } else if let Ok(d) = self.delete_locked(&mut w, info, &v, true) {
                out.push(convert::from_storage(info, &d).into_owned());
            }
        }
        Ok(out)
    }

    // === reads ===

    /// Get one object (in the requested version's form).
    pub fn get(&self, info: &ResourceInfo, ns: Option<&str>, name: &str) -> ApiResult<Value> {
        let ns_str = if info.namespaced {
            ns.unwrap_or("default")
        } else {
            ""
        };
        let r = self.store.read();
        let obj = r
            .get(&Self::storage_key(info), ns_str, name)
            .ok_or_else(|| ApiError::NotFound {
                resource: info.qualified(),
                name: name.into(),
            })?;
        Ok(convert::from_storage(info, &obj).into_owned())
    }

    /// List objects, with selectors and paging.
    pub fn list(&self, info: &ResourceInfo, ns: Option<&str>, q: &ListOpts) -> ApiResult<ListPage> {
        let after = match &q.continue_token {
            Some(t) if !t.is_empty() => Some(decode_continue(t)?),
            _ => None,
        };
        let r = self.store.read();
        let rv = r.rv();
        let mut items = Vec::new();
        let mut next = None;
        let mut remaining = 0usize;
        if let Some(coll) = r.collection(&Self::storage_key(info)) {
            for (_, obj) in coll.range(ns, after) {
                let view = convert::from_storage(info, obj);
                if !(q.labels.matches_object(&view) && q.fields.matches(&view)) {
                    continue;
                }
                if q.limit > 0 && items.len() >= q.limit {
                    if next.is_none() {
                        let last: &Value = items.last().expect("limit > 0");
                        next = Some(encode_continue(
                            md_str(last, "namespace"),
                            md_str(last, "name"),
                        ));
                    }
                    remaining += 1;
                    continue;
                }
                items.push(view.into_owned());
            }
        }
        Ok(ListPage {
            items,
            rv,
            remaining: next.as_ref().map(|_| remaining),
            continue_token: next,
        })
    }
}

/// What the real server does to Secrets: `stringData` is folded into base64 `data`, the
/// type defaults to Opaque, and a TLS Secret must carry `tls.crt` and `tls.key`.
fn secret_rules(info: &ResourceInfo, name: &str, obj: &mut Value) -> ApiResult<()> {
    use base64::Engine;
    if let Some(Value::Object(string_data)) =
        obj.as_object_mut().and_then(|m| m.remove("stringData"))
    {
        for (k, v) in string_data {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or_default());
            obj["data"][k] = json!(encoded);
        }
    }
    if obj
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        obj["type"] = json!("Opaque");
    }
    if obj["type"] == "kubernetes.io/tls" {
        let causes: Vec<Cause> = ["tls.crt", "tls.key"]
            .iter()
            .filter(|k| obj.pointer(&format!("/data/{k}")).is_none())
            .map(|k| Cause::required(format!("data[{k}]")))
            .collect();
        if !causes.is_empty() {
            return Err(invalid(info, name, causes));
        }
    }
    Ok(())
}

fn conflict(info: &ResourceInfo, name: &str) -> ApiError {
    ApiError::Conflict {
        resource: info.qualified(),
        name: name.into(),
        why: "the object has been modified; please apply your changes to the latest version and try again".into(),
    }
}

fn encode_continue(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_continue(token: &str) -> ApiResult<(String, String)> {
    let bad = || ApiError::BadRequest(format!("invalid continue token {token:?}"));
    if !token.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Result<Vec<u8>, _> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
        .collect();
    let s = String::from_utf8(bytes.map_err(|_| bad())?).map_err(|_| bad())?;
    let (ns, name) = s.split_once('/').ok_or_else(bad)?;
    Ok((ns.to_string(), name.to_string()))
}
