//! The create request's form, checked the way Twilio checks it (codes in the
//! [module documentation](super)).

use std::collections::BTreeMap;

use axum::http::Uri;

use super::answer::Refusal;

/// The longest `Body` Twilio accepts, in characters.
const MAX_BODY_CHARS: usize = 1600;
/// The longest `StatusCallback` URL Twilio accepts.
const MAX_CALLBACK_CHARS: usize = 4000;
const WHATSAPP_PREFIX: &str = "whatsapp:";

/// A valid create request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CreateRequest {
    /// As posted, prefix included.
    pub to: String,
    /// As posted, prefix included.
    pub from: String,
    pub body: Option<String>,
    pub content_sid: Option<String>,
    pub content_variables: Option<BTreeMap<String, String>>,
    pub media_url: Vec<String>,
    pub status_callback: Option<String>,
}

impl CreateRequest {
    /// Whether both addresses are WhatsApp addresses (validation ensures both or neither).
    pub fn is_whatsapp(&self) -> bool {
        self.to.starts_with(WHATSAPP_PREFIX)
    }
}

/// Checks the posted `fields` (decoded, in order, names repeated for arrays).
pub(super) fn validate(fields: &[(String, String)]) -> Result<CreateRequest, Refusal> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.clone())
    };
    let to =
        field("To").ok_or_else(|| Refusal::invalid(21604, "A 'To' phone number is required."))?;
    let from = field("From")
        .ok_or_else(|| Refusal::invalid(21603, "A 'From' phone number is required."))?;
    if to.starts_with(WHATSAPP_PREFIX) != from.starts_with(WHATSAPP_PREFIX) {
        return Err(Refusal::invalid(
            21910,
            "Invalid From and To pair. From and To should be of the same channel",
        ));
    }
    if !is_e164(address_number(&to)) {
        return Err(Refusal::invalid(
            21211,
            format!("The 'To' number {to} is not a valid phone number."),
        ));
    }
    if !is_e164(address_number(&from)) {
        return Err(Refusal::invalid(
            21212,
            format!(
                "The 'From' number {from} is not a valid phone number, shortcode, or alphanumeric sender ID."
            ),
        ));
    }

    let body = field("Body");
    let content_sid = field("ContentSid");
    let media_url: Vec<String> = fields
        .iter()
        .filter(|(key, value)| key == "MediaUrl" && !value.is_empty())
        .map(|(_, value)| value.clone())
        .collect();
    if body.is_none() && content_sid.is_none() && media_url.is_empty() {
        return Err(Refusal::invalid(21602, "Message body is required."));
    }
    if body
        .as_ref()
        .is_some_and(|body| body.chars().count() > MAX_BODY_CHARS)
    {
        return Err(Refusal::invalid(
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        ));
    }
    if let Some(sid) = &content_sid
        && !is_sid(sid, "HX")
    {
        return Err(Refusal::invalid(
            21655,
            format!("The Content SID {sid} is invalid."),
        ));
    }
    let content_variables = match field("ContentVariables") {
        None => None,
        Some(_) if content_sid.is_none() => {
            return Err(Refusal::invalid(
                21654,
                "ContentVariables were given without a ContentSid.",
            ));
        }
        Some(raw) => Some(content_variables(&raw).ok_or_else(|| {
            Refusal::invalid(21656, "The ContentVariables Parameter is invalid.")
        })?),
    };
    let status_callback = field("StatusCallback");
    if let Some(url) = &status_callback
        && !is_callback_url(url)
    {
        return Err(Refusal::invalid(
            21609,
            format!("The StatusCallback URL {url} is not a valid URL."),
        ));
    }
    Ok(CreateRequest {
        to,
        from,
        body,
        content_sid,
        content_variables,
        media_url,
        status_callback,
    })
}

fn address_number(address: &str) -> &str {
    address.strip_prefix(WHATSAPP_PREFIX).unwrap_or(address)
}

/// `+` and 2 to 15 digits, the first not 0.
fn is_e164(number: &str) -> bool {
    let Some(digits) = number.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// `prefix` followed by 32 hex digits.
fn is_sid(sid: &str, prefix: &str) -> bool {
    sid.strip_prefix(prefix)
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A JSON object whose keys and values are non-empty strings.
fn content_variables(raw: &str) -> Option<BTreeMap<String, String>> {
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(raw).ok()?;
    object
        .into_iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(text) if !key.is_empty() && !text.is_empty() => {
                Some((key, text))
            }
            _ => None,
        })
        .collect()
}

