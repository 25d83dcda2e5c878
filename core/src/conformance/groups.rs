//! Group outages through a real store, with two monitors sharing it: one
//! group alarm naming every silent host, one all-clear, a lone host alone.

use std::sync::Arc;
use std::time::Duration;

use super::{at, host, monitor};
use crate::group_outage::{Fate, Member};
use crate::testing::RecordingNotifier;
use crate::{
    GroupName, GroupPolicy, GroupRecord, Heartbeat, ManualClock, Notice, NoticeKind, Notifier,
    Store,
};

/// A monitor over `store` on `clock` telling `ch`, with sites of at least
/// two hosts gathered for 5 s.
fn site_monitor(
    store: &Arc<dyn Store>,
    clock: &ManualClock,
    ch: &RecordingNotifier,
) -> crate::Monitor<dyn Store, ManualClock> {
    let gp = GroupPolicy {
        min_hosts: 2,
        wait: Duration::from_secs(5),
        ..GroupPolicy::default()
    };
    let grouping: crate::Grouping = Arc::new(move |_| gp);
    monitor(store.clone(), clock, vec![Arc::new(ch.clone())], "a").with_grouping(grouping)
}

fn beat_in(g: &GroupName, name: &str, secs: u64) -> Heartbeat {
    let mut hb = Heartbeat::new(host(name), at(secs));
    hb.group = Some(g.clone());
    hb
}

