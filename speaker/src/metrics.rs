//! The speaker's Prometheus metrics (prefix `ironlb_`, served on `/metrics`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// One label, e.g. `[("kind", "arp")]`.
pub type Label = [(&'static str, &'static str); 1];

/// Every metric of the speaker. Cheap to clone (the metrics are shared handles).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// IPs this node announces (owned and with an interface to announce on).
    pub ips_announced: Gauge,
    /// IPs this node owns but has no interface to announce on.
    pub ips_stranded: Gauge,
    /// ARP requests / Neighbor Solicitations answered, by `kind` (arp, ndp).
    pub requests_answered: Family<Label, Counter>,
    /// Frames read and not answered, by `reason` ([`ironlb_l2::DropReason::label`]).
    pub frames_dropped: Family<Label, Counter>,
    /// Gratuitous ARPs / unsolicited NAs sent, by `kind` (arp, ndp).
    pub gratuitous_sent: Family<Label, Counter>,
    /// Raw-socket send or receive errors, by `op` (send, recv).
    pub socket_errors: Family<Label, Counter>,
    /// Live speakers, this one included.
    pub live_peers: Gauge,
    /// Peers the API shows Ready that were never heard from (counted as alive).
    pub peers_never_heard: Gauge,
    /// Valid heartbeats received.
    pub heartbeats_received: Counter,
    /// Heartbeats missing in the sequence of a peer (lost on the way).
    pub heartbeats_lost: Counter,
    /// Heartbeats rejected, by `reason` (malformed, bad_mac, replay, stale).
    pub heartbeats_rejected: Family<Label, Counter>,
    /// Ownership recomputations, by `trigger` (membership, objects, interfaces).
    pub recomputes: Family<Label, Counter>,
}

impl Metrics {
    /// Fresh metrics, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics::default();
        let r = registry.sub_registry_with_prefix("speaker");
        r.register(
            "ips_announced",
            "IPs this node announces",
            m.ips_announced.clone(),
        );
        r.register(
            "ips_stranded",
            "IPs this node owns but has no interface to announce on",
            m.ips_stranded.clone(),
        );
        r.register(
            "requests_answered",
            "ARP requests and Neighbor Solicitations answered",
            m.requests_answered.clone(),
        );
        r.register(
            "frames_dropped",
            "Frames read and not answered, by reason",
            m.frames_dropped.clone(),
        );
        r.register(
            "gratuitous_sent",
            "Gratuitous ARPs and unsolicited Neighbor Advertisements sent",
            m.gratuitous_sent.clone(),
        );
        r.register(
            "socket_errors",
            "Raw-socket errors",
            m.socket_errors.clone(),
        );
        r.register(
            "live_peers",
            "Live speakers, this one included",
            m.live_peers.clone(),
        );
        r.register(
            "peers_never_heard",
            "Peers shown Ready by the API but never heard from (counted as alive)",
            m.peers_never_heard.clone(),
        );
        r.register(
            "heartbeats_received",
            "Valid heartbeats received",
            m.heartbeats_received.clone(),
        );
        r.register(
            "heartbeats_lost",
            "Heartbeats missing from peers' sequences",
            m.heartbeats_lost.clone(),
        );
        r.register(
            "heartbeats_rejected",
            "Heartbeats rejected (bad MAC, replay, stale, malformed)",
            m.heartbeats_rejected.clone(),
        );
        r.register(
            "recomputes",
            "Ownership recomputations by trigger",
            m.recomputes.clone(),
        );
        m
    }
}
