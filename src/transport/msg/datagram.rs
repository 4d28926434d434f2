//! One datagram of the message transport: a call's number, its place in that call's stream of
//! datagrams one way, and the parts it carries. The layout is length-prefixed throughout and
//! decoding checks every length, so a garbage datagram is refused, never a panic.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

/// What a datagram carries, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    /// A request's path and headers (client to server).
    Request(String, HeaderMap),
    /// A response's status and headers (server to client).
    Response(u16, HeaderMap),
    /// A chunk of the body: gRPC's length-prefixed messages, as tonic encoded them.
    Data(Bytes),
    /// The response's trailers (gRPC's status).
    Trailers(HeaderMap),
    /// The sender's side of the call is complete.
    End,
    /// The call is abandoned: the client gave up, or the server dropped it (a crash).
    Reset,
}

/// A decoded datagram.
#[derive(Clone, Debug, PartialEq)]
pub struct Datagram {
    /// The call, numbered by the client's socket.
    pub call: u64,
    /// Its place among the call's datagrams in this direction, from 0.
    pub seq: u32,
    /// What it carries.
    pub parts: Vec<Part>,
}

const REQUEST: u8 = 1;
const RESPONSE: u8 = 2;
const DATA: u8 = 3;
const TRAILERS: u8 = 4;
const END: u8 = 5;
const RESET: u8 = 6;

impl Datagram {
    /// The datagram's bytes.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(64 + self.parts.len() * 32);
        out.put_u64(self.call);
        out.put_u32(self.seq);
        out.put_u16(self.parts.len() as u16);
        for part in &self.parts {
            match part {
                Part::Request(path, headers) => {
                    out.put_u8(REQUEST);
                    put_bytes(&mut out, path.as_bytes());
                    put_headers(&mut out, headers);
                }
                Part::Response(status, headers) => {
                    out.put_u8(RESPONSE);
                    out.put_u16(*status);
                    put_headers(&mut out, headers);
                }
                Part::Data(bytes) => {
                    out.put_u8(DATA);
                    put_bytes(&mut out, bytes);
                }
                Part::Trailers(headers) => {
                    out.put_u8(TRAILERS);
                    put_headers(&mut out, headers);
                }
                Part::End => out.put_u8(END),
                Part::Reset => out.put_u8(RESET),
            }
        }
        out.freeze()
    }

    /// Decodes `bytes`, or says what is wrong with them.
    pub fn decode(mut bytes: Bytes) -> Result<Datagram, String> {
        need(&bytes, 14, "the header")?;
        let call = bytes.get_u64();
        let seq = bytes.get_u32();
        let count = bytes.get_u16();
        let mut parts = Vec::with_capacity(usize::from(count).min(16));
        for _ in 0..count {
            need(&bytes, 1, "a part's tag")?;
            let part = match bytes.get_u8() {
                REQUEST => {
                    let path = String::from_utf8(get_bytes(&mut bytes)?.to_vec())
                        .map_err(|_| "a request path that is not UTF-8".to_string())?;
                    Part::Request(path, get_headers(&mut bytes)?)
                }
                RESPONSE => {
                    need(&bytes, 2, "a status")?;
                    let status = bytes.get_u16();
                    Part::Response(status, get_headers(&mut bytes)?)
                }
                DATA => Part::Data(get_bytes(&mut bytes)?),
                TRAILERS => Part::Trailers(get_headers(&mut bytes)?),
                END => Part::End,
                RESET => Part::Reset,
                tag => return Err(format!("unknown part tag {tag}")),
            };
            parts.push(part);
        }
        if !bytes.is_empty() {
            return Err(format!("{} bytes after the last part", bytes.len()));
        }
        Ok(Datagram { call, seq, parts })
    }
}

fn need(bytes: &Bytes, n: usize, what: &str) -> Result<(), String> {
    if bytes.len() < n {
        return Err(format!("truncated in {what}: {} of {n} bytes", bytes.len()));
    }
    Ok(())
}

fn put_bytes(out: &mut BytesMut, bytes: &[u8]) {
    out.put_u32(bytes.len() as u32);
    out.put_slice(bytes);
}

fn get_bytes(bytes: &mut Bytes) -> Result<Bytes, String> {
    need(bytes, 4, "a length")?;
    let len = bytes.get_u32() as usize;
    need(bytes, len, "a field")?;
    Ok(bytes.split_to(len))
}

fn put_headers(out: &mut BytesMut, headers: &HeaderMap) {
    out.put_u16(headers.len() as u16);
    for (name, value) in headers {
        put_bytes(out, name.as_str().as_bytes());
        put_bytes(out, value.as_bytes());
    }
}

fn get_headers(bytes: &mut Bytes) -> Result<HeaderMap, String> {
    need(bytes, 2, "a header count")?;
    let count = bytes.get_u16();
    let mut headers = HeaderMap::with_capacity(usize::from(count).min(32));
    for _ in 0..count {
        let name = get_bytes(bytes)?;
        let value = get_bytes(bytes)?;
        let name = HeaderName::from_bytes(&name).map_err(|e| format!("a header name: {e}"))?;
        let value =
            HeaderValue::from_maybe_shared(value).map_err(|e| format!("a header value: {e}"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Datagram {
        let mut headers = HeaderMap::new();
        headers.insert("x-raftbed-client", HeaderValue::from_static("7"));
        headers.append("x-raftbed-client", HeaderValue::from_static("8"));
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        Datagram {
            call: u64::MAX - 1,
            seq: 3,
            parts: vec![
                Part::Request("/etcdserverpb.KV/Put".into(), headers.clone()),
                Part::Response(200, headers),
                Part::Data(Bytes::from_static(b"\0\0\0\0\x02hi")),
                Part::Trailers(trailers),
                Part::End,
                Part::Reset,
            ],
        }
    }

    #[test]
    fn every_part_survives_a_round_trip() {
        let datagram = sample();
        assert_eq!(Datagram::decode(datagram.encode()), Ok(datagram));
    }

    #[test]
    fn every_truncation_is_refused_without_a_panic() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            let result = Datagram::decode(bytes.slice(..len));
            assert!(result.is_err(), "a datagram cut to {len} of {} bytes decoded", bytes.len());
        }
    }

    #[test]
    fn garbage_is_refused_with_its_reason() {
        let mut bytes = BytesMut::from(&sample().encode()[..]);
        bytes[14] = 99;
        let error = Datagram::decode(bytes.freeze()).unwrap_err();
        assert!(error.contains("unknown part tag 99"), "{error}");
        let mut long = BytesMut::from(&sample().encode()[..]);
        long.put_u8(0);
        let error = Datagram::decode(long.freeze()).unwrap_err();
        assert!(error.contains("1 bytes after the last part"), "{error}");
    }
}
