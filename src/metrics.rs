//! Every metric streamguard exports, defined in one place.
//!
//! Names follow `streamguard_<thing>_<unit>[_total]`. Labels come from fixed
//! sets only: site ids from the config, outcomes, deny reasons and error kinds
//! from enums. Never a raw path, an unknown host, or a token.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Requests by site, outcome (`allowed`, `denied`, `rejected`, `error`) and reason.
pub const REQUESTS_TOTAL: &str = "streamguard_requests_total";
/// Seconds from request head received to response head ready, by site and outcome.
pub const REQUEST_DURATION_SECONDS: &str = "streamguard_request_duration_seconds";
/// Failed origin exchanges by site and kind (`connect`, `timeout`, `protocol`).
pub const UPSTREAM_ERRORS_TOTAL: &str = "streamguard_upstream_errors_total";
/// Response body bytes sent to clients, by site.
pub const RESPONSE_BYTES_TOTAL: &str = "streamguard_response_bytes_total";
/// Open client connections.
pub const ACTIVE_CONNECTIONS: &str = "streamguard_active_connections";
/// Response bodies currently streaming to clients.
pub const ACTIVE_STREAMS: &str = "streamguard_active_streams";
/// HLS playlists rewritten, by site.
pub const PLAYLISTS_REWRITTEN_TOTAL: &str = "streamguard_playlists_rewritten_total";
/// Streaming responses closed because their token expired (`cut_at_expiry`), by site.
pub const STREAMS_CUT_TOTAL: &str = "streamguard_streams_cut_total";
/// Config reloads by outcome (`applied`, `rejected`).
pub const CONFIG_RELOADS_TOTAL: &str = "streamguard_config_reloads_total";
/// Unix time of the last applied reload.
pub const CONFIG_LAST_RELOAD_SUCCESS: &str =
    "streamguard_config_last_reload_success_timestamp_seconds";
/// 1 when the applied config changed settings that need a restart.
pub const CONFIG_RESTART_REQUIRED: &str = "streamguard_config_restart_required";
/// Vendor key sync attempts by vendor account and result (`ok` or an error kind).
pub const SYNC_ATTEMPTS_TOTAL: &str = "streamguard_key_sync_attempts_total";
/// Unix time of the last successful sync, by vendor account.
pub const SYNC_LAST_SUCCESS: &str = "streamguard_key_sync_last_success_timestamp_seconds";
/// Key rotation steps by vendor account, step (`stage`, `promote`,
/// `retire`) and result (`ok`, `failed`, `refused`).
pub const ROTATION_STEPS_TOTAL: &str = "streamguard_key_rotation_steps_total";
/// Keys each site verifies with now.
pub const SITE_KEYS: &str = "streamguard_site_keys";
/// Keys each site verifies with now, by where they came from (`config`,
/// `vendor`, `restored`: a vendor answer read back from the state directory,
/// `operator`: set through the operator API).
pub const SITE_KEYS_BY_SOURCE: &str = "streamguard_site_keys_by_source";
/// Unix time the newest of a site's keys was obtained (config load, vendor
/// answer, or the saved answer's time when restored): its age is `time() - …`.
pub const SITE_KEYS_UPDATED: &str = "streamguard_site_keys_updated_timestamp_seconds";
/// Response bodies currently streaming to clients, by site.
pub const SITE_ACTIVE_STREAMS: &str = "streamguard_site_active_streams";
/// Requests whose `Origin` the site's CORS policy does not allow, by site.
pub const CORS_REFUSED_TOTAL: &str = "streamguard_cors_refused_total";
/// Operator API requests by path and status code.
pub const API_REQUESTS_TOTAL: &str = "streamguard_api_requests_total";
/// Unix time each served TLS certificate expires, by its first server name.
pub const TLS_CERT_EXPIRY: &str = "streamguard_tls_certificate_expiry_timestamp_seconds";
/// Media-server hook decisions by hook (`auth_request`, `rtmp_on_play`,
/// `rtmp_on_publish`, `rtmp_on_update`, `srs_on_play`, `srs_on_publish`)
/// and result (`allowed`, `denied`, `rejected`).
pub const HOOK_DECISIONS_TOTAL: &str = "streamguard_hook_decisions_total";
/// Client connections that ended with an error (TLS handshake, header timeout, protocol).
pub const CONNECTION_ERRORS_TOTAL: &str = "streamguard_connection_errors_total";

/// Always 1, labelled with the version: which build is running.
pub const BUILD_INFO: &str = "streamguard_build_info";
/// Unix time the process started serving.
pub const START_TIME: &str = "streamguard_start_time_seconds";

