//! SDK errors to [`StoreError`].

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use iamalive_core::StoreError;

use crate::STORE;

/// Error codes a retry can get past.
const TRANSIENT_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "TransactionInProgressException",
    "LimitExceededException",
];

/// Wraps an SDK error, transient when a retry may help.
pub(crate) fn map<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let transient = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(e) => e.err().code().is_some_and(|c| TRANSIENT_CODES.contains(&c)),
        _ => false,
    };
    // The service's code and message, or the chain of causes (timed out,
    // connection refused): not the SDK's Display ("service error", terse),
    // nor its DisplayErrorContext, which dumps the raw response, headers
    // and body, into every log line and watcher notice (about 2 KB).
    let text = match &err {
        SdkError::ServiceError(e) => match (e.err().code(), e.err().message()) {
            (Some(code), Some(msg)) => format!("{code}: {msg}"),
            (Some(code), None) => code.to_owned(),
            (None, _) => iamalive_core::text::error_chain(e.err()),
        },
        _ => iamalive_core::text::error_chain(&err),
    };
    if transient {
        StoreError::unavailable(STORE, text)
    } else {
        StoreError::backend(STORE, text)
    }
}
