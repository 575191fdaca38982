//! E.164 phone numbers, the only form Twilio's WhatsApp channel accepts.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::error::Violation;

/// A phone number in E.164 form: `+`, a country code starting with 1–9, at most 15 digits.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// The number as `+<digits>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address Twilio expects for WhatsApp: `whatsapp:+<digits>`.
    pub fn whatsapp_address(&self) -> String {
        format!("whatsapp:{}", self.0)
    }
}

impl FromStr for PhoneNumber {
    type Err = DomainError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let digits = raw.strip_prefix('+').unwrap_or("");
        let valid = (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if valid {
            Ok(PhoneNumber(raw.to_owned()))
        } else {
            Err(DomainError::invalid("phone", Violation::NotE164))
        }
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = DomainError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        raw.parse()
    }
}

impl From<PhoneNumber> for String {
    fn from(phone: PhoneNumber) -> Self {
        phone.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Masks all but the last four digits, so numbers can appear in logs and debug output.
impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let visible = self.0.len().saturating_sub(4);
        write!(
            f,
            "PhoneNumber(+{}{})",
            "•".repeat(visible.saturating_sub(1)),
            &self.0[visible..]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_e164_numbers() {
        for good in ["+14155238886", "+8529412345", "+491701234567", "+12345678"] {
            let phone: PhoneNumber = good.parse().expect(good);
            assert_eq!(phone.as_str(), good);
        }
        let phone: PhoneNumber = "+14155238886".parse().expect("valid");
        assert_eq!(phone.whatsapp_address(), "whatsapp:+14155238886");
    }

    #[test]
    fn rejects_anything_else() {
        for bad in [
            "",
            "+",
            "14155238886",
            "+0123456789",
            "+1 415 523 8886",
            "+1415523888612345",
            "+1234567",
            "whatsapp:+14155238886",
            "+1415abc8886",
        ] {
            assert!(bad.parse::<PhoneNumber>().is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            "+1234567".parse::<PhoneNumber>(),
            Err(DomainError::invalid("phone", Violation::NotE164))
        );
        assert!(serde_json::from_str::<PhoneNumber>("\"12345\"").is_err());
        let phone: Result<PhoneNumber, _> = serde_json::from_str("\"+14155238886\"");
        assert!(phone.is_ok());
    }

    #[test]
    fn debug_output_masks_the_number() {
        let phone: PhoneNumber = "+14155238886".parse().expect("valid");
        let printed = format!("{phone:?}");
        assert!(!printed.contains("1415523"), "{printed}");
        assert!(printed.ends_with("8886)"), "{printed}");
    }
}
