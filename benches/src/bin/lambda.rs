//! The Lambda function's init and handler CPU, under a local Lambda
//! runtime API emulator, against DynamoDB and SNS on moto.
//!
//! ```text
//! cargo build --release -p dynamo-sns -p iamalive-benches
//! IAMALIVE_TEST_VENV=… cargo run --release -p iamalive-benches --bin lambda -- --runs 3
//! ```
//!
//! The emulator is a small HTTP server implementing the parts of the
//! runtime API a function uses (`GET /2018-06-01/runtime/invocation/next`,
//! `POST …/invocation/{id}/response` and `…/error`,
//! `POST …/runtime/init/error`). For each run the function's binary
//! (`dynamo-sns-lambda`, by default the one built beside this binary) is
//! started as Lambda starts `bootstrap`, with `AWS_LAMBDA_RUNTIME_API`
//! pointing at the emulator and the SDK at moto. **Init** is the time from
//! just before `spawn` to its first `invocation/next`. Then the emulator
//! hands it events one at a time: API Gateway (HTTP API, payload 2.0)
//! heartbeats for `--hosts` hosts, then EventBridge scheduled events (a
//! sweep; nothing is due). **CPU per event** is the process's CPU time
//! (the sum over its threads of `/proc/PID/task/*/schedstat`, in
//! nanoseconds) from handing the event over to receiving the answer,
//! which includes the SDK's requests to moto but not moto's own work.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use clap::Parser;
use iamalive_benches::process::Spawned;
use iamalive_benches::stats::median;
use iamalive_store_dynamo::DynamoStore;
use tokio::sync::{Mutex, mpsc, oneshot};

#[derive(Parser, Debug)]
#[command(about = "Lambda init time and CPU per event, under a local runtime API emulator")]
struct Args {
    /// Process starts (each a cold start).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Distinct hosts beating (each beats `--beats` times per run).
    #[arg(long, default_value_t = 20)]
    hosts: usize,
    /// Heartbeat events per host per run (the first creates the host in
    /// the first run; the first round of every run is a warm-up).
    #[arg(long, default_value_t = 5)]
    beats: usize,
    /// Scheduled sweep events per run.
    #[arg(long, default_value_t = 30)]
    sweeps: usize,
    /// The function's binary [default: dynamo-sns-lambda beside this one].
    #[arg(long)]
    bin: Option<PathBuf>,
}

const KEY: &str = "lambda-bench-key-0123456789";
const TABLE: &str = "iamalive-lambda-bench";
const TOPIC: &str = "iamalive-lambda-bench";

/// What a function answered to one event.
#[derive(Debug)]
struct Answer {
    ok: bool,
    body: String,
}

/// The emulator's state: the first `next` of this process, the event
/// waiting to be handed over, and who waits for each answer.
#[derive(Default)]
struct Emulator {
    ready: Mutex<Option<oneshot::Sender<Instant>>>,
    events: Mutex<Option<mpsc::Receiver<(String, String)>>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    init_error: Mutex<Option<String>>,
}

type Shared = Arc<Emulator>;

async fn next(State(em): State<Shared>) -> impl IntoResponse {
    if let Some(tx) = em.ready.lock().await.take() {
        let _ = tx.send(Instant::now());
    }
    let got = {
        let mut events = em.events.lock().await;
        match events.as_mut() {
            Some(rx) => rx.recv().await,
            None => None,
        }
    };
    let Some((id, body)) = got else {
        // No more events: park the function until it is stopped.
        std::future::pending::<()>().await;
        unreachable!()
    };
    let deadline = (chrono::Utc::now() + chrono::TimeDelta::seconds(30)).timestamp_millis();
    let mut h = HeaderMap::new();
    h.insert("lambda-runtime-aws-request-id", id.parse().expect("ascii"));
    h.insert(
        "lambda-runtime-deadline-ms",
        deadline.to_string().parse().expect("ascii"),
    );
    h.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:iamalive"
            .parse()
            .expect("ascii"),
    );
    h.insert(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000;Sampled=0"
            .parse()
            .expect("ascii"),
    );
    h.insert("content-type", "application/json".parse().expect("ascii"));
    (StatusCode::OK, h, body)
}

