//! moto with its requests handled one at a time.
//!
//! moto's threaded server checks a DynamoDB `ConditionExpression` and then
//! writes the item without a lock, so two conditional writes racing on one
//! item can both succeed — something real DynamoDB never allows. Tests
//! that race monitors against each other (compare-and-swap on `version`)
//! need the real guarantee: this server wraps moto's WSGI application in a
//! lock, so every request runs alone while connections stay keep-alive.

use crate::{Server, free_port, venv_python};

const SERIAL_MOTO: &str = r#"
import sys, threading
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication, MotoRequestHandler, create_backend_app,
)
app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()
def serial(environ, start_response):
    with lock:
        return list(app(environ, start_response))
run_simple(sys.argv[1], int(sys.argv[2]), serial, threaded=True,
           request_handler=MotoRequestHandler)
"#;

/// moto's server (DynamoDB and SNS) on a free port, one request at a time,
/// so conditional writes are atomic as in DynamoDB. Give each test its own
/// table and topic names.
pub fn moto_serial() -> Server {
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = venv_python("moto");
    cmd.args(["-c", SERIAL_MOTO, "127.0.0.1", &port.to_string()])
        .current_dir(dir.path());
    Server::spawn(cmd, port, dir, "moto_server (serialized)")
}
