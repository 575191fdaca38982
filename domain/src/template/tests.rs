use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::testing::{assert_stored_form, given, run_history};
use crate::{DomainEvent, Violation};

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0)
        .single()
        .expect("valid time")
}

fn content(text: &str) -> TemplateContent {
    let variables = placeholders(text)
        .expect("valid placeholders")
        .into_iter()
        .map(|n| (n.to_string(), format!("value {n}")))
        .collect();
    TemplateContent {
        content: text.to_owned(),
        variables,
        language: "es".to_owned(),
        content_sid: None,
    }
}

fn created() -> TemplateEvent {
    TemplateEvent::TemplateCreated(TemplateCreated {
        id: TemplateId(Uuid::nil()),
        name: "notification_alert".to_owned(),
        content: content("Alert for {{1}}: {{2}}"),
        at: at(),
    })
}

fn review(version: u32, by: Option<&str>, reason: Option<&str>) -> TemplateReviewed {
    TemplateReviewed {
        version,
        by: by.map(str::to_owned),
        reason: reason.map(str::to_owned),
        at: at(),
    }
}

fn submitted() -> TemplateEvent {
    TemplateEvent::TemplateSubmitted(review(1, None, None))
}

fn approved() -> TemplateEvent {
    TemplateEvent::TemplateApproved(review(1, Some("admin"), None))
}

#[test]
fn create_validates_placeholders_against_declared_variables() {
    let mut declared_too_many = content("Hi {{1}}");
    declared_too_many
        .variables
        .insert("2".to_owned(), "unused".to_owned());
    let mut blank_description = content("Hi {{1}}");
    blank_description
        .variables
        .insert("1".to_owned(), " ".to_owned());
    let sid = "HX0123456789abcdef0123456789abcdef";
    let cases = [
        (
            declared_too_many,
            RenderError::UnexpectedVariable("2".to_owned()).into(),
        ),
        (
            TemplateContent {
                content: "Hi {{1}}".to_owned(),
                ..content("Hi there")
            },
            RenderError::MissingVariable(1).into(),
        ),
        (blank_description, RenderError::EmptyVariable(1).into()),
        (
            TemplateContent {
                variables: BTreeMap::from([("name".to_owned(), "x".to_owned())]),
                ..content("Hi")
            },
            RenderError::UnexpectedVariable("name".to_owned()).into(),
        ),
        (
            content_lenient("Hi {{2}}"),
            RenderError::PlaceholderGap { missing: 1 }.into(),
        ),
        (
            content_lenient("Hi {{name}}"),
            RenderError::MalformedPlaceholder { position: 3 }.into(),
        ),
        (
            TemplateContent {
                language: "español".to_owned(),
                ..content("Hi")
            },
            DomainError::invalid("language", Violation::NotALanguageCode),
        ),
        (
            TemplateContent {
                content_sid: Some("HX123".to_owned()),
                ..content("Hi")
            },
            DomainError::invalid("content_sid", Violation::NotAContentSid),
        ),
        (
            TemplateContent {
                content_sid: Some(sid.to_owned()),
                ..content(&"x".repeat(1_025))
            },
            DomainError::invalid(
                "content",
                Violation::TooLong {
                    length: 1_025,
                    max: 1_024,
                },
            ),
        ),
        (
            content("   "),
            DomainError::invalid("content", Violation::Blank),
        ),
    ];
    for (bad, expected) in cases {
        given::<MessageTemplate>(&[])
            .when(TemplateCommand::Create {
                id: TemplateId(Uuid::nil()),
                name: "t".to_owned(),
                content: bad,
                at: at(),
            })
            .then_error(expected);
    }
    given::<MessageTemplate>(&[])
        .when(TemplateCommand::Create {
            id: TemplateId(Uuid::nil()),
            name: "notification_alert".to_owned(),
            content: content("Alert for {{1}}: {{2}}"),
            at: at(),
        })
        .then(&[created()]);
    given::<MessageTemplate>(&[created()])
        .when(TemplateCommand::Submit { at: at() })
        .then(&[submitted()]);
    // Twilio's own example: a WhatsApp template with a Content sid, within Meta's limit.
    let whatsapp = TemplateContent {
        content_sid: Some(sid.to_owned()),
        language: "es_MX".to_owned(),
        ..content(&"x".repeat(1_024))
    };
    assert_eq!(whatsapp.validate(), Ok(()));
}

#[test]
fn review_flow() {
    let template = given::<MessageTemplate>(&[created(), submitted()])
        .when(TemplateCommand::Approve {
            by: "admin".to_owned(),
            at: at(),
        })
        .then(&[approved()]);
    assert_eq!(template.status, TemplateStatus::Approved);
    assert_eq!(template.approved.map(|a| a.version), Some(1));

    let rejected = given::<MessageTemplate>(&[created(), submitted()])
        .when(TemplateCommand::Reject {
            by: "admin".to_owned(),
            reason: "Too vague".to_owned(),
            at: at(),
        })
        .then(&[TemplateEvent::TemplateRejected(review(
            1,
            Some("admin"),
            Some("Too vague"),
        ))]);
    assert_eq!(rejected.rejection_reason.as_deref(), Some("Too vague"));
}

