//! The record layout, which is what lives on disk forever:
//!
//! ```text
//! [body len: u32 LE][crc32c(body): u32 LE] body
//! body = [format byte] envelope payload
//! ```
//!
//! With format byte [`FORMAT_BINCODE_2_0_1`] the envelope is [`EnvelopeV1`] encoded by bincode
//! 2.0.1 (`config::standard()`: varint integers, little endian) through serde, and the payload
//! is the rest of the body, uninterpreted. The envelope is encoded from a private, frozen struct
//! rather than the public [`Envelope`] so that a change to the public type cannot silently change
//! the bytes; the golden-byte tests pin them. A later codec gets a new format byte and old
//! records keep decoding with this one.
//!
//! Every read decodes envelopes, so they are decoded by hand ([`Wire`]) rather than through
//! serde: the same bytes, read the way bincode reads them (a property test holds the two
//! decoders to the same answers), without bincode's zero-filled buffer per string.

use std::ops::Range;

use serde::Serialize;

use crate::error::CodecError;
use crate::{Envelope, NewEvent, RecordRef, RecordedEvent};

/// Format byte: envelope encoded with bincode 2.0.1, standard config, via serde.
pub const FORMAT_BINCODE_2_0_1: u8 = 1;

/// Length of the frame in front of every body: length and crc32c, both u32 LE.
pub const FRAME_HEADER_LEN: usize = 8;

/// The largest record (frame included) the log accepts. Far above any event halley writes;
/// it bounds what a reader will allocate on the word of a length field.
pub const MAX_RECORD_BYTES: usize = 16 << 20;

/// Envelope layout for [`FORMAT_BINCODE_2_0_1`]. Field order is the wire order: never edit.
#[derive(Serialize)]
struct EnvelopeV1Ref<'a> {
    position: u64,
    stream: &'a str,
    stream_version: u64,
    tenant: &'a str,
    type_code: u16,
    schema_version: u16,
    recorded_at_us: i64,
    actor: &'a str,
    correlation_id: &'a str,
    idempotency_key: Option<&'a str>,
}

/// Encodes one record (frame included).
pub fn encode_record(envelope: &Envelope, payload: &[u8]) -> Vec<u8> {
    let wire = EnvelopeV1Ref {
        position: envelope.position,
        stream: &envelope.stream,
        stream_version: envelope.stream_version,
        tenant: &envelope.tenant,
        type_code: envelope.type_code,
        schema_version: envelope.schema_version,
        recorded_at_us: envelope.recorded_at_us,
        actor: &envelope.actor,
        correlation_id: &envelope.correlation_id,
        idempotency_key: envelope.idempotency_key.as_deref(),
    };
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + 1 + 96 + payload.len());
    encode_wire_into(&mut out, &wire, payload);
    out
}

/// Where a new event lands: the envelope fields the writer assigns.
pub(crate) struct RecordAt<'a> {
    pub(crate) position: u64,
    pub(crate) stream: &'a str,
    pub(crate) stream_version: u64,
    pub(crate) idempotency_key: Option<&'a str>,
}

/// Appends one encoded record to `out`. The writer encodes a whole group commit into one
/// buffer this way, straight from the request, without building an [`Envelope`].
pub(crate) fn encode_new_event_into(out: &mut Vec<u8>, at: &RecordAt<'_>, event: &NewEvent) {
    let wire = EnvelopeV1Ref {
        position: at.position,
        stream: at.stream,
        stream_version: at.stream_version,
        tenant: &event.tenant,
        type_code: event.type_code,
        schema_version: event.schema_version,
        recorded_at_us: event.recorded_at_us,
        actor: &event.actor,
        correlation_id: &event.correlation_id,
        idempotency_key: at.idempotency_key,
    };
    encode_wire_into(out, &wire, &event.payload);
}

