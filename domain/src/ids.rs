//! Typed, prefixed identifiers.
//!
//! An id renders as `<prefix>_<ULID>`: the prefix names the kind so a pasted id can never be
//! mistaken for another kind, and the ULID body sorts by creation time. The domain never makes
//! up ids itself: callers pass the millisecond timestamp and the random bits, which keeps this
//! crate free of clocks and randomness.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;
use ulid::Ulid;

/// Why a string is not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    #[error("expected an id starting with `{expected}_`")]
    WrongPrefix { expected: &'static str },
    #[error("the body of a `{prefix}_` id must be a 26-character upper-case ULID")]
    BadBody { prefix: &'static str },
}

/// A ULID as its 16 big-endian bytes. They sort as the number does, and their alignment of 1
/// (a `u128`'s is 16) keeps an `Option` of an id or a [`TenantRef`] at 17 bytes instead of
/// 32: an event or a job carries up to seven ids, and a replay moves and keeps millions.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct UlidBytes([u8; 16]);

impl UlidBytes {
    const fn of(ulid: Ulid) -> Self {
        UlidBytes(ulid.0.to_be_bytes())
    }

    fn ulid(self) -> Ulid {
        Ulid(u128::from_be_bytes(self.0))
    }
}

/// One 128-bit write, as hashing the `Ulid` did, rather than a length and 16 bytes.
impl Hash for UlidBytes {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u128(u128::from_ne_bytes(self.0));
    }
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(UlidBytes);

        impl $name {
            /// The prefix before the underscore, e.g. `usr`.
            pub const PREFIX: &'static str = $prefix;

            /// Builds an id from a creation time in Unix milliseconds and 80 random bits
            /// (higher bits of `random` are ignored), both supplied by the caller.
            pub fn new(timestamp_ms: u64, random: u128) -> Self {
                Self::from_ulid(Ulid::from_parts(timestamp_ms, random))
            }

            pub const fn from_ulid(ulid: Ulid) -> Self {
                Self(UlidBytes::of(ulid))
            }

            pub fn ulid(self) -> Ulid {
                self.0.ulid()
            }

            /// Creation time in Unix milliseconds, as given to [`Self::new`].
            pub fn timestamp_ms(self) -> u64 {
                self.ulid().timestamp_ms()
            }

            /// Parses the canonical form only (`usr_01H…`, upper-case body), so every id has
            /// exactly one spelling and string keys built from ids never alias.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                let body = s
                    .strip_prefix($prefix)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .ok_or(IdError::WrongPrefix { expected: $prefix })?;
                canonical_ulid(body)
                    .map(Self::from_ulid)
                    .ok_or(IdError::BadBody { prefix: $prefix })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}_{}", $prefix, self.ulid())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if serializer.is_human_readable() {
                    serializer.collect_str(self)
                } else {
                    serializer.serialize_bytes(&self.0 .0)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                IdVisitor {
                    parse: Self::parse,
                    binary: |bytes| Self(UlidBytes(bytes)),
                }
                .read(deserializer)
            }
        }
    };
}

prefixed_id!(
    /// A tenant (`ten_…`).
    TenantId, "ten"
);
prefixed_id!(
    /// An admin, root or tenant level (`adm_…`).
    AdminId, "adm"
);
prefixed_id!(
    /// An end user (`usr_…`).
    UserId, "usr"
);
prefixed_id!(
    /// A policy (`pol_…`).
    PolicyId, "pol"
);
prefixed_id!(
    /// A protected item, what a user backs up (`itm_…`).
    ItemId, "itm"
);
prefixed_id!(
    /// A storage vault, where a user backs up to (`vlt_…`).
    VaultId, "vlt"
);
prefixed_id!(
    /// A schedule, a backup rule (`sch_…`).
    ScheduleId, "sch"
);
prefixed_id!(
    /// A registered device running the agent (`dev_…`).
    DeviceId, "dev"
);
prefixed_id!(
    /// A job reported by a device or recorded by the scheduler (`job_…`).
    JobId, "job"
);
prefixed_id!(
    /// A webhook endpoint (`whk_…`).
    WebhookId, "whk"
);
prefixed_id!(
    /// An email report (`rpt_…`).
    ReportId, "rpt"
);
prefixed_id!(
    /// A bulk upgrade campaign (`cmp_…`).
    CampaignId, "cmp"
);

