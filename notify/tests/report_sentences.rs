//! The agent's outage report reads as sentences in every format a person
//! reads, and stays JSON in the JSON webhook.

mod common;

use iamalive_core::NoticeKind;
use iamalive_notify::{StdoutNotifier, WebhookFormat, payload};

const SENTENCE: &str = "Could not reach the watcher from 12:01 to 12:30 UTC: DNS lookups failed 5 times (no such host).";

#[test]
fn every_human_format_tells_the_report_in_words() {
    let n = common::notice("build-01", NoticeKind::Recovery);
    // Email and SNS carry the notice's body; the log line is the stdout channel's.
    let body = n.body();
    assert!(body.contains(SENTENCE), "{body}");
    let line = StdoutNotifier::line(&n);
    assert!(line.contains(SENTENCE), "{line}");
    let at = n.created_at;
    for f in [
        WebhookFormat::Teams,
        WebhookFormat::Slack,
        WebhookFormat::Discord,
    ] {
        let text = payload(&n, f, None, at).to_string();
        assert!(text.contains(SENTENCE), "{f:?}: {text}");
        assert!(
            !text.contains("failed_attempts"),
            "{f:?} shows raw JSON: {text}"
        );
    }
    for text in [&body, &line] {
        assert!(!text.contains("failed_attempts"), "{text}");
    }
    // The JSON webhook keeps the report as the agent sent it.
    let json = payload(&n, WebhookFormat::Json, None, at);
    assert_eq!(json["report"]["failed_attempts"], 5);
    assert_eq!(json["report"]["failures"][0]["detail"], "no such host");
}