fn encode_wire_into(out: &mut Vec<u8>, wire: &EnvelopeV1Ref<'_>, payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    out.push(FORMAT_BINCODE_2_0_1);
    bincode::serde::encode_into_std_write(wire, out, bincode::config::standard())
        .expect("bincode encoding of strings and integers into a Vec cannot fail");
    out.extend_from_slice(payload);
    let body = &out[start + FRAME_HEADER_LEN..];
    // Appends check sizes against MAX_RECORD_BYTES before encoding.
    let len = u32::try_from(body.len()).expect("record length below MAX_RECORD_BYTES");
    let crc = crc32c::crc32c(body);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The encoded size of a record, without encoding it: lets an append be rejected as too large
/// before it reaches the writer.
pub(crate) fn record_len(envelope_strings: usize, payload: usize) -> usize {
    // Upper bound of the fixed-width parts under varint encoding: 3 u64/i64 (≤ 10 bytes
    // each), 2 u16 (≤ 3 each), 5 string lengths (≤ 10 each), option tag.
    FRAME_HEADER_LEN + 1 + 3 * 10 + 2 * 3 + 5 * 10 + 1 + envelope_strings + payload
}

/// Reads the frame at the start of `bytes` and returns the body length it declares, after
/// checking that the whole record is present. Cheap: no crc, no decoding.
pub(crate) fn frame_len(bytes: &[u8]) -> Result<usize, CodecError> {
    if bytes.len() < FRAME_HEADER_LEN {
        return Err(CodecError::Truncated {
            needed: FRAME_HEADER_LEN,
            available: bytes.len(),
        });
    }
    let body_len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let total = FRAME_HEADER_LEN + body_len;
    if total > MAX_RECORD_BYTES {
        return Err(CodecError::TooLarge {
            size: total,
            max: MAX_RECORD_BYTES,
        });
    }
    if bytes.len() < total {
        return Err(CodecError::Truncated {
            needed: total,
            available: bytes.len(),
        });
    }
    Ok(total)
}

/// The byte ranges of the records packed back to back in `bytes`, found by their frames only
/// (no crc, no decoding). Ends after the first frame that does not fit, with its error.
pub(crate) fn frames(bytes: &[u8]) -> impl Iterator<Item = Result<Range<usize>, CodecError>> + '_ {
    let mut offset = 0;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || offset >= bytes.len() {
            return None;
        }
        match frame_len(&bytes[offset..]) {
            Ok(len) => {
                offset += len;
                Some(Ok(offset - len..offset))
            }
            Err(e) => {
                failed = true;
                Some(Err(e))
            }
        }
    })
}

/// Decodes the record at the start of `bytes`; returns it and the number of bytes it took.
pub fn decode_record(bytes: &[u8]) -> Result<(RecordedEvent, usize), CodecError> {
    decode_record_ref(bytes).map(|(record, len)| (record.owned(), len))
}

/// Decodes the record at the start of `bytes` without copying anything out of them; returns
/// it and the number of bytes it took.
pub fn decode_record_ref(bytes: &[u8]) -> Result<(RecordRef<'_>, usize), CodecError> {
    let total = frame_len(bytes)?;
    let stored = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    let body = &bytes[FRAME_HEADER_LEN..total];
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(CodecError::Crc { stored, computed });
    }
    let Some((&format, rest)) = body.split_first() else {
        return Err(CodecError::Truncated {
            needed: FRAME_HEADER_LEN + 1,
            available: FRAME_HEADER_LEN,
        });
    };
    if format != FORMAT_BINCODE_2_0_1 {
        return Err(CodecError::UnknownFormat(format));
    }
    let mut wire = Wire { bytes: rest };
    let envelope = wire
        .envelope()
        .map_err(|e| CodecError::Envelope(e.to_owned()))?;
    let record = RecordRef {
        envelope,
        payload: wire.bytes,
        bytes: &bytes[..total],
    };
    Ok((record, total))
}

/// bincode 2.0.1's varint markers (standard config): a first byte below 251 is the value
/// itself, these announce a little-endian u16, u32 or u64 after them.
const VARINT_U16: u8 = 251;
const VARINT_U32: u8 = 252;
const VARINT_U64: u8 = 253;

