//! What one log record holds: one acknowledged pulse.

use serde::{Deserialize, Serialize};
use sql::{languages::LanguageRow, pulses::PulseRow};

/// The payload's first byte: the record format.
const VERSION: u8 = 1;

/// An accepted pulse: its rows (without the block id and `received_at`,
/// which the shipper sets) and the language spellings it saw first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub rows: Vec<PulseRow>,
    pub languages: Vec<LanguageRow>,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("log record of unknown format {0}")]
    Version(u8),
    #[error("undecodable log record: {0}")]
    Postcard(#[from] postcard::Error),
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        // Serializing plain structs into a Vec cannot fail.
        out.extend(postcard::to_allocvec(self).unwrap_or_default());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        match bytes.split_first() {
            Some((&VERSION, rest)) => Ok(postcard::from_bytes(rest)?),
            Some((&other, _)) => Err(DecodeError::Version(other)),
            None => Err(DecodeError::Version(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let record = Record {
            rows: vec![PulseRow {
                pulse_id: u64::MAX,
                batch_id: 0,
                user_id: 7,
                machine_id: 8,
                coded_at: 1_700_000_000,
                utc_offset: -570,
                language: "C++ ✓".into(),
                xp: 42,
                received_at: 0,
            }],
            languages: vec![LanguageRow {
                name_key: "c++ ✓".into(),
                name: "C++ ✓".into(),
                first_seen: 1_700_000_001,
            }],
        };
        assert_eq!(Record::decode(&record.encode()).unwrap(), record);
        assert!(Record::decode(&[9, 1, 2]).is_err());
        assert!(Record::decode(&[]).is_err());
    }
}
