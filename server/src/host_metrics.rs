//! What `/metrics` says beyond the process counters: one series set per
//! host, notices by kind, channel and outcome, and the Prometheus recorder
//! the binaries install (with real histogram buckets for the sweep).
//!
//! # Why per-host series are read at scrape time
//!
//! The per-host series are a bounded listing of the store made when
//! Prometheus scrapes (at most [`OpsSettings::metrics_max_hosts`] hosts,
//! [`LIST_PAGE`] per store call), not gauges kept up to date from the
//! transitions this process sees. A listing is right whatever wrote the
//! store: another watcher sharing it, a Lambda sweep, a restart that would
//! leave transition-fed gauges empty until each host moved again. It never
//! touches the sweep or the heartbeat path, and a paused or removed host
//! simply drops out of the next scrape (the exporter's gauges cannot be
//! removed once set). The cost is O(min(hosts, cap)) per scrape, paid
//! once per scrape interval, and the cap bounds it for very large fleets:
//! past it `iamalive_host_series_truncated` is 1 and the fleet-wide
//! counters and histograms stay the way to watch the rest.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use iamalive_core::{HostId, Notice, Notifier, NotifyError, Status, Store, StoreError};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

use crate::ops::OpsSettings;

/// Host records read per store call when listing hosts for a scrape.
pub(crate) const LIST_PAGE: usize = 1000;

/// The histogram of sweep durations, in seconds.
pub const SWEEP_DURATION: &str = "iamalive_sweep_duration_seconds";
/// The histogram of how many host records one sweep found due.
pub const SWEEP_DUE: &str = "iamalive_sweep_due_hosts";
/// Notices handed to channels, by `kind`, `channel` and `outcome`
/// (`delivered`, `failed` — retried — or `refused` for good).
pub const NOTICES: &str = "iamalive_notices_total";

/// The Prometheus recorder as the binaries install it: the sweep's
/// histograms get buckets (the exporter's default would render them as
/// summaries, which Prometheus cannot aggregate).
pub fn prometheus_builder() -> Result<PrometheusBuilder, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(SWEEP_DURATION.into()),
            &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ],
        )?
        .set_buckets_for_metric(
            Matcher::Full(SWEEP_DUE.into()),
            &[
                0.0, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0, 10000.0,
            ],
        )
}

/// Records one sweep's duration and due-set size.
pub(crate) fn record_sweep(took: Duration, due: usize) {
    metrics::histogram!(SWEEP_DURATION).record(took.as_secs_f64());
    metrics::histogram!(SWEEP_DUE).record(due as f64);
}

/// A channel that counts what happened to each notice it was handed in
/// [`NOTICES`]; everything else is the channel's own.
pub(crate) struct Counted(pub(crate) Arc<dyn Notifier>);

#[async_trait]
impl Notifier for Counted {
    fn name(&self) -> &str {
        self.0.name()
    }

    async fn deliver(&self, notice: &Notice) -> Result<(), NotifyError> {
        let r = self.0.deliver(notice).await;
        let outcome = match &r {
            Ok(()) => "delivered",
            Err(e) if e.is_transient() => "failed",
            Err(_) => "refused",
        };
        metrics::counter!(
            NOTICES,
            "kind" => notice.kind.as_str(),
            "channel" => self.0.name().to_owned(),
            "outcome" => outcome,
        )
        .increment(1);
        r
    }

    async fn check(&self) -> Result<(), NotifyError> {
        self.0.check().await
    }
}

/// Wraps every channel in [`Counted`].
pub(crate) fn counted(channels: Vec<Arc<dyn Notifier>>) -> Vec<Arc<dyn Notifier>> {
    channels
        .into_iter()
        .map(|c| Arc::new(Counted(c)) as Arc<dyn Notifier>)
        .collect()
}

const STATUSES: [Status; 4] = [Status::Up, Status::Missing, Status::Alarmed, Status::Paused];

