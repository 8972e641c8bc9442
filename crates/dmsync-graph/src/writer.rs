//! Graph documents written straight to bytes: an entity's properties, `$select` applied while
//! writing, and the OData collection envelope around them. No `serde_json::Value` is built for
//! an entity, which on a page of devices cost more than everything else the server did.
//!
//! The bytes are the ones serde_json wrote from its `Map`, which keeps keys sorted: properties
//! come in byte order of their names (the alphabetical order real Intune responses use), so a
//! wire struct may declare its fields in any order. Strings are escaped as serde_json escapes
//! them ([`crate::json::push_str`]); a property whose value is itself an object or an array is
//! written through `serde_json::Value`, so its keys are sorted too.

use std::fmt;

use serde::Serialize;
use serde::ser::{self, Impossible, SerializeMap, SerializeStruct};

use crate::json::push_str;

/// The properties a response keeps: every one, or the `$select`ed ones and `id` (Graph keeps
/// the key whatever is selected). Names compare case-insensitively, as Graph's do.
#[derive(Debug, Clone, Copy)]
pub struct Select<'a>(Option<&'a [String]>);

impl<'a> Select<'a> {
    pub const ALL: Select<'static> = Select(None);

    /// `$select` as parsed (`None` when absent); `*` selects everything.
    pub fn new(names: Option<&'a [String]>) -> Select<'a> {
        Select(names.filter(|names| !names.iter().any(|n| n == "*")))
    }

    pub fn keeps(&self, property: &str) -> bool {
        match self.0 {
            None => true,
            Some(names) => property == "id" || names.iter().any(|n| n.eq_ignore_ascii_case(property)),
        }
    }
}

/// An error from writing an entity: the wire type is not an object, or a nested value did not
/// serialise. Wire types are plain data, so this is a programming error.
#[derive(Debug)]
pub struct WriteError(String);

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WriteError {}

impl ser::Error for WriteError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        WriteError(message.to_string())
    }
}

/// Where one property was written: its `"name":value` bytes start at `start` (after any comma),
/// the quoted name ends at `name_end`, and the value ends at `end`.
#[derive(Clone, Copy)]
struct Member {
    start: usize,
    name_end: usize,
    end: usize,
}

/// Writes the members of one JSON object (no braces) into a buffer, in sorted order of their
/// names. Members are written where they arrive; only when a name arrives out of order are the
/// object's members copied out once and written back sorted.
pub struct EntityWriter<'a> {
    out: &'a mut Vec<u8>,
    select: Select<'a>,
    /// Whether the object already has a member before the ones this writer writes.
    after_member: bool,
    first_start: usize,
    members: Vec<Member>,
    sorted: bool,
    scratch: Vec<u8>,
    pending_name: String,
}

