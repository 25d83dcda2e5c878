//! Notification channels for iamalive: SMTP, stdout, webhooks, SNS
