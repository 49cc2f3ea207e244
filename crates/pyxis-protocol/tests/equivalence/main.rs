//! The raw-member request parser against the `Value`-tree parser it replaced (`reference.rs`):
//! for bodies built from the fields the gateway checks, with wrong types, repeated and escaped keys,
//! escapes in strings and odd whitespace, both must accept the same bodies, read the same fields,
//! refuse with the same error, and send the runtime the same JSON.

mod reference;

use proptest::prelude::*;
use pyxis_protocol::{InferenceRequest, RequestKind};
use serde_json::Value;

/// JSON text built by the generator: scalars are written as they will appear in the body.
#[derive(Debug, Clone)]
enum J {
    Lit(&'static str),
    Arr(Vec<J>),
    Obj(Vec<(&'static str, J)>),
}

impl J {
    fn write(&self, ws: &mut impl Iterator<Item = &'static str>, out: &mut String) {
        match self {
            J::Lit(s) => out.push_str(s),
            J::Arr(items) => {
                out.push('[');
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(ws.next().unwrap_or(""));
                    it.write(ws, out);
                }
                out.push(']');
            }
            J::Obj(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(ws.next().unwrap_or(""));
                    out.push_str(k);
                    out.push_str(ws.next().unwrap_or(""));
                    out.push(':');
                    out.push_str(ws.next().unwrap_or(""));
                    v.write(ws, out);
                }
                out.push_str(ws.next().unwrap_or(""));
                out.push('}');
            }
        }
    }
}

fn lit(choices: &'static [&'static str]) -> impl Strategy<Value = J> {
    prop::sample::select(choices).prop_map(J::Lit)
}