impl<'a> EntityWriter<'a> {
    /// A writer appending to `out`, inside an object that already has a member when
    /// `after_member` (the writer then starts with a comma).
    pub fn new(out: &'a mut Vec<u8>, select: Select<'a>, after_member: bool) -> EntityWriter<'a> {
        let first_start = out.len();
        EntityWriter {
            out,
            select,
            after_member,
            first_start,
            members: Vec::with_capacity(32),
            sorted: true,
            scratch: Vec::new(),
            pending_name: String::new(),
        }
    }

    /// Writes the top-level properties of `entity`, a struct or a map, that `$select` keeps.
    pub fn properties<T: Serialize + ?Sized>(&mut self, entity: &T) -> Result<(), WriteError> {
        entity.serialize(TopLevel { writer: self })
    }

    /// Writes one property whose value is already JSON (`null` for an expanded navigation
    /// property with nothing behind it). `$select` does not apply: the caller asked for it.
    pub fn raw(&mut self, name: &str, json: &str) {
        self.begin(name);
        self.out.extend_from_slice(json.as_bytes());
        self.end();
    }

    fn begin(&mut self, name: &str) -> usize {
        if self.after_member || !self.members.is_empty() {
            self.out.push(b',');
        }
        let start = self.out.len();
        push_str(self.out, name);
        let name_end = self.out.len();
        self.out.push(b':');
        if let Some(last) = self.members.last() {
            let previous = &self.out[last.start..last.name_end];
            if previous >= &self.out[start..name_end] {
                self.sorted = false;
            }
        }
        self.members.push(Member { start, name_end, end: start });
        start
    }

    fn end(&mut self) {
        let end = self.out.len();
        self.members.last_mut().expect("a member was begun").end = end;
    }

    /// Writes one property through serde.
    fn member<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<(), WriteError> {
        if !self.select.keeps(name) {
            return Ok(());
        }
        self.begin(name);
        let value_start = self.out.len();
        if let Err(Nested) = value.serialize(Scalar { out: &mut *self.out }) {
            // An object or an array: written as serde_json writes a `Value`, keys sorted.
            self.out.truncate(value_start);
            let tree = serde_json::to_value(value).map_err(ser::Error::custom)?;
            serde_json::to_writer(&mut *self.out, &tree).map_err(ser::Error::custom)?;
        }
        self.end();
        Ok(())
    }

    /// Puts the members in sorted order of their names if they did not arrive in it. A name
    /// written twice keeps its last value, in the place the sorted order gives it, as a map's
    /// insert does.
    pub fn finish(mut self) {
        if self.sorted {
            return;
        }
        let region = self.first_start..self.out.len();
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.out[region.clone()]);
        self.out.truncate(region.start);
        let base = region.start;
        let scratch = &self.scratch;
        let name = |m: &Member| &scratch[m.start - base..m.name_end - base];
        self.members.sort_by(|a, b| name(a).cmp(name(b)));
        let mut written = 0;
        for (i, m) in self.members.iter().enumerate() {
            if self.members.get(i + 1).is_some_and(|next| name(next) == name(m)) {
                continue;
            }
            if self.after_member || written > 0 {
                self.out.push(b',');
            }
            self.out.extend_from_slice(&scratch[m.start - base..m.end - base]);
            written += 1;
        }
    }
}

/// Writes a page of a collection:
/// `{"@odata.context":…,"@odata.count":…,"@odata.nextLink":…,"value":[…]}`, the count and the
/// link only when there are any, in the order the envelope always had.
pub struct PageWriter {
    out: Vec<u8>,
    items: usize,
}

impl PageWriter {
    pub fn new(context: &str, count: Option<u64>, next_link: Option<&str>) -> PageWriter {
        let mut out = Vec::with_capacity(16 * 1024);
        out.extend_from_slice(b"{\"@odata.context\":");
        push_str(&mut out, context);
        if let Some(count) = count {
            out.extend_from_slice(b",\"@odata.count\":");
            out.extend_from_slice(count.to_string().as_bytes());
        }
        if let Some(link) = next_link {
            out.extend_from_slice(b",\"@odata.nextLink\":");
            push_str(&mut out, link);
        }
        out.extend_from_slice(b",\"value\":[");
        PageWriter { out, items: 0 }
    }

    /// Appends one entity: its properties that `$select` keeps, then `extra` properties
    /// (already JSON), all in sorted order.
    pub fn push<T: Serialize + ?Sized>(
        &mut self,
        entity: &T,
        select: Select<'_>,
        extra: &[(&str, &str)],
    ) -> Result<(), WriteError> {
        if self.items > 0 {
            self.out.push(b',');
        }
        self.out.push(b'{');
        let mut writer = EntityWriter::new(&mut self.out, select, false);
        writer.properties(entity)?;
        for (name, json) in extra {
            writer.raw(name, json);
        }
        writer.finish();
        self.out.push(b'}');
        self.items += 1;
        Ok(())
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(b"]}");
        self.out
    }
}

/// One entity as a document of its own: `@odata.context` first, then its properties that
/// `$select` keeps and the `extra` ones, in sorted order.
pub fn entity_document<T: Serialize + ?Sized>(
    context: &str,
    entity: &T,
    select: Select<'_>,
    extra: &[(&str, &str)],
) -> Result<Vec<u8>, WriteError> {
    let mut out = Vec::with_capacity(2048);
    out.extend_from_slice(b"{\"@odata.context\":");
    push_str(&mut out, context);
    let mut writer = EntityWriter::new(&mut out, select, true);
    writer.properties(entity)?;
    for (name, json) in extra {
        writer.raw(name, json);
    }
    writer.finish();
    out.push(b'}');
    Ok(out)
}

