//! The text of one template version and the rules it must follow.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{MAX_BODY_CHARS, MAX_WHATSAPP_TEMPLATE_CHARS, RenderError, placeholders};
use crate::DomainError;
use crate::checks::{require_at_most, require_content_sid, require_text};
use crate::error::Violation;

/// What a template says and how Twilio knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TemplateContent {
    /// The message text with `{{1}}`…`{{n}}` placeholders.
    pub content: String,
    /// One description per placeholder, keyed `"1"`…`"n"` (what the value means, for humans).
    pub variables: BTreeMap<String, String>,
    /// Language of the text, e.g. `es` or `pt_BR` (as in WhatsApp template languages).
    pub language: String,
    /// Twilio Content API sid (`HX` + 32 hex digits) of the approved WhatsApp template, when
    /// the message must be sent as a template (outside the 24-hour window).
    pub content_sid: Option<String>,
}

impl TemplateContent {
    /// Checks the content's placeholders against the declared variables and the other fields,
    /// so that an approved template always renders once each variable has a value.
    ///
    /// # Errors
    /// - [`DomainError::Render`] with [`RenderError::MalformedPlaceholder`] or
    ///   [`RenderError::PlaceholderGap`] for bad placeholders, [`RenderError::MissingVariable`]
    ///   for a placeholder that is not declared, [`RenderError::UnexpectedVariable`] for a
    ///   declared variable the content does not use, [`RenderError::EmptyVariable`] for a blank
    ///   description;
    /// - [`DomainError::InvalidValue`] for blank or too long content (at most 1,600 characters,
    ///   1,024 for a WhatsApp template with a `content_sid`), a bad language code or a bad sid.
    pub fn validate(&self) -> Result<(), DomainError> {
        require_text("content", &self.content, MAX_BODY_CHARS)?;
        let used = placeholders(&self.content)?;
        if let Some(unused) = self
            .variables
            .keys()
            .find(|key| !used.iter().any(|n| n.to_string() == **key))
        {
            return Err(RenderError::UnexpectedVariable(unused.clone()).into());
        }
        for number in used {
            match self.variables.get(&number.to_string()) {
                None => return Err(RenderError::MissingVariable(number).into()),
                Some(description) if description.trim().is_empty() => {
                    return Err(RenderError::EmptyVariable(number).into());
                }
                Some(_) => {}
            }
        }
        if !is_language_code(&self.language) {
            return Err(DomainError::invalid(
                "language",
                Violation::NotALanguageCode,
            ));
        }
        if let Some(sid) = &self.content_sid {
            require_content_sid(sid)?;
            require_at_most("content", &self.content, MAX_WHATSAPP_TEMPLATE_CHARS)?;
        }
        Ok(())
    }
}

/// A BCP-47-like code as WhatsApp template languages use them: a 2–3 letter lowercase
/// language, then optional `_` or `-` separated subtags of 2–8 letters or digits (`es`,
/// `es_MX`, `pt-BR`, `zh_Hant`).
fn is_language_code(code: &str) -> bool {
    let mut parts = code.split(['_', '-']);
    let language_ok = parts.next().is_some_and(|language| {
        (2..=3).contains(&language.len()) && language.bytes().all(|b| b.is_ascii_lowercase())
    });
    language_ok
        && parts.all(|subtag| {
            (2..=8).contains(&subtag.len()) && subtag.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_codes_look_like_bcp_47() {
        for good in ["en", "es", "es_MX", "pt-BR", "zh_Hant", "fil"] {
            assert!(is_language_code(good), "{good:?} refused");
        }
        for bad in [
            "", "e", "EN", "english", "es_", "es__MX", "es_M", "español", "es MX",
        ] {
            assert!(!is_language_code(bad), "{bad:?} accepted");
        }
    }
}
