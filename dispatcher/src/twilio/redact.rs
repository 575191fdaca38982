//! Phone numbers are personal data: logs show at most their last four digits.

/// Digits kept visible at the end of a masked number.
const VISIBLE_DIGITS: usize = 4;
/// The shortest run of digits treated as a phone number by [`mask_numbers`].
const PHONE_DIGITS: usize = 7;

/// `number` with every digit but the last four replaced by `*`, prefix and punctuation kept:
/// `whatsapp:+15552229999` → `whatsapp:+*******9999`. Enough to tell two recipients apart in
/// a log, not enough to contact them.
pub fn mask_phone(number: &str) -> String {
    let digits = number.bytes().filter(u8::is_ascii_digit).count();
    let mut hidden = digits.saturating_sub(VISIBLE_DIGITS);
    number
        .chars()
        .map(|c| {
            if c.is_ascii_digit() && hidden > 0 {
                hidden -= 1;
                '*'
            } else {
                c
            }
        })
        .collect()
}

/// `text` with every run of seven or more digits masked like [`mask_phone`], for free text
/// that may quote a number (Twilio's error messages do: "The 'To' number +1555… is not …").
pub fn mask_numbers(text: &str) -> String {
    let mut masked = String::with_capacity(text.len());
    let mut run = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
            continue;
        }
        flush(&mut masked, &mut run);
        masked.push(c);
    }
    flush(&mut masked, &mut run);
    masked
}

fn flush(masked: &mut String, run: &mut String) {
    if run.len() >= PHONE_DIGITS {
        masked.push_str(&mask_phone(run));
    } else {
        masked.push_str(run);
    }
    run.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_last_four_digits() {
        assert_eq!(mask_phone("+15552229999"), "+*******9999");
        assert_eq!(mask_phone("whatsapp:+15552229999"), "whatsapp:+*******9999");
        assert_eq!(mask_phone("123"), "123");
        assert_eq!(mask_phone(""), "");
    }

    #[test]
    fn masks_numbers_inside_text_but_not_codes() {
        assert_eq!(
            mask_numbers("The 'To' number +15005550001 is not a valid phone number (21211)."),
            "The 'To' number +*******0001 is not a valid phone number (21211)."
        );
        assert_eq!(mask_numbers("HTTP 503"), "HTTP 503");
    }
}
