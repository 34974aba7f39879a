//! Our own extractors, so that every bad input is a problem+json naming what was wrong:
//! [`Json`] (body → field path), [`Query`] (query string → parameter), [`IfMatch`], and
//! [`parse_id`] for ids in paths.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::str::FromStr;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::problem::ApiError;

/// SHA-256 of the request body, left in the request's extensions by [`Json`] for the
/// idempotency check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyDigest(pub [u8; 32]);

/// A JSON request body. Unlike actix's, a wrong type or an unknown field answers 400 with
/// `errors[].field` set to the JSON path (`hosts[1]`, `login_protection.max_failures`), a
/// body over the limit 413, and a non-JSON content type 415.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Json<T>, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type_ok = match req.headers().get(header::CONTENT_TYPE) {
            None => true,
            Some(v) => v.to_str().is_ok_and(|v| {
                let essence = v.split(';').next().unwrap_or("").trim();
                essence.eq_ignore_ascii_case("application/json")
                    || essence.to_ascii_lowercase().ends_with("+json")
            }),
        };
        let limit = limit_of(req);
        let body = web::Payload::from_request(req, payload).into_inner();
        let req = req.clone();
        Box::pin(async move {
            if !content_type_ok {
                return Err(ApiError::UnsupportedMediaType);
            }
            let body = body.map_err(|e| ApiError::Malformed(e.to_string()))?;
            let bytes = body
                .to_bytes_limited(limit)
                .await
                .map_err(|_| ApiError::PayloadTooLarge { limit })?
                .map_err(|e| ApiError::Malformed(format!("reading the request body: {e}")))?;
            req.extensions_mut()
                .insert(BodyDigest(Sha256::digest(&bytes).into()));
            parse_json(&bytes).map(Json)
        })
    }
}

fn limit_of(req: &HttpRequest) -> usize {
    req.app_data::<web::Data<crate::AppState>>()
        .map_or(crate::DEFAULT_BODY_LIMIT, |s| s.config.body_limit_bytes)
}

/// Deserializes a JSON body, naming the path of the first offending field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::Malformed(
            "the request body is empty; a JSON object is expected".into(),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(objects::Strict(&mut de)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            let message = strip_position(&inner.to_string());
            ApiError::invalid(field_of(&path, &message), message)
        } else {
            ApiError::Malformed(format!("the request body is not valid JSON: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::Malformed(format!("trailing data after the JSON body: {e}")))?;
    Ok(value)
}

/// The path of the offending field. A missing field is reported at its parent, so its name
/// is taken from serde's message. So is a field refused by a struct's own conversion
/// (`#[serde(try_from)]`, which words it as serde does), while serde itself reports an
/// unknown field at the field.
fn field_of(path: &str, message: &str) -> String {
    let named = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
    };
    let child = match (named("missing field `"), named("unknown field `")) {
        (Some(name), _) => Some(name),
        (None, Some(name)) if path != name && !path.ends_with(&format!(".{name}")) => Some(name),
        _ => None,
    };
    match (path, child) {
        (".", Some(name)) => name.to_owned(),
        (".", None) => "body".to_owned(),
        (parent, Some(name)) => format!("{parent}.{name}"),
        (path, None) => path.to_owned(),
    }
}

/// serde_json appends " at line L column C" to data errors; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// A query string, deserialized with the offending parameter named in the 400.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = Ready<Result<Query<T>, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(
            req.query_string().as_bytes(),
        ));
        ready(
            serde_path_to_error::deserialize(de)
                .map(Query)
                .map_err(|e| {
                    let path = e.path().to_string();
                    let message = e.into_inner().to_string();
                    let field = if path == "." {
                        // Unknown parameters and missing ones are reported at the root;
                        // the message names them.
                        "query".to_owned()
                    } else {
                        path
                    };
                    ApiError::invalid(field, message)
                }),
        )
    }
}

/// `If-Match: <version>` (quotes and a weak `W/` prefix are accepted); absent means "any".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfMatch(pub Option<u64>);

impl FromRequest for IfMatch {
    type Error = ApiError;
    type Future = Ready<Result<IfMatch, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = match req.headers().get(header::IF_MATCH) {
            None => Ok(IfMatch(None)),
            Some(v) => v
                .to_str()
                .ok()
                .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
                .and_then(|v| v.parse().ok())
                .map(|v| IfMatch(Some(v)))
                .ok_or_else(|| {
                    ApiError::invalid("If-Match", "must be a resource version, e.g. \"3\"")
                }),
        };
        ready(parsed)
    }
}

