//! SmtpNotifier against a real aiosmtpd on loopback.
#![cfg(feature = "smtp")]

mod common;

use std::path::Path;
use std::process::Command;

use common::{notice, wait_for_mail};
use iamalive_core::{NoticeKind, Notifier};
use iamalive_notify::SmtpNotifier;
use iamalive_testkit::read_messages;

fn rcpts() -> Vec<String> {
    vec![
        "ops@example.com".into(),
        "Oncall <oncall@example.com>".into(),
    ]
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    let head = msg.split("\n\n").next().unwrap_or("");
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_smtp_delivers_alarm_and_recovery_to_every_recipient() {
    let server = iamalive_testkit::smtp(None);
    let url = format!("smtp://{}", server.addr);
    let n = SmtpNotifier::from_url(&url, "iamalive <iamalive@example.com>", &rcpts()).unwrap();
    assert_eq!(n.name(), "smtp");

    n.deliver(&notice("build-01", NoticeKind::Alarm))
        .await
        .unwrap();
    n.deliver(&notice("build-01", NoticeKind::Recovery))
        .await
        .unwrap();

    let mails = wait_for_mail(&server.maildir_new(), 2);
    assert_eq!(mails.len(), 2, "{mails:?}");
    let alarm = mails
        .iter()
        .find(|m| m.contains("ALARM"))
        .expect("alarm mail");
    assert_eq!(header(alarm, "Subject"), Some("[iamalive] ALARM build-01"));
    assert_eq!(
        header(alarm, "Message-ID"),
        Some("<build-01.1714565400000.alarm.1@iamalive>")
    );
    let to = header(alarm, "To").unwrap();
    assert!(
        to.contains("ops@example.com") && to.contains("oncall@example.com"),
        "{to}"
    );
    // aiosmtpd's Mailbox records the envelope recipients too.
    for needle in [
        "host:          build-01",
        "last seen:     2024-05-01T12:00:00Z",
        "silent for:    10m 5s",
        "alarm count:   1",
        "next reminder: 2024-05-01T13:10:05Z",
        "notice id: build-01@1714565400000/alarm/1",
    ] {
        assert!(alarm.contains(needle), "missing {needle:?} in\n{alarm}");
    }
    let recovery = mails
        .iter()
        .find(|m| m.contains("RECOVERED"))
        .expect("recovery mail");
    assert_eq!(
        header(recovery, "Subject"),
        Some("[iamalive] RECOVERED build-01")
    );
    assert_eq!(
        header(recovery, "References"),
        header(alarm, "References"),
        "one outage, one thread"
    );
    assert!(
        recovery.contains("no such host"),
        "the agent's report is in the body"
    );
}

fn self_signed(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let st = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is needed to make a test certificate");
    assert!(st.success());
    (cert, key)
}

#[tokio::test(flavor = "multi_thread")]
async fn starttls_with_a_trusted_self_signed_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path());
    let server = iamalive_testkit::smtp(Some((&cert, &key)));
    let port = server.addr.port();

    // Without the certificate trusted, nothing is sent.
    let untrusted = SmtpNotifier::from_url(
        &format!("smtp://127.0.0.1:{port}?tls=starttls&timeout=5s"),
        "iamalive@example.com",
        &rcpts(),
    )
    .unwrap();
    let err = untrusted
        .deliver(&notice("web-1", NoticeKind::Alarm))
        .await
        .unwrap_err();
    // A certificate problem is retried (transient): an operator can fix
    // the trust store without the alarm being dropped for good.
    assert!(err.is_transient(), "{err}");

    let trusted = SmtpNotifier::from_url(
        &format!(
            "smtp://127.0.0.1:{port}?tls=starttls&ca_file={}",
            cert.display()
        ),
        "iamalive@example.com",
        &rcpts(),
    )
    .unwrap();
    trusted
        .deliver(&notice("web-1", NoticeKind::Reminder))
        .await
        .unwrap();
    let mails = wait_for_mail(&server.maildir_new(), 1);
    assert_eq!(mails.len(), 1);
    assert_eq!(
        header(&mails[0], "Subject"),
        Some("[iamalive] REMINDER web-1")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn implicit_tls_with_a_trusted_self_signed_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path());
    let server = iamalive_testkit::smtps::smtps(&cert, &key);
    let n = SmtpNotifier::from_url(
        &format!(
            "smtps://127.0.0.1:{}?ca_file={}",
            server.addr.port(),
            cert.display()
        ),
        "iamalive@example.com",
        &rcpts(),
    )
    .unwrap();
    n.deliver(&notice("web-2", NoticeKind::Alarm))
        .await
        .unwrap();
    let mails = wait_for_mail(&server.maildir_new(), 1);
    assert_eq!(mails.len(), 1);
    assert_eq!(header(&mails[0], "Subject"), Some("[iamalive] ALARM web-2"));
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_credentials_are_permanent_and_accepted_ones_deliver() {
    let server = iamalive_testkit::smtp_auth::smtp_with_auth("alerts", "p@ss word");
    let addr = server.addr;

    let wrong = SmtpNotifier::from_url(
        &format!("smtp://alerts:nope@{addr}"),
        "a@example.com",
        &rcpts(),
    )
    .unwrap();
    let err = wrong
        .deliver(&notice("db-1", NoticeKind::Alarm))
        .await
        .unwrap_err();
    assert!(!err.is_transient(), "refused AUTH must be permanent: {err}");

    let right = SmtpNotifier::from_url(
        &format!("smtp://alerts:p%40ss%20word@{addr}"),
        "a@example.com",
        &rcpts(),
    )
    .unwrap();
    right
        .deliver(&notice("db-1", NoticeKind::Alarm))
        .await
        .unwrap();
    assert_eq!(wait_for_mail(&server.maildir_new(), 1).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn server_down_is_transient() {
    let port = iamalive_testkit::free_port();
    let n = SmtpNotifier::from_url(
        &format!("smtp://127.0.0.1:{port}?timeout=5s"),
        "a@example.com",
        &rcpts(),
    )
    .unwrap();
    let err = n
        .deliver(&notice("db-1", NoticeKind::Alarm))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    let err = n.check().await.expect_err("the start-up check sees it too");
    assert!(err.is_transient(), "{err}");

    // Once a server listens there, the same notifier delivers.
    let server = iamalive_testkit::smtp_on(port, None);
    n.check().await.expect("reachable now");
    assert!(
        read_messages(&server.maildir_new()).is_empty(),
        "a check sends nothing"
    );
    n.deliver(&notice("db-1", NoticeKind::Alarm)).await.unwrap();
    assert_eq!(wait_for_mail(&server.maildir_new(), 1).len(), 1);
}

/// A host with a group: the subject and the body name the site.
#[tokio::test(flavor = "multi_thread")]
async fn the_mail_names_the_site() {
    let server = iamalive_testkit::smtp(None);
    let url = format!("smtp://{}", server.addr);
    let n = SmtpNotifier::from_url(&url, "iamalive <iamalive@example.com>", &rcpts()).unwrap();
    let mut alarm = notice("db-1", NoticeKind::Alarm);
    alarm.group = Some(iamalive_core::GroupName::new("office-berlin").unwrap());
    n.deliver(&alarm).await.unwrap();
    let mails = wait_for_mail(&server.maildir_new(), 1);
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(
        header(&mails[0], "Subject"),
        Some("[iamalive] ALARM db-1 (site office-berlin)")
    );
    for needle in [
        "Host db-1 (site office-berlin) has gone silent.",
        "site (group):  office-berlin",
    ] {
        assert!(
            mails[0].contains(needle),
            "missing {needle:?} in\n{}",
            mails[0]
        );
    }
}
