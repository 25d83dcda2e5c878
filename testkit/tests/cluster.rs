//! The Redis Cluster launcher: three masters covering every slot, all
//! stopped when the cluster is dropped.

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    assert!(out.status.success(), "redis-cli {args:?}: {}", out.status);
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn three_masters_share_all_slots_and_stop_on_drop() {
    let cluster = iamalive_testkit::redis_cluster();
    assert_eq!(cluster.nodes.len(), 3);
    assert_eq!(cluster.urls().len(), 3);
    let ports: Vec<u16> = cluster.nodes.iter().map(|n| n.addr.port()).collect();
    for &p in &ports {
        let info = cli(p, &["CLUSTER", "INFO"]);
        assert!(info.contains("cluster_state:ok"), "{info}");
        assert!(info.contains("cluster_slots_assigned:16384"), "{info}");
        assert!(info.contains("cluster_known_nodes:3"), "{info}");
        assert!(info.contains("cluster_size:3"), "{info}");
    }
    // Slot order: node 0 owns slot 0, node 2 the last one.
    let nodes = cli(ports[0], &["CLUSTER", "NODES"]);
    let owner = |slot_range: &str| {
        nodes
            .lines()
            .find(|l| l.split(' ').skip(8).any(|r| r == slot_range))
            .map(|l| l.split(' ').nth(1).unwrap().to_owned())
    };
    assert!(
        owner("0-5460")
            .unwrap()
            .contains(&format!(":{}@", ports[0])),
        "{nodes}"
    );
    assert!(
        owner("5461-10922")
            .unwrap()
            .contains(&format!(":{}@", ports[1])),
        "{nodes}"
    );
    assert!(
        owner("10923-16383")
            .unwrap()
            .contains(&format!(":{}@", ports[2])),
        "{nodes}"
    );

    let addrs: Vec<_> = cluster.nodes.iter().map(|n| n.addr).collect();
    drop(cluster);
    for a in addrs {
        assert!(
            TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_err(),
            "{a} still accepts connections"
        );
    }
}
