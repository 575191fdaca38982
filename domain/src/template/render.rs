//! Filling `{{1}}`…`{{n}}` placeholders, the way Twilio's Content API numbers them.

use std::collections::{BTreeMap, BTreeSet};

/// The most characters Twilio accepts in a message `Body` (longer bodies fail with 21617).
pub const MAX_BODY_CHARS: usize = 1_600;

/// The most characters of a WhatsApp template's text with its values filled in: Meta refuses
/// longer ones asynchronously (Twilio 63021), after Keryu already accepted the notification.
pub const MAX_WHATSAPP_TEMPLATE_CHARS: usize = 1_024;

/// Why a template's content or a set of variables does not render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// `{{` not followed by a positive number and `}}`.
    #[error("malformed placeholder at character {position}: use {{{{1}}}}, {{{{2}}}}, …")]
    MalformedPlaceholder {
        /// 0-based character offset of the `{{`.
        position: usize,
    },
    /// Placeholders must be numbered 1, 2, … without holes, so Twilio's variables line up.
    #[error("placeholders must be numbered 1 to n without gaps; {{{{{missing}}}}} is missing")]
    PlaceholderGap {
        /// The first number not used.
        missing: u32,
    },
    /// The content uses a placeholder no value was given for.
    #[error("variable {0} is missing")]
    MissingVariable(u32),
    /// A value was given for a placeholder the content does not use.
    #[error("variable {0:?} is not used by the template")]
    UnexpectedVariable(String),
    /// A value is blank: Twilio rejects empty variables (21656) and the message would read oddly.
    #[error("variable {0} is empty")]
    EmptyVariable(u32),
    /// The rendered message is longer than Twilio accepts.
    #[error("the message is {length} characters long, at most {max} are allowed")]
    BodyTooLong {
        /// Length of the rendered message in characters.
        length: usize,
        /// The limit.
        max: usize,
    },
}

/// A piece of template content: literal text or a numbered placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Placeholder(u32),
}

/// Splits `content` into text and placeholders. Braces are ASCII, so scanning bytes never
/// splits a character; positions in errors are counted in characters for humans.
fn parse(content: &str) -> Result<Vec<Piece<'_>>, RenderError> {
    let malformed = |byte: usize| RenderError::MalformedPlaceholder {
        position: content[..byte].chars().count(),
    };
    let bytes = content.as_bytes();
    let mut pieces = Vec::new();
    let (mut index, mut text_start) = (0, 0);
    while index < bytes.len() {
        if bytes[index..].starts_with(b"{{") {
            let inner_start = index + 2;
            let close = content[inner_start..]
                .find("}}")
                .map(|end| inner_start + end)
                .ok_or_else(|| malformed(index))?;
            let digits = &content[inner_start..close];
            let number = Some(digits)
                .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|digits| digits.parse::<u32>().ok())
                .filter(|number| *number > 0)
                .ok_or_else(|| malformed(index))?;
            if text_start < index {
                pieces.push(Piece::Text(&content[text_start..index]));
            }
            pieces.push(Piece::Placeholder(number));
            index = close + 2;
            text_start = index;
        } else if bytes[index..].starts_with(b"}}") {
            return Err(malformed(index));
        } else {
            index += 1;
        }
    }
    if text_start < bytes.len() {
        pieces.push(Piece::Text(&content[text_start..]));
    }
    Ok(pieces)
}

/// The placeholder numbers `content` uses, checked to be exactly `1..=n`.
///
/// # Errors
/// [`RenderError::MalformedPlaceholder`] or [`RenderError::PlaceholderGap`].
pub fn placeholders(content: &str) -> Result<BTreeSet<u32>, RenderError> {
    let used: BTreeSet<u32> = parse(content)?
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Placeholder(number) => Some(number),
            Piece::Text(_) => None,
        })
        .collect();
    if let Some(missing) = (1..)
        .zip(&used)
        .find_map(|(n, used)| (n != *used).then_some(n))
    {
        return Err(RenderError::PlaceholderGap { missing });
    }
    Ok(used)
}