#[test]
fn refused_review_transitions() {
    let draft = [created()];
    let submitted_history = [created(), submitted()];
    let approved_history = [created(), submitted(), approved()];
    given::<MessageTemplate>(&draft)
        .when(TemplateCommand::Approve {
            by: "a".to_owned(),
            at: at(),
        })
        .then_error(DomainError::InvalidTransition {
            aggregate: "template",
            from: "draft",
            command: "approve",
        });
    let refused = |from, command| DomainError::InvalidTransition {
        aggregate: "template",
        from,
        command,
    };
    given::<MessageTemplate>(&draft)
        .when(TemplateCommand::Reject {
            by: "a".to_owned(),
            reason: "no".to_owned(),
            at: at(),
        })
        .then_error(refused("draft", "reject"));
    given::<MessageTemplate>(&submitted_history)
        .when(TemplateCommand::Submit { at: at() })
        .then_error(refused("submitted", "submit"));
    given::<MessageTemplate>(&submitted_history)
        .when(TemplateCommand::Reject {
            by: "a".to_owned(),
            reason: " ".to_owned(),
            at: at(),
        })
        .then_error(DomainError::invalid("reason", Violation::Blank));
    given::<MessageTemplate>(&approved_history)
        .when(TemplateCommand::Approve {
            by: "a".to_owned(),
            at: at(),
        })
        .then_error(refused("approved", "approve"));
    given::<MessageTemplate>(&approved_history)
        .when(TemplateCommand::Submit { at: at() })
        .then_error(refused("approved", "submit"));
    given::<MessageTemplate>(&[])
        .when(TemplateCommand::Submit { at: at() })
        .then_error(DomainError::NotFound {
            aggregate: "template",
        });
    given::<MessageTemplate>(&draft)
        .when(TemplateCommand::Create {
            id: TemplateId(Uuid::nil()),
            name: "again".to_owned(),
            content: content("x"),
            at: at(),
        })
        .then_error(DomainError::AlreadyExists {
            aggregate: "template",
        });
}

#[test]
fn editing_an_approved_template_makes_a_new_version_and_keeps_the_approved_one() {
    let edited = content("New alert for {{1}}");
    let template = given::<MessageTemplate>(&[created(), submitted(), approved()])
        .when(TemplateCommand::Edit {
            content: edited.clone(),
            at: at(),
        })
        .then(&[TemplateEvent::TemplateVersionCreated(
            TemplateContentChanged {
                version: 2,
                content: edited.clone(),
                at: at(),
            },
        )]);
    assert_eq!(template.version, 2);
    assert_eq!(template.status, TemplateStatus::Draft);
    assert_eq!(
        template.approved.map(|a| a.content),
        Some(content("Alert for {{1}}: {{2}}"))
    );

    // A draft is edited in place; an unchanged edit records nothing.
    given::<MessageTemplate>(&[created()])
        .when(TemplateCommand::Edit {
            content: edited.clone(),
            at: at(),
        })
        .then(&[TemplateEvent::TemplateEdited(TemplateContentChanged {
            version: 1,
            content: edited,
            at: at(),
        })]);
    given::<MessageTemplate>(&[created()])
        .when(TemplateCommand::Edit {
            content: content("Alert for {{1}}: {{2}}"),
            at: at(),
        })
        .then(&[]);
}

#[test]
fn every_event_has_its_stable_stored_form() {
    let events = [
        created(),
        TemplateEvent::TemplateEdited(TemplateContentChanged {
            version: 1,
            content: content("a"),
            at: at(),
        }),
        TemplateEvent::TemplateVersionCreated(TemplateContentChanged {
            version: 2,
            content: content("b"),
            at: at(),
        }),
        submitted(),
        approved(),
        TemplateEvent::TemplateRejected(review(1, Some("x"), Some("y"))),
    ];
    for event in &events {
        assert_stored_form(event);
    }
    let names: Vec<&str> = events.iter().map(DomainEvent::event_type).collect();
    assert_eq!(names, TemplateEvent::EVENT_TYPES);
    // The stored names, spelled out: renaming a variant must not rename stored events.
    assert_eq!(
        TemplateEvent::EVENT_TYPES,
        [
            "TemplateCreated",
            "TemplateEdited",
            "TemplateVersionCreated",
            "TemplateSubmitted",
            "TemplateApproved",
            "TemplateRejected",
        ]
    );
}

fn command() -> impl Strategy<Value = TemplateCommand> {
    let texts = prop_oneof![
        Just("Hi {{1}}"),
        Just("Bye"),
        Just("{{1}} and {{2}}"),
        Just("{{2}}")
    ];
    prop_oneof![
        texts.clone().prop_map(|text| TemplateCommand::Create {
            id: TemplateId(Uuid::nil()),
            name: "t".to_owned(),
            content: content_lenient(text),
            at: at(),
        }),
        texts.prop_map(|text| TemplateCommand::Edit {
            content: content_lenient(text),
            at: at()
        }),
        Just(TemplateCommand::Submit { at: at() }),
        Just(TemplateCommand::Approve {
            by: "admin".to_owned(),
            at: at()
        }),
        Just(TemplateCommand::Reject {
            by: "admin".to_owned(),
            reason: "no".to_owned(),
            at: at()
        }),
    ]
}

/// Like `content`, but also builds (invalid) content whose placeholders have gaps.
fn content_lenient(text: &str) -> TemplateContent {
    let variables = (1..=text.matches("{{").count())
        .map(|n| (n.to_string(), "v".to_owned()))
        .collect();
    TemplateContent {
        content: text.to_owned(),
        variables,
        language: "en".to_owned(),
        content_sid: None,
    }
}

proptest! {
    #[test]
    fn any_history_replays_to_the_same_state(commands in prop::collection::vec(command(), 0..25)) {
        let (template, _) = run_history::<MessageTemplate>(commands);
        if let Some(approved) = template.approved {
            prop_assert!(approved.version <= template.version);
        }
    }
}
