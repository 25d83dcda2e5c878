//! `dynamo-sns`: the long-running iamalive server on DynamoDB with SNS
//! notices. Configured by `IAMALIVE_DYNAMO_TABLE`, `IAMALIVE_SNS_TOPIC_ARN`,
//! every other `IAMALIVE_*` setting of the server, and the AWS SDK's usual
//! region, credential and endpoint variables (`AWS_ENDPOINT_URL`).

use std::process::ExitCode;

use iamalive_server::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dynamo-sns: configuration: {e}");
            return ExitCode::from(2);
        }
    };
    dynamo_sns::init_logging(&config);
    let (store, channels) = match dynamo_sns::from_env(&config).await {
        Ok(x) => x,
        Err(e) => {
            eprintln!("dynamo-sns: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = store.create_table_if_missing().await {
        eprintln!("dynamo-sns: {e}");
        return ExitCode::FAILURE;
    }
    match iamalive_server::serve(config, dynamo_sns::shared(store), channels).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dynamo-sns: {e}");
            ExitCode::FAILURE
        }
    }
}
