//! `dynamo-sns`: the long-running iamalive server on DynamoDB with SNS
//! notices. Configured by `IAMALIVE_DYNAMO_TABLE`, `IAMALIVE_SNS_TOPIC_ARN`,
//! every other `IAMALIVE_*` setting of the server, and the AWS SDK's usual
//! region, credential and endpoint variables (`AWS_ENDPOINT_URL`).

use std::process::ExitCode;

const USAGE: &str = "\
usage: dynamo-sns [--config FILE] [--test-notice]

Runs the iamalive watcher on DynamoDB (IAMALIVE_DYNAMO_TABLE) with notices to
an SNS topic (IAMALIVE_SNS_TOPIC_ARN) and to any [[channels]] as [[routes]]
decide. Region, credentials and endpoint come
from the AWS SDK's usual variables (AWS_REGION, AWS_ENDPOINT_URL, ...). Every
setting is also an IAMALIVE_* environment variable; see the iamalive-server
README.";

#[tokio::main]
async fn main() -> ExitCode {
    iamalive_server::run_binary("dynamo-sns", USAGE, &["dynamo"], |config| async move {
        let (store, channels) = dynamo_sns::from_env(&config).await?;
        store.create_table_if_missing().await?;
        Ok((dynamo_sns::shared(store), channels))
    })
    .await
}
