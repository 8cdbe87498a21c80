//! Counters of the ingest tier, declared in one place (Prometheus types, so
//! the api crate can expose them on `/metrics` as they are).

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::Transport;

/// Why a connection, a login or a message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Refusal {
    /// `max_connections` reached.
    max_connections,
    /// Too many logins from one IP address.
    login_rate,
    /// No login within the login timeout.
    login_timeout,
    /// Invalid auth token.
    invalid_token,
    /// Too many failed logins on one connection.
    login_attempts,
    /// Template id announced at login or in `info` differs from the device's.
    template_mismatch,
    /// The first bytes are not the Blynk protocol.
    not_blynk,
    /// A command before login.
    not_authenticated,
    /// A frame longer than `max_body`, a zero message id, a malformed header.
    malformed_frame,
    /// A message over the device's message quota (answered with QUOTA).
    quota,
    /// A command this server does not know (answered with ILLEGAL_COMMAND).
    unknown_command,
    /// No traffic within the heartbeat timeout.
    heartbeat_timeout,
    /// TLS handshake failed or timed out.
    tls_handshake,
    /// Cloud→device message dropped (device buffer too small or queue full).
    outbound_dropped,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TransportLabel {
    transport: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabel {
    reason: Refusal,
}

/// Live counters; cheap atomics, shared by every session.
#[derive(Debug, Default)]
pub struct IngestMetrics {
    connections_total: Family<TransportLabel, Counter>,
    connections_open: Family<TransportLabel, Gauge>,
    logins: Counter,
    frames_in: Counter,
    values_in: Counter,
    bytes_in: Counter,
    frames_out: Counter,
    refusals: Family<ReasonLabel, Counter>,
    write_waits: Counter,
}

impl IngestMetrics {
    /// Add every counter to `registry` (under its prefix, e.g. `pinhouse_ingest`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "connections",
            "Device connections accepted, by transport",
            self.connections_total.clone(),
        );
        registry.register(
            "connections_open",
            "Device connections open now, by transport",
            self.connections_open.clone(),
        );
        registry.register("logins", "Successful device logins", self.logins.clone());
        registry.register(
            "frames_received",
            "Frames received from devices",
            self.frames_in.clone(),
        );
        registry.register(
            "values_received",
            "Pin values received from devices",
            self.values_in.clone(),
        );
        registry.register(
            "bytes_received",
            "Bytes received from devices",
            self.bytes_in.clone(),
        );
        registry.register(
            "frames_sent",
            "Cloud-to-device frames queued",
            self.frames_out.clone(),
        );
        registry.register(
            "write_waits",
            "Times a session stopped reading because storage writes in flight were at their limit",
            self.write_waits.clone(),
        );
        registry.register(
            "refusals",
            "Connections, logins and messages refused, by reason",
            self.refusals.clone(),
        );
        // Every label appears from the start, so dashboards see zeros.
        for transport in Transport::ALL {
            let label = TransportLabel {
                transport: transport.name(),
            };
            let _ = self.connections_total.get_or_create(&label);
            let _ = self.connections_open.get_or_create(&label);
        }
    }

    pub(crate) fn connection_opened(&self, transport: Transport) {
        let label = TransportLabel {
            transport: transport.name(),
        };
        self.connections_total.get_or_create(&label).inc();
        self.connections_open.get_or_create(&label).inc();
    }

    pub(crate) fn connection_closed(&self, transport: Transport) {
        self.connections_open
            .get_or_create(&TransportLabel {
                transport: transport.name(),
            })
            .dec();
    }

    pub(crate) fn login(&self) {
        self.logins.inc();
    }

    /// One socket read's worth of traffic.
    pub(crate) fn received(&self, bytes: u64, frames: u64, values: u64) {
        self.bytes_in.inc_by(bytes);
        self.frames_in.inc_by(frames);
        self.values_in.inc_by(values);
    }

    pub(crate) fn write_waited(&self) {
        self.write_waits.inc();
    }

    /// Times a session waited for a storage write slot (backpressure).
    pub fn write_waits(&self) -> u64 {
        self.write_waits.get()
    }

    pub(crate) fn sent(&self, frames: u64) {
        self.frames_out.inc_by(frames);
    }

    /// Count one refusal.
    pub fn refused(&self, reason: Refusal) {
        self.refusals.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Refusals so far for `reason` (tests, logs).
    pub fn refusals(&self, reason: Refusal) -> u64 {
        self.refusals.get_or_create(&ReasonLabel { reason }).get()
    }

    /// Values received so far.
    pub fn values_received(&self) -> u64 {
        self.values_in.get()
    }
}
