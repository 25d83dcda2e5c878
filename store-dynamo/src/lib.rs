//! DynamoDB store for iamalive: serverless, past one machine
