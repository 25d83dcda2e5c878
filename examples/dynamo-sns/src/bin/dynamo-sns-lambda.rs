//! The iamalive Lambda function: API Gateway heartbeats and scheduled
//! sweeps in one function. Deploy it as `bootstrap` on `provided.al2023`
//! (see the crate README and `template.yaml`).

use dynamo_sns::lambda::{Error, Handler};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Built once per instance: clients, limiters and the monitor's mark
    // survive between invocations.
    let handler = Handler::from_env().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let handler = handler.clone();
        async move { handler.handle(event).await }
    }))
    .await
}
