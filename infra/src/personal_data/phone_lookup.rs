//! Finding a subject by phone number without keeping numbers in an index: the seed's "phone
//! number hashing", done as an HMAC with a server-side pepper so that the 10^10 possible
//! numbers cannot be hashed and compared by whoever reads the database.

use std::fmt;

use aws_lc_rs::hmac;
use keryu_domain::PhoneNumber;

/// Keyed fingerprints of phone numbers (HMAC-SHA-256 under `KERYU_PHONE_PEPPER`).
#[derive(Clone)]
pub struct PhoneLookup(hmac::Key);

impl PhoneLookup {
    /// Fingerprints under `pepper`, a secret of the deployment that never reaches the database.
    pub fn new(pepper: &str) -> Self {
        PhoneLookup(hmac::Key::new(hmac::HMAC_SHA256, pepper.as_bytes()))
    }

    /// The number's fingerprint, as lower-case hex: equal numbers, equal fingerprints.
    pub fn fingerprint(&self, phone: &PhoneNumber) -> String {
        hmac::sign(&self.0, phone.as_str().as_bytes())
            .as_ref()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

impl fmt::Debug for PhoneLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PhoneLookup(********)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_depend_on_the_number_and_the_pepper() {
        let phone: PhoneNumber = "+34600111222".parse().expect("test value");
        let other: PhoneNumber = "+34600111223".parse().expect("test value");
        let lookup = PhoneLookup::new("pepper");
        assert_eq!(lookup.fingerprint(&phone), lookup.fingerprint(&phone));
        assert_eq!(lookup.fingerprint(&phone).len(), 64);
        assert_ne!(lookup.fingerprint(&phone), lookup.fingerprint(&other));
        assert_ne!(
            lookup.fingerprint(&phone),
            PhoneLookup::new("another pepper").fingerprint(&phone)
        );
        assert!(!lookup.fingerprint(&phone).contains("600111222"));
    }
}