/// Site label for requests that matched no site.
pub const UNKNOWN_SITE: &str = "_unknown";

/// The `hook` label values of [`HOOK_DECISIONS_TOTAL`].
pub const HOOK_NAMES: &[&str] = &[
    "auth_request",
    "rtmp_on_play",
    "rtmp_on_publish",
    "rtmp_on_update",
    "srs_on_play",
    "srs_on_publish",
];

/// Request outcome label values.
pub mod outcome {
    /// Verified and forwarded.
    pub const ALLOWED: &str = "allowed";
    /// Token denied (see the reason).
    pub const DENIED: &str = "denied";
    /// Refused before auth: unknown host, bad path, URI too long.
    pub const REJECTED: &str = "rejected";
    /// Forwarding failed (origin down, timeout).
    pub const ERROR: &str = "error";
    /// The client gave up before the response head (reason
    /// `client_closed`; nginx's 499).
    pub const CANCELLED: &str = "cancelled";
}

/// The metrics handles, registered in one registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// See [`REQUESTS_TOTAL`].
    pub requests: IntCounterVec,
    /// See [`REQUEST_DURATION_SECONDS`].
    pub request_duration: HistogramVec,
    /// See [`UPSTREAM_ERRORS_TOTAL`].
    pub upstream_errors: IntCounterVec,
    /// See [`RESPONSE_BYTES_TOTAL`].
    pub response_bytes: IntCounterVec,
    /// See [`ACTIVE_CONNECTIONS`].
    pub active_connections: IntGauge,
    /// See [`ACTIVE_STREAMS`].
    pub active_streams: IntGauge,
    /// See [`CONNECTION_ERRORS_TOTAL`].
    pub connection_errors: IntCounterVec,
    /// See [`PLAYLISTS_REWRITTEN_TOTAL`].
    pub playlists_rewritten: IntCounterVec,
    /// See [`STREAMS_CUT_TOTAL`].
    pub streams_cut: IntCounterVec,
    /// See [`CONFIG_RELOADS_TOTAL`].
    pub config_reloads: IntCounterVec,
    /// See [`CONFIG_LAST_RELOAD_SUCCESS`].
    pub config_last_reload_success: IntGauge,
    /// See [`CONFIG_RESTART_REQUIRED`].
    pub config_restart_required: IntGauge,
    /// See [`SYNC_ATTEMPTS_TOTAL`].
    pub sync_attempts: IntCounterVec,
    /// See [`SYNC_LAST_SUCCESS`].
    pub sync_last_success: prometheus::IntGaugeVec,
    /// See [`ROTATION_STEPS_TOTAL`].
    pub rotation_steps: IntCounterVec,
    /// See [`SITE_KEYS`].
    pub site_keys: prometheus::IntGaugeVec,
    /// See [`SITE_KEYS_BY_SOURCE`].
    pub site_keys_by_source: prometheus::IntGaugeVec,
    /// See [`SITE_KEYS_UPDATED`].
    pub site_keys_updated: prometheus::IntGaugeVec,
    /// See [`SITE_ACTIVE_STREAMS`].
    pub site_active_streams: prometheus::IntGaugeVec,
    /// See [`TLS_CERT_EXPIRY`].
    pub tls_cert_expiry: prometheus::IntGaugeVec,
    /// See [`CORS_REFUSED_TOTAL`].
    pub cors_refused: IntCounterVec,
    /// See [`API_REQUESTS_TOTAL`].
    pub api_requests: IntCounterVec,
    /// See [`HOOK_DECISIONS_TOTAL`].
    pub hook_decisions: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// Metric construction failed: only possible with a programming error in this module.
#[derive(Debug, thiserror::Error)]
#[error("metrics registration failed: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

