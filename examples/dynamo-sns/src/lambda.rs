//! The Lambda function of this preset: the server's API Gateway and
//! EventBridge adapter ([`iamalive_server::lambda`]) over DynamoDB, with
//! every configured channel and route (SNS, webhooks, SMTP, as the
//! long-running binaries take them).

use std::sync::Arc;

use iamalive_core::SystemClock;
use iamalive_server::Config;
pub use iamalive_server::lambda::{
    Error, Event, Handler, HandlerError, http_request, rest_request, run,
};

use crate::SetupError;

/// The handler from the environment: `IAMALIVE_*` (at least
/// `IAMALIVE_DYNAMO_TABLE`, a channel and `IAMALIVE_API_KEYS`), the file
/// `IAMALIVE_CONFIG` names (if any), and the SDK's usual variables.
pub async fn from_env() -> Result<Handler, SetupError> {
    let config = Config::load()?;
    config.refuse_unused("dynamo-sns-lambda", &["dynamo"])?;
    crate::init_logging(&config);
    let (store, channels) = crate::from_env(&config).await?;
    Ok(Handler::new(
        crate::shared(store),
        channels,
        Arc::new(SystemClock),
        &config,
    )?)
}
