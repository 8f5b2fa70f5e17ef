//! What one log record holds: one acknowledged request, a pulse or a
//! request's heartbeats.
//!
//! Formats (the payload's first byte): 1, a pulse (rows and first
//! spellings; written by earlier versions, still read); 2, the same and
//! heartbeats.

use serde::{Deserialize, Serialize};
use sql::{heartbeats::HeartbeatRow, languages::LanguageRow, pulses::PulseRow};

/// The format written.
const VERSION: u8 = 2;
/// The format of versions before heartbeats.
const VERSION_PULSES_ONLY: u8 = 1;

/// An accepted request: its pulse rows and heartbeat rows (without the
/// block id and `received_at`, which the shipper sets) and the language
/// spellings it saw first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub rows: Vec<PulseRow>,
    pub languages: Vec<LanguageRow>,
    pub heartbeats: Vec<HeartbeatRow>,
}

/// Format 1.
#[derive(Deserialize)]
struct PulsesOnly {
    rows: Vec<PulseRow>,
    languages: Vec<LanguageRow>,
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
            Some((&VERSION_PULSES_ONLY, rest)) => {
                let old: PulsesOnly = postcard::from_bytes(rest)?;
                Ok(Record {
                    rows: old.rows,
                    languages: old.languages,
                    heartbeats: vec![],
                })
            }
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
            heartbeats: vec![],
        };
        assert_eq!(Record::decode(&record.encode()).unwrap(), record);
        // What earlier versions logged is read as it was.
        #[derive(Serialize)]
        struct PulsesOnlyOut<'a> {
            rows: &'a [PulseRow],
            languages: &'a [LanguageRow],
        }
        let mut old = vec![VERSION_PULSES_ONLY];
        old.extend(
            postcard::to_allocvec(&PulsesOnlyOut {
                rows: &record.rows,
                languages: &record.languages,
            })
            .unwrap(),
        );
        assert_eq!(Record::decode(&old).unwrap(), record);
        let with_heartbeat = Record {
            heartbeats: vec![HeartbeatRow {
                heartbeat_id: 1,
                batch_id: 0,
                user_id: 7,
                machine_id: 8,
                time: 1_795_635_914,
                time_ms: 817,
                utc_offset: 120,
                entity_hash: "ab".into(),
                entity: String::new(),
                kind: "file".into(),
                category: "coding".into(),
                project: "p".into(),
                branch: "main".into(),
                language: "Rust".into(),
                is_write: 1,
                lines: 3,
                line_additions: 1,
                line_deletions: 0,
                lineno: 2,
                cursorpos: 9,
                editor: "Vim".into(),
                os: "Linux".into(),
                machine: "laptop".into(),
                received_at: 0,
            }],
            ..record
        };
        assert_eq!(
            Record::decode(&with_heartbeat.encode()).unwrap(),
            with_heartbeat
        );
        assert!(Record::decode(&[9, 1, 2]).is_err());
        assert!(Record::decode(&[]).is_err());
    }
}