/// The entity itself: a struct (its fields) or a map (flattened fields arrive as one).
struct TopLevel<'w, 'a> {
    writer: &'w mut EntityWriter<'a>,
}

fn not_an_object<T>() -> Result<T, WriteError> {
    Err(WriteError("a Graph entity must serialise as an object".into()))
}

impl<'w, 'a> ser::Serializer for TopLevel<'w, 'a> {
    type Ok = ();
    type Error = WriteError;
    type SerializeSeq = Impossible<(), WriteError>;
    type SerializeTuple = Impossible<(), WriteError>;
    type SerializeTupleStruct = Impossible<(), WriteError>;
    type SerializeTupleVariant = Impossible<(), WriteError>;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), WriteError>;

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, WriteError> {
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, WriteError> {
        Ok(self)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<(), WriteError> {
        value.serialize(self)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), WriteError> {
        value.serialize(self)
    }
    fn serialize_bool(self, _: bool) -> Result<(), WriteError> {
        not_an_object()
    }
    fn serialize_i8(self, _: i8) -> Result<(), WriteError> {
        not_an_object()
    }
    fn serialize_i16(self, _: i16) -> Result<(), WriteError> {
        not_an_object()
    }
    fn serialize_i32(self, _: i32) -> Result<(), WriteError> {
        not_an_object()
    }
    fn serialize_i64(self, _: i64) -> Result<(), WriteError> {
        not_an_object()
    }
    fn serialize_u8(self, _: u8) -> Result<(), WriteError> {
        not_an_object()
    }
    fn serialize_u16(self, _: u16) -> Result<(), WriteError> {
        not_an_object()
    }
    fn serialize_u32(self, _: u32) -> Result<(), WriteError> {
        not_an_object()
    }
    fn serialize_u64(self, _: u64) -> Result<(), WriteError> {
        not_an_object()
    }
    fn serialize_f32(self, _: f32) -> Result<(), WriteError> {
        not_an_object()
    }
    fn serialize_f64(self, _: f64) -> Result<(), WriteError> {
        not_an_object()
    }
    fn serialize_char(self, _: char) -> Result<(), WriteError> {
        not_an_object()
    }
    fn serialize_str(self, _: &str) -> Result<(), WriteError> {
        not_an_object()
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), WriteError> {
        not_an_object()
    }
    fn serialize_none(self) -> Result<(), WriteError> {
        not_an_object()
    }
    fn serialize_unit(self) -> Result<(), WriteError> {
        not_an_object()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), WriteError> {
        not_an_object()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), WriteError> {
        not_an_object()
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), WriteError> {
        not_an_object()
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, WriteError> {
        not_an_object()
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, WriteError> {
        not_an_object()
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, WriteError> {
        not_an_object()
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, WriteError> {
        not_an_object()
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, WriteError> {
        not_an_object()
    }
}

impl<'w, 'a> SerializeStruct for TopLevel<'w, 'a> {
    type Ok = ();
    type Error = WriteError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, name: &'static str, value: &T) -> Result<(), WriteError> {
        self.writer.member(name, value)
    }
    fn end(self) -> Result<(), WriteError> {
        Ok(())
    }
}

impl<'w, 'a> SerializeMap for TopLevel<'w, 'a> {
    type Ok = ();
    type Error = WriteError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), WriteError> {
        let mut name = std::mem::take(&mut self.writer.pending_name);
        name.clear();
        key.serialize(KeyName { name: &mut name })?;
        self.writer.pending_name = name;
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), WriteError> {
        let name = std::mem::take(&mut self.writer.pending_name);
        let outcome = self.writer.member(&name, value);
        self.writer.pending_name = name;
        outcome
    }
    fn end(self) -> Result<(), WriteError> {
        Ok(())
    }
}

/// A property name: a string.
struct KeyName<'n> {
    name: &'n mut String,
}

fn not_a_name<T>() -> Result<T, WriteError> {
    Err(WriteError("a property name must be a string".into()))
}

impl<'n> ser::Serializer for KeyName<'n> {
    type Ok = ();
    type Error = WriteError;
    type SerializeSeq = Impossible<(), WriteError>;
    type SerializeTuple = Impossible<(), WriteError>;
    type SerializeTupleStruct = Impossible<(), WriteError>;
    type SerializeTupleVariant = Impossible<(), WriteError>;
    type SerializeMap = Impossible<(), WriteError>;
    type SerializeStruct = Impossible<(), WriteError>;
    type SerializeStructVariant = Impossible<(), WriteError>;

    fn serialize_str(self, v: &str) -> Result<(), WriteError> {
        self.name.push_str(v);
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<(), WriteError> {
        self.name.push_str(variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<(), WriteError> {
        value.serialize(self)
    }
    fn serialize_bool(self, _: bool) -> Result<(), WriteError> {
        not_a_name()
    }
    fn serialize_i8(self, _: i8) -> Result<(), WriteError> {
        not_a_name()
    }
    fn serialize_i16(self, _: i16) -> Result<(), WriteError> {
        not_a_name()
    }
    fn serialize_i32(self, _: i32) -> Result<(), WriteError> {
        not_a_name()
    }
    fn serialize_i64(self, _: i64) -> Result<(), WriteError> {
        not_a_name()
    }
    fn serialize_u8(self, _: u8) -> Result<(), WriteError> {
        not_a_name()
    }
    fn serialize_u16(self, _: u16) -> Result<(), WriteError> {
        not_a_name()
    }
    fn serialize_u32(self, _: u32) -> Result<(), WriteError> {
        not_a_name()
    }
    fn serialize_u64(self, _: u64) -> Result<(), WriteError> {
        not_a_name()
    }
    fn serialize_f32(self, _: f32) -> Result<(), WriteError> {
        not_a_name()
    }
    fn serialize_f64(self, _: f64) -> Result<(), WriteError> {
        not_a_name()
    }
    fn serialize_char(self, _: char) -> Result<(), WriteError> {
        not_a_name()
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), WriteError> {
        not_a_name()
    }
    fn serialize_none(self) -> Result<(), WriteError> {
        not_a_name()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), WriteError> {
        not_a_name()
    }
    fn serialize_unit(self) -> Result<(), WriteError> {
        not_a_name()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), WriteError> {
        not_a_name()
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), WriteError> {
        not_a_name()
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, WriteError> {
        not_a_name()
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, WriteError> {
        not_a_name()
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, WriteError> {
        not_a_name()
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, WriteError> {
        not_a_name()
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, WriteError> {
        not_a_name()
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, WriteError> {
        not_a_name()
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, WriteError> {
        not_a_name()
    }
}

/// A property's value when it is a scalar (string, number, boolean, null, enum member), written
/// straight to the output; anything else answers [`Nested`] before writing a byte.
struct Scalar<'o> {
    out: &'o mut Vec<u8>,
}

/// The value is an object or an array.
#[derive(Debug)]
struct Nested;

impl fmt::Display for Nested {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("nested value")
    }
}

impl std::error::Error for Nested {}

impl ser::Error for Nested {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Nested
    }
}

impl<'o> Scalar<'o> {
    fn number(self, n: impl fmt::Display) -> Result<(), Nested> {
        use std::io::Write as _;
        write!(self.out, "{n}").map_err(|_| Nested)
    }

    /// Floats as serde_json writes them (`null` for the non-finite ones).
    fn float<F: Serialize>(self, f: F) -> Result<(), Nested> {
        serde_json::to_writer(&mut *self.out, &f).map_err(|_| Nested)
    }
}

impl<'o> ser::Serializer for Scalar<'o> {
    type Ok = ();
    type Error = Nested;
    type SerializeSeq = Impossible<(), Nested>;
    type SerializeTuple = Impossible<(), Nested>;
    type SerializeTupleStruct = Impossible<(), Nested>;
    type SerializeTupleVariant = Impossible<(), Nested>;
    type SerializeMap = Impossible<(), Nested>;
    type SerializeStruct = Impossible<(), Nested>;
    type SerializeStructVariant = Impossible<(), Nested>;

    fn serialize_str(self, v: &str) -> Result<(), Nested> {
        push_str(self.out, v);
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<(), Nested> {
        push_str(self.out, variant);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Nested> {
        push_str(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_bool(self, v: bool) -> Result<(), Nested> {
        self.out.extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Nested> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit(self) -> Result<(), Nested> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Nested> {
        self.serialize_none()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Nested> {
        value.serialize(self)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<(), Nested> {
        value.serialize(self)
    }
    fn serialize_i8(self, v: i8) -> Result<(), Nested> {
        self.number(v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), Nested> {
        self.number(v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), Nested> {
        self.number(v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), Nested> {
        self.number(v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), Nested> {
        self.number(v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), Nested> {
        self.number(v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), Nested> {
        self.number(v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), Nested> {
        self.number(v)
    }
    fn serialize_f32(self, v: f32) -> Result<(), Nested> {
        self.float(v)
    }
    fn serialize_f64(self, v: f64) -> Result<(), Nested> {
        self.float(v)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Nested> {
        Err(Nested)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Nested> {
        Err(Nested)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Nested> {
        Err(Nested)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Nested> {
        Err(Nested)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Nested> {
        Err(Nested)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Nested> {
        Err(Nested)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Nested> {
        Err(Nested)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Nested> {
        Err(Nested)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Nested> {
        Err(Nested)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GraphDateTime;
    use crate::autopilot::{
        EnrollmentState, ImportedWindowsAutopilotDeviceIdentity, ImportedWindowsAutopilotDeviceIdentityImportStatus,
        ImportedWindowsAutopilotDeviceIdentityState, WindowsAutopilotDeviceIdentity,
        WindowsAutopilotDeviceIdentityBeta, WindowsAutopilotDeviceRemediationState,
        WindowsAutopilotProfileAssignmentDetailedStatus, WindowsAutopilotProfileAssignmentStatus,
        WindowsAutopilotUserlessEnrollmentStatus,
    };
    use serde_json::{Map, Value};

    /// What the server wrote before this writer: a sorted `Map`, `$select` applied to it, the
    /// extra properties inserted after.
    fn through_map<T: Serialize>(entity: &T, select: Option<&[String]>, extra: &[(&str, &str)]) -> Map<String, Value> {
        let Value::Object(map) = serde_json::to_value(entity).unwrap() else { panic!("not an object") };
        let keep = Select::new(select);
        let mut map: Map<String, Value> = map.into_iter().filter(|(k, _)| keep.keeps(k)).collect();
        for (name, json) in extra {
            map.insert((*name).to_owned(), serde_json::from_str(json).unwrap());
        }
        map
    }

    fn device(beta: bool, text: &str) -> WindowsAutopilotDeviceIdentity {
        WindowsAutopilotDeviceIdentity {
            id: "8f7c2c59-8f5b-4c8e-9a4e-3d1f0b6a7c21".into(),
            addressable_user_name: text.into(),
            azure_active_directory_device_id: String::new(),
            display_name: "PC \"01\"\n".into(),
            enrollment_state: EnrollmentState::NotContacted,
            group_tag: "Sales\\EU".into(),
            last_contacted_date_time: GraphDateTime::NEVER,
            managed_device_id: String::new(),
            manufacturer: "Contoso".into(),
            model: "Laptop 7 é €".into(),
            product_key: String::new(),
            purchase_order_identifier: "PO-1".into(),
            resource_name: String::new(),
            serial_number: "SN-0001".into(),
            sku_number: String::new(),
            system_family: String::new(),
            user_principal_name: "user@contoso.com".into(),
            beta: beta.then(|| WindowsAutopilotDeviceIdentityBeta {
                azure_ad_device_id: String::new(),
                deployment_profile_assigned_date_time: GraphDateTime::NEVER,
                deployment_profile_assignment_detailed_status: WindowsAutopilotProfileAssignmentDetailedStatus::None,
                deployment_profile_assignment_status: WindowsAutopilotProfileAssignmentStatus::NotAssigned,
                device_account_password: "\u{1}".into(),
                device_account_upn: String::new(),
                device_friendly_name: "Room".into(),
                remediation_state: WindowsAutopilotDeviceRemediationState::Unknown,
                remediation_state_last_modified_date_time: GraphDateTime::NEVER,
                userless_enrollment_status: WindowsAutopilotUserlessEnrollmentStatus::Unknown,
            }),
        }
    }

    fn selects() -> Vec<Option<Vec<String>>> {
        let names = |n: &[&str]| Some(n.iter().map(|s| (*s).to_owned()).collect());
        vec![
            None,
            names(&["*"]),
            names(&["serialNumber"]),
            names(&["ID", "SerialNumber", "deviceFriendlyName"]),
            names(&["model", "*"]),
        ]
    }

    #[test]
    fn documents_are_the_bytes_serde_json_wrote_from_a_sorted_map() {
        let extras: [&[(&str, &str)]; 2] =
            [&[], &[("deploymentProfile", "null"), ("intendedDeploymentProfile", "null")]];
        for beta in [false, true] {
            let entity = device(beta, "a\tb");
            for select in selects() {
                for extra in extras {
                    let select = select.as_deref();
                    let mut expected = through_map(&entity, select, extra);
                    expected.insert("@odata.context".into(), Value::String("ctx".into()));
                    let ours = entity_document("ctx", &entity, Select::new(select), extra).unwrap();
                    assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&expected).unwrap());
                }
            }
        }
    }

    #[test]
    fn pages_are_the_bytes_serde_json_wrote_from_the_envelope() {
        #[derive(Serialize)]
        struct Envelope {
            #[serde(rename = "@odata.context")]
            context: String,
            #[serde(rename = "@odata.count", skip_serializing_if = "Option::is_none")]
            count: Option<u64>,
            #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
            next_link: Option<String>,
            value: Vec<Value>,
        }
        let entities: Vec<_> = (0..3).map(|i| device(i % 2 == 0, &format!("user {i}"))).collect();
        for (count, link) in [(None, None), (Some(3), Some("https://x/y?$skiptoken=a\"b"))] {
            for select in selects() {
                let select = select.as_deref();
                for n in [0, 1, 3] {
                    let mut page = PageWriter::new("https://graph/$metadata#set", count, link);
                    for entity in &entities[..n] {
                        page.push(entity, Select::new(select), &[]).unwrap();
                    }
                    let expected = Envelope {
                        context: "https://graph/$metadata#set".into(),
                        count,
                        next_link: link.map(str::to_owned),
                        value: entities[..n].iter().map(|e| Value::Object(through_map(e, select, &[]))).collect(),
                    };
                    assert_eq!(String::from_utf8(page.finish()).unwrap(), serde_json::to_string(&expected).unwrap());
                }
            }
        }
    }

    #[test]
    fn nested_values_and_numbers_are_written_as_serde_json_writes_them() {
        let imported = ImportedWindowsAutopilotDeviceIdentity {
            id: "i".into(),
            assigned_user_principal_name: String::new(),
            group_tag: "g".into(),
            hardware_identifier: "AAEC".into(),
            import_id: String::new(),
            product_key: String::new(),
            serial_number: "s".into(),
            state: ImportedWindowsAutopilotDeviceIdentityState {
                device_error_code: -7,
                device_error_name: "x\"y".into(),
                device_import_status: ImportedWindowsAutopilotDeviceIdentityImportStatus::Error,
                device_registration_id: String::new(),
            },
        };
        for select in selects() {
            let select = select.as_deref();
            let mut expected = through_map(&imported, select, &[]);
            expected.insert("@odata.context".into(), Value::String("c".into()));
            let ours = entity_document("c", &imported, Select::new(select), &[]).unwrap();
            assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&expected).unwrap());
        }
        let mixed = serde_json::json!({ "b": 1.5, "a": [1, {"z": null, "y": true}], "c": u64::MAX, "id": -1 });
        let ours = entity_document("c", &mixed, Select::ALL, &[]).unwrap();
        let mut expected = through_map(&mixed, None, &[]);
        expected.insert("@odata.context".into(), Value::String("c".into()));
        assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&expected).unwrap());
    }

    #[test]
    fn a_scalar_is_not_an_entity() {
        assert!(entity_document("c", &1, Select::ALL, &[]).is_err());
    }
}
