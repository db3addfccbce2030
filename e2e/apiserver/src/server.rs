//! The HTTP side: a hyper service that authenticates, routes Kubernetes REST paths to
//! the verbs, records every resource request, and encodes answers as the real server does.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::auth::Tokens;
use crate::error::{ApiError, ApiResult};
use crate::ops::{Cluster, ListOpts, PatchType, WriteOpts};
use crate::registry::ResourceInfo;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::table;
use crate::watch::{self, WatchParams};

/// Response body type.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// One recorded resource request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// User name behind the bearer token.
    pub user: String,
    /// Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// API group ("" for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Resource (plural).
    pub resource: String,
    /// Subresource, e.g. `status`, or "".
    pub subresource: String,
    /// Namespace, or "".
    pub namespace: String,
    /// Object name, or "".
    pub name: String,
}

/// State shared by every connection.
pub struct Shared {
    /// The objects and kinds.
    pub cluster: Arc<Cluster>,
    /// Token → user.
    pub tokens: Tokens,
    /// Every authenticated resource request, in arrival order.
    pub requests: Mutex<Vec<RecordedRequest>>,
    /// Cancelled when the server stops.
    pub shutdown: CancellationToken,
    /// How often watches with allowWatchBookmarks get a BOOKMARK.
    pub bookmark_every: Duration,
    /// Serving certificate and CA.
    pub tls: crate::tls::ServerTls,
}

/// Accept connections until shutdown.
pub async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, _peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            // A TLS ClientHello starts with 0x16; anything else is plain HTTP.
            let mut first = [0u8; 1];
            let peeked =
                tokio::time::timeout(Duration::from_secs(30), stream.peek(&mut first)).await;
            let is_tls = match peeked {
                Ok(Ok(1)) => first[0] == 0x16,
                // Silent or closed before a byte: nothing to serve.
                _ => return,
            };
            if is_tls {
                match shared.tls.acceptor.accept(stream).await {
                    Ok(tls) => serve_connection(TokioIo::new(tls), shared).await,
                    Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                }
            } else {
                serve_connection(TokioIo::new(stream), shared).await;
            }
        });
    }
}

async fn serve_connection<I>(io: I, shared: Arc<Shared>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let shutdown = shared.shutdown.clone();
    let svc = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(req, shared).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, svc);
    tokio::select! {
        r = conn => if let Err(e) = r {
            tracing::debug!(error = %e, "connection ended with an error");
        },
        _ = shutdown.cancelled() => {}
    }
}

fn full(code: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("Content-Type", content_type)
        .header("Cache-Control", "no-cache, private")
        .body(Full::new(Bytes::from(body)).boxed_unsync())
        .expect("valid response")
}

fn json_response(code: u16, v: &Value) -> Response<Body> {
    full(
        StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
        "application/json",
        serde_json::to_vec(v).unwrap_or_default(),
    )
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code(), &e.to_status())
}

/// `%XX` and `+` decoding of a query component.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn truthy(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true" || v == "1")
}

/// Where a resource path points.
#[derive(Debug, Default)]
struct Target {
    group: String,
    version: String,
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
    legacy_watch: bool,
}