/// Ten hosts of `office-berlin` fall silent together and one host of
/// `office-paris` alone, with two monitors sweeping the same store every
/// second. On a store that [keeps groups](Store::keeps_groups): exactly one
/// group alarm naming the ten (within the group wait of their deadline),
/// the Paris host's own alarm after the wait, and once they are back
/// exactly one group all-clear naming the ten and the Paris host's own
/// all-clear; no single-host notice for a Berlin host. On a store without
/// group records every host alarms on its own, naming its group.
pub async fn group_outage_is_one_notice(store: Arc<dyn Store>) {
    let clock = ManualClock::new(at(0));
    let ch = RecordingNotifier::new("ch");
    let channels = || -> Vec<Arc<dyn Notifier>> { vec![Arc::new(ch.clone())] };
    let gp = GroupPolicy {
        min_hosts: 2,
        wait: Duration::from_secs(5),
        ..GroupPolicy::default()
    };
    let grouping: crate::Grouping = Arc::new(move |_| gp);
    let a = monitor(store.clone(), &clock, channels(), "a").with_grouping(grouping.clone());
    let b = monitor(store.clone(), &clock, channels(), "b").with_grouping(grouping);
    let ber = GroupName::new("office-berlin").unwrap();
    let par = GroupName::new("office-paris").unwrap();
    let berlin: Vec<String> = (0..10).map(|i| format!("ber-{i}")).collect();
    for h in &berlin {
        a.heartbeat(&beat_in(&ber, h, 0)).await.unwrap();
    }
    for p in ["par-1", "par-2", "par-3"] {
        a.heartbeat(&beat_in(&par, p, 0)).await.unwrap();
    }
    // Berlin and par-1 go silent at 0 (deadline 10); par-2/3 keep beating.
    let mut first_alarm_at = None;
    for s in 1..=40u64 {
        clock.set(at(s));
        for p in ["par-2", "par-3"] {
            a.heartbeat(&beat_in(&par, p, s)).await.unwrap();
        }
        let _ = a.sweep().await.unwrap();
        let _ = b.sweep().await.unwrap();
        if first_alarm_at.is_none() && ch.notices().iter().any(Notice::is_group) {
            first_alarm_at = Some(s);
        }
    }
    let notices = ch.notices();
    let by_host = |n: &Notice| n.host.as_str().to_owned();
    if !store.keeps_groups() {
        let alarms: Vec<String> = notices
            .iter()
            .filter(|n| n.kind == NoticeKind::Alarm)
            .map(by_host)
            .collect();
        assert_eq!(
            alarms.len(),
            11,
            "{store}: without group records each host alarms: {alarms:?}"
        );
        assert!(
            notices.iter().all(|n| n.group.is_some() && !n.is_group()),
            "{store}"
        );
        return;
    }
    let group_alarms: Vec<&Notice> = notices
        .iter()
        .filter(|n| n.is_group() && n.kind == NoticeKind::Alarm)
        .collect();
    assert_eq!(
        group_alarms.len(),
        1,
        "{store}: one group alarm: {notices:#?}"
    );
    let ga = group_alarms[0];
    assert_eq!(ga.group.as_ref(), Some(&ber), "{store}");
    let mut named: Vec<String> = ga
        .hosts
        .iter()
        .map(|h| h.host.as_str().to_owned())
        .collect();
    named.sort();
    let mut want = berlin.clone();
    want.sort();
    assert_eq!(
        named, want,
        "{store}: the group alarm names each silent host"
    );
    assert!(ga.hosts.iter().all(|h| h.last_seen == at(0)), "{store}");
    assert!(
        first_alarm_at.is_some_and(|s| s <= 10 + 5),
        "{store}: the group alarm goes out within the wait of the first deadline: {first_alarm_at:?}"
    );
    assert!(
        !notices
            .iter()
            .any(|n| !n.is_group() && n.host.as_str().starts_with("ber-")),
        "{store}: no Berlin host speaks on its own: {notices:#?}"
    );
    let paris: Vec<&Notice> = notices
        .iter()
        .filter(|n| n.host.as_str() == "par-1" && !n.is_group())
        .collect();
    assert_eq!(
        paris.first().map(|n| (n.kind, n.group.clone())),
        Some((NoticeKind::Alarm, Some(par.clone()))),
        "{store}: a host silent alone alarms on its own: {notices:#?}"
    );
    assert!(
        paris[0].created_at <= at(10 + 5 + 1),
        "{store}: a lone host is held at most the wait"
    );
    // Held, then sent alone: it speaks of when it went out.
    let p0 = paris[0];
    assert!(p0.created_at > p0.missing_since, "{store}: it was held");
    assert_eq!(
        p0.silent_for,
        crate::since(p0.created_at, p0.last_seen),
        "{store}: silent for as long as it is when sent"
    );
    assert_eq!(
        p0.next_reminder,
        Some(crate::add(p0.created_at, Duration::from_secs(60))),
        "{store}: the next reminder counts from the delivery"
    );
    // The reminder came (60 s policy) only if the clock went that far: it
    // did not; every Berlin host comes back now.
    ch.clear();
    // One at a time, a sweep between each (the all-clear waits for them).
    for h in &berlin {
        a.heartbeat(&beat_in(&ber, h, 41)).await.unwrap();
        let _ = b.sweep().await.unwrap();
    }
    a.heartbeat(&beat_in(&par, "par-1", 43)).await.unwrap();
    for s in 44..=60u64 {
        clock.set(at(s));
        for p in ["par-2", "par-3"] {
            a.heartbeat(&beat_in(&par, p, s)).await.unwrap();
        }
        let _ = b.sweep().await.unwrap();
        let _ = a.sweep().await.unwrap();
    }
    let notices = ch.notices();
    let clears: Vec<&Notice> = notices
        .iter()
        .filter(|n| n.is_group() && n.kind == NoticeKind::Recovery)
        .collect();
    assert_eq!(
        clears.len(),
        1,
        "{store}: one group all-clear: {notices:#?}"
    );
    assert_eq!(clears[0].hosts.len(), 10, "{store}");
    assert!(
        clears[0].hosts.iter().all(|h| h.back_at.is_some()),
        "{store}"
    );
    assert_eq!(clears[0].outage_id, ga.outage_id, "{store}: one outage id");
    assert!(
        !notices
            .iter()
            .any(|n| !n.is_group() && n.host.as_str().starts_with("ber-")),
        "{store}: no single all-clear for a Berlin host: {notices:#?}"
    );
    assert_eq!(
        notices
            .iter()
            .filter(|n| n.host.as_str() == "par-1" && n.kind == NoticeKind::Recovery)
            .count(),
        1,
        "{store}: the lone host's own all-clear"
    );
}

