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
    // DisplayErrorContext prints the whole chain (the SDK's own Display is
    // terse: "service error").
    let text = aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string();
    if transient {
        StoreError::unavailable(STORE, text)
    } else {
        StoreError::backend(STORE, text)
    }
}