/// A cursor over a format-1 envelope and the payload after it. Errors are bincode's cases
/// (end of input, an integer too wide for its field, a bad `Option` tag, invalid UTF-8),
/// named in words.
struct Wire<'a> {
    bytes: &'a [u8],
}

impl<'a> Wire<'a> {
    fn envelope(&mut self) -> Result<Envelope<&'a str>, &'static str> {
        Ok(Envelope {
            position: self.u64()?,
            stream: self.string()?,
            stream_version: self.u64()?,
            tenant: self.string()?,
            type_code: self.u16()?,
            schema_version: self.u16()?,
            recorded_at_us: self.i64()?,
            actor: self.string()?,
            correlation_id: self.string()?,
            idempotency_key: match self.take(1)?[0] {
                0 => None,
                1 => Some(self.string()?),
                _ => return Err("option tag is neither 0 nor 1"),
            },
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.bytes.len() < n {
            return Err("unexpected end of envelope");
        }
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn u64(&mut self) -> Result<u64, &'static str> {
        match self.take(1)?[0] {
            VARINT_U16 => Ok(u16::from_le_bytes(self.array()?).into()),
            VARINT_U32 => Ok(u32::from_le_bytes(self.array()?).into()),
            VARINT_U64 => Ok(u64::from_le_bytes(self.array()?)),
            b if b < VARINT_U16 => Ok(b.into()),
            _ => Err("integer wider than 64 bits"),
        }
    }

    fn u16(&mut self) -> Result<u16, &'static str> {
        match self.take(1)?[0] {
            VARINT_U16 => Ok(u16::from_le_bytes(self.array()?)),
            b if b < VARINT_U16 => Ok(b.into()),
            _ => Err("integer wider than 16 bits"),
        }
    }

    /// Zigzag: 0, -1, 1, -2, … are 0, 1, 2, 3, …
    fn i64(&mut self) -> Result<i64, &'static str> {
        let n = self.u64()?;
        let magnitude = (n >> 1) as i64;
        Ok(if n & 1 == 0 { magnitude } else { !magnitude })
    }