/// How many hosts [`a_dark_site_is_named_whole`] puts in its site.
pub const DARK_SITE_HOSTS: usize = 200;

/// A site of [`DARK_SITE_HOSTS`] hosts goes dark together, with two
/// monitors sweeping the store. On a store that
/// [keeps groups](Store::keeps_groups): the one group alarm names every
/// host of the site, the one group all-clear names every host back, no
/// host speaks on its own, and each phase writes the group's record about
/// once per sweep batch (its version grows by a few per batch), not once
/// per host, which is what makes a site of 10,000 hosts cost O(n). A store
/// without group records is skipped (its hosts alarm alone, as
/// [`group_outage_is_one_notice`] checks).
pub async fn a_dark_site_is_named_whole(store: Arc<dyn Store>) {
    if !store.keeps_groups() {
        return;
    }
    let clock = ManualClock::new(at(0));
    let ch = RecordingNotifier::new("ch");
    let channels = || -> Vec<Arc<dyn Notifier>> { vec![Arc::new(ch.clone())] };
    let gp = GroupPolicy {
        min_hosts: 2,
        wait: Duration::from_secs(5),
        ..GroupPolicy::default()
    };
    let grouping: crate::Grouping = Arc::new(move |_| gp);
    let a = monitor(store.clone(), &clock, channels(), "a").with_grouping(grouping.clone());
    let b = monitor(store.clone(), &clock, channels(), "b").with_grouping(grouping);
    let batch = a.options().batch;
    let site = GroupName::new("site-dark").unwrap();
    let hosts: Vec<String> = (0..DARK_SITE_HOSTS)
        .map(|i| format!("dark-{i:04}"))
        .collect();
    for h in &hosts {
        a.heartbeat(&beat_in(&site, h, 0)).await.unwrap();
    }
    let version = |g: Option<crate::GroupRecord>| g.map_or(0, |g| g.version);
    // Writes allowed per phase: a few per batch (hold, resolve, the group
    // notice's lease and settling), never one per host.
    let per_phase = 4 * DARK_SITE_HOSTS.div_ceil(batch) as u64 + 8;
    // Every deadline (10 s) passes at once: one sweep holds them all.
    clock.set(at(11));
    let _ = a.sweep().await.unwrap();
    let g = store.get_group(&site).await.unwrap().expect("group stored");
    assert_eq!(
        g.members.len(),
        DARK_SITE_HOSTS,
        "{store}: one sweep holds every host of the site"
    );
    assert!(
        g.version <= per_phase,
        "{store}: holding {DARK_SITE_HOSTS} hosts wrote the group record {} times (at most {per_phase})",
        g.version
    );
    assert!(
        ch.notices().is_empty(),
        "{store}: nothing before the wait's end"
    );
    // The wait (5 s after the deadline) ends: one group alarm naming all.
    let before = g.version;
    for s in 12..=20u64 {
        clock.set(at(s));
        let _ = b.sweep().await.unwrap();
        let _ = a.sweep().await.unwrap();
    }
    let notices = ch.notices();
    let alarms: Vec<&Notice> = notices
        .iter()
        .filter(|n| n.is_group() && n.kind == NoticeKind::Alarm)
        .collect();
    assert_eq!(alarms.len(), 1, "{store}: one group alarm");
    assert_eq!(
        alarms[0].hosts.len(),
        DARK_SITE_HOSTS,
        "{store}: the group alarm names every host of the site"
    );
    assert!(
        notices.iter().all(Notice::is_group),
        "{store}: no host of the site speaks on its own"
    );
    let after = version(store.get_group(&site).await.unwrap());
    assert!(
        after - before <= per_phase,
        "{store}: absorbing {DARK_SITE_HOSTS} hosts wrote the group record {} times (at most {per_phase})",
        after - before
    );
    // They all come back together: one all-clear naming all.
    ch.clear();
    for h in &hosts {
        a.heartbeat(&beat_in(&site, h, 21)).await.unwrap();
    }
    let before = after;
    for s in 21..=30u64 {
        clock.set(at(s));
        let _ = a.sweep().await.unwrap();
        let _ = b.sweep().await.unwrap();
    }
    let notices = ch.notices();
    let clears: Vec<&Notice> = notices
        .iter()
        .filter(|n| n.is_group() && n.kind == NoticeKind::Recovery)
        .collect();
    assert_eq!(clears.len(), 1, "{store}: one group all-clear: {notices:?}");
    assert_eq!(
        clears[0].hosts.len(),
        DARK_SITE_HOSTS,
        "{store}: the all-clear names every host back"
    );
    assert_eq!(clears[0].outage_id, alarms[0].outage_id, "{store}");
    assert!(
        notices.iter().all(Notice::is_group),
        "{store}: no host of the site speaks on its own"
    );
    let after = version(store.get_group(&site).await.unwrap());
    assert!(
        after - before <= per_phase,
        "{store}: counting {DARK_SITE_HOSTS} hosts back wrote the group record {} times (at most {per_phase})",
        after - before
    );
}