/// For nullable PATCH fields: tells a field given as `null` (`Some(None)`) from one left out
/// (`None`). Use as `#[serde(default, deserialize_with = "crate::extract::present")]` on an
/// `Option<Option<T>>`, with `#[schema(value_type = Option<T>)]`.
pub fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Parses an id from a path or body field; a malformed id is a 400 naming `field`.
pub fn parse_id<T>(field: &str, raw: &str) -> Result<T, ApiError>
where
    T: FromStr<Err = domain::IdError>,
{
    raw.parse()
        .map_err(|e: domain::IdError| ApiError::invalid(field, e.to_string()))
}

/// serde fills a struct from a JSON array as readily as from an object, taking the fields
/// by position: `{"permissions": []}` would be read as permissions with every field left
/// out, `[1, 2]` as a whole body. [`Strict`] wraps a deserializer, and every value, map,
/// sequence and enum it hands out, so that each struct anywhere in the body is read with
/// [`ObjectOnly`], which refuses an array; `serde_path_to_error` wraps it in turn and names
/// the field. It also reads enums so that a mistyped one is a type error at its field.
/// Types that buffer their input first (`#[serde(flatten)]`, internally tagged or untagged
/// enums) read nested structs from that buffer, out of its reach: the request types use
/// none, and read a tagged body through a flat struct (`#[serde(try_from)]`) instead.
mod objects {
    use std::fmt;

    use serde::de::value::{BorrowedStrDeserializer, MapAccessDeserializer};
    use serde::de::{
        DeserializeSeed, Deserializer, EnumAccess, Error, IntoDeserializer, MapAccess, SeqAccess,
        Unexpected, VariantAccess, Visitor,
    };

    pub(super) struct Strict<T>(pub T);

    /// The visitor of a struct: a map is read as usual, an array refused.
    struct ObjectOnly<V>(V);

