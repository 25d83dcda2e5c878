//! The iamalive Lambda function: API Gateway heartbeats and scheduled
//! sweeps in one function. Deploy it as `bootstrap` on `provided.al2023`
//! (see the crate README and `template.yaml`).

use dynamo_sns::lambda::Error;

const USAGE: &str = "\
usage: dynamo-sns-lambda (run by AWS Lambda as `bootstrap`)

The iamalive Lambda function: API Gateway requests (heartbeats, the
management API) and scheduled sweeps in one function, over DynamoDB with
notices by SNS. It takes no arguments: Lambda's runtime API gives it its
events, the IAMALIVE_* environment its settings (see the dynamo-sns
README and template.yaml).";

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Lambda starts it without arguments; a person may ask what it is.
    match std::env::args().nth(1).as_deref() {
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return Ok(());
        }
        Some("-V" | "--version") => {
            println!("dynamo-sns-lambda {}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
        Some(other) => {
            eprintln!("dynamo-sns-lambda: unexpected argument {other:?}\n{USAGE}");
            std::process::exit(2);
        }
        None => {}
    }
    // Built once per instance: clients, limiters and the monitor's mark
    // survive between invocations.
    dynamo_sns::lambda::run(dynamo_sns::lambda::from_env().await?).await
}
