//! The WakaTime API's vocabulary: heartbeats as clients send them
//! (`heartbeat.rs`), their keys (`auth.rs`), editor and OS from the
//! User-Agent (`user_agent.rs`), copies seen lately (`recent.rs`) and the
//! coder's time zone. The handlers are in `api/heartbeats.rs` and
//! `api/statusbar.rs`.

pub mod auth;
pub mod heartbeat;
pub mod recent;
pub mod user_agent;

use axum::http::HeaderMap;

/// The header WakaTime clients name the coder's time zone in (IANA name).
pub const TIMEZONE_HEADER: &str = "timezone";
/// The header WakaTime clients name the machine in.
pub const MACHINE_HEADER: &str = "x-machine-name";

/// The time zone a request names (`TimeZone: Europe/Helsinki`), if valid.
pub fn time_zone(headers: &HeaderMap) -> Option<chrono_tz::Tz> {
    headers
        .get(TIMEZONE_HEADER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The offset from UTC of `zone` at `unix_secs`, in minutes (0 without a
/// zone).
pub fn utc_offset(zone: Option<chrono_tz::Tz>, unix_secs: i64) -> i16 {
    use chrono::Offset;
    let Some(zone) = zone else { return 0 };
    let Some(utc) = chrono::DateTime::from_timestamp(unix_secs, 0) else {
        return 0;
    };
    let offset = utc.with_timezone(&zone).offset().fix().local_minus_utc();
    (offset / 60) as i16
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn offsets_follow_the_zone_and_its_summer_time() {
        let mut headers = HeaderMap::new();
        headers.insert(TIMEZONE_HEADER, HeaderValue::from_static("Europe/Helsinki"));
        let zone = time_zone(&headers);
        assert!(zone.is_some());
        assert_eq!(utc_offset(zone, 1_704_067_200), 120); // January
        assert_eq!(utc_offset(zone, 1_719_792_000), 180); // July
        headers.insert(TIMEZONE_HEADER, HeaderValue::from_static("Mars/Olympus"));
        assert_eq!(time_zone(&headers), None);
        assert_eq!(utc_offset(None, 1_719_792_000), 0);
    }
}