    impl<'de, V: Visitor<'de>> Visitor<'de> for ObjectOnly<V> {
        type Value = V::Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.expecting(f)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
            self.0.visit_map(Strict(map))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<V::Value, A::Error> {
            Err(A::Error::invalid_type(Unexpected::Seq, &"a JSON object"))
        }
    }

    macro_rules! forward_deserialize {
        ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
                self.0.$method($($arg,)* Strict(visitor))
            }
        )*};
    }

    impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<D> {
        type Error = D::Error;

        forward_deserialize! {
            deserialize_any();
            deserialize_bool();
            deserialize_i8();
            deserialize_i16();
            deserialize_i32();
            deserialize_i64();
            deserialize_i128();
            deserialize_u8();
            deserialize_u16();
            deserialize_u32();
            deserialize_u64();
            deserialize_u128();
            deserialize_f32();
            deserialize_f64();
            deserialize_char();
            deserialize_str();
            deserialize_string();
            deserialize_bytes();
            deserialize_byte_buf();
            deserialize_option();
            deserialize_unit();
            deserialize_unit_struct(name: &'static str);
            deserialize_newtype_struct(name: &'static str);
            deserialize_seq();
            deserialize_tuple(len: usize);
            deserialize_tuple_struct(name: &'static str, len: usize);
            deserialize_map();
            deserialize_identifier();
            deserialize_ignored_any();
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            name: &'static str,
            fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_struct(name, fields, ObjectOnly(visitor))
        }

        /// serde_json answers anything but a string or an object where an enum is expected
        /// with a syntax error ("expected value"), as if the body were not JSON, naming no
        /// field; read as any value, it is a type error at the field.
        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _: &'static str,
            _: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_any(EnumOf(visitor))
        }

        fn is_human_readable(&self) -> bool {
            self.0.is_human_readable()
        }
    }

    /// The visitor of an enum read with `deserialize_any`: a string names a unit variant,
    /// an object `{"variant": value}` any variant; other values are refused.
    struct EnumOf<V>(V);

    impl<'de, V: Visitor<'de>> Visitor<'de> for EnumOf<V> {
        type Value = V::Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.expecting(f)
        }

        fn visit_str<E: Error>(self, v: &str) -> Result<V::Value, E> {
            self.0.visit_enum(v.into_deserializer())
        }

        fn visit_borrowed_str<E: Error>(self, v: &'de str) -> Result<V::Value, E> {
            self.0.visit_enum(BorrowedStrDeserializer::new(v))
        }

        fn visit_string<E: Error>(self, v: String) -> Result<V::Value, E> {
            self.0.visit_enum(v.into_deserializer())
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
            self.0.visit_enum(MapAccessDeserializer::new(Strict(map)))
        }
    }

    macro_rules! forward_visit {
        ($($method:ident($ty:ty);)*) => {$(
            fn $method<E: Error>(self, v: $ty) -> Result<V::Value, E> {
                self.0.$method(v)
            }
        )*};
    }

    impl<'de, V: Visitor<'de>> Visitor<'de> for Strict<V> {
        type Value = V::Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.expecting(f)
        }

        forward_visit! {
            visit_bool(bool);
            visit_i8(i8);
            visit_i16(i16);
            visit_i32(i32);
            visit_i64(i64);
            visit_i128(i128);
            visit_u8(u8);
            visit_u16(u16);
            visit_u32(u32);
            visit_u64(u64);
            visit_u128(u128);
            visit_f32(f32);
            visit_f64(f64);
            visit_char(char);
            visit_str(&str);
            visit_borrowed_str(&'de str);
            visit_string(String);
            visit_bytes(&[u8]);
            visit_borrowed_bytes(&'de [u8]);
            visit_byte_buf(Vec<u8>);
        }

        fn visit_none<E: Error>(self) -> Result<V::Value, E> {
            self.0.visit_none()
        }

        fn visit_unit<E: Error>(self) -> Result<V::Value, E> {
            self.0.visit_unit()
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
            self.0.visit_some(Strict(d))
        }

        fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
            self.0.visit_newtype_struct(Strict(d))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
            self.0.visit_seq(Strict(seq))
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
            self.0.visit_map(Strict(map))
        }

        fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
            self.0.visit_enum(Strict(data))
        }
    }

    impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Strict<S> {
        type Value = S::Value;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
            self.0.deserialize(Strict(d))
        }
    }

    impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Strict<A> {
        type Error = A::Error;

        fn next_element_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> Result<Option<T::Value>, A::Error> {
            self.0.next_element_seed(Strict(seed))
        }

        fn size_hint(&self) -> Option<usize> {
            self.0.size_hint()
        }
    }

    impl<'de, A: MapAccess<'de>> MapAccess<'de> for Strict<A> {
        type Error = A::Error;

        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, A::Error> {
            self.0.next_key_seed(Strict(seed))
        }

        fn next_value_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> Result<T::Value, A::Error> {
            self.0.next_value_seed(Strict(seed))
        }

        fn size_hint(&self) -> Option<usize> {
            self.0.size_hint()
        }
    }

    impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Strict<A> {
        type Error = A::Error;
        type Variant = Strict<A::Variant>;

        fn variant_seed<T: DeserializeSeed<'de>>(
            self,
            seed: T,
        ) -> Result<(T::Value, Self::Variant), A::Error> {
            let (value, variant) = self.0.variant_seed(Strict(seed))?;
            Ok((value, Strict(variant)))
        }
    }

    impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Strict<A> {
        type Error = A::Error;

        fn unit_variant(self) -> Result<(), A::Error> {
            self.0.unit_variant()
        }

        fn newtype_variant_seed<T: DeserializeSeed<'de>>(
            self,
            seed: T,
        ) -> Result<T::Value, A::Error> {
            self.0.newtype_variant_seed(Strict(seed))
        }

        fn tuple_variant<V: Visitor<'de>>(
            self,
            len: usize,
            visitor: V,
        ) -> Result<V::Value, A::Error> {
            self.0.tuple_variant(len, Strict(visitor))
        }

        fn struct_variant<V: Visitor<'de>>(
            self,
            fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, A::Error> {
            self.0.struct_variant(fields, ObjectOnly(visitor))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Inner {
        a: bool,
        b: Vec<u32>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Shape {
        Circle { r: u32 },
        Square(Inner),
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        On,
        Off,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[serde(default)]
        inner: Option<Inner>,
        #[serde(default)]
        list: Vec<Inner>,
        #[serde(default)]
        map: BTreeMap<String, Inner>,
        #[serde(default)]
        shape: Option<Shape>,
        #[serde(default, deserialize_with = "present")]
        nullable: Option<Option<Inner>>,
        #[serde(default)]
        mode: Option<Mode>,
    }

    fn field(body: &str) -> String {
        match parse_json::<Outer>(body.as_bytes()) {
            Err(ApiError::Invalid(errors)) => errors[0].field.clone(),
            other => panic!("{body}: expected a 400 naming a field, got {other:?}"),
        }
    }

    #[test]
    fn an_array_is_refused_wherever_an_object_is_expected() {
        assert_eq!(field("[]"), "body");
        assert_eq!(field(r#"{"inner": []}"#), "inner");
        assert_eq!(field(r#"{"inner": [true, [1]]}"#), "inner");
        assert_eq!(field(r#"{"list": [{}, []]}"#), "list[1]");
        assert_eq!(field(r#"{"map": {"k": []}}"#), "map.k");
        assert_eq!(field(r#"{"shape": {"circle": [1]}}"#), "shape.circle");
        assert_eq!(field(r#"{"shape": {"square": []}}"#), "shape.square");
        assert_eq!(field(r#"{"nullable": []}"#), "nullable");
    }

    #[test]
    fn objects_arrays_and_nulls_still_read_as_before() {
        let outer: Outer = parse_json(
            br#"{"inner": {"b": [1, 2]}, "list": [{"a": true}], "map": {"k": {}},
                "shape": {"circle": {"r": 2}}, "nullable": null, "mode": "off"}"#,
        )
        .unwrap();
        assert_eq!(
            outer.inner,
            Some(Inner {
                a: false,
                b: vec![1, 2]
            })
        );
        assert_eq!(outer.list, vec![Inner { a: true, b: vec![] }]);
        assert_eq!(outer.map["k"], Inner::default());
        assert_eq!(outer.shape, Some(Shape::Circle { r: 2 }));
        assert_eq!(outer.nullable, Some(None));
        assert_eq!(outer.mode, Some(Mode::Off));
        let square: Outer = parse_json(br#"{"shape": {"square": {"a": true}}}"#).unwrap();
        assert!(matches!(
            square.shape,
            Some(Shape::Square(Inner { a: true, .. }))
        ));
    }

    #[test]
    fn a_field_refused_by_a_conversion_is_named_under_its_parent() {
        // serde reports an unknown field at the field itself, a `try_from` conversion at
        // the struct it converts.
        assert_eq!(field_of("zz", "unknown field `zz`, expected `a`"), "zz");
        assert_eq!(field_of("a.zz", "unknown field `zz`, expected `a`"), "a.zz");
        assert_eq!(
            field_of(".", "unknown field `url`, expected `version`"),
            "url"
        );
        assert_eq!(
            field_of("action", "unknown field `url`, there are no fields"),
            "action.url"
        );
        assert_eq!(field_of(".", "missing field `kind`"), "kind");
        assert_eq!(
            field_of("a", "invalid type: integer `5`, expected a string"),
            "a"
        );
    }

    #[test]
    fn other_mistakes_name_their_field() {
        assert_eq!(field(r#"{"inner": {"b": ["x"]}}"#), "inner.b[0]");
        assert_eq!(field(r#"{"inner": {"zz": 1}}"#), "inner.zz");
        assert_eq!(field(r#"{"zz": 1}"#), "zz");
        assert_eq!(field(r#"{"shape": {"circle": {}}}"#), "shape.circle.r");
        assert_eq!(field(r#"{"shape": "circle"}"#), "shape.circle");
        assert_eq!(field(r#"{"shape": {"oval": {}}}"#), "shape");
        assert_eq!(field(r#"{"mode": "dim"}"#), "mode");
        for wrong in ["5", "true", "[\"on\"]"] {
            assert_eq!(field(&format!(r#"{{"mode": {wrong}}}"#)), "mode", "{wrong}");
        }
        assert!(matches!(
            parse_json::<Outer>(b"{} trailing"),
            Err(ApiError::Malformed(_))
        ));
        assert!(matches!(
            parse_json::<Outer>(b" "),
            Err(ApiError::Malformed(_))
        ));
    }
}
