//! The iamalive Lambda function: API Gateway heartbeats and scheduled
//! sweeps in one function. Deploy it as `bootstrap` on `provided.al2023`
//! (see the crate README and `template.yaml`).

use dynamo_sns::lambda::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Built once per instance: clients, limiters and the monitor's mark
    // survive between invocations.
    dynamo_sns::lambda::run(dynamo_sns::lambda::from_env().await?).await
}