/// An absolute http(s) URL with a host that has no underscore (Twilio's rule), not too long.
fn is_callback_url(url: &str) -> bool {
    if url.len() > MAX_CALLBACK_CHARS {
        return false;
    }
    let Ok(uri) = url.parse::<Uri>() else {
        return false;
    };
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let host_ok = uri
        .host()
        .is_some_and(|host| !host.is_empty() && !host.contains('_'));
    scheme_ok && host_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    const TO: &str = "whatsapp:+15552229999";
    const FROM: &str = "whatsapp:+14155238886";
    const HX: &str = "HX0123456789abcdef0123456789ABCDEF";

    fn form(fields: &[(&str, &str)]) -> Vec<(String, String)> {
        fields
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    fn code(fields: &[(&str, &str)]) -> Option<i64> {
        validate(&form(fields)).err().map(|refusal| refusal.code)
    }

    #[test]
    fn accepts_a_body_or_a_template() {
        let request = validate(&form(&[
            ("To", TO),
            ("From", FROM),
            ("Body", "Hello"),
            (
                "StatusCallback",
                "http://127.0.0.1:8080/webhooks/twilio/status?x=1",
            ),
        ]))
        .expect("valid");
        assert!(request.is_whatsapp());
        assert_eq!(request.body.as_deref(), Some("Hello"));

        let template = validate(&form(&[
            ("To", "+15552229999"),
            ("From", "+14155238886"),
            ("ContentSid", HX),
            ("ContentVariables", r#"{"1":"Ana","2":"14:00"}"#),
        ]))
        .expect("valid");
        assert!(!template.is_whatsapp());
        assert_eq!(
            template.content_variables,
            Some(BTreeMap::from([
                ("1".to_owned(), "Ana".to_owned()),
                ("2".to_owned(), "14:00".to_owned())
            ]))
        );
    }

    #[test]
    fn refuses_like_twilio() {
        let long_body = "x".repeat(1601);
        let cases: &[(&[(&str, &str)], i64)] = &[
            (&[("From", FROM), ("Body", "x")], 21604),
            (&[("To", ""), ("From", FROM), ("Body", "x")], 21604),
            (&[("To", TO), ("Body", "x")], 21603),
            (
                &[("To", TO), ("From", "+14155238886"), ("Body", "x")],
                21910,
            ),
            (
                &[("To", "whatsapp:5552229999"), ("From", FROM), ("Body", "x")],
                21211,
            ),
            (
                &[("To", "whatsapp:+0555"), ("From", FROM), ("Body", "x")],
                21211,
            ),
            (
                &[("To", TO), ("From", "whatsapp:+1415abc"), ("Body", "x")],
                21212,
            ),
            (&[("To", TO), ("From", FROM)], 21602),
            (&[("To", TO), ("From", FROM), ("Body", &long_body)], 21617),
            (
                &[("To", TO), ("From", FROM), ("ContentSid", "HX123")],
                21655,
            ),
            (
                &[
                    ("To", TO),
                    ("From", FROM),
                    ("ContentSid", &HX.replace("HX", "SM")),
                ],
                21655,
            ),
            (
                &[
                    ("To", TO),
                    ("From", FROM),
                    ("Body", "x"),
                    ("ContentVariables", r#"{"1":"a"}"#),
                ],
                21654,
            ),
            (
                &[
                    ("To", TO),
                    ("From", FROM),
                    ("ContentSid", HX),
                    ("ContentVariables", "not json"),
                ],
                21656,
            ),
            (
                &[
                    ("To", TO),
                    ("From", FROM),
                    ("ContentSid", HX),
                    ("ContentVariables", r#"["a"]"#),
                ],
                21656,
            ),
            (
                &[
                    ("To", TO),
                    ("From", FROM),
                    ("ContentSid", HX),
                    ("ContentVariables", r#"{"1":1}"#),
                ],
                21656,
            ),
            (
                &[
                    ("To", TO),
                    ("From", FROM),
                    ("ContentSid", HX),
                    ("ContentVariables", r#"{"1":""}"#),
                ],
                21656,
            ),
            (
                &[
                    ("To", TO),
                    ("From", FROM),
                    ("ContentSid", HX),
                    ("ContentVariables", r#"{"1":null}"#),
                ],
                21656,
            ),
            (
                &[
                    ("To", TO),
                    ("From", FROM),
                    ("Body", "x"),
                    ("StatusCallback", "/relative"),
                ],
                21609,
            ),
            (
                &[
                    ("To", TO),
                    ("From", FROM),
                    ("Body", "x"),
                    ("StatusCallback", "ftp://host/cb"),
                ],
                21609,
            ),
            (
                &[
                    ("To", TO),
                    ("From", FROM),
                    ("Body", "x"),
                    ("StatusCallback", "http://my_host/cb"),
                ],
                21609,
            ),
        ];
        for (fields, expected) in cases {
            assert_eq!(code(fields), Some(*expected), "{fields:?}");
        }
    }

    #[test]
    fn a_body_of_1600_characters_is_fine_even_if_multibyte() {
        let body = "é".repeat(1600);
        assert_eq!(code(&[("To", TO), ("From", FROM), ("Body", &body)]), None);
    }
}
