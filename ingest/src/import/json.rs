//! Heartbeats out of an export file, one at a time, whatever its size: a
//! serde visitor walks the document and hands each heartbeat object to a
//! callback as it is read, so memory holds one heartbeat, not the file.
//!
//! Shapes read:
//! - WakaTime's data export: `{"user": …, "range": …, "days": [{"date": …,
//!   "heartbeats": [ … ]}, …]}`;
//! - Wakapi's heartbeat export: a list of heartbeats, or `{"data": [ … ]}`;
//! - a top-level `"heartbeats": [ … ]` is read too.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// What the callback says: go on, or stop reading (the consumer is gone).
pub type Flow = std::ops::ControlFlow<()>;

/// Reads `reader` to its end, calling `each` with every heartbeat.
pub fn for_each_heartbeat(
    reader: impl std::io::Read,
    each: &mut dyn FnMut(Value) -> Flow,
) -> serde_json::Result<()> {
    let mut de = serde_json::Deserializer::from_reader(reader);
    Document { each }.deserialize(&mut de)?;
    de.end()
}

struct Document<'a> {
    each: &'a mut dyn FnMut(Value) -> Flow,
}

impl<'de> DeserializeSeed<'de> for Document<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Document<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a WakaTime or Wakapi export: an object with days or data, or a list of heartbeats",
        )
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        Heartbeats { each: self.each }.visit_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "days" => map.next_value_seed(Days { each: self.each })?,
                "data" | "heartbeats" => map.next_value_seed(Heartbeats { each: self.each })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// `[{"date": …, "heartbeats": […]}, …]`
struct Days<'a> {
    each: &'a mut dyn FnMut(Value) -> Flow,
}

impl<'de> DeserializeSeed<'de> for Days<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Days<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of days")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Day { each: self.each })?.is_some() {}
        Ok(())
    }
}

struct Day<'a> {
    each: &'a mut dyn FnMut(Value) -> Flow,
}

impl<'de> DeserializeSeed<'de> for Day<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Day<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a day with heartbeats")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "heartbeats" {
                map.next_value_seed(Heartbeats {
                    each: &mut *self.each,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// `[heartbeat, …]`, each handed over as it is read.
struct Heartbeats<'a> {
    each: &'a mut dyn FnMut(Value) -> Flow,
}

impl<'de> DeserializeSeed<'de> for Heartbeats<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Heartbeats<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of heartbeats")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element::<Value>()? {
            if (self.each)(item).is_break() {
                return Err(serde::de::Error::custom("import stopped"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(text: &str) -> Vec<Value> {
        let mut out = Vec::new();
        for_each_heartbeat(text.as_bytes(), &mut |v| {
            out.push(v["time"].clone());
            Flow::Continue(())
        })
        .unwrap();
        out
    }

    #[test]
    fn every_shape() {
        let wakatime = r#"{"user": {"id": "x", "days": 3}, "range": {"start": 1},
            "days": [{"date": "2024-01-01", "heartbeats": [{"time": 1}, {"time": 2}]},
                     {"heartbeats": [], "date": "2024-01-02"},
                     {"date": "2024-01-03", "heartbeats": [{"time": 3, "days": []}]}]}"#;
        assert_eq!(times(wakatime), [1, 2, 3]);
        assert_eq!(times(r#"[{"time": 1}, {"time": 2}]"#), [1, 2]);
        assert_eq!(times(r#"{"data": [{"time": 5}], "total": 1}"#), [5]);
        assert!(for_each_heartbeat("[{".as_bytes(), &mut |_| Flow::Continue(())).is_err());
        assert!(for_each_heartbeat("[] []".as_bytes(), &mut |_| Flow::Continue(())).is_err());
    }
}
