//! The message transport under turmoil, with services of the test's own: a bidirectional
//! stream keeps its order over a link with random latency, and a crash of the serving host
//! resets a pending call at once instead of leaving it to its deadline.

use std::cell::Cell;
use std::convert::Infallible;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use tokio::sync::mpsc;

use super::server::RequestBody;
use super::{MsgChannel, serve};

const PORT: u16 = 9000;

type Request = http::Request<tonic::body::Body>;
type Response = http::Response<tonic::body::Body>;

fn sim() -> turmoil::Sim<'static> {
    turmoil::Builder::new()
        .tick_duration(Duration::from_millis(5))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(20))
        .simulation_duration(Duration::from_secs(30))
        .rng_seed(7)
        .build()
}

fn request(path: &str, body: tonic::body::Body) -> Request {
    let mut request = http::Request::new(body);
    *request.uri_mut() = path.parse().expect("a path");
    request
}

#[test]
fn a_bidirectional_stream_keeps_its_order_over_a_jittery_link() {
    let mut sim = sim();
    sim.host("server", || async {
        // Echoes the request body as it arrives: a bidirectional stream.
        let echo = tower::service_fn(|request: Request| async move {
            Ok::<Response, Infallible>(http::Response::new(request.into_body()))
        });
        serve(PORT, echo).await?;
        Ok(())
    });
    sim.client("client", async {
        let channel = MsgChannel::new(&format!("server:{PORT}"), Some(Duration::from_secs(5)));
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send(Bytes::from_static(b"0")).expect("open");
        let call =
            channel.call(request("/echo", tonic::body::Body::new(RequestBody { chunks: rx })));
        let mut body = call.await.expect("the head comes back").into_body();
        for n in 0..50u32 {
            if n > 0 {
                tx.send(Bytes::from(n.to_string())).expect("open");
            }
            let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
            let data = frame.expect("a frame").expect("no error").into_data().expect("data");
            assert_eq!(data, Bytes::from(n.to_string()), "chunk {n} came back in its place");
        }
        drop(tx);
        let end = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        assert!(end.is_none(), "the stream ends when the request does");
        Ok(())
    });
    sim.run().expect("the stream ran");
}

#[test]
fn a_crash_of_the_server_resets_its_pending_calls_at_once() {
    let mut sim = sim();
    sim.host("server", || async {
        // Answers nothing for a minute.
        let slow = tower::service_fn(|_: Request| async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<Response, Infallible>(http::Response::new(tonic::body::Body::empty()))
        });
        serve(PORT, slow).await?;
        Ok(())
    });
    let failed_at: Rc<Cell<Option<Duration>>> = Rc::default();
    let failed = failed_at.clone();
    sim.client("client", async move {
        let channel = MsgChannel::new(&format!("server:{PORT}"), Some(Duration::from_secs(20)));
        let answer = channel.call(request("/slow", tonic::body::Body::empty())).await;
        let error = answer.expect_err("the crash ends the call");
        assert!(error.to_string().contains("was reset"), "{error}");
        failed.set(turmoil::sim_elapsed());
        Ok(())
    });
    while sim.elapsed() < Duration::from_secs(1) {
        sim.step().expect("steps");
    }
    assert!(failed_at.get().is_none(), "the call is still pending before the crash");
    sim.crash("server");
    sim.run().expect("the client saw the reset");
    let at = failed_at.get().expect("the call failed");
    assert!(at < Duration::from_millis(1100), "reset within a latency of the crash, at {at:?}");
}