async fn handle(req: Request<Incoming>, shared: Arc<Shared>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let seg_refs: Vec<&str> = segs.iter().map(String::as_str).collect();
    if matches!(seg_refs.as_slice(), ["healthz"] | ["livez"] | ["readyz"]) {
        return full(StatusCode::OK, "text/plain", b"ok".to_vec());
    }
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let Some(user) = shared.tokens.authenticate(auth) else {
        return error_response(&ApiError::Unauthorized);
    };
    let query = parse_query(req.uri().query());
    let cluster = shared.cluster.clone();
    let target = match seg_refs.as_slice() {
        [] => {
            return json_response(
                200,
                &json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version"]}),
            )
        }
        ["version"] => {
            return json_response(
                200,
                &json!({
                    "major": "1", "minor": "33", "gitVersion": "v1.33.0-ironlb", "gitCommit": "0000000000000000000000000000000000000000",
                    "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc",
                    "platform": "linux/amd64"
                }),
            )
        }
        ["api"] | ["apis"] if wants_aggregated(&req) => {
            let doc = cluster.registry().aggregated(seg_refs[0] == "api");
            return full(
                StatusCode::OK,
                AGGREGATED_V2,
                serde_json::to_vec(&doc).unwrap_or_default(),
            );
        }
        ["api"] => {
            let host = req
                .headers()
                .get("host")
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1")
                .to_string();
            return json_response(200, &cluster.registry().core_versions(&host));
        }
        ["apis"] => return json_response(200, &cluster.registry().group_list()),
        ["api", "v1"] => return discovery(cluster.registry().resource_list("", "v1")),
        ["apis", g] => return discovery(cluster.registry().group(g)),
        ["apis", g, v] => return discovery(cluster.registry().resource_list(g, v)),
        ["openapi", "v3"] => return json_response(200, &crate::openapi::root(&cluster.registry())),
        ["openapi", "v3", "api", v] => {
            return discovery(crate::openapi::gv_doc(&cluster.registry(), "", v))
        }
        ["openapi", "v3", "apis", g, v] => {
            return discovery(crate::openapi::gv_doc(&cluster.registry(), g, v))
        }
        ["openapi", ..] => return error_response(&ApiError::NoSuchPath),
        ["api", "v1", rest @ ..] => route(&cluster, "", "v1", rest),
        ["apis", g, v, rest @ ..] => route(&cluster, g, v, rest),
        _ => None,
    };
    let Some((target, info)) = target else {
        return error_response(&ApiError::NoSuchPath);
    };
    let method = req.method().clone();
    let watching = target.legacy_watch || truthy(&query, "watch");
    let verb = match (&method, target.name.is_some()) {
        (&Method::GET, _) if watching => "watch",
        (&Method::GET, true) => "get",
        (&Method::GET, false) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => return error_response(&ApiError::MethodNotAllowed),
    };
    // Namespaced objects are only addressed inside a namespace; across namespaces a
    // namespaced resource can only be listed or watched.
    if info.namespaced && target.namespace.is_none() && !matches!(verb, "list" | "watch") {
        return error_response(&ApiError::NoSuchPath);
    }
    shared
        .requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(RecordedRequest {
            user,
            verb: verb.into(),
            group: target.group.clone(),
            version: target.version.clone(),
            resource: target.resource.clone(),
            subresource: target.subresource.clone().unwrap_or_default(),
            namespace: target.namespace.clone().unwrap_or_default(),
            name: target.name.clone().unwrap_or_default(),
        });
    let accept = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return error_response(&ApiError::BadRequest(format!(
                "reading the request body: {e}"
            )))
        }
    };
    let wants_table = accept.contains("as=Table");
    let wants_meta = !wants_table && accept.contains("as=PartialObjectMetadata");
    let result = dispatch(
        &shared,
        verb,
        &target,
        &info,
        &query,
        &content_type,
        &body,
        Form {
            table: wants_table,
            metadata: wants_meta,
        },
    );
    match result {
        Ok(Reply::Json(code, v)) => json_response(code, &v),
        Ok(Reply::Watch(params)) => {
            let rx = watch::start(
                cluster,
                info,
                params,
                shared.bookmark_every,
                shared.shutdown.clone(),
            );
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
            });
            Response::builder()
                .status(StatusCode::OK)
                .header("Content-Type", "application/json")
                .header("Transfer-Encoding", "chunked")
                .body(BodyExt::boxed_unsync(StreamBody::new(stream)))
                .expect("valid response")
        }
        Err(e) => error_response(&e),
    }
}

/// Content type of aggregated discovery documents.
const AGGREGATED_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the client asked for aggregated discovery v2 (kubectl and kube-rs do).
fn wants_aggregated(req: &Request<Incoming>) -> bool {
    req.headers()
        .get_all("accept")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|a| {
            a.contains("g=apidiscovery.k8s.io")
                && a.contains("v=v2;")
                && a.contains("as=APIGroupDiscoveryList")
        })
}

fn discovery(doc: Option<Value>) -> Response<Body> {
    match doc {
        Some(d) => json_response(200, &d),
        None => error_response(&ApiError::NoSuchPath),
    }
}

fn route(
    cluster: &Cluster,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Option<(Target, Arc<ResourceInfo>)> {
    let mut rest = rest;
    let mut t = Target {
        group: group.into(),
        version: version.into(),
        ..Target::default()
    };
    if rest.first() == Some(&"watch") {
        t.legacy_watch = true;
        rest = &rest[1..];
    }
    if rest.len() >= 3 && rest[0] == "namespaces" {
        if let Some(info) = cluster.info(group, version, rest[2]) {
            if info.namespaced {
                t.namespace = Some(rest[1].to_string());
                rest = &rest[2..];
            }
        }
    }
    let info = cluster.info(group, version, rest.first()?)?;
    t.resource = info.plural.clone();
    t.name = rest.get(1).map(|s| s.to_string());
    t.subresource = rest.get(2).map(|s| s.to_string());
    if rest.len() > 3 {
        return None;
    }
    if let Some(sub) = &t.subresource {
        let served = (sub == "status" && info.status_subresource)
            || (sub == "finalize" && info.kind == "Namespace");
        if !served {
            return None;
        }
    }
    Some((t, info))
}

/// The representation the client asked for in `Accept`.
#[derive(Debug, Clone, Copy)]
struct Form {
    table: bool,
    metadata: bool,
}

enum Reply {
    Json(u16, Value),
    Watch(WatchParams),
}

fn list_opts(q: &HashMap<String, String>) -> ApiResult<ListOpts> {
    Ok(ListOpts {
        labels: LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))
            .map_err(|e| ApiError::BadRequest(format!("unable to parse requirement: {e}")))?,
        fields: FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""))
            .map_err(ApiError::BadRequest)?,
        limit: q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(0),
        continue_token: q.get("continue").cloned(),
    })
}

