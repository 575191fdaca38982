//! Magic numbers: senders and recipients with a known, fixed outcome (see the table in the
//! [module documentation](super)). Compared on the E.164 part, so `whatsapp:+15005550001` and
//! `+15005550001` behave alike.

use super::answer::Refusal;
use super::store::Outcome;

/// The synchronous refusal a magic `From` or `To` causes, `From` first (as Twilio checks the
/// sender before the recipient). `from` and `to` are the addresses as posted.
pub(super) fn refusal(from: &str, to: &str) -> Option<Refusal> {
    let refusal = match e164(from) {
        "+15005550001" => Refusal::invalid(
            21212,
            format!(
                "The 'From' number {from} is not a valid phone number, shortcode, or alphanumeric sender ID."
            ),
        ),
        "+15005550007" => Refusal::invalid(
            21606,
            format!(
                "The 'From' phone number provided ({from}) is not a valid message-capable Twilio phone number for this destination."
            ),
        ),
        "+15005550008" => Refusal::invalid(
            21611,
            "This 'From' number has exceeded the maximum number of queued messages",
        ),
        _ => match e164(to) {
            "+15005550001" => Refusal::invalid(
                21211,
                format!("The 'To' number {to} is not a valid phone number."),
            ),
            "+15005550002" => Refusal::invalid(
                21612,
                format!(
                    "The 'To' phone number: {to}, is not currently reachable using the 'From' phone number: {from} via this channel."
                ),
            ),
            "+15005550003" => Refusal::invalid(
                21408,
                format!(
                    "Permission to send a message has not been enabled for the region indicated by the 'To' number: {to}."
                ),
            ),
            "+15005550004" => Refusal::invalid(21610, "Attempt to send to unsubscribed recipient"),
            "+15005550009" => Refusal::invalid(21614, "'To' number is not a valid mobile number"),
            _ => return None,
        },
    };
    Some(refusal)
}

/// What happens to an accepted message for `to` after the create: the magic recipients fail
/// asynchronously, every other one is delivered and read.
pub(super) fn outcome(to: &str, template: bool) -> Outcome {
    match e164(to) {
        "+15005550010" => Outcome::Undelivered,
        // Outside the 24 h window only a template may be sent (reference §8).
        "+15005550011" if !template => Outcome::OutsideWindow,
        _ => Outcome::Read,
    }
}

fn e164(address: &str) -> &str {
    address.strip_prefix("whatsapp:").unwrap_or(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sender_is_checked_before_the_recipient() {
        let code = |from: &str, to: &str| refusal(from, to).map(|refusal| refusal.code);
        assert_eq!(code("+15005550001", "+15005550001"), Some(21212));
        assert_eq!(
            code("whatsapp:+15005550007", "whatsapp:+15552229999"),
            Some(21606)
        );
        assert_eq!(code("+15005550008", "+15552229999"), Some(21611));
        assert_eq!(
            code("whatsapp:+15005550006", "whatsapp:+15005550001"),
            Some(21211)
        );
        assert_eq!(code("+15005550006", "+15005550002"), Some(21612));
        assert_eq!(code("+15005550006", "+15005550003"), Some(21408));
        assert_eq!(code("+15005550006", "+15005550004"), Some(21610));
        assert_eq!(code("+15005550006", "+15005550009"), Some(21614));
        assert_eq!(code("+15005550006", "+15552229999"), None);
        assert_eq!(code("+14155238886", "+15005550010"), None);
    }

    #[test]
    fn outside_the_window_only_templates_get_through() {
        assert_eq!(
            outcome("whatsapp:+15005550011", false),
            Outcome::OutsideWindow
        );
        assert_eq!(outcome("whatsapp:+15005550011", true), Outcome::Read);
        assert_eq!(outcome("whatsapp:+15005550010", true), Outcome::Undelivered);
        assert_eq!(outcome("whatsapp:+15552229999", false), Outcome::Read);
    }
}
