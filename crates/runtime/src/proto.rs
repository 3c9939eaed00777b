//! Framing between the shim and its clients over `shim.sock`:
//! `[kind: u8][len: u32 big-endian][payload]`. The spill file stores the same frames.
//!
//! [`Frame`] is the protocol; [`Frame::decode`] is the only place a payload is
//! interpreted and [`Frame::encode`] the only place one is laid out.

use std::num::NonZeroU32;

use crate::OutputStream;

/// Largest payload the shim sends; readers reject anything bigger.
pub const MAX_PAYLOAD: usize = 256 * 1024;
pub const HEADER: usize = 5;
/// Bytes of the read time in front of the data of a stamped output frame.
const STAMP: usize = 8;

/// Kind bytes on the wire.
mod kind {
    // shim -> client
    pub const STATUS: u8 = 1;
    pub const STDOUT: u8 = 2;
    pub const STDERR: u8 = 3;
    pub const DROPPED: u8 = 4;
    pub const EXITED: u8 = 5;
    pub const STDOUT_AT: u8 = 6;
    pub const STDERR_AT: u8 = 7;
    // client -> shim
    pub const HELLO: u8 = 0x41;
    pub const STDIN: u8 = 0x42;
    pub const STDIN_EOF: u8 = 0x43;
    pub const RESIZE: u8 = 0x44;
    pub const SIGNAL: u8 = 0x45;
    pub const EXIT_ACK: u8 = 0x46;
}

/// Who a client is, said once in its [`Frame::Hello`]. A new client of a role replaces
/// the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The daemon: receives status, output (unless attached) and the exit.
    Daemon,
    /// An attached one-off client: receives output and the exit, sends stdin.
    Attach,
}

impl Role {
    fn byte(self) -> u8 {
        match self {
            Role::Daemon => b'D',
            Role::Attach => b'A',
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    // shim -> client
    /// The dyno's host pid; `None` while the container has not started yet.
    Status {
        pid: Option<NonZeroU32>,
    },
    /// Output of the dyno. `read_at_micros` is when the shim read the bytes (microseconds
    /// since the Unix epoch), so output that waits in the spill file while no daemon is
    /// connected keeps the time it was written. Shims of older daemons send unstamped
    /// frames (`None`).
    Output {
        stream: OutputStream,
        read_at_micros: Option<i64>,
        data: Vec<u8>,
    },
    /// The shim dropped this many bytes of output (spill file full).
    Dropped {
        bytes: u64,
    },
    Exited {
        status: i32,
        oom_killed: bool,
    },
    // client -> shim
    Hello(Role),
    Stdin(Vec<u8>),
    StdinEof,
    /// Terminal size (tty dynos).
    Resize {
        cols: u16,
        rows: u16,
    },
    /// A signal for the dyno's process group (process backend; runc dynos are signalled
    /// through runc).
    Signal(i32),
    /// The daemon has recorded the exit; the shim may go away.
    ExitAck,
}

/// Why bytes did not decode to a [`Frame`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// The header announces more than [`MAX_PAYLOAD`]: the stream is corrupt and cannot
    /// be resynchronised.
    #[error("frame of kind {kind:#04x} announces {len} payload bytes, more than the {MAX_PAYLOAD} allowed")]
    Oversized { kind: u8, len: usize },
    /// A complete frame with an unknown kind; it was skipped.
    #[error("unknown frame kind {kind:#04x} ({len} payload bytes)")]
    UnknownKind { kind: u8, len: usize },
    /// A complete frame whose payload does not fit its kind; it was skipped.
    #[error("{what} frame with {len} payload bytes, expected {expected}")]
    BadPayload {
        what: &'static str,
        len: usize,
        expected: &'static str,
    },
}

impl ProtoError {
    /// Whether the stream is unusable after this error (otherwise only the one frame was
    /// bad and decoding goes on with the next).
    pub fn is_fatal(&self) -> bool {
        matches!(self, ProtoError::Oversized { .. })
    }
}

/// Exactly `N` payload bytes, or the error naming the frame.
fn fixed<const N: usize>(what: &'static str, p: &[u8]) -> Result<[u8; N], ProtoError> {
    p.try_into().map_err(|_| ProtoError::BadPayload {
        what,
        len: p.len(),
        expected: match N {
            1 => "1 byte",
            4 => "4 bytes",
            5 => "5 bytes",
            8 => "8 bytes",
            _ => "a fixed size",
        },
    })
}

impl Frame {
    /// Interprets one frame's payload.
    pub fn decode(kind: u8, mut payload: Vec<u8>) -> Result<Frame, ProtoError> {
        let p = payload.as_slice();
        Ok(match kind {
            kind::STATUS => Frame::Status {
                pid: NonZeroU32::new(u32::from_be_bytes(fixed("status", p)?)),
            },
            kind::STDOUT | kind::STDERR => Frame::Output {
                stream: stream_of(kind == kind::STDOUT),
                read_at_micros: None,
                data: payload,
            },
            kind::STDOUT_AT | kind::STDERR_AT => {
                let Some(stamp) = p.get(..STAMP) else {
                    return Err(ProtoError::BadPayload {
                        what: "stamped output",
                        len: p.len(),
                        expected: "at least 8 bytes",
                    });
                };
                let at = i64::from_be_bytes(fixed("stamped output", stamp)?);
                payload.drain(..STAMP);
                Frame::Output {
                    stream: stream_of(kind == kind::STDOUT_AT),
                    read_at_micros: Some(at),
                    data: payload,
                }
            }
            kind::DROPPED => Frame::Dropped {
                bytes: u64::from_be_bytes(fixed("dropped", p)?),
            },
            kind::EXITED => {
                let [s0, s1, s2, s3, oom] = fixed("exited", p)?;
                Frame::Exited {
                    status: i32::from_be_bytes([s0, s1, s2, s3]),
                    oom_killed: oom != 0,
                }
            }
            kind::HELLO => match fixed::<1>("hello", p)? {
                [b'D'] => Frame::Hello(Role::Daemon),
                [b'A'] => Frame::Hello(Role::Attach),
                _ => {
                    return Err(ProtoError::BadPayload {
                        what: "hello",
                        len: 1,
                        expected: "role b'D' or b'A'",
                    })
                }
            },
            kind::STDIN => Frame::Stdin(payload),
            kind::STDIN_EOF => Frame::StdinEof,
            kind::RESIZE => {
                let [c0, c1, r0, r1] = fixed("resize", p)?;
                Frame::Resize {
                    cols: u16::from_be_bytes([c0, c1]),
                    rows: u16::from_be_bytes([r0, r1]),
                }
            }
            kind::SIGNAL => Frame::Signal(i32::from_be_bytes(fixed("signal", p)?)),
            kind::EXIT_ACK => Frame::ExitAck,
            kind => return Err(ProtoError::UnknownKind { kind, len: p.len() }),
        })
    }

