//! A schedule in `[[policy.hosts]]`: read at start, and a bad one stops the
//! start with an error naming the key, the pattern and what is wrong.

use iamalive_server::Config;

fn load(policy: &str) -> Result<Config, String> {
    let toml = format!("[[policy.hosts]]\nhosts = \"backup-*\"\n{policy}");
    Config::from_sources(Some(&toml), Vec::<(String, String)>::new()).map_err(|e| e.to_string())
}

#[test]
fn a_schedule_per_host_pattern_is_read() {
    let c = load("schedule = \"0 2 * * *\"\ntz = \"Europe/Berlin\"\ngrace = \"30m\"").unwrap();
    let s = c.policies.overrides[0]
        .schedule
        .as_ref()
        .expect("a schedule");
    assert_eq!((s.cron(), s.tz()), ("0 2 * * *", "Europe/Berlin"));
    assert_eq!(s.grace(), std::time::Duration::from_secs(1800));
}

#[test]
fn a_bad_schedule_stops_the_start_naming_the_key() {
    for (policy, says) in [
        (
            "schedule = \"0 2 * *\"",
            "schedule: invalid cron expression '0 2 * *'",
        ),
        (
            "schedule = \"0 2 * * *\"\ntz = \"Berlin\"",
            "tz: unknown time zone 'Berlin'",
        ),
        ("schedule = \"0 2 * * *\"\ngrace = \"soon\"", "grace"),
        ("tz = \"UTC\"", "give schedule too"),
        ("schedule = \"0 2 * * *\"\ntimeout = \"1h\"", "not both"),
    ] {
        let e = load(policy).unwrap_err();
        assert!(e.contains("policy"), "{policy}: {e}");
        assert!(e.contains(says), "{policy}: {e}");
    }
    let e = load("schedule = \"0 2 * * *\"\ntz = \"Berlin\"").unwrap_err();
    assert!(e.contains("'backup-*'"), "names the pattern: {e}");
}
