//! Framing between the shim and its clients over `shim.sock`:
//! `[kind: u8][len: u32 big-endian][payload]`. The spill file stores the same frames.

/// Largest payload the shim sends; readers reject anything bigger.
pub const MAX_PAYLOAD: usize = 256 * 1024;
pub const HEADER: usize = 5;

// shim -> client
/// payload: pid u32 (0 while the container has not started yet)
pub const STATUS: u8 = 1;
pub const STDOUT: u8 = 2;
pub const STDERR: u8 = 3;
/// payload: bytes dropped, u64
pub const DROPPED: u8 = 4;
/// payload: status i32, oom_killed u8
pub const EXITED: u8 = 5;
/// Like [`STDOUT`]/[`STDERR`], with the time the shim read the bytes from the dyno
/// first: i64 big-endian microseconds since the Unix epoch, then the bytes. Output that
/// waits in the spill file while no daemon is connected keeps the time it was written.
pub const STDOUT_AT: u8 = 6;
pub const STDERR_AT: u8 = 7;

// client -> shim
/// payload: role byte, [`ROLE_DAEMON`] or [`ROLE_ATTACH`]
pub const HELLO: u8 = 0x41;
pub const STDIN: u8 = 0x42;
pub const STDIN_EOF: u8 = 0x43;
/// payload: cols u16, rows u16
pub const RESIZE: u8 = 0x44;
/// payload: signal i32 (process backend; runc dynos are signalled through runc)
pub const SIGNAL: u8 = 0x45;
/// the daemon has recorded the exit; the shim may go away
pub const EXIT_ACK: u8 = 0x46;

pub const ROLE_DAEMON: u8 = b'D';
pub const ROLE_ATTACH: u8 = b'A';

pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(HEADER + payload.len());
    f.push(kind);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub fn exited_payload(status: i32, oom: bool) -> [u8; 5] {
    let s = status.to_be_bytes();
    [s[0], s[1], s[2], s[3], oom as u8]
}

/// A stamped output frame ([`STDOUT_AT`] or [`STDERR_AT`]).
pub fn output_frame(stdout: bool, read_at_micros: i64, data: &[u8]) -> Vec<u8> {
    let kind = if stdout { STDOUT_AT } else { STDERR_AT };
    let mut payload = Vec::with_capacity(8 + data.len());
    payload.extend_from_slice(&read_at_micros.to_be_bytes());
    payload.extend_from_slice(data);
    frame(kind, &payload)
}

/// Output carried by a frame: whether it is stdout, when it was read (stamped frames
/// only) and the bytes. `None` for frames that carry no output.
pub fn output(kind: u8, mut payload: Vec<u8>) -> Option<(bool, Option<i64>, Vec<u8>)> {
    match kind {
        STDOUT | STDERR => Some((kind == STDOUT, None, payload)),
        STDOUT_AT | STDERR_AT if payload.len() >= 8 => {
            let at = i64::from_be_bytes(payload[..8].try_into().ok()?);
            payload.drain(..8);
            Some((kind == STDOUT_AT, Some(at), payload))
        }
        _ => None,
    }
}

/// Splits complete frames off the front of `buf`.
pub struct Decoder {
    pub buf: Vec<u8>,
}

pub enum Decoded {
    Frame(u8, Vec<u8>),
    NeedMore,
    Invalid,
}

impl Decoder {
    pub fn new() -> Self {
        Decoder { buf: Vec::new() }
    }

    pub fn next(&mut self) -> Decoded {
        if self.buf.len() < HEADER {
            return Decoded::NeedMore;
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_PAYLOAD {
            return Decoded::Invalid;
        }
        if self.buf.len() < HEADER + len {
            return Decoded::NeedMore;
        }
        let kind = self.buf[0];
        let payload = self.buf[HEADER..HEADER + len].to_vec();
        self.buf.drain(..HEADER + len);
        Decoded::Frame(kind, payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_across_partial_reads() {
        let mut bytes = frame(STDOUT, b"hello");
        bytes.extend(frame(EXITED, &exited_payload(143, false)));
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for b in bytes {
            d.buf.push(b);
            while let Decoded::Frame(k, p) = d.next() {
                got.push((k, p));
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (STDOUT, b"hello".to_vec()));
        assert_eq!(got[1].0, EXITED);
        assert_eq!(i32::from_be_bytes(got[1].1[..4].try_into().unwrap()), 143);
    }

    #[test]
    fn stamped_output_keeps_its_read_time() {
        let f = output_frame(false, 1_700_000_000_123_456, b"line\n");
        let mut d = Decoder { buf: f };
        let Decoded::Frame(kind, p) = d.next() else {
            panic!("no frame")
        };
        assert_eq!(
            output(kind, p),
            Some((false, Some(1_700_000_000_123_456), b"line\n".to_vec()))
        );
        assert_eq!(
            output(STDOUT, b"old".to_vec()),
            Some((true, None, b"old".to_vec()))
        );
        assert_eq!(output(STDOUT_AT, vec![1, 2]), None);
    }

    #[test]
    fn oversized_frames_are_rejected() {
        let mut d = Decoder::new();
        d.buf.extend([STDOUT, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(d.next(), Decoded::Invalid));
    }
}