impl Metrics {
    /// Creates every metric in a fresh registry.
    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(REQUESTS_TOTAL, "Requests by site, outcome and reason."),
            &["site", "outcome", "reason"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                REQUEST_DURATION_SECONDS,
                "Seconds from request head to response head, by site and outcome.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ]),
            &["site", "outcome"],
        )?;
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                UPSTREAM_ERRORS_TOTAL,
                "Failed origin exchanges by site and kind.",
            ),
            &["site", "kind"],
        )?;
        let response_bytes = IntCounterVec::new(
            Opts::new(
                RESPONSE_BYTES_TOTAL,
                "Response body bytes sent to clients, by site.",
            ),
            &["site"],
        )?;
        let active_connections = IntGauge::new(ACTIVE_CONNECTIONS, "Open client connections.")?;
        let active_streams = IntGauge::new(
            ACTIVE_STREAMS,
            "Response bodies currently streaming to clients.",
        )?;
        let connection_errors = IntCounterVec::new(
            Opts::new(
                CONNECTION_ERRORS_TOTAL,
                "Client connections that ended with an error, by kind.",
            ),
            &["kind"],
        )?;
        let playlists_rewritten = IntCounterVec::new(
            Opts::new(
                PLAYLISTS_REWRITTEN_TOTAL,
                "HLS playlists rewritten, by site.",
            ),
            &["site"],
        )?;
        registry.register(Box::new(playlists_rewritten.clone()))?;
        let streams_cut = IntCounterVec::new(
            Opts::new(
                STREAMS_CUT_TOTAL,
                "Streaming responses closed at token expiry, by site.",
            ),
            &["site"],
        )?;
        registry.register(Box::new(streams_cut.clone()))?;
        let config_reloads = IntCounterVec::new(
            Opts::new(CONFIG_RELOADS_TOTAL, "Config reloads by outcome."),
            &["outcome"],
        )?;
        for o in ["applied", "rejected"] {
            config_reloads.with_label_values(&[o]);
        }
        let config_last_reload_success = IntGauge::new(
            CONFIG_LAST_RELOAD_SUCCESS,
            "Unix time of the last applied config reload.",
        )?;
        let config_restart_required = IntGauge::new(
            CONFIG_RESTART_REQUIRED,
            "1 when the running config changed settings that need a restart.",
        )?;
        registry.register(Box::new(config_reloads.clone()))?;
        registry.register(Box::new(config_last_reload_success.clone()))?;
        registry.register(Box::new(config_restart_required.clone()))?;
        let sync_attempts = IntCounterVec::new(
            Opts::new(
                SYNC_ATTEMPTS_TOTAL,
                "Vendor key sync attempts by vendor account and result.",
            ),
            &["vendor", "result"],
        )?;
        let sync_last_success = prometheus::IntGaugeVec::new(
            Opts::new(
                SYNC_LAST_SUCCESS,
                "Unix time of the last successful key sync, by vendor account.",
            ),
            &["vendor"],
        )?;
        let site_keys = prometheus::IntGaugeVec::new(
            Opts::new(SITE_KEYS, "Keys each site verifies with now."),
            &["site"],
        )?;
        let rotation_steps = IntCounterVec::new(
            Opts::new(
                ROTATION_STEPS_TOTAL,
                "Key rotation steps by vendor account, step and result.",
            ),
            &["vendor", "step", "result"],
        )?;
        registry.register(Box::new(rotation_steps.clone()))?;
        registry.register(Box::new(sync_attempts.clone()))?;
        registry.register(Box::new(sync_last_success.clone()))?;
        registry.register(Box::new(site_keys.clone()))?;
        let site_keys_by_source = prometheus::IntGaugeVec::new(
            Opts::new(
                SITE_KEYS_BY_SOURCE,
                "Keys each site verifies with now, by source.",
            ),
            &["site", "source"],
        )?;
        let site_keys_updated = prometheus::IntGaugeVec::new(
            Opts::new(
                SITE_KEYS_UPDATED,
                "Unix time the newest of a site's keys was obtained.",
            ),
            &["site"],
        )?;
        let site_active_streams = prometheus::IntGaugeVec::new(
            Opts::new(
                SITE_ACTIVE_STREAMS,
                "Response bodies streaming to clients, by site.",
            ),
            &["site"],
        )?;
        registry.register(Box::new(site_keys_by_source.clone()))?;
        registry.register(Box::new(site_keys_updated.clone()))?;
        registry.register(Box::new(site_active_streams.clone()))?;
        let tls_cert_expiry = prometheus::IntGaugeVec::new(
            Opts::new(
                TLS_CERT_EXPIRY,
                "Unix time each served TLS certificate expires.",
            ),
            &["certificate"],
        )?;
        registry.register(Box::new(tls_cert_expiry.clone()))?;
        let cors_refused = IntCounterVec::new(
            Opts::new(
                CORS_REFUSED_TOTAL,
                "Requests whose Origin the site's CORS policy does not allow.",
            ),
            &["site"],
        )?;
        registry.register(Box::new(cors_refused.clone()))?;
        let api_requests = IntCounterVec::new(
            Opts::new(
                API_REQUESTS_TOTAL,
                "Operator API requests by path and status code.",
            ),
            &["path", "status"],
        )?;
        registry.register(Box::new(api_requests.clone()))?;
        let hook_decisions = IntCounterVec::new(
            Opts::new(
                HOOK_DECISIONS_TOTAL,
                "Media-server hook decisions by hook and result.",
            ),
            &["hook", "result"],
        )?;
        registry.register(Box::new(hook_decisions.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(upstream_errors.clone()))?;
        registry.register(Box::new(response_bytes.clone()))?;
        registry.register(Box::new(active_connections.clone()))?;
        registry.register(Box::new(active_streams.clone()))?;
        registry.register(Box::new(connection_errors.clone()))?;
        // Series of fixed label sets exist from the start, at 0.
        for kind in [
            "tls_handshake",
            "tls_handshake_timeout",
            "http",
            "client_abort",
            "idle_timeout",
            "send_timeout",
            "cancelled_requests",
            "per_ip_limit",
            "accept",
        ] {
            connection_errors.with_label_values(&[kind]);
        }
        for outcome in ["applied", "rejected"] {
            config_reloads.with_label_values(&[outcome]);
        }
        for hook in HOOK_NAMES {
            for result in [outcome::ALLOWED, outcome::DENIED, outcome::REJECTED] {
                hook_decisions.with_label_values(&[hook, result]);
            }
        }
        let build_info = prometheus::IntGaugeVec::new(
            Opts::new(BUILD_INFO, "Always 1: the running build's version."),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        registry.register(Box::new(build_info))?;
        let started = i64::try_from(crate::time::unix_now()).unwrap_or(i64::MAX);
        let start_time = IntGauge::new(START_TIME, "Unix time the process started.")?;
        start_time.set(started);
        // The config in force was loaded at start: not "never" (0).
        config_last_reload_success.set(started);
        registry.register(Box::new(start_time))?;
        // CPU seconds, resident memory, open descriptors and their limit,
        // start time: the `process_*` metrics every exporter has.
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Metrics {
            registry,
            requests,
            request_duration,
            upstream_errors,
            response_bytes,
            active_connections,
            active_streams,
            connection_errors,
            playlists_rewritten,
            streams_cut,
            config_reloads,
            config_last_reload_success,
            config_restart_required,
            sync_attempts,
            sync_last_success,
            rotation_steps,
            site_keys,
            site_keys_by_source,
            site_keys_updated,
            site_active_streams,
            tls_cert_expiry,
            cors_refused,
            api_requests,
            hook_decisions,
        })
    }

    /// Counts one request of `site` in `requests_total` and its time to the
    /// response head in the duration histogram (labels resolved per call:
    /// the allowed requests of a known site use handles resolved once).
    pub fn count_request(&self, site: &str, outcome: &str, reason: &str, secs: f64) {
        self.requests
            .with_label_values(&[site, outcome, reason])
            .inc();
        self.request_duration
            .with_label_values(&[site, outcome])
            .observe(secs);
    }

    /// The byte counter of one site, resolved once per snapshot so the hot
    /// path does not hash label values.
    pub fn site_bytes(&self, site: &str) -> IntCounter {
        self.response_bytes.with_label_values(&[site])
    }

    /// Deletes every series labelled `site = id` (a site a reload removed),
    /// so dashboards do not show it frozen at its last value.
    pub fn forget_site(&self, id: &str) {
        fn forget<
            M: prometheus::core::Metric + Clone,
            B: prometheus::core::MetricVecBuilder<M = M>,
        >(
            vec: &prometheus::core::MetricVec<B>,
            id: &str,
        ) {
            use prometheus::core::Collector as _;
            for family in vec.collect() {
                for m in family.get_metric() {
                    let labels: std::collections::HashMap<&str, &str> = m
                        .get_label()
                        .iter()
                        .map(|l| (l.get_name(), l.get_value()))
                        .collect();
                    if labels.get("site") == Some(&id) {
                        // Gone already is fine: the goal is its absence.
                        let _ = vec.remove(&labels);
                    }
                }
            }
        }
        forget(&self.requests, id);
        forget(&self.request_duration, id);
        forget(&self.upstream_errors, id);
        forget(&self.response_bytes, id);
        forget(&self.playlists_rewritten, id);
        forget(&self.streams_cut, id);
        forget(&self.site_keys, id);
        forget(&self.site_keys_by_source, id);
        forget(&self.site_keys_updated, id);
        forget(&self.site_active_streams, id);
        forget(&self.cors_refused, id);
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(%error, "encoding metrics failed");
        }
        out
    }
}
