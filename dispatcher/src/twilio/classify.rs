//! Which Twilio errors are worth retrying (reference §9 and §10).
//!
//! A transient error is one the same request may survive later: Twilio or the channel was
//! busy, rate-limited or briefly broken. A permanent one needs a different request, different
//! data or the recipient's consent: retrying it as-is only burns attempts (and may annoy
//! Twilio's abuse detection). The code decides when Twilio gave a known one; otherwise the
//! HTTP status does.

use keryu_domain::notification::FailureKind;

/// Codes worth retrying with backoff, whatever HTTP status carried them.
const TRANSIENT_CODES: &[i64] = &[
    20429, // too many concurrent requests; never processed, always safe to retry
    20500, // Twilio internal error
    20503, // Twilio unavailable (the simulator's injected faults)
    21611, // the sender's outbound queue is full
    30003, // handset unreachable (off, out of coverage)
    30008, // unknown delivery error (a limited number of retries)
    63017, // account over 2000 MPS
    63018, // channel rate limit (sender MPS, Meta tier, sandbox 1/3 s)
    63038, // account daily message limit; clears within 24 h
];

/// Codes that no retry of the same request can fix.
const PERMANENT_CODES: &[i64] = &[
    20003, // bad credentials
    20404, // no such resource
    21211, // invalid To
    21212, // invalid From
    21408, // destination region not enabled
    21602, // no body
    21603, // no From
    21604, // no To
    21606, // From cannot send
    21609, // invalid StatusCallback
    21610, // recipient unsubscribed (STOP)
    21612, // To unroutable from this sender
    21614, // To not a mobile number
    21617, // body over 1600 characters
    21654, // ContentVariables without ContentSid
    21655, // invalid ContentSid
    21656, // invalid ContentVariables
    21910, // From and To on different channels
    30005, // unknown handset
    30006, // landline or unreachable carrier
    30007, // filtered by the carrier
    35114, // SendAt out of range
    35115, // SendAt malformed
    63003, // not a WhatsApp user
    63007, // no WhatsApp sender for From
    63015, // sandbox recipient has not joined
    63016, // outside the 24 h window: send a template instead
    63021, // content refused by the channel
    63024, // recipient incapable
    63032, // Meta refuses this user for now
];

/// Whether an error answered by Twilio with `http_status` and (if any) `code` may go away if
/// the same request is tried again.
///
/// Known codes decide first (a `400` with 21611 "queue full" is transient; a `429` never
/// carries a permanent code). Otherwise `408`, `425`, `429` and every `5xx` are transient and
/// any other status (an unknown `4xx`, or no error status at all) is permanent: an unknown
/// refusal is more likely a problem with the request than with Twilio.
pub fn classify(http_status: u16, code: Option<i64>) -> FailureKind {
    if let Some(code) = code {
        if TRANSIENT_CODES.contains(&code) {
            return FailureKind::Transient;
        }
        if PERMANENT_CODES.contains(&code) {
            return FailureKind::Permanent;
        }
    }
    match http_status {
        408 | 425 | 429 | 500..=599 => FailureKind::Transient,
        _ => FailureKind::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FailureKind::{Permanent, Transient};

    #[test]
    fn classifies_like_reference_9() {
        let table: &[(u16, Option<i64>, FailureKind)] = &[
            // Rate limits and Twilio's own trouble.
            (429, Some(20429), Transient),
            (429, None, Transient),
            (500, Some(20500), Transient),
            (503, Some(20503), Transient),
            (502, None, Transient),
            (504, None, Transient),
            (408, None, Transient),
            // Transient codes, even on a 400.
            (400, Some(21611), Transient),
            (400, Some(63017), Transient),
            (400, Some(63018), Transient),
            (400, Some(63038), Transient),
            (200, Some(30003), Transient),
            (200, Some(30008), Transient),
            // Validation, consent and channel refusals.
            (401, Some(20003), Permanent),
            (404, Some(20404), Permanent),
            (400, Some(21211), Permanent),
            (400, Some(21212), Permanent),
            (400, Some(21408), Permanent),
            (400, Some(21602), Permanent),
            (400, Some(21606), Permanent),
            (400, Some(21609), Permanent),
            (400, Some(21610), Permanent),
            (400, Some(21612), Permanent),
            (400, Some(21614), Permanent),
            (400, Some(21617), Permanent),
            (400, Some(21654), Permanent),
            (400, Some(21655), Permanent),
            (400, Some(21656), Permanent),
            (400, Some(63007), Permanent),
            (200, Some(63016), Permanent),
            (200, Some(63003), Permanent),
            (200, Some(63024), Permanent),
            (200, Some(30007), Permanent),
            // A known permanent code wins over a status that would be retried.
            (500, Some(21211), Permanent),
            // Unknown codes fall back to the status.
            (400, Some(99999), Permanent),
            (403, None, Permanent),
            (422, None, Permanent),
            (503, Some(99999), Transient),
            (599, Some(12345), Transient),
        ];
        for &(status, code, expected) in table {
            assert_eq!(
                classify(status, code),
                expected,
                "HTTP {status}, code {code:?}"
            );
        }
    }

    #[test]
    fn no_code_is_both_transient_and_permanent() {
        for code in TRANSIENT_CODES {
            assert!(!PERMANENT_CODES.contains(code), "{code}");
        }
    }
}
