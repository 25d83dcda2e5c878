//! iamalive on DynamoDB with SNS notices, long-running and as a Lambda function

fn main() {}
