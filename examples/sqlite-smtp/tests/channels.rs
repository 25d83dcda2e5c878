//! The preset takes the same channels and routes as the `iamalive` binary:
//! a `db-*` route to one webhook, every other host to a second one and to
//! SMTP (aiosmtpd) by the legacy variables, as a channel named `smtp`.

use std::time::Duration;

use iamalive_testkit::Receiver;
use iamalive_testkit::watcher::Watcher;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_channels_on_the_sqlite_preset() {
    let smtp = iamalive_testkit::smtp(None);
    let dba = Receiver::start().await;
    let chat = Receiver::start().await;
    let config = format!(
        r#"
[[channels]]
name = "dba"
kind = "webhook"
url = "{dba}"

[[channels]]
name = "chat"
kind = "webhook"
format = "slack"
url = "{chat}"

[[routes]]
hosts = "db-*"
channels = ["dba"]

[[routes]]
channels = ["chat", "smtp"]
"#,
        dba = dba.url,
        chat = chat.url,
    );
    let dir = tempfile::tempdir().unwrap();
    let smtp_url = format!("smtp://{}", smtp.addr);
    let w = Watcher::start(
        env!("CARGO_BIN_EXE_sqlite-smtp"),
        &[],
        dir.path(),
        &config,
        &[
            ("IAMALIVE_SMTP_URL", smtp_url.as_str()),
            ("IAMALIVE_SMTP_FROM", "iamalive@example.org"),
            ("IAMALIVE_SMTP_TO", "ops@example.org"),
        ],
    )
    .await;
    w.beat("web-1").await;
    w.beat("db-1").await;
    assert!(
        chat.wait_for(&["ALARM web-1"], 1, WAIT).await,
        "{}",
        w.log()
    );
    assert!(
        dba.wait_for(&["\"kind\":\"alarm\"", "db-1"], 1, WAIT).await,
        "{}",
        w.log()
    );
    let start = std::time::Instant::now();
    let mails = loop {
        let m = iamalive_testkit::read_messages(&smtp.maildir_new());
        if !m.is_empty() || start.elapsed() > WAIT {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(mails.len(), 1, "{mails:?}\n{}", w.log());
    assert!(mails[0].contains("ALARM web-1"), "{mails:?}");
    // Let any stray notice show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(chat.count(&["db-1"]), 0, "{:?}", chat.bodies());
    assert_eq!(dba.count(&["web-1"]), 0, "{:?}", dba.bodies());
    assert_eq!(
        iamalive_testkit::read_messages(&smtp.maildir_new()).len(),
        1
    );
}