fn write_opts(q: &HashMap<String, String>) -> WriteOpts {
    WriteOpts {
        field_manager: q.get("fieldManager").cloned(),
        force: truthy(q, "force"),
        dry_run: q.get("dryRun").is_some_and(|v| v == "All"),
        strict_fields: q.get("fieldValidation").is_some_and(|v| v == "Strict"),
    }
}

#[allow(clippy::too_many_arguments)]
fn dispatch(
    shared: &Shared,
    verb: &str,
    t: &Target,
    info: &Arc<ResourceInfo>,
    q: &HashMap<String, String>,
    content_type: &str,
    body: &[u8],
    form: Form,
) -> ApiResult<Reply> {
    let wants_table = form.table;
    let cluster = &shared.cluster;
    let ns = t.namespace.as_deref();
    let name = t.name.as_deref().unwrap_or("");
    let sub = t.subresource.as_deref();
    let out = |obj: &Value| crate::convert::from_storage(info, obj).into_owned();
    match verb {
        "get" => {
            let obj = cluster.get(info, ns, name)?;
            if wants_table {
                return Ok(Reply::Json(200, table::table(info, &[obj], None, None)));
            }
            if form.metadata {
                return Ok(Reply::Json(200, table::partial_metadata(&obj)));
            }
            Ok(Reply::Json(200, obj))
        }
        "list" => {
            let page = cluster.list(info, ns, &list_opts(q)?)?;
            let mut meta = json!({"resourceVersion": page.rv.to_string()});
            if let Some(c) = &page.continue_token {
                meta["continue"] = json!(c);
                meta["remainingItemCount"] = json!(page.remaining.unwrap_or(0));
            }
            if wants_table {
                return Ok(Reply::Json(
                    200,
                    table::table(info, &page.items, Some(meta), None),
                ));
            }
            if form.metadata {
                let items: Vec<Value> = page.items.iter().map(table::partial_metadata).collect();
                return Ok(Reply::Json(
                    200,
                    json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items}),
                ));
            }
            Ok(Reply::Json(
                200,
                json!({"kind": info.list_kind, "apiVersion": info.api_version(), "metadata": meta, "items": page.items}),
            ))
        }
        "watch" => {
            let mut query = list_opts(q)?;
            if let Some(n) = &t.name {
                query
                    .fields
                    .0
                    .push(("metadata.name".into(), true, n.clone()));
            }
            Ok(Reply::Watch(WatchParams {
                namespace: t.namespace.clone(),
                query,
                resource_version: q.get("resourceVersion").cloned(),
                bookmarks: truthy(q, "allowWatchBookmarks"),
                send_initial_events: truthy(q, "sendInitialEvents"),
                timeout: q
                    .get("timeoutSeconds")
                    .and_then(|s| s.parse().ok())
                    .map(Duration::from_secs),
                table: wants_table,
                metadata_only: form.metadata,
            }))
        }
        "create" => {
            if t.name.is_some() {
                return Err(ApiError::MethodNotAllowed);
            }
            let obj = crate::patch::decode_body(body)?;
            let stored = cluster.create(info, ns, obj, &write_opts(q))?;
            Ok(Reply::Json(201, out(&stored)))
        }
        "update" => {
            let obj = crate::patch::decode_body(body)?;
            let stored = cluster.update(info, ns, name, sub, obj, &write_opts(q))?;
            Ok(Reply::Json(200, out(&stored)))
        }
        "patch" => {
            let ty = PatchType::from_content_type(content_type)?;
            let (stored, created) = cluster.patch(info, ns, name, sub, ty, body, &write_opts(q))?;
            Ok(Reply::Json(if created { 201 } else { 200 }, out(&stored)))
        }
        "delete" => {
            let options = if body.iter().all(u8::is_ascii_whitespace) {
                None
            } else {
                Some(crate::patch::decode_body(body)?)
            };
            let mut wo = write_opts(q);
            if options
                .as_ref()
                .and_then(|o| o.get("dryRun"))
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
            {
                wo.dry_run = true;
            }
            let gone = cluster.delete(info, ns, name, options.as_ref(), &wo)?;
            Ok(Reply::Json(200, out(&gone)))
        }
        "deletecollection" => {
            let items = cluster.delete_collection(info, ns, &list_opts(q)?, &write_opts(q))?;
            Ok(Reply::Json(
                200,
                json!({"kind": info.list_kind, "apiVersion": info.api_version(), "metadata": {}, "items": items}),
            ))
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_components_are_percent_decoded() {
        let q = parse_query(Some("labelSelector=app%3Dweb%2Ctier+in+%28a%29&watch=1&x"));
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert!(truthy(&q, "watch"));
        assert_eq!(q["x"], "");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
    }
}