/// The owner of an object: the top level (`root`) or one tenant.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TenantRef {
    Root,
    Tenant(TenantId),
}

impl TenantRef {
    pub const ROOT: &'static str = "root";

    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s == Self::ROOT {
            Ok(TenantRef::Root)
        } else {
            TenantId::parse(s).map(TenantRef::Tenant)
        }
    }

    pub fn tenant_id(self) -> Option<TenantId> {
        match self {
            TenantRef::Root => None,
            TenantRef::Tenant(id) => Some(id),
        }
    }
}

impl From<TenantId> for TenantRef {
    fn from(id: TenantId) -> Self {
        TenantRef::Tenant(id)
    }
}

impl fmt::Display for TenantRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TenantRef::Root => f.write_str(Self::ROOT),
            TenantRef::Tenant(id) => fmt::Display::fmt(id, f),
        }
    }
}

impl fmt::Debug for TenantRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for TenantRef {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

/// In binary formats the root is written as no bytes at all and a tenant as its id's 16.
impl Serialize for TenantRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            _ if serializer.is_human_readable() => serializer.collect_str(self),
            TenantRef::Root => serializer.serialize_bytes(&[]),
            TenantRef::Tenant(id) => id.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for TenantRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IdVisitor {
            parse: Self::parse,
            binary: |bytes| TenantRef::Tenant(TenantId(UlidBytes(bytes))),
        }
        .read(deserializer)
    }
}

/// Reads an id as text (human-readable formats) or as bytes (binary formats).
///
/// Binary formats carry an id as its ULID's 16 big-endian bytes (the root [`TenantRef`] as
/// none). Event payloads of schema version 1 and older snapshots carry the text instead;
/// bincode writes text and bytes alike (a length, then the bytes), and no text form is 0 or
/// 16 bytes long, so one decoder reads both and records written years ago still decode.
struct IdVisitor<T> {
    parse: fn(&str) -> Result<T, IdError>,
    /// The id of a ULID's 16 big-endian bytes.
    binary: fn([u8; 16]) -> T,
}

impl<T> IdVisitor<T> {
    fn read<'de, D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(self)
        } else {
            deserializer.deserialize_bytes(self)
        }
    }
}

impl<'de, T> serde::de::Visitor<'de> for IdVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a prefixed id")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        (self.parse)(v).map_err(E::custom)
    }
    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<T, E> {
        match <[u8; 16]>::try_from(v) {
            Ok(raw) => Ok((self.binary)(raw)),
            // Only a `TenantRef` parses the root's name; any other kind reports its prefix.
            Err(_) if v.is_empty() => (self.parse)(TenantRef::ROOT).map_err(E::custom),
            Err(_) => match std::str::from_utf8(v) {
                Ok(text) => self.visit_str(text),
                Err(_) => Err(E::invalid_value(serde::de::Unexpected::Bytes(v), &self)),
            },
        }
    }
}