/// A channel that records what it is given and, as the group alarm of
/// `site` reaches it, has every host of the site beat again (at `at`):
/// a site that comes back while the sweep is still working through it.
struct BackOnAlarm {
    inner: RecordingNotifier,
    store: Arc<dyn Store>,
    site: GroupName,
    hosts: Vec<String>,
    at: u64,
}

#[async_trait::async_trait]
impl Notifier for BackOnAlarm {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn deliver(&self, notice: &Notice) -> Result<(), crate::NotifyError> {
        if notice.is_group()
            && notice.kind == NoticeKind::Alarm
            && !self.inner.notices().iter().any(Notice::is_group)
        {
            for h in &self.hosts {
                let hb = beat_in(&self.site, h, self.at);
                let due = crate::add(hb.at, super::policy().timeout);
                self.store.record_heartbeat(&hb, due, true).await.unwrap();
            }
        }
        self.inner.deliver(notice).await
    }
}

/// The hosts of a site come back just as its group alarm goes out, while
/// the sweep still holds the own alarms of most of them (in later
/// batches): those hosts come back before anyone was told of them on
/// their own, yet the group alarm named them, so the group must count
/// them back. Exactly one group all-clear names every host, and no host
/// speaks on its own. (Before the group heard of such quiet returns, it
/// kept them silent forever and its all-clear never came.)
pub async fn a_site_back_as_its_alarm_goes_out_is_cleared(store: Arc<dyn Store>) {
    if !store.keeps_groups() {
        return;
    }
    let clock = ManualClock::new(at(0));
    let site = GroupName::new("site-back").unwrap();
    let hosts: Vec<String> = (0..12).map(|i| format!("back-{i:02}")).collect();
    let ch = RecordingNotifier::new("ch");
    let back = BackOnAlarm {
        inner: ch.clone(),
        store: store.clone(),
        site: site.clone(),
        hosts: hosts.clone(),
        at: 15,
    };
    let gp = GroupPolicy {
        min_hosts: 2,
        wait: Duration::from_secs(5),
        ..GroupPolicy::default()
    };
    let grouping: crate::Grouping = Arc::new(move |_| gp);
    let mut a = monitor(store.clone(), &clock, vec![Arc::new(back)], "a").with_grouping(grouping);
    // Small batches: the group alarm goes out while later batches still
    // hold their hosts' own alarms.
    a.options_mut().batch = 4;
    for h in &hosts {
        a.heartbeat(&beat_in(&site, h, 0)).await.unwrap();
    }
    // Up to just before their next deadline (15 + 10): they beat once.
    for s in 11..=24u64 {
        clock.set(at(s));
        let _ = a.sweep().await.unwrap();
    }
    let notices = ch.notices();
    let count = |kind| {
        notices
            .iter()
            .filter(|n| n.is_group() && n.kind == kind)
            .count()
    };
    assert_eq!(count(NoticeKind::Alarm), 1, "{store}: {notices:#?}");
    assert_eq!(
        count(NoticeKind::Recovery),
        1,
        "{store}: the all-clear comes though most hosts came back untold: {notices:#?}"
    );
    let clear = notices
        .iter()
        .find(|n| n.is_group() && n.kind == NoticeKind::Recovery)
        .unwrap();
    assert_eq!(clear.hosts.len(), hosts.len(), "{store}: {clear:#?}");
    assert!(
        notices.iter().all(Notice::is_group),
        "{store}: no host speaks on its own: {notices:#?}"
    );
}