const SCALARS: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "1",
    "-1",
    "5",
    "2.5",
    "1e3",
    "-0.0",
    "0.5",
    "4294967296",
    "18446744073709551615",
    "-9223372036854775808",
    "18446744073709551616",
    r#""""#,
    r#""m""#,
    r#""user""#,
    r#""robot""#,
    r#""a\u0062c""#,
    r#""é""#,
    r#""line\nbreak""#,
    r#""float""#,
    r#""base64""#,
    r#""hex""#,
];
const ROLES: &[&str] = &[
    r#""user""#,
    r#""system""#,
    r#""assistant""#,
    r#""tool""#,
    r#""us\u0065r""#,
    r#""robot""#,
    r#""""#,
];
const TEXTS: &[&str] = &[r#""hello""#, r#""""#, r#""h\u00e9llo \"q\"""#, r#""日本""#, "null", "3"];

fn key(choices: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    prop::sample::select(choices)
}

fn scalar() -> impl Strategy<Value = J> {
    lit(SCALARS)
}

fn any_json() -> impl Strategy<Value = J> {
    scalar().prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(J::Arr),
            prop::collection::vec((key(&[r#""a""#, r#""text""#, r#""role""#, r#""type""#]), inner), 0..4)
                .prop_map(J::Obj),
        ]
    })
}

fn part() -> impl Strategy<Value = J> {
    prop_oneof![
        4 => prop::collection::vec(
            prop_oneof![
                (Just(r#""type""#), Just(J::Lit(r#""text""#))),
                (Just(r#""text""#), lit(TEXTS)),
                (Just(r#""te\u0078t""#), lit(TEXTS)),
                (Just(r#""image_url""#), any_json()),
            ],
            0..4
        )
        .prop_map(J::Obj),
        1 => any_json(),
    ]
}

fn content() -> impl Strategy<Value = J> {
    prop_oneof![
        4 => lit(TEXTS),
        2 => prop::collection::vec(part(), 0..4).prop_map(J::Arr),
        1 => any_json(),
    ]
}

fn message() -> impl Strategy<Value = J> {
    prop_oneof![
        8 => prop::collection::vec(
            prop_oneof![
                3 => (Just(r#""role""#), lit(ROLES)),
                3 => (Just(r#""content""#), content()),
                1 => (Just(r#""role""#), scalar()),
                1 => (Just(r#""rol\u0065""#), lit(ROLES)),
                1 => (Just(r#""name""#), any_json()),
                1 => (Just(r#""tool_calls""#), any_json()),
            ],
            0..5
        )
        .prop_map(J::Obj),
        1 => any_json(),
    ]
}

fn prompt() -> impl Strategy<Value = J> {
    let item = prop_oneof![
        lit(&[r#""ab""#, r#""""#, "3", "-1", "2.5"]),
        prop::collection::vec(lit(&["1", "2", "-3", r#""x""#]), 0..3).prop_map(J::Arr),
    ];
    prop_oneof![
        lit(&[r#""abcd""#, r#""""#, r#""\u00e9""#]),
        prop::collection::vec(item, 0..4).prop_map(J::Arr),
        any_json(),
    ]
}

/// A member the gateway reads (with a value that is often, not always, of the right shape) or one it passes on.
fn member() -> impl Strategy<Value = (&'static str, J)> {
    prop_oneof![
        3 => (Just(r#""model""#), lit(&[r#""m""#, r#""other""#, r#""""#, "null", "7", r#""m\u0031""#])),
        1 => (Just(r#""mod\u0065l""#), lit(&[r#""escaped""#])),
        3 => (Just(r#""messages""#), prop_oneof![4 => prop::collection::vec(message(), 0..4).prop_map(J::Arr), 1 => any_json()]),
        2 => (Just(r#""prompt""#), prompt()),
        2 => (Just(r#""input""#), prompt()),
        2 => (Just(r#""stream""#), scalar()),
        2 => (Just(r#""stream_options""#), prop_oneof![
            prop::collection::vec(prop_oneof![
                (Just(r#""include_usage""#), scalar()),
                (Just(r#""continuous_usage_stats""#), lit(&["true"])),
            ], 0..3).prop_map(J::Obj),
            scalar(),
        ]),
        1 => (Just(r#""max_tokens""#), scalar()),
        1 => (Just(r#""max_completion_tokens""#), scalar()),
        1 => (Just(r#""temperature""#), scalar()),
        1 => (Just(r#""top_p""#), scalar()),
        1 => (Just(r#""n""#), scalar()),
        1 => (Just(r#""encoding_format""#), scalar()),
        1 => (Just(r#""dimensions""#), scalar()),
        2 => (key(&[r#""top_k""#, r#""seed""#, r#""x\ty""#, r#""\u00e9""#, r#""""#]), any_json()),
    ]
}

/// Members that make a valid request of every kind (the route decides which of `messages`,
/// `prompt` and `input` is read), so that the noise added to them is what decides the outcome.
fn valid_core() -> impl Strategy<Value = Vec<(&'static str, J)>> {
    let good_text = lit(&[r#""hello""#, r#""""#, r#""h\u00e9llo \"q\"""#, r#""日本""#, "null"]);
    let good_content = prop_oneof![3 => good_text, 1 => prop::collection::vec(part(), 0..4).prop_map(J::Arr)];
    let good_message = (lit(ROLES_OK), good_content, prop::option::of(any_json()), any::<bool>()).prop_map(
        |(role, content, name, repeat_role)| {
            let mut m = Vec::new();
            if repeat_role {
                m.push((r#""role""#, J::Lit("7")));
            }
            m.push((r#""role""#, role));
            m.push((r#""content""#, content));
            if let Some(n) = name {
                m.push((r#""name""#, n));
            }
            J::Obj(m)
        },
    );
    let good_prompt = prop_oneof![
        lit(&[r#""abcd""#, r#""\u00e9""#]),
        prop::collection::vec(lit(&[r#""ab""#, r#""""#]), 1..3).prop_map(J::Arr),
        prop::collection::vec(prop::collection::vec(lit(&["1", "2"]), 0..3).prop_map(J::Arr), 1..3).prop_map(J::Arr),
    ];
    let good_input = prop_oneof![
        lit(&[r#""abcd""#, r#""\u00e9""#]),
        prop::collection::vec(lit(&[r#""ab""#, r#""x\ny""#]), 1..3).prop_map(J::Arr),
        prop::collection::vec(lit(&["1", "0"]), 1..3).prop_map(J::Arr),
        prop::collection::vec(prop::collection::vec(lit(&["1", "2"]), 1..3).prop_map(J::Arr), 1..3).prop_map(J::Arr),
    ];
    let stream = prop_oneof![
        Just(vec![]),
        Just(vec![(r#""stream""#, J::Lit("false"))]),
        Just(vec![(r#""stream""#, J::Lit("true"))]),
        lit(&["true", "false", "null"]).prop_map(|u| vec![
            (r#""stream""#, J::Lit("true")),
            (
                r#""stream_options""#,
                J::Obj(vec![
                    (r#""include_usage""#, u),
                    (r#""continuous_usage_stats""#, J::Lit("true"))
                ])
            ),
        ]),
    ];
    let sampling = prop::collection::vec(
        prop_oneof![
            (
                key(&[
                    r#""max_tokens""#,
                    r#""max_completion_tokens""#,
                    r#""n""#,
                    r#""dimensions""#
                ]),
                lit(&["1", "16", "4294967296", "null"])
            ),
            (
                key(&[r#""temperature""#, r#""top_p""#]),
                lit(&["0", "0.5", "1", "null"])
            ),
            (
                key(&[r#""top_k""#, r#""seed""#, r#""logit_bias""#, r#""x\ty""#]),
                any_json()
            ),
        ],
        0..4,
    );
    (
        lit(&[r#""m""#, r#""m\u0031""#, r#""other""#]),
        prop::collection::vec(good_message, 1..4),
        good_prompt,
        good_input,
        stream,
        sampling,
    )
        .prop_map(|(model, messages, prompt, input, stream, sampling)| {
            let mut m = vec![
                (r#""model""#, model),
                (r#""messages""#, J::Arr(messages)),
                (r#""prompt""#, prompt),
                (r#""input""#, input),
            ];
            m.extend(stream);
            m.extend(sampling);
            m
        })
}

const ROLES_OK: &[&str] = &[
    r#""user""#,
    r#""system""#,
    r#""assistant""#,
    r#""tool""#,
    r#""developer""#,
    r#""us\u0065r""#,
];

fn body() -> impl Strategy<Value = String> {
    let ws = prop::collection::vec(lit(&["", "", "", " ", "\n  ", "\t"]), 64);
    let members = prop_oneof![
        // A valid request, sometimes with a few members that may break it, in any order.
        4 => (valid_core(), prop::collection::vec(member(), 0..3)).prop_flat_map(|(mut core, noise)| {
            core.extend(noise);
            Just(core).prop_shuffle()
        }),
        // Members drawn freely: mostly errors, of every kind.
        1 => prop::collection::vec(member(), 0..8),
    ];
    (members, ws).prop_map(|(members, ws)| {
        let mut ws = ws.into_iter().map(|j| match j {
            J::Lit(s) => s,
            _ => "",
        });
        let mut out = String::new();
        out.push_str(ws.next().unwrap_or(""));
        J::Obj(members).write(&mut ws, &mut out);
        out
    })
}

/// How many members the JSON object `bytes` has as written (repeats counted).
fn object_keys(bytes: &[u8]) -> usize {
    struct Count;
    impl<'de> serde::de::Visitor<'de> for Count {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
            let mut n = 0;
            while map
                .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                .is_some()
            {
                n += 1;
            }
            Ok(n)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde::Deserializer::deserialize_map(&mut de, Count).expect("an object")
}

fn check(kind: RequestKind, text: &str) -> Result<(), TestCaseError> {
    let new = InferenceRequest::parse(kind, text.as_bytes());
    let old = reference::Reference::parse(kind, text.as_bytes());
    match (new, old) {
        (Ok(n), Ok(o)) => {
            prop_assert_eq!(&n.model, &o.model);
            prop_assert_eq!(n.stream, o.stream);
            prop_assert_eq!(n.include_usage, o.include_usage);
            prop_assert_eq!(n.max_tokens, o.max_tokens);
            prop_assert_eq!(n.prompt_chars, o.prompt_chars);
            prop_assert_eq!(n.body().expect("a tree"), &o.body);
            for served in ["served", "s\"q"] {
                let up_new: Value = serde_json::from_slice(&n.upstream_body(served)).expect("upstream body is JSON");
                let up_old: Value = serde_json::from_slice(&o.upstream_body(served)).expect("reference body is JSON");
                prop_assert_eq!(up_new, up_old);
                // Each key once, at the top and in the `stream_options` the gateway writes, as
                // the runtime must see them. (Other values are passed on as the client wrote them.)
                let up = n.upstream_body(served);
                let tree = serde_json::from_slice::<serde_json::Map<String, Value>>(&up).expect("object");
                prop_assert_eq!(object_keys(&up), tree.len(), "{}", String::from_utf8_lossy(&up));
                if n.stream {
                    let opts =
                        serde_json::from_slice::<std::collections::HashMap<String, &serde_json::value::RawValue>>(&up)
                            .expect("object")["stream_options"];
                    let distinct = tree["stream_options"].as_object().expect("an object").len();
                    prop_assert_eq!(
                        object_keys(opts.get().as_bytes()),
                        distinct,
                        "{}",
                        String::from_utf8_lossy(&up)
                    );
                }
            }
        }
        (Err(n), Err(o)) => {
            prop_assert_eq!(n.message, o.message);
            prop_assert_eq!(n.param, o.param);
            prop_assert_eq!(n.code, o.code);
        }
        (n, o) => {
            prop_assert!(false, "new {:?}\nold {:?}", n.map(|r| r.model), o.map(|r| r.model));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn raw_parser_agrees_with_the_value_parser(text in body()) {
        for kind in [RequestKind::Chat, RequestKind::Completion, RequestKind::Embeddings] {
            check(kind, &text).map_err(|e| TestCaseError::fail(format!("{kind:?} {text}: {e}")))?;
        }
    }
}
