//! Services: what the real server fills in and rejects, and status written with
//! server-side apply through the status subresource.

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{code, within, Cluster};

fn lb(name: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    }))
    .unwrap()
}

#[tokio::test]
async fn a_load_balancer_service_gets_a_cluster_ip_node_ports_and_defaults() {
    within(async {
        let c = Cluster::start().await;
        let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
        let svc = svcs
            .create(&PostParams::default(), &lb("web"))
            .await
            .unwrap();
        let spec = svc.spec.unwrap();
        let ip: std::net::Ipv4Addr = spec.cluster_ip.as_deref().unwrap().parse().unwrap();
        assert_eq!(ip.octets()[..2], [198, 18]);
        assert_eq!(spec.cluster_ips.unwrap(), vec![ip.to_string()]);
        assert_eq!(spec.ip_families.unwrap(), ["IPv4"]);
        assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));
        assert_eq!(spec.external_traffic_policy.as_deref(), Some("Cluster"));
        assert_eq!(spec.internal_traffic_policy.as_deref(), Some("Cluster"));
        assert_eq!(spec.session_affinity.as_deref(), Some("None"));
        let port = &spec.ports.unwrap()[0];
        assert_eq!(port.protocol.as_deref(), Some("TCP"));
        assert!((30000..=32767).contains(&port.node_port.unwrap()));

        let mut dual = lb("dual");
        let s = dual.spec.as_mut().unwrap();
        s.ip_family_policy = Some("RequireDualStack".into());
        s.allocate_load_balancer_node_ports = Some(false);
        let dual = svcs
            .create(&PostParams::default(), &dual)
            .await
            .unwrap()
            .spec
            .unwrap();
        assert_eq!(dual.ip_families.unwrap(), ["IPv4", "IPv6"]);
        let ips = dual.cluster_ips.unwrap();
        assert!(ips[1].starts_with("2001:db8:ffff::"), "{ips:?}");
        assert!(dual.ports.unwrap()[0].node_port.is_none());
    })
    .await
}

#[tokio::test]
async fn invalid_services_are_422_with_the_field_named() {
    within(async {
        let c = Cluster::start().await;
        let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
        let cases = [
            (json!({"metadata": {"name": "p"}, "spec": {"ports": [{"port": 0}]}}), "spec.ports[0].port"),
            (json!({"metadata": {"name": "d"}, "spec": {"ports": [{"name": "a", "port": 1}, {"name": "a", "port": 2}]}}), "spec.ports[1].name"),
            (json!({"metadata": {"name": "m"}, "spec": {}}), "spec.ports"),
            (json!({"metadata": {"name": "t"}, "spec": {"type": "Magic", "ports": [{"port": 1}]}}), "spec.type"),
            (json!({"metadata": {"name": "Bad_Name"}, "spec": {"ports": [{"port": 1}]}}), "metadata.name"),
        ];
        for (body, field) in cases {
            let svc: Service = serde_json::from_value(body).unwrap();
            let err = svcs.create(&PostParams::default(), &svc).await.unwrap_err();
            assert_eq!(code(&err), 422);
            let kube::Error::Api(status) = err else { unreachable!() };
            assert_eq!(status.reason, "Invalid");
            let causes = status.details.unwrap().causes;
            assert!(causes.iter().any(|c| c.field == field), "{field} missing in {causes:?}");
        }

        let mut classy = lb("classy");
        classy.spec.as_mut().unwrap().load_balancer_class = Some("ironlb.io/lb".into());
        svcs.create(&PostParams::default(), &classy).await.unwrap();
        let change = json!({"spec": {"loadBalancerClass": "example.com/other"}});
        let err = svcs.patch("classy", &PatchParams::default(), &Patch::Merge(&change)).await.unwrap_err();
        assert_eq!(code(&err), 422);
    })
    .await
}

#[tokio::test]
async fn a_replace_without_allocated_fields_keeps_them() {
    within(async {
        let c = Cluster::start().await;
        let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
        let created = svcs
            .create(&PostParams::default(), &lb("keep"))
            .await
            .unwrap();
        let mut fresh = lb("keep");
        fresh.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].target_port =
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(9090));
        let replaced = svcs
            .replace("keep", &PostParams::default(), &fresh)
            .await
            .unwrap();
        let (a, b) = (created.spec.unwrap(), replaced.spec.unwrap());
        assert_eq!(a.cluster_ip, b.cluster_ip);
        assert_eq!(
            a.ports.unwrap()[0].node_port,
            b.ports.as_ref().unwrap()[0].node_port
        );
    })
    .await
}