/// A group record is written by compare-and-swap on its version (0: only
/// if absent), read back as written, and where the store tells a record's
/// version without reading it ([`Store::group_version`]) that is the
/// stored version, absent (0) or after a won or a lost swap: a monitor
/// keeps the record it read and, next time, reads only the version.
pub async fn group_records_swap_by_version(store: Arc<dyn Store>) {
    if !store.keeps_groups() {
        return;
    }
    let site = GroupName::new("office-berlin").expect("name");
    let told = |v: Option<u64>, want: u64| v.is_none_or(|v| v == want);
    let version = store.group_version(&site).await.expect("version");
    assert!(
        told(version, 0),
        "{store}: an absent record is 0: {version:?}"
    );
    assert!(store.get_group(&site).await.expect("get").is_none());

    let mut first = GroupRecord::new(site.clone());
    first.version = 1;
    first.due_at = Some(at(5));
    assert!(store.swap_group(0, &first).await.expect("swap"), "{store}");
    assert!(
        !store.swap_group(0, &first).await.expect("swap"),
        "{store}: 0 writes only an absent record"
    );
    let version = store.group_version(&site).await.expect("version");
    assert!(told(version, 1), "{store}: {version:?}");

    let mut second = first.clone();
    second.version = 2;
    second.due_at = None;
    second.members.insert(Member {
        host: host("ber-1"),
        outage_id: "ber-1@5000".into(),
        fate: Fate::Held,
        last_seen: at(1),
        missing_since: at(4),
        back_at: None,
        report: Some("link down \"quoted\"".into()),
        named: false,
        missed_beat: false,
        alarmed_alone: false,
    });
    assert!(
        !store.swap_group(7, &second).await.expect("swap"),
        "{store}: a stale version loses"
    );
    let version = store.group_version(&site).await.expect("version");
    assert!(told(version, 1), "{store}: a lost swap changes nothing");
    assert!(store.swap_group(1, &second).await.expect("swap"), "{store}");
    let version = store.group_version(&site).await.expect("version");
    assert!(told(version, 2), "{store}: {version:?}");
    assert_eq!(
        store.get_group(&site).await.expect("get"),
        Some(second),
        "{store}: read back as written"
    );
}

