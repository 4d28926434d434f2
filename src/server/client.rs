//! The client listener: framed `ClientRequest`s in, `ClientResponse`s out, one request at a
//! time per connection. Requests go to the driver through a bounded queue; a full queue is a
//! definite "rejected: busy".

use prost::Message as _;
use tokio::sync::{mpsc, oneshot};

use crate::transport::frame::{read_frame, write_frame};
use crate::transport::net::Net;
use crate::transport::rbpb;

/// A client request on its way to the driver, with where to send the answer.
#[derive(Debug)]
pub struct ClientCall {
    /// The request.
    pub request: rbpb::ClientRequest,
    /// Where the answer goes.
    pub reply: oneshot::Sender<rbpb::ClientResponse>,
}

/// Accepts client connections forever.
pub async fn serve_clients<N: Net>(listener: N::Listener, calls: mpsc::Sender<ClientCall>) {
    loop {
        match N::accept(&listener).await {
            Ok(stream) => {
                tokio::task::spawn_local(serve_connection::<N>(stream, calls.clone()));
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

async fn serve_connection<N: Net>(mut stream: N::Stream, calls: mpsc::Sender<ClientCall>) {
    let mut buf = Vec::new();
    while let Ok(true) = read_frame(&mut stream, &mut buf).await {
        let Ok(request) = rbpb::ClientRequest::decode(buf.as_slice()) else { return };
        let (tx, rx) = oneshot::channel();
        let response = match calls.try_send(ClientCall { request, reply: tx }) {
            Ok(()) => rx.await.unwrap_or_else(|_| rejected("node stopped")),
            Err(_) => rejected("busy"),
        };
        if write_frame(&mut stream, &response.encode_to_vec()).await.is_err() {
            return;
        }
    }
}

/// A definite rejection.
pub fn rejected(reason: &str) -> rbpb::ClientResponse {
    rbpb::ClientResponse {
        result: Some(rbpb::client_response::Result::Rejected(rbpb::Rejected {
            reason: reason.into(),
        })),
    }
}