#[tokio::test]
async fn patch_status_with_apply_changes_only_status_and_merges_conditions_by_type() {
    within(async {
        let c = Cluster::start().await;
        let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
        let created = svcs.create(&PostParams::default(), &lb("web")).await.unwrap();
        let pp = PatchParams::apply("ironlb-controller").force();

        // Status and a sneaky spec change in one apply: only status lands.
        let first = json!({
            "apiVersion": "v1", "kind": "Service",
            "spec": {"type": "ClusterIP"},
            "status": {
                "loadBalancer": {"ingress": [{"ip": "192.0.2.10", "ipMode": "VIP"}]},
                "conditions": [
                    {"type": "ironlb.io/Allocated", "status": "True", "reason": "Allocated", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                    {"type": "ironlb.io/Announced", "status": "False", "reason": "Pending", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}
                ]
            }
        });
        let after = svcs.patch_status("web", &pp, &Patch::Apply(&first)).await.unwrap();
        assert_eq!(after.spec.as_ref().unwrap().type_.as_deref(), Some("LoadBalancer"));
        assert_eq!(after.metadata.generation, created.metadata.generation);
        let status = after.status.unwrap();
        assert_eq!(status.load_balancer.unwrap().ingress.unwrap()[0].ip.as_deref(), Some("192.0.2.10"));
        assert_eq!(status.conditions.as_ref().unwrap().len(), 2);

        // Another manager's condition is merged in beside ours, by type.
        let other = json!({"apiVersion": "v1", "kind": "Service", "status": {"conditions": [
            {"type": "example.com/Checked", "status": "True", "reason": "Ok", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ]}});
        svcs.patch_status("web", &PatchParams::apply("checker"), &Patch::Apply(&other)).await.unwrap();

        // Re-applying without the Announced condition removes it; the foreign one stays.
        let second = json!({"apiVersion": "v1", "kind": "Service", "status": {
            "loadBalancer": {"ingress": [{"ip": "192.0.2.10", "ipMode": "VIP"}]},
            "conditions": [
                {"type": "ironlb.io/Allocated", "status": "True", "reason": "Allocated", "message": "again", "lastTransitionTime": "2026-01-01T00:00:00Z"}
            ]
        }});
        let after = svcs.patch_status("web", &pp, &Patch::Apply(&second)).await.unwrap();
        let mut types: Vec<String> = after.status.unwrap().conditions.unwrap().into_iter().map(|c| c.type_).collect();
        types.sort();
        assert_eq!(types, ["example.com/Checked", "ironlb.io/Allocated"]);

        // Dropping the whole loadBalancer block releases the IP from status.
        let third = json!({"apiVersion": "v1", "kind": "Service", "status": {"conditions": [
            {"type": "ironlb.io/Allocated", "status": "False", "reason": "Released", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ]}});
        let after = svcs.patch_status("web", &pp, &Patch::Apply(&third)).await.unwrap();
        assert!(after.status.unwrap().load_balancer.and_then(|l| l.ingress).is_none_or(|i| i.is_empty()));

        // A write to the main resource cannot touch status.
        let spec_write = json!({"metadata": {"labels": {"x": "y"}}, "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}});
        let after = svcs.patch("web", &PatchParams::default(), &Patch::Merge(&spec_write)).await.unwrap();
        assert!(after.status.unwrap().load_balancer.and_then(|l| l.ingress).is_none_or(|i| i.is_empty()));
        assert_eq!(after.metadata.labels.unwrap()["x"], "y");
    })
    .await
}

#[tokio::test]
async fn server_side_apply_creates_then_updates_the_main_resource() {
    within(async {
        let c = Cluster::start().await;
        let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
        let cfg = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "applied", "labels": {"a": "1", "b": "2"}},
            "spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80}]}});
        let pp = PatchParams::apply("me");
        let created = svcs.patch("applied", &pp, &Patch::Apply(&cfg)).await.unwrap();
        assert!(created.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].node_port.is_some());
        let cfg2 = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "applied", "labels": {"a": "1"}},
            "spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80}]}});
        let updated = svcs.patch("applied", &pp, &Patch::Apply(&cfg2)).await.unwrap();
        assert_eq!(updated.metadata.labels.unwrap().len(), 1, "label b was dropped from the applied config");
        assert_eq!(
            created.spec.unwrap().ports.unwrap()[0].node_port,
            updated.spec.unwrap().ports.unwrap()[0].node_port
        );
    })
    .await
}

#[tokio::test]
async fn apply_conflicts_without_force_and_force_takes_the_field() {
    within(async {
        let c = Cluster::start().await;
        let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
        let by = |tier: &str| {
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shared", "labels": {"tier": tier}},
                "spec": {"ports": [{"name": "http", "port": 80}]}})
        };
        svcs.patch("shared", &PatchParams::apply("alice"), &Patch::Apply(&by("front"))).await.unwrap();
        let err = svcs.patch("shared", &PatchParams::apply("bob"), &Patch::Apply(&by("back"))).await.unwrap_err();
        assert_eq!(code(&err), 409);
        let kube::Error::Api(status) = err else { unreachable!() };
        let causes = status.details.unwrap().causes;
        assert!(causes.iter().any(|c| c.field == ".metadata.labels.tier" && c.reason == "FieldManagerConflict"), "{causes:?}");
        let taken = svcs.patch("shared", &PatchParams::apply("bob").force(), &Patch::Apply(&by("back"))).await.unwrap();
        assert_eq!(taken.metadata.labels.unwrap()["tier"], "back");
    })
    .await
}