    fn string(&mut self) -> Result<&'a str, &'static str> {
        let len = usize::try_from(self.u64()?).map_err(|_| "string length overflows")?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| "string is not UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;

    /// The owned twin of [`EnvelopeV1Ref`], decoded by bincode through serde: the reference
    /// [`Wire`] is held to.
    #[derive(Deserialize)]
    struct EnvelopeV1 {
        position: u64,
        stream: String,
        stream_version: u64,
        tenant: String,
        type_code: u16,
        schema_version: u16,
        recorded_at_us: i64,
        actor: String,
        correlation_id: String,
        idempotency_key: Option<String>,
    }

    /// What bincode makes of an envelope and the payload after it. The limit only keeps
    /// bincode from allocating whatever a damaged length says (it would abort the test);
    /// every envelope here is far below it.
    fn reference(rest: &[u8]) -> Option<(Envelope, Vec<u8>)> {
        let config = bincode::config::standard().with_limit::<{ 1 << 20 }>();
        let (wire, used): (EnvelopeV1, usize) =
            bincode::serde::decode_from_slice(rest, config).ok()?;
        let envelope = Envelope {
            position: wire.position,
            stream: wire.stream,
            stream_version: wire.stream_version,
            tenant: wire.tenant,
            type_code: wire.type_code,
            schema_version: wire.schema_version,
            recorded_at_us: wire.recorded_at_us,
            actor: wire.actor,
            correlation_id: wire.correlation_id,
            idempotency_key: wire.idempotency_key,
        };
        Some((envelope, rest[used..].to_vec()))
    }

    fn by_hand(rest: &[u8]) -> Option<(Envelope, Vec<u8>)> {
        let mut wire = Wire { bytes: rest };
        let envelope = wire.envelope().ok()?;
        Some((envelope.owned(), wire.bytes.to_vec()))
    }

    fn sample() -> (Envelope, Vec<u8>) {
        let envelope = Envelope {
            position: 300,
            stream: "usr_1".into(),
            stream_version: 2,
            tenant: "ten_a".into(),
            type_code: 4901,
            schema_version: 1,
            recorded_at_us: -1,
            actor: "adm".into(),
            correlation_id: "c".into(),
            idempotency_key: Some("k".into()),
        };
        (envelope, vec![0xde, 0xad])
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Pins every byte of a format-1 record. If this fails, stored logs no longer decode:
    /// add a new format byte instead of changing this one. The body was derived by hand from
    /// bincode's standard config (integers < 251 are one byte, up to u16::MAX are `fb` + u16
    /// LE, i64 is zigzagged, strings are length + bytes, `Option` is a 0/1 tag), and the crc
    /// checked against an independent crc32c (Castagnoli) implementation.
    #[test]
    fn golden_bytes_format_1() {
        let (envelope, payload) = sample();
        let expected = concat!(
            "21000000", // body length 33, u32 LE
            "86add8bf", // crc32c of the body, u32 LE
            "01",       // format byte
            "fb2c01",   // position 300
            "05",
            "7573725f31", // stream "usr_1"
            "02",         // stream_version 2
            "05",
            "74656e5f61", // tenant "ten_a"
            "fb2513",     // type_code 4901
            "01",         // schema_version 1
            "01",         // recorded_at_us -1, zigzag
            "03",
            "61646d", // actor "adm"
            "01",
            "63", // correlation_id "c"
            "01",
            "01",
            "6b",   // idempotency_key Some("k")
            "dead", // payload
        );
        assert_eq!(hex(&encode_record(&envelope, &payload)), expected);
    }

    /// A borrowed record is the record as stored, followed by whatever comes next: its
    /// `bytes` are exactly its frame, and copied out it is what [`decode_record`] reads.
    #[test]
    fn a_borrowed_record_spans_its_frame_and_copies_to_the_owned_one() {
        let (envelope, payload) = sample();
        let record = encode_record(&envelope, &payload);
        let mut stored = record.clone();
        stored.extend_from_slice(&encode_record(&envelope, &[7]));
        let (borrowed, len) = decode_record_ref(&stored).unwrap();
        assert_eq!(len, record.len());
        assert_eq!(borrowed.bytes, &record[..]);
        assert_eq!(borrowed.payload, &payload[..]);
        assert_eq!(borrowed.envelope, envelope.borrowed());
        let owned = RecordedEvent { envelope, payload };
        assert_eq!(borrowed.owned(), owned);
        assert_eq!(decode_record(&stored).unwrap(), (owned, len));
    }

    /// The wider integer encodings (`fc` + u32, `fd` + u64), `None`, empty strings and an
    /// empty payload, derived the same way.
    #[test]
    fn golden_bytes_format_1_wide_integers_and_empties() {
        let envelope = Envelope {
            position: 70_000,
            stream: "s".into(),
            stream_version: 1,
            tenant: "root".into(),
            type_code: 255,
            schema_version: 250,
            recorded_at_us: 1_700_000_000_000_000,
            actor: String::new(),
            correlation_id: String::new(),
            idempotency_key: None,
        };
        let expected = concat!(
            "1e000000",           // body length 30
            "e8b0f6d5",           // crc32c
            "01",                 // format byte
            "fc70110100",         // position 70000: `fc` + u32 LE
            "0173",               // stream "s"
            "01",                 // stream_version 1
            "04726f6f74",         // tenant "root"
            "fbff00",             // type_code 255 (≥ 251 takes `fb` + u16)
            "fa",                 // schema_version 250
            "fd00803c3048140c00", // recorded_at_us, zigzag 3.4e15: `fd` + u64 LE
            "00",                 // actor ""
            "00",                 // correlation_id ""
            "00",                 // idempotency_key None
        );
        assert_eq!(hex(&encode_record(&envelope, &[])), expected);
        let (decoded, _) = decode_record(&encode_record(&envelope, &[])).unwrap();
        assert_eq!(decoded.envelope, envelope);
    }

    #[test]
    fn decodes_what_it_encodes_and_reports_length() {
        let (envelope, payload) = sample();
        let mut bytes = encode_record(&envelope, &payload);
        let len = bytes.len();
        bytes.extend_from_slice(b"next record");
        let (decoded, used) = decode_record(&bytes).unwrap();
        assert_eq!(used, len);
        assert_eq!(decoded.envelope, envelope);
        assert_eq!(decoded.payload, payload);
    }

    #[test]
    fn unknown_format_byte_is_an_error() {
        let (envelope, payload) = sample();
        let mut bytes = encode_record(&envelope, &payload);
        bytes[FRAME_HEADER_LEN] = 2;
        let crc = crc32c::crc32c(&bytes[FRAME_HEADER_LEN..]);
        bytes[4..8].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode_record(&bytes).unwrap_err(),
            CodecError::UnknownFormat(2)
        );
    }

    #[test]
    fn flipped_bit_is_a_crc_error() {
        let (envelope, payload) = sample();
        let mut bytes = encode_record(&envelope, &payload);
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        assert!(matches!(decode_record(&bytes), Err(CodecError::Crc { .. })));
    }

    #[test]
    fn truncated_record_is_an_error() {
        let (envelope, payload) = sample();
        let bytes = encode_record(&envelope, &payload);
        assert_eq!(
            decode_record(&bytes[..bytes.len() - 1]).unwrap_err(),
            CodecError::Truncated {
                needed: bytes.len(),
                available: bytes.len() - 1
            }
        );
        assert!(matches!(
            decode_record(&bytes[..3]),
            Err(CodecError::Truncated { .. })
        ));
    }

    fn arb_envelope() -> impl Strategy<Value = Envelope> {
        (
            (any::<u64>(), ".{0,20}", any::<u64>(), ".{0,12}"),
            (any::<u16>(), any::<u16>(), any::<i64>()),
            (".{0,12}", ".{0,40}", proptest::option::of(".{0,30}")),
        )
            .prop_map(
                |(
                    (position, stream, stream_version, tenant),
                    (type_code, schema_version, recorded_at_us),
                    (actor, correlation_id, idempotency_key),
                )| Envelope {
                    position,
                    stream,
                    stream_version,
                    tenant,
                    type_code,
                    schema_version,
                    recorded_at_us,
                    actor,
                    correlation_id,
                    idempotency_key,
                },
            )
    }

    proptest! {
        /// Damaged envelopes (bytes replaced, inserted or cut, including varint markers,
        /// option tags and non-UTF-8) decode by hand exactly as bincode decodes them: the same
        /// envelope and payload, or an error from both.
        #[test]
        fn hand_decoding_matches_bincode(
            envelope in arb_envelope(),
            payload in proptest::collection::vec(any::<u8>(), 0..40),
            edits in proptest::collection::vec(
                (any::<prop::sample::Index>(), prop_oneof![Just(0u8), Just(1), Just(2), 250u8..=255, any::<u8>()], 0u8..3),
                0..4,
            ),
        ) {
            let record = encode_record(&envelope, &payload);
            let mut rest = record[FRAME_HEADER_LEN + 1..].to_vec();
            for (at, byte, kind) in edits {
                if rest.is_empty() {
                    break;
                }
                let i = at.index(rest.len());
                match kind {
                    0 => rest[i] = byte,
                    1 => rest.insert(i, byte),
                    _ => rest.truncate(i),
                }
            }
            prop_assert_eq!(by_hand(&rest), reference(&rest));
        }

        #[test]
        fn roundtrip(envelope in arb_envelope(), payload in proptest::collection::vec(any::<u8>(), 0..600)) {
            let bytes = encode_record(&envelope, &payload);
            prop_assert!(bytes.len() <= record_len(
                envelope.stream.len() + envelope.tenant.len() + envelope.actor.len()
                    + envelope.correlation_id.len()
                    + envelope.idempotency_key.as_ref().map_or(0, String::len),
                payload.len(),
            ));
            let (decoded, used) = decode_record(&bytes).unwrap();
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(decoded.envelope, envelope);
            prop_assert_eq!(decoded.payload, payload);
        }
    }
}