/// Appends the per-host series (Prometheus text format) for at most
/// `settings.metrics_max_hosts` hosts, in host order, to `out`.
///
/// `iamalive_host_up` is 1 for an up host, 0 for a missing or alarmed one
/// and absent for a paused one; `iamalive_host_status` has one series per
/// status, 1 for the host's; `iamalive_host_last_seen_timestamp_seconds`
/// is its last heartbeat. `group` is empty until hosts have groups.
pub(crate) async fn render_hosts(
    store: &dyn Store,
    settings: &OpsSettings,
    out: &mut String,
) -> Result<(), StoreError> {
    let max = settings.metrics_max_hosts;
    let mut up = String::new();
    let mut seen = String::new();
    let mut status = String::new();
    let mut exported = 0usize;
    let mut truncated = false;
    let mut after: Option<HostId> = None;
    while exported < max {
        let want = (max - exported).min(LIST_PAGE);
        let page = store.list(after.as_ref(), want).await?;
        let full = page.len() == want;
        for r in &page {
            let labels = format!("host=\"{}\",group=\"\"", r.host);
            match r.status {
                Status::Up => {
                    let _ = writeln!(up, "iamalive_host_up{{{labels}}} 1");
                }
                Status::Missing | Status::Alarmed => {
                    let _ = writeln!(up, "iamalive_host_up{{{labels}}} 0");
                }
                Status::Paused => {}
            }
            let _ = writeln!(
                seen,
                "iamalive_host_last_seen_timestamp_seconds{{{labels}}} {:.3}",
                r.last_seen.timestamp_millis() as f64 / 1000.0
            );
            for s in STATUSES {
                let _ = writeln!(
                    status,
                    "iamalive_host_status{{{labels},status=\"{s}\"}} {}",
                    u8::from(r.status == s)
                );
            }
        }
        exported += page.len();
        after = page.last().map(|r| r.host.clone());
        if !full {
            break;
        }
        if exported >= max {
            // One more read says whether hosts were left out.
            truncated = !store.list(after.as_ref(), 1).await?.is_empty();
        }
    }
    if max == 0 {
        truncated = !store.list(None, 1).await?.is_empty();
    }
    let _ = write!(
        out,
        "# HELP iamalive_host_up 1 while the host reports, 0 while it is missing or alarmed; absent while paused.\n\
         # TYPE iamalive_host_up gauge\n{up}\
         # HELP iamalive_host_last_seen_timestamp_seconds The host's last heartbeat, as a Unix time.\n\
         # TYPE iamalive_host_last_seen_timestamp_seconds gauge\n{seen}\
         # HELP iamalive_host_status 1 for the host's status, 0 for the others.\n\
         # TYPE iamalive_host_status gauge\n{status}\
         # HELP iamalive_host_series_limit The most hosts given series (metrics.max_hosts, IAMALIVE_METRICS_MAX_HOSTS).\n\
         # TYPE iamalive_host_series_limit gauge\niamalive_host_series_limit {max}\n\
         # HELP iamalive_host_series_truncated 1 when hosts beyond the limit were left out of the per-host series.\n\
         # TYPE iamalive_host_series_truncated gauge\niamalive_host_series_truncated {}\n",
        u8::from(truncated)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use iamalive_core::{HostRecord, MemoryStore};

    async fn store_with(hosts: &[&str]) -> MemoryStore {
        let store = MemoryStore::new();
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        for h in hosts {
            let rec = HostRecord::new(HostId::new(h).unwrap(), at, Duration::from_secs(60));
            assert!(store.compare_and_swap(0, &rec).await.unwrap());
        }
        store
    }

    fn lines<'a>(text: &'a str, metric: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| {
                l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} "))
            })
            .collect()
    }

    #[tokio::test]
    async fn the_cap_bounds_the_hosts_listed_and_says_so() {
        let store = store_with(&["a", "b", "c"]).await;
        let mut settings = OpsSettings {
            metrics_max_hosts: 2,
            ..OpsSettings::default()
        };
        let mut out = String::new();
        render_hosts(&store, &settings, &mut out).await.unwrap();
        assert_eq!(
            lines(&out, "iamalive_host_up"),
            [
                "iamalive_host_up{host=\"a\",group=\"\"} 1",
                "iamalive_host_up{host=\"b\",group=\"\"} 1"
            ]
        );
        assert_eq!(lines(&out, "iamalive_host_status").len(), 8);
        assert_eq!(
            lines(&out, "iamalive_host_series_truncated"),
            ["iamalive_host_series_truncated 1"]
        );

        settings.metrics_max_hosts = 3;
        let mut out = String::new();
        render_hosts(&store, &settings, &mut out).await.unwrap();
        assert_eq!(lines(&out, "iamalive_host_up").len(), 3);
        assert_eq!(
            lines(&out, "iamalive_host_series_truncated"),
            ["iamalive_host_series_truncated 0"]
        );
        assert_eq!(
            lines(&out, "iamalive_host_last_seen_timestamp_seconds")[0],
            "iamalive_host_last_seen_timestamp_seconds{host=\"a\",group=\"\"} 1700000000.000"
        );

        settings.metrics_max_hosts = 0;
        let mut out = String::new();
        render_hosts(&store, &settings, &mut out).await.unwrap();
        assert!(lines(&out, "iamalive_host_up").is_empty());
        assert_eq!(
            lines(&out, "iamalive_host_series_truncated"),
            ["iamalive_host_series_truncated 1"]
        );
    }
}