async fn answered(em: &Shared, id: &str, ok: bool, body: String) -> StatusCode {
    match em.waiting.lock().await.remove(id) {
        Some(tx) => {
            let _ = tx.send(Answer { ok, body });
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn response(State(em): State<Shared>, Path(id): Path<String>, body: String) -> StatusCode {
    answered(&em, &id, true, body).await
}

async fn error(State(em): State<Shared>, Path(id): Path<String>, body: String) -> StatusCode {
    answered(&em, &id, false, body).await
}

async fn init_error(State(em): State<Shared>, body: String) -> StatusCode {
    *em.init_error.lock().await = Some(body);
    StatusCode::ACCEPTED
}

/// The process's CPU time so far, in nanoseconds: every thread's
/// `schedstat` (time on a CPU), summed.
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// An API Gateway HTTP API (payload 2.0) heartbeat for `host`.
fn heartbeat_event(host: &str) -> String {
    serde_json::json!({
        "version": "2.0",
        "routeKey": "POST /v1/heartbeat",
        "rawPath": "/v1/heartbeat",
        "rawQueryString": "",
        "headers": {
            "authorization": format!("Bearer {KEY}"),
            "content-type": "application/json",
            "host": "abcdef1234.execute-api.us-east-1.amazonaws.com",
            "user-agent": "iamalive-agent/0.1.0",
            "x-forwarded-for": "203.0.113.25",
            "x-forwarded-proto": "https"
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdef1234",
            "domainName": "abcdef1234.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abcdef1234",
            "http": {
                "method": "POST",
                "path": "/v1/heartbeat",
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.25",
                "userAgent": "iamalive-agent/0.1.0"
            },
            "requestId": "bench",
            "routeKey": "POST /v1/heartbeat",
            "stage": "$default",
            "time": "26/Nov/2026:07:00:00 +0000",
            "timeEpoch": 1_795_676_400_000_i64
        },
        "body": serde_json::json!({ "host": host }).to_string(),
        "isBase64Encoded": false
    })
    .to_string()
}

/// An EventBridge scheduled event: one sweep.
fn sweep_event() -> String {
    serde_json::json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-26T07:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/iamalive-sweep"],
        "detail": {}
    })
    .to_string()
}

/// Creates the SNS topic on moto with one form POST (the query API) and
/// returns its ARN.
async fn create_topic(moto: &str) -> Result<String, Box<dyn std::error::Error>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = moto.trim_start_matches("http://").trim_end_matches('/');
    let body = format!("Action=CreateTopic&Name={TOPIC}&Version=2010-03-31");
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let req = format!(
        "POST / HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sns/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    let arn = out
        .split("<TopicArn>")
        .nth(1)
        .and_then(|r| r.split("</TopicArn>").next())
        .ok_or_else(|| format!("no TopicArn in moto's answer: {out}"))?;
    Ok(arn.to_owned())
}

#[derive(Debug, Default)]
struct RunFigures {
    init_ms: f64,
    init_cpu_ms: f64,
    beat_cpu_us: Vec<f64>,
    beat_wall_us: Vec<f64>,
    sweep_cpu_us: Vec<f64>,
    sweep_wall_us: Vec<f64>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let bin = args.bin.clone().unwrap_or_else(|| {
        let me = std::env::current_exe().expect("own path");
        me.parent().expect("a directory").join("dynamo-sns-lambda")
    });
    let moto = iamalive_testkit::moto_serial::moto_serial();
    let moto_url = moto.http_url();
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        iamalive_benches::backend::moto_config(&moto_url).build(),
    );
    DynamoStore::new(dynamo, TABLE)
        .create_table_if_missing()
        .await?;
    let topic = create_topic(&moto_url).await?;

    let mut figures = Vec::new();
    for run in 0..args.runs {
        let em: Shared = Arc::new(Emulator::default());
        let (ready_tx, ready_rx) = oneshot::channel();
        *em.ready.lock().await = Some(ready_tx);
        let (ev_tx, ev_rx) = mpsc::channel::<(String, String)>(1);
        *em.events.lock().await = Some(ev_rx);
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(em.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let api = listener.local_addr()?;
        let serving = tokio::spawn(async move { axum::serve(listener, app).await });

        let mut cmd = Command::new(&bin);
        for (k, _) in
            std::env::vars().filter(|(k, _)| k.starts_with("IAMALIVE_") || k.starts_with("AWS_"))
        {
            cmd.env_remove(k);
        }
        cmd.envs(iamalive_testkit::aws_test_env_vars())
            .env("AWS_ENDPOINT_URL", &moto_url)
            .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "iamalive")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/iamalive")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("IAMALIVE_API_KEYS", KEY)
            .env("IAMALIVE_DYNAMO_TABLE", TABLE)
            .env("IAMALIVE_SNS_TOPIC_ARN", &topic)
            .env("IAMALIVE_LOG", "warn")
            .stdin(Stdio::null());
        let t = Instant::now();
        let f = Spawned::spawn(&mut cmd)?;
        let pid = f.id();
        let ready = tokio::time::timeout(Duration::from_secs(30), ready_rx)
            .await
            .map_err(|_| "the function did not ask for an event within 30 s")??;
        let mut fig = RunFigures {
            init_ms: (ready - t).as_secs_f64() * 1000.0,
            init_cpu_ms: cpu_ns(pid) as f64 / 1e6,
            ..RunFigures::default()
        };
        if let Some(e) = em.init_error.lock().await.take() {
            return Err(format!("init error: {e}").into());
        }

        let mut n = 0u64;
        let mut invoke = |body: String| {
            n += 1;
            let id = format!("req-{run}-{n}");
            let em = em.clone();
            let ev_tx = ev_tx.clone();
            async move {
                let (tx, rx) = oneshot::channel();
                em.waiting.lock().await.insert(id.clone(), tx);
                let c0 = cpu_ns(pid);
                let t0 = Instant::now();
                ev_tx.send((id, body)).await.expect("emulator");
                let a = tokio::time::timeout(Duration::from_secs(30), rx)
                    .await
                    .expect("an answer within 30 s")
                    .expect("answered");
                let wall = t0.elapsed().as_secs_f64() * 1e6;
                let cpu = (cpu_ns(pid) - c0) as f64 / 1e3;
                (a, cpu, wall)
            }
        };
        for round in 0..args.beats {
            for h in 0..args.hosts {
                let (a, cpu, wall) = invoke(heartbeat_event(&format!("lambda-{h:03}"))).await;
                if !a.ok || !a.body.contains("\"statusCode\":200") {
                    return Err(format!("heartbeat answered {a:?}").into());
                }
                if round > 0 {
                    fig.beat_cpu_us.push(cpu);
                    fig.beat_wall_us.push(wall);
                }
            }
        }
        for i in 0..args.sweeps {
            let (a, cpu, wall) = invoke(sweep_event()).await;
            if !a.ok {
                return Err(format!("sweep answered {a:?}").into());
            }
            if i > 0 {
                fig.sweep_cpu_us.push(cpu);
                fig.sweep_wall_us.push(wall);
            }
        }
        drop(f);
        serving.abort();
        println!(
            "run {}: init {:.1} ms (CPU {:.1} ms); heartbeat event CPU median {:.0} µs (wall {:.0} µs); empty sweep event CPU median {:.0} µs (wall {:.0} µs)",
            run + 1,
            fig.init_ms,
            fig.init_cpu_ms,
            median(&fig.beat_cpu_us),
            median(&fig.beat_wall_us),
            median(&fig.sweep_cpu_us),
            median(&fig.sweep_wall_us),
        );
        figures.push(fig);
    }
    let med = |f: &dyn Fn(&RunFigures) -> f64| median(&figures.iter().map(f).collect::<Vec<_>>());
    println!(
        "median of {} runs: init {:.1} ms (CPU {:.1} ms); CPU per heartbeat event {:.0} µs; CPU per empty sweep event {:.0} µs",
        figures.len(),
        med(&|f| f.init_ms),
        med(&|f| f.init_cpu_ms),
        med(&|f| median(&f.beat_cpu_us)),
        med(&|f| median(&f.sweep_cpu_us)),
    );
    Ok(())
}