/// Renders `content` with `variables` keyed `"1"`, `"2"`, … as Twilio's `ContentVariables`.
///
/// Every placeholder needs a non-blank value, every value needs a placeholder, and the result
/// must fit in a Twilio message body.
///
/// # Errors
/// The first [`RenderError`] found, in the order: placeholders, extra variables, missing or
/// empty variables, length.
pub fn render(content: &str, variables: &BTreeMap<String, String>) -> Result<String, RenderError> {
    let pieces = parse(content)?;
    let used = placeholders(content)?;
    if let Some(extra) = variables
        .keys()
        .find(|key| !key.parse::<u32>().is_ok_and(|n| used.contains(&n)) || key.starts_with('0'))
    {
        return Err(RenderError::UnexpectedVariable(extra.clone()));
    }
    let mut rendered = String::with_capacity(content.len());
    for piece in pieces {
        match piece {
            Piece::Text(text) => rendered.push_str(text),
            Piece::Placeholder(number) => {
                let value = variables
                    .get(&number.to_string())
                    .ok_or(RenderError::MissingVariable(number))?;
                if value.trim().is_empty() {
                    return Err(RenderError::EmptyVariable(number));
                }
                rendered.push_str(value);
            }
        }
    }
    let length = rendered.chars().count();
    if length > MAX_BODY_CHARS {
        return Err(RenderError::BodyTooLong {
            length,
            max: MAX_BODY_CHARS,
        });
    }
    Ok(rendered)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn fills_every_placeholder() {
        let rendered = render(
            "Hola {{1}}, {{2}} needs you. {{1}}, please call.",
            &vars(&[("1", "Ana"), ("2", "Luis")]),
        );
        assert_eq!(
            rendered.as_deref(),
            Ok("Hola Ana, Luis needs you. Ana, please call.")
        );
        assert_eq!(
            render("No variables", &vars(&[])).as_deref(),
            Ok("No variables")
        );
    }

    #[test]
    fn reports_precise_errors() {
        let cases = [
            ("Hi {{1}}", vars(&[]), RenderError::MissingVariable(1)),
            (
                "Hi {{1}}",
                vars(&[("1", "a"), ("2", "b")]),
                RenderError::UnexpectedVariable("2".into()),
            ),
            (
                "Hi {{1}}",
                vars(&[("1", "a"), ("name", "b")]),
                RenderError::UnexpectedVariable("name".into()),
            ),
            (
                "Hi {{1}}",
                vars(&[("01", "a")]),
                RenderError::UnexpectedVariable("01".into()),
            ),
            (
                "Hi {{1}}",
                vars(&[("1", "  ")]),
                RenderError::EmptyVariable(1),
            ),
            (
                "Hi {{2}}",
                vars(&[("2", "a")]),
                RenderError::PlaceholderGap { missing: 1 },
            ),
            (
                "Hi {{name}}",
                vars(&[]),
                RenderError::MalformedPlaceholder { position: 3 },
            ),
            (
                "Hi {{0}}",
                vars(&[]),
                RenderError::MalformedPlaceholder { position: 3 },
            ),
            (
                "Hi {{1",
                vars(&[]),
                RenderError::MalformedPlaceholder { position: 3 },
            ),
            (
                "Hi 1}}",
                vars(&[]),
                RenderError::MalformedPlaceholder { position: 4 },
            ),
            (
                "ñé {{}}",
                vars(&[]),
                RenderError::MalformedPlaceholder { position: 3 },
            ),
        ];
        for (content, variables, expected) in cases {
            assert_eq!(render(content, &variables), Err(expected), "{content:?}");
        }
    }

    #[test]
    fn refuses_bodies_over_twilios_limit() {
        let long = "x".repeat(MAX_BODY_CHARS);
        assert!(render("{{1}}", &vars(&[("1", &long)])).is_ok());
        assert_eq!(
            render("{{1}}!", &vars(&[("1", &long)])),
            Err(RenderError::BodyTooLong {
                length: MAX_BODY_CHARS + 1,
                max: MAX_BODY_CHARS
            })
        );
    }

    #[test]
    fn lists_placeholders() {
        assert_eq!(
            placeholders("{{2}} {{1}} {{2}}"),
            Ok(BTreeSet::from([1, 2]))
        );
    }

    proptest! {
        #[test]
        fn declared_variables_always_render_and_appear(
            texts in prop::collection::vec("[a-zA-Zñ ,.!]{0,20}", 1..6),
            values in prop::collection::vec("[a-zA-Z0-9é]{1,20}", 5),
        ) {
            let mut content = String::new();
            for (n, text) in texts.iter().enumerate() {
                content.push_str(text);
                content.push_str(&format!("{{{{{}}}}}", n + 1));
            }
            let variables: BTreeMap<String, String> = (1..=texts.len())
                .map(|n| (n.to_string(), values[n - 1].clone()))
                .collect();
            let rendered = render(&content, &variables).expect("renders");
            for value in variables.values() {
                prop_assert!(rendered.contains(value.as_str()));
            }
            prop_assert!(!rendered.contains("{{"));
        }
    }
}