    /// The frame as bytes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Frame::Status { pid } => {
                frame(kind::STATUS, &pid.map_or(0, NonZeroU32::get).to_be_bytes())
            }
            Frame::Output {
                stream,
                read_at_micros,
                data,
            } => output_frame(*stream, *read_at_micros, data),
            Frame::Dropped { bytes } => frame(kind::DROPPED, &bytes.to_be_bytes()),
            Frame::Exited { status, oom_killed } => {
                let s = status.to_be_bytes();
                frame(
                    kind::EXITED,
                    &[s[0], s[1], s[2], s[3], u8::from(*oom_killed)],
                )
            }
            Frame::Hello(role) => frame(kind::HELLO, &[role.byte()]),
            Frame::Stdin(data) => frame(kind::STDIN, data),
            Frame::StdinEof => frame(kind::STDIN_EOF, &[]),
            Frame::Resize { cols, rows } => {
                let (c, r) = (cols.to_be_bytes(), rows.to_be_bytes());
                frame(kind::RESIZE, &[c[0], c[1], r[0], r[1]])
            }
            Frame::Signal(sig) => frame(kind::SIGNAL, &sig.to_be_bytes()),
            Frame::ExitAck => frame(kind::EXIT_ACK, &[]),
        }
    }
}

fn stream_of(stdout: bool) -> OutputStream {
    if stdout {
        OutputStream::Stdout
    } else {
        OutputStream::Stderr
    }
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(HEADER + payload.len());
    f.push(kind);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Encodes an output frame without first copying `data` into a [`Frame`] (the shim's
/// hot path); stamped when `read_at_micros` is set.
pub fn output_frame(stream: OutputStream, read_at_micros: Option<i64>, data: &[u8]) -> Vec<u8> {
    let stdout = stream == OutputStream::Stdout;
    let Some(at) = read_at_micros else {
        return frame(if stdout { kind::STDOUT } else { kind::STDERR }, data);
    };
    let mut f = Vec::with_capacity(HEADER + STAMP + data.len());
    f.push(if stdout {
        kind::STDOUT_AT
    } else {
        kind::STDERR_AT
    });
    f.extend_from_slice(&((STAMP + data.len()) as u32).to_be_bytes());
    f.extend_from_slice(&at.to_be_bytes());
    f.extend_from_slice(data);
    f
}

/// The payload length an encoded frame's header announces.
pub fn payload_len(header: &[u8; HEADER]) -> usize {
    u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize
}

/// How many bytes of dyno output an encoded frame carries (its payload without the
/// stamp of a stamped output frame): what is counted as dropped when it cannot be kept.
pub fn carried_len(encoded: &[u8]) -> usize {
    let payload = encoded.len().saturating_sub(HEADER);
    match encoded.first() {
        Some(&(kind::STDOUT_AT | kind::STDERR_AT)) => payload.saturating_sub(STAMP),
        _ => payload,
    }
}

/// Splits complete frames off the front of a byte stream fed in arbitrary pieces.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn new() -> Self {
        Decoder::default()
    }

    /// A decoder over bytes already at hand (a spill file).
    pub fn from_bytes(buf: Vec<u8>) -> Self {
        Decoder { buf }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next frame; `Ok(None)` until one is complete. After a non-fatal error the bad
    /// frame has been consumed; after a fatal one ([`ProtoError::is_fatal`]) the same
    /// error comes back on every call.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ProtoError> {
        let Some(header) = self.buf.first_chunk::<HEADER>() else {
            return Ok(None);
        };
        let (kind, len) = (header[0], payload_len(header));
        if len > MAX_PAYLOAD {
            return Err(ProtoError::Oversized { kind, len });
        }
        if self.buf.len() < HEADER + len {
            return Ok(None);
        }
        let payload = self.buf[HEADER..HEADER + len].to_vec();
        self.buf.drain(..HEADER + len);
        Frame::decode(kind, payload).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_kinds() -> Vec<Frame> {
        vec![
            Frame::Status { pid: None },
            Frame::Status {
                pid: NonZeroU32::new(4242),
            },
            Frame::Output {
                stream: OutputStream::Stdout,
                read_at_micros: None,
                data: b"old".to_vec(),
            },
            Frame::Output {
                stream: OutputStream::Stderr,
                read_at_micros: None,
                data: Vec::new(),
            },
            Frame::Output {
                stream: OutputStream::Stdout,
                read_at_micros: Some(1_700_000_000_123_456),
                data: b"line\n".to_vec(),
            },
            Frame::Output {
                stream: OutputStream::Stderr,
                read_at_micros: Some(-1),
                data: Vec::new(),
            },
            Frame::Dropped { bytes: u64::MAX },
            Frame::Exited {
                status: 143,
                oom_killed: false,
            },
            Frame::Exited {
                status: -1,
                oom_killed: true,
            },
            Frame::Hello(Role::Daemon),
            Frame::Hello(Role::Attach),
            Frame::Stdin(b"input".to_vec()),
            Frame::StdinEof,
            Frame::Resize {
                cols: 132,
                rows: 43,
            },
            Frame::Signal(15),
            Frame::ExitAck,
        ]
    }

    fn decode_all(bytes: Vec<u8>) -> Vec<Result<Frame, ProtoError>> {
        let mut d = Decoder::from_bytes(bytes);
        let mut got = Vec::new();
        loop {
            match d.next_frame() {
                Ok(None) => return got,
                Ok(Some(f)) => got.push(Ok(f)),
                Err(e) if e.is_fatal() => {
                    got.push(Err(e));
                    return got;
                }
                Err(e) => got.push(Err(e)),
            }
        }
    }

    #[test]
    fn every_kind_round_trips_across_partial_reads() {
        let frames = all_kinds();
        let bytes: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for b in bytes {
            d.feed(&[b]);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
    }

    /// The wire bytes themselves, so that shims and daemons of other versions agree.
    #[test]
    fn wire_layout_is_stable() {
        let stamped = Frame::Output {
            stream: OutputStream::Stderr,
            read_at_micros: Some(1),
            data: b"x".to_vec(),
        };
        assert_eq!(
            stamped.encode(),
            [7, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1, b'x']
        );
        let plain = Frame::Output {
            stream: OutputStream::Stdout,
            read_at_micros: None,
            data: b"hi".to_vec(),
        };
        assert_eq!(plain.encode(), [2, 0, 0, 0, 2, b'h', b'i']);
        let status = Frame::Status {
            pid: NonZeroU32::new(258),
        };
        assert_eq!(status.encode(), [1, 0, 0, 0, 4, 0, 0, 1, 2]);
        let exited = Frame::Exited {
            status: 137,
            oom_killed: true,
        };
        assert_eq!(exited.encode(), [5, 0, 0, 0, 5, 0, 0, 0, 137, 1]);
        assert_eq!(
            Frame::Hello(Role::Daemon).encode(),
            [0x41, 0, 0, 0, 1, b'D']
        );
        assert_eq!(Frame::ExitAck.encode(), [0x46, 0, 0, 0, 0]);
    }

    #[test]
    fn unstamped_output_of_old_shims_still_decodes() {
        assert_eq!(
            Frame::decode(kind::STDERR, b"old".to_vec()),
            Ok(Frame::Output {
                stream: OutputStream::Stderr,
                read_at_micros: None,
                data: b"old".to_vec(),
            })
        );
    }

    #[test]
    fn malformed_payloads_are_skipped_with_a_clear_error() {
        let cases: [(u8, &[u8], &str); 9] = [
            (
                kind::STATUS,
                &[0, 1],
                "status frame with 2 payload bytes, expected 4 bytes",
            ),
            (
                kind::STDOUT_AT,
                &[1, 2],
                "stamped output frame with 2 payload bytes, expected at least 8 bytes",
            ),
            (
                kind::STDERR_AT,
                &[],
                "stamped output frame with 0 payload bytes, expected at least 8 bytes",
            ),
            (
                kind::DROPPED,
                &[0; 9],
                "dropped frame with 9 payload bytes, expected 8 bytes",
            ),
            (
                kind::EXITED,
                &[0; 4],
                "exited frame with 4 payload bytes, expected 5 bytes",
            ),
            (
                kind::HELLO,
                b"X",
                "hello frame with 1 payload bytes, expected role b'D' or b'A'",
            ),
            (
                kind::HELLO,
                b"DA",
                "hello frame with 2 payload bytes, expected 1 byte",
            ),
            (
                kind::RESIZE,
                &[0; 3],
                "resize frame with 3 payload bytes, expected 4 bytes",
            ),
            (
                kind::SIGNAL,
                &[],
                "signal frame with 0 payload bytes, expected 4 bytes",
            ),
        ];
        for (kind, payload, message) in cases {
            // The bad frame is consumed: the good one behind it still arrives.
            let mut bytes = frame(kind, payload);
            bytes.extend(Frame::ExitAck.encode());
            let got = decode_all(bytes);
            assert_eq!(got.len(), 2, "{message}");
            let err = got[0].clone().unwrap_err();
            assert!(!err.is_fatal());
            assert_eq!(err.to_string(), message);
            assert_eq!(got[1], Ok(Frame::ExitAck));
        }
    }

    #[test]
    fn unknown_kinds_are_skipped() {
        let mut bytes = frame(0x99, b"future");
        bytes.extend(Frame::StdinEof.encode());
        let got = decode_all(bytes);
        assert_eq!(
            got,
            [
                Err(ProtoError::UnknownKind { kind: 0x99, len: 6 }),
                Ok(Frame::StdinEof)
            ]
        );
        assert_eq!(
            got[0].clone().unwrap_err().to_string(),
            "unknown frame kind 0x99 (6 payload bytes)"
        );
    }

    #[test]
    fn truncated_frames_wait_for_more() {
        for frame in all_kinds() {
            let bytes = frame.encode();
            for cut in 0..bytes.len() {
                let mut d = Decoder::from_bytes(bytes[..cut].to_vec());
                assert_eq!(d.next_frame(), Ok(None), "{frame:?} cut at {cut}");
                d.feed(&bytes[cut..]);
                assert_eq!(d.next_frame(), Ok(Some(frame.clone())));
                assert_eq!(d.next_frame(), Ok(None));
            }
        }
    }

    #[test]
    fn oversized_frames_are_fatal() {
        let mut d = Decoder::from_bytes(vec![kind::STDOUT, 0xff, 0xff, 0xff, 0xff]);
        let err = d.next_frame().unwrap_err();
        assert!(err.is_fatal());
        assert_eq!(
            err.to_string(),
            "frame of kind 0x02 announces 4294967295 payload bytes, more than the 262144 allowed"
        );
        // It stays broken rather than reading payload bytes as headers.
        assert_eq!(d.next_frame(), Err(err));
        // The limit itself is allowed.
        let mut at_limit = frame(kind::STDIN, &vec![0; MAX_PAYLOAD]);
        at_limit.truncate(HEADER);
        assert_eq!(Decoder::from_bytes(at_limit).next_frame(), Ok(None));
    }

    #[test]
    fn carried_len_counts_output_bytes_only() {
        let stamped = output_frame(OutputStream::Stdout, Some(5), b"abc");
        assert_eq!(carried_len(&stamped), 3);
        assert_eq!(
            carried_len(&output_frame(OutputStream::Stderr, None, b"abcd")),
            4
        );
        assert_eq!(carried_len(&Frame::Dropped { bytes: 1 }.encode()), 8);
    }

    mod props {
        use super::super::*;
        use super::decode_all;
        use proptest::prelude::*;

        fn any_frame() -> impl Strategy<Value = Frame> {
            let stream = prop_oneof![Just(OutputStream::Stdout), Just(OutputStream::Stderr)];
            let data = proptest::collection::vec(any::<u8>(), 0..64);
            prop_oneof![
                any::<u32>().prop_map(|p| Frame::Status {
                    pid: NonZeroU32::new(p)
                }),
                (stream, any::<Option<i64>>(), data.clone()).prop_map(|(stream, at, data)| {
                    Frame::Output {
                        stream,
                        read_at_micros: at,
                        data,
                    }
                }),
                any::<u64>().prop_map(|bytes| Frame::Dropped { bytes }),
                (any::<i32>(), any::<bool>())
                    .prop_map(|(status, oom_killed)| Frame::Exited { status, oom_killed }),
                prop_oneof![Just(Role::Daemon), Just(Role::Attach)].prop_map(Frame::Hello),
                data.prop_map(Frame::Stdin),
                Just(Frame::StdinEof),
                (any::<u16>(), any::<u16>()).prop_map(|(cols, rows)| Frame::Resize { cols, rows }),
                any::<i32>().prop_map(Frame::Signal),
                Just(Frame::ExitAck),
            ]
        }

        proptest! {
            #[test]
            fn frames_round_trip_whatever_the_read_sizes(
                frames in proptest::collection::vec(any_frame(), 0..16),
                chunk in 1usize..32,
            ) {
                let bytes: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
                let mut d = Decoder::new();
                let mut got = Vec::new();
                for piece in bytes.chunks(chunk) {
                    d.feed(piece);
                    while let Some(f) = d.next_frame().unwrap() {
                        got.push(f);
                    }
                }
                prop_assert_eq!(got, frames);
            }

            /// Frames of any kind byte with any payload: each decodes or is skipped with
            /// an error, and the frames behind it still arrive.
            #[test]
            fn any_kind_and_payload_keeps_the_stream_in_sync(
                frames in proptest::collection::vec(
                    (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..16)),
                    0..16,
                ),
            ) {
                let mut bytes: Vec<u8> = frames.iter().flat_map(|(k, p)| frame(*k, p)).collect();
                bytes.extend(Frame::ExitAck.encode());
                let got = decode_all(bytes);
                prop_assert_eq!(got.len(), frames.len() + 1);
                prop_assert!(!got.iter().any(|r| r.as_ref().is_err_and(ProtoError::is_fatal)));
                prop_assert_eq!(got.last(), Some(&Ok(Frame::ExitAck)));
            }

            /// Garbage never panics, and every call either waits, fails for good, or
            /// consumes a whole frame.
            #[test]
            fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let mut d = Decoder::from_bytes(bytes);
                loop {
                    let before = d.buf.len();
                    match d.next_frame() {
                        Ok(None) => break,
                        Err(e) if e.is_fatal() => {
                            prop_assert_eq!(d.buf.len(), before);
                            break;
                        }
                        Ok(Some(_)) | Err(_) => prop_assert!(d.buf.len() < before),
                    }
                }
            }
        }
    }
}
