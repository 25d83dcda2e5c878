//! Prometheus and Alertmanager, the real clients of `/metrics` and of the
//! Alertmanager webhook endpoint (Debian's `prometheus` and
//! `prometheus-alertmanager`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use crate::{Server, free_port, require, which};

fn binary(names: &[&str]) -> PathBuf {
    names
        .iter()
        .find_map(|n| which(n))
        .unwrap_or_else(|| PathBuf::from("/usr/bin").join(names[0]))
}

/// Prometheus on a free port, scraping `target`'s `/metrics` every second.
/// Query it at `http://{addr}/api/v1/query?query=…`.
pub fn prometheus(target: SocketAddr) -> Server {
    let bin = binary(&["prometheus"]);
    require(&bin, "prometheus");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: iamalive\n    scrape_interval: 1s\n    \
             static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .expect("write prometheus.yml");
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .current_dir(dir.path());
    Server::spawn(cmd, port, dir, "prometheus")
}

/// Alertmanager on a free port (no clustering) whose only receiver posts
/// every group, resolved ones too, to `webhook_url` with `bearer` as the
/// `Authorization: Bearer` credentials; grouped per alert name, sent at
/// once, repeated every 2 s. Push alerts with `POST /api/v2/alerts`.
pub fn alertmanager(webhook_url: &str, bearer: &str) -> Server {
    let bin = binary(&["prometheus-alertmanager", "alertmanager"]);
    require(&bin, "prometheus-alertmanager");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: iamalive\n  group_by: ['alertname']\n  group_wait: 0s\n  \
             group_interval: 1s\n  repeat_interval: 2s\n\
             receivers:\n  - name: iamalive\n    webhook_configs:\n      - url: '{webhook_url}'\n        \
             send_resolved: true\n        http_config:\n          authorization:\n            \
             credentials: '{bearer}'\n"
        ),
    )
    .expect("write alertmanager.yml");
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .current_dir(dir.path());
    Server::spawn(cmd, port, dir, "prometheus-alertmanager")
}
