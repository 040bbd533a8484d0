//! Who may join and publish to which rooms: rules from the config (first
//! matching pattern wins) and grants from the token (claims `rooms` and
//! `publish`, lists of patterns).
//!
//! With no rules every room is open (the relay's default). With rules, a room
//! that no rule matches and no grant covers is refused (`forbidden`).
//! Personal rooms `user:<id>` are checked before any rule: only their user
//! may join them.

/// Who a rule lets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// Every connection, anonymous ones included.
    Anyone,
    /// Connections with a verified identity (a token or the connect proxy).
    Users,
    /// Nobody, except through the token's grants.
    Nobody,
}

/// What a client wants to do to a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `join`, and reading its presence and history.
    Join,
    /// `publish`.
    Publish,
}

/// One rule: a pattern and who may join and publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pattern: String,
    join: Who,
    publish: Who,
}

impl Rule {
    /// A rule; `*` in `pattern` matches any run of characters.
    pub fn new(pattern: &str, join: Who, publish: Who) -> Self {
        Self {
            pattern: pattern.to_owned(),
            join,
            publish,
        }
    }
}

/// Room patterns a token grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Rooms the user may join.
    pub join: Vec<String>,
    /// Rooms the user may publish to.
    pub publish: Vec<String>,
}

/// The rules, in order.
#[derive(Debug, Clone, Default)]
pub struct Permissions {
    rules: Vec<Rule>,
}

impl Permissions {
    /// Rules checked in order.
    pub fn new(rules: Vec<Rule>) -> Self {
        Self { rules }
    }

    /// Whether any rule is configured.
    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// Whether a connection (`anonymous` or not, with `grants`) may do
    /// `action` to `room`.
    pub fn allows(
        &self,
        action: Action,
        room: &str,
        anonymous: bool,
        grants: Option<&Grants>,
    ) -> bool {
        let granted = grants.is_some_and(|g| {
            let list = match action {
                Action::Join => &g.join,
                Action::Publish => &g.publish,
            };
            list.iter().any(|p| matches(p, room))
        });
        if granted || self.rules.is_empty() {
            return true;
        }
        match self.rules.iter().find(|r| matches(&r.pattern, room)) {
            None => false,
            Some(rule) => match (action, rule.join, rule.publish) {
                (Action::Join, who, _) | (Action::Publish, _, who) => match who {
                    Who::Anyone => true,
                    Who::Users => !anonymous,
                    Who::Nobody => false,
                },
            },
        }
    }
}

/// Glob match where `*` matches any run of characters (none included).
pub fn matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(matches("public:*", "public:lobby"));
        assert!(matches("public:*", "public:"));
        assert!(!matches("public:*", "private:x"));
        assert!(matches("*", "anything"));
        assert!(matches("a*b*c", "a-b-c"));
        assert!(matches("a*b*c", "abc"));
        assert!(!matches("a*b*c", "a-c-b"));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exactly"));
        assert!(!matches("*.x", ".y"));
        assert!(matches("team:*:chat", "team:7:chat"));
    }

    #[test]
    fn rules_first_match_wins_and_grants_add() {
        let p = Permissions::new(vec![
            Rule::new("public:*", Who::Anyone, Who::Users),
            Rule::new("admin:*", Who::Nobody, Who::Nobody),
            Rule::new("*", Who::Users, Who::Users),
        ]);
        assert!(p.allows(Action::Join, "public:a", true, None));
        assert!(!p.allows(Action::Publish, "public:a", true, None));
        assert!(p.allows(Action::Publish, "public:a", false, None));
        assert!(!p.allows(Action::Join, "admin:x", false, None));
        assert!(!p.allows(Action::Join, "other", true, None));
        assert!(p.allows(Action::Join, "other", false, None));
        let g = Grants {
            join: vec!["admin:*".into()],
            publish: vec![],
        };
        assert!(p.allows(Action::Join, "admin:x", false, Some(&g)));
        assert!(!p.allows(Action::Publish, "admin:x", false, Some(&g)));
        assert!(Permissions::default().allows(Action::Publish, "x", true, None));
        let only = Permissions::new(vec![Rule::new("a", Who::Anyone, Who::Anyone)]);
        assert!(
            !only.allows(Action::Join, "b", false, None),
            "no rule matches"
        );
    }
}