/// Value of each canonical ULID digit (Crockford base32, upper case: no I, L, O or U), or
/// [`NOT_A_DIGIT`].
const DIGITS: [u8; 256] = {
    let alphabet = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut table = [NOT_A_DIGIT; 256];
    let mut i = 0;
    while i < alphabet.len() {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Has a bit no digit value (< 32) has.
const NOT_A_DIGIT: u8 = 0x80;

/// Decodes a canonical ULID body (26 digits of [`DIGITS`], the first at most `7` so that the
/// value fits 128 bits) in one pass: ids are parsed for every event replayed, so this is
/// the decoder `ulid` would run, without its separate validation pass.
fn canonical_ulid(body: &str) -> Option<Ulid> {
    let digits: &[u8; 26] = body.as_bytes().try_into().ok()?;
    if digits[0] > b'7' {
        return None;
    }
    let mut value = 0u128;
    let mut seen = 0u8;
    for &digit in digits {
        let d = DIGITS[usize::from(digit)];
        seen |= d;
        value = value << 5 | u128::from(d);
    }
    (seen & NOT_A_DIGIT == 0).then_some(Ulid(value))
}

/// The id of whatever an event is about, for audit logs and webhook `resource_id`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ResourceId {
    /// The server-wide singleton (settings, start-up).
    Server,
    Tenant(TenantId),
    Admin(AdminId),
    User(UserId),
    Policy(PolicyId),
    Item(ItemId),
    Vault(VaultId),
    Schedule(ScheduleId),
    Device(DeviceId),
    Job(JobId),
    Webhook(WebhookId),
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResourceId::Server => f.write_str("server"),
            ResourceId::Tenant(id) => id.fmt(f),
            ResourceId::Admin(id) => id.fmt(f),
            ResourceId::User(id) => id.fmt(f),
            ResourceId::Policy(id) => id.fmt(f),
            ResourceId::Item(id) => id.fmt(f),
            ResourceId::Vault(id) => id.fmt(f),
            ResourceId::Schedule(id) => id.fmt(f),
            ResourceId::Device(id) => id.fmt(f),
            ResourceId::Job(id) => id.fmt(f),
            ResourceId::Webhook(id) => id.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn renders_prefix_and_ulid() {
        let id = UserId::new(1_700_000_000_000, 42);
        assert_eq!(id.to_string(), "usr_01HF7YAT00000000000000001A");
        assert_eq!(id.timestamp_ms(), 1_700_000_000_000);
    }

    #[test]
    fn rejects_wrong_prefix_and_body() {
        let user = UserId::new(1, 2).to_string();
        assert_eq!(
            TenantId::parse(&user),
            Err(IdError::WrongPrefix { expected: "ten" })
        );
        assert_eq!(
            UserId::parse("usr01HF4BJR000000000000000016"),
            Err(IdError::WrongPrefix { expected: "usr" })
        );
        for body in [
            "",
            "01HF4BJR00000000000000001",
            "01HF4BJR0000000000000000166",
            "01hf4bjr000000000000000016",
            "81HF4BJR000000000000000016",
            "01HF4BJR00000000000000001U",
        ] {
            assert_eq!(
                UserId::parse(&format!("usr_{body}")),
                Err(IdError::BadBody { prefix: "usr" }),
                "{body}"
            );
        }
    }

    #[test]
    fn tenant_ref_renders_root_or_id() {
        assert_eq!(TenantRef::Root.to_string(), "root");
        let t = TenantId::new(5, 6);
        assert_eq!(TenantRef::from(t).to_string(), t.to_string());
        assert_eq!(TenantRef::parse("root"), Ok(TenantRef::Root));
        assert_eq!(TenantRef::parse(&t.to_string()), Ok(TenantRef::Tenant(t)));
        assert!(TenantRef::parse("ROOT").is_err());
    }

    #[test]
    fn serializes_as_string() {
        let id = JobId::new(1_700_000_000_000, 42);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<JobId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<DeviceId>(&json).is_err());
        let root = serde_json::to_string(&TenantRef::Root).unwrap();
        assert_eq!(root, "\"root\"");
    }

    fn bincode<T: Serialize>(value: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
    }

    fn unbincode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .map(|(value, _)| value)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn binary_formats_carry_the_ulid_bytes() {
        let id = JobId::new(1_700_000_000_000, 42);
        let mut expected = vec![16];
        expected.extend(id.ulid().0.to_be_bytes());
        assert_eq!(bincode(&id), expected);
        assert_eq!(bincode(&TenantRef::Root), vec![0]);
        let tenant = TenantRef::Tenant(TenantId::new(5, 6));
        assert_eq!(bincode(&tenant).len(), 17);
        assert_eq!(unbincode::<TenantRef>(&bincode(&tenant)), Ok(tenant));
        assert_eq!(unbincode::<TenantRef>(&[0]), Ok(TenantRef::Root));
    }

    #[test]
    fn binary_formats_reject_what_is_no_id() {
        // The root's empty form is no job id, and a text form must be the right kind.
        assert!(unbincode::<JobId>(&[0]).is_err());
        let user = bincode(&UserId::new(1, 2).to_string());
        assert!(unbincode::<JobId>(&user).is_err());
        assert!(unbincode::<JobId>(&[3, 0xff, 0xfe, 0xfd]).is_err());
        assert!(unbincode::<TenantRef>(&bincode(&"ROOT")).is_err());
        // A truncated id is an error, not a shorter id.
        let id = bincode(&JobId::new(1, 2));
        assert!(unbincode::<JobId>(&id[..10]).is_err());
    }

    proptest! {
        /// Binary formats write the 16 ULID bytes and read those or the text that schema-1
        /// payloads and older snapshots hold.
        #[test]
        fn binary_roundtrip_and_text_compatibility(ms in 0u64..(1 << 48), random: u128, root: bool) {
            let id = DeviceId::new(ms, random);
            prop_assert_eq!(unbincode::<DeviceId>(&bincode(&id)), Ok(id));
            prop_assert_eq!(unbincode::<DeviceId>(&bincode(&id.to_string())), Ok(id));
            let tenant = if root { TenantRef::Root } else { TenantRef::Tenant(TenantId::new(ms, random)) };
            prop_assert_eq!(unbincode::<TenantRef>(&bincode(&tenant)), Ok(tenant));
            prop_assert_eq!(unbincode::<TenantRef>(&bincode(&tenant.to_string())), Ok(tenant));
        }

        #[test]
        fn parse_print_roundtrip(ms in 0u64..(1 << 48), random: u128) {
            let id = ItemId::new(ms, random);
            let text = id.to_string();
            prop_assert_eq!(ItemId::parse(&text), Ok(id));
            prop_assert_eq!(text.len(), 4 + 26);
            let tenant = TenantRef::Tenant(TenantId::new(ms, random));
            prop_assert_eq!(TenantRef::parse(&tenant.to_string()), Ok(tenant));
        }

        #[test]
        fn string_order_matches_id_order(a in 0u64..(1 << 48), b in 0u64..(1 << 48), ra: u128, rb: u128) {
            let (x, y) = (VaultId::new(a, ra), VaultId::new(b, rb));
            prop_assert_eq!(x.cmp(&y), x.to_string().cmp(&y.to_string()));
        }

        /// The one-pass decoder accepts exactly the canonical spellings (upper-case Crockford
        /// digits, the first at most `7`) and reads them as the `ulid` crate does.
        #[test]
        fn body_decoding_matches_the_ulid_crate(
            body in prop_oneof!["[0-7][0-9A-HJKMNP-TV-Z]{25}", "[0-9A-Za-z]{25,27}"],
        ) {
            let canonical = body.len() == 26
                && body.as_bytes()[0] <= b'7'
                && body.bytes().all(|b| b"0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(&b));
            let expected = canonical.then(|| Ulid::from_string(&body).ok()).flatten();
            prop_assert_eq!(canonical_ulid(&body), expected);
            let parsed = UserId::parse(&format!("usr_{body}")).ok().map(UserId::ulid);
            prop_assert_eq!(parsed, expected);
        }

        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = UserId::parse(&s);
            let _ = TenantRef::parse(&s);
        }
    }
}