/// A site in an outage whose silent hosts an operator removes, pauses or
/// silences: they leave the outage, the site's reminders stop naming them
/// (here: stop, since nobody is left silent), and a silenced one alarms on
/// its own once its silence ends.
pub async fn a_site_outage_ends_when_its_silent_hosts_leave_it(store: Arc<dyn Store>) {
    if !store.keeps_groups() {
        return;
    }
    let clock = ManualClock::new(at(0));
    let ch = RecordingNotifier::new("ch");
    let a = site_monitor(&store, &clock, &ch);
    let rome = GroupName::new("office-rome").unwrap();
    for h in ["rom-1", "rom-2", "rom-3"] {
        a.heartbeat(&beat_in(&rome, h, 0)).await.unwrap();
    }
    let sweep_to = |from: u64, to: u64| {
        let (a, clock) = (&a, &clock);
        async move {
            for s in from..=to {
                clock.set(at(s));
                let _ = a.sweep().await.unwrap();
            }
        }
    };
    sweep_to(1, 20).await;
    let alarms: Vec<Notice> = ch.notices().into_iter().filter(Notice::is_group).collect();
    assert_eq!(alarms.len(), 1, "{store}: one site alarm: {alarms:#?}");
    assert_eq!(alarms[0].kind, NoticeKind::Alarm, "{store}");
    ch.clear();

    assert!(a.remove(&host("rom-1")).await.unwrap(), "{store}");
    a.pause(&host("rom-2")).await.unwrap();
    let hush = crate::Silence::new(
        "rome-works",
        crate::HostPattern::new("rom-3").unwrap(),
        at(20),
        at(200),
        "works",
    )
    .unwrap();
    a.add_silence(&hush).await.unwrap();
    // Past the site's reminder (60 s after its alarm): no reminder names
    // the hosts that left.
    sweep_to(21, 150).await;
    let reminders: Vec<Notice> = ch
        .notices()
        .into_iter()
        .filter(|n| n.kind == NoticeKind::Reminder)
        .collect();
    assert!(
        reminders.is_empty(),
        "{store}: nobody is left silent in the site's outage: {reminders:#?}"
    );
    let g = store.get_group(&rome).await.unwrap().expect("the group");
    assert!(
        g.silent().next().is_none(),
        "{store}: no silent member left: {g:#?}"
    );
    // The silence ends with rom-3 still silent: its own reminder.
    ch.clear();
    sweep_to(200, 262).await;
    let own: Vec<Notice> = ch
        .notices()
        .into_iter()
        .filter(|n| n.host.as_str() == "rom-3" && !n.is_group())
        .collect();
    assert!(
        own.iter().any(|n| n.kind == NoticeKind::Reminder),
        "{store}: a silenced host alarms on its own after its silence: {:#?}",
        ch.notices()
    );
}

/// A host that alarmed alone is still silent when its site goes dark: the
/// site's alarm names it with the others, and when the others are back it
/// owes no second alarm of its own.
pub async fn a_site_alarm_names_a_host_silent_alone_before_it(store: Arc<dyn Store>) {
    if !store.keeps_groups() {
        return;
    }
    let clock = ManualClock::new(at(0));
    let ch = RecordingNotifier::new("ch");
    let a = site_monitor(&store, &clock, &ch);
    let oslo = GroupName::new("office-oslo").unwrap();
    a.heartbeat(&beat_in(&oslo, "osl-1", 0)).await.unwrap();
    for s in 0..=100u64 {
        clock.set(at(s));
        // osl-2 and osl-3 beat until 30; they are back at 70.
        if s <= 30 || s >= 70 {
            for h in ["osl-2", "osl-3"] {
                a.heartbeat(&beat_in(&oslo, h, s)).await.unwrap();
            }
        }
        let _ = a.sweep().await.unwrap();
    }
    let notices = ch.notices();
    let own_alarms = notices
        .iter()
        .filter(|n| n.host.as_str() == "osl-1" && !n.is_group() && n.kind == NoticeKind::Alarm)
        .count();
    assert_eq!(
        own_alarms, 1,
        "{store}: osl-1 alarmed alone once: {notices:#?}"
    );
    let site = notices
        .iter()
        .find(|n| n.is_group() && n.kind == NoticeKind::Alarm)
        .expect("the site's alarm");
    let mut named: Vec<&str> = site.hosts.iter().map(|h| h.host.as_str()).collect();
    named.sort_unstable();
    assert_eq!(
        named,
        ["osl-1", "osl-2", "osl-3"],
        "{store}: every silent host of the site"
    );
    assert!(
        notices
            .iter()
            .any(|n| n.is_group() && n.kind == NoticeKind::Recovery),
        "{store}: the site's all-clear: {notices:#?}"
    );
}
