//! Who may do what: Stoke's `stk` letters, which letters a claim value grants, and the rules every admin path
//! calls before its change commits.
//!
//! This module owns the one answer to "which letters does this `stk` text grant": the token parser, the
//! superuser guard, the directory sync and every admin write ask [`Letters::granted_by`], so the letters a user
//! holds in the database are exactly what a token of theirs will be read as. It is pure: no database, no HTTP.
//!
//! The rules, each checked by one function here:
//! - a caller may only change who holds a letter it holds itself ([`Letters::may_change`]; `S` holds all), so
//!   a caller without `S` can never make anyone a superuser, and nobody can give themselves a letter;
//! - a caller may only modify, delete or end the sessions of an account whose letters it holds all of
//!   ([`may_manage`]), so no lower admin can take over (or lock out) a superuser;
//! - no change may leave zero superusers ([`Transition::check`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The claim short name that carries the letters.
pub const STK: &str = "stk";

/// The letters, in the order they are listed.
const ALPHABET: [char; 9] = ['S', 's', 'u', 'U', 'g', 'G', 'c', 'C', 'm'];

/// One permission letter: `S` superuser, `s` read all, `u`/`U` read/write users, `g`/`G` groups and links,
/// `c`/`C` claims, `m` metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Letter(u8);

impl Letter {
    pub const SUPERUSER: Letter = Letter(0);
    pub const READ_ALL: Letter = Letter(1);
    pub const READ_USERS: Letter = Letter(2);
    pub const WRITE_USERS: Letter = Letter(3);
    pub const READ_GROUPS: Letter = Letter(4);
    pub const WRITE_GROUPS: Letter = Letter(5);
    pub const READ_CLAIMS: Letter = Letter(6);
    pub const WRITE_CLAIMS: Letter = Letter(7);
    pub const METRICS: Letter = Letter(8);

    /// The letter a piece of `stk` text names: exactly one character of the alphabet.
    fn parse(piece: &str) -> Option<Letter> {
        let mut chars = piece.chars();
        let (Some(c), None) = (chars.next(), chars.next()) else {
            return None;
        };
        ALPHABET.iter().position(|a| *a == c).map(|i| Letter(i as u8))
    }

    fn bit(self) -> u16 {
        1 << self.0
    }

    pub fn as_char(self) -> char {
        ALPHABET[usize::from(self.0)]
    }
}

/// A set of letters.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Letters(u16);

impl Letters {
    pub const NONE: Letters = Letters(0);

    /// The letters an `stk` text grants, the way the token parser reads it: split on commas, each piece
    /// trimmed, and each piece that is exactly one letter of the alphabet counts; anything else grants nothing.
    /// A claim value, and the comma-joined claim of a token, are read the same way.
    pub fn granted_by(text: &str) -> Letters {
        text.split(',')
            .filter_map(|p| Letter::parse(p.trim()))
            .fold(Letters::NONE, Letters::with)
    }

    /// The letters a set of (short name, value) claims grants: the union over its `stk` claims.
    pub fn of_claims<'a>(claims: impl IntoIterator<Item = (&'a str, &'a str)>) -> Letters {
        claims
            .into_iter()
            .filter(|(short, _)| *short == STK)
            .fold(Letters::NONE, |acc, (_, value)| acc.union(Letters::granted_by(value)))
    }

    pub fn with(self, l: Letter) -> Letters {
        Letters(self.0 | l.bit())
    }

    pub fn has(self, l: Letter) -> bool {
        self.0 & l.bit() != 0
    }

    pub fn is_superuser(self) -> bool {
        self.has(Letter::SUPERUSER)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn union(self, other: Letters) -> Letters {
        Letters(self.0 | other.0)
    }

    pub fn intersection(self, other: Letters) -> Letters {
        Letters(self.0 & other.0)
    }

    /// The letters in exactly one of the two sets: what a change gave or took.
    pub fn difference(self, other: Letters) -> Letters {
        Letters(self.0 ^ other.0)
    }

    /// Whether this caller holds every letter of `other` (`S` holds them all).
    pub fn covers(self, other: Letters) -> bool {
        self.is_superuser() || other.0 & !self.0 == 0
    }

    /// Whether `self` holds any of `letters` (or `S`).
    pub fn any_of(self, letters: &[Letter]) -> bool {
        self.is_superuser() || letters.iter().any(|l| self.has(*l))
    }

    /// May a caller holding `self` change who holds `changed`? Only letters it holds itself; `S` for `S`.
    pub fn may_change(self, changed: Letters) -> Result<(), Denied> {
        if self.covers(changed) {
            Ok(())
        } else {
            Err(Denied::new(changed, self))
        }
    }

    pub fn iter(self) -> impl Iterator<Item = Letter> {
        (0..ALPHABET.len() as u8).map(Letter).filter(move |l| self.has(*l))
    }
}

impl fmt::Display for Letters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let letters: Vec<String> = self.iter().map(|l| l.as_char().to_string()).collect();
        f.write_str(&letters.join(","))
    }
}

impl fmt::Debug for Letters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Letters({self})")
    }
}

/// A caller lacks letters a change needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied {
    /// The letters needed that the caller does not hold.
    pub missing: Letters,
}

impl Denied {
    fn new(needed: Letters, held: Letters) -> Self {
        Denied {
            missing: Letters(needed.0 & !held.0),
        }
    }

    /// `superuser_required` when `S` is among the missing letters, else `letter_required`.
    pub fn code(self) -> &'static str {
        if self.missing.is_superuser() {
            "superuser_required"
        } else {
            "letter_required"
        }
    }

    pub fn message(self) -> String {
        if self.missing.is_superuser() {
            "only a superuser (stk=S) can make this change".into()
        } else {
            format!(
                "this change grants or takes stk letters the caller does not hold: {}",
                self.missing
            )
        }
    }
}

/// May a caller holding `caller` modify, delete or end the sessions of an account holding `target`? Only when
/// it holds every letter the account holds: a `U` admin manages users, not the superusers above it.
pub fn may_manage(caller: Letters, target: Letters) -> Result<(), Denied> {
    caller.may_change(target)
}

/// Why an `stk` claim value is refused on an admin write.
pub const INVALID_STK_VALUE: &str = "invalid_stk_value";

/// An `stk` claim value an admin may store: one letter of `SsuUgGcCm`, or a comma list of them, nothing else
/// (no spaces, no empty pieces, no repeats). Stored values are read with [`Letters::granted_by`] either way;
/// this only keeps new ones unambiguous to a human reading them.
pub fn check_stk_value(value: &str) -> Result<(), String> {
    let mut seen = Letters::NONE;
    for piece in value.split(',') {
        let Some(letter) = Letter::parse(piece) else {
            return Err(format!(
                "an stk value is one letter of {} or a comma list of them (e.g. \"U,G\"); {piece:?} is not one",
                ALPHABET.iter().collect::<String>()
            ));
        };
        if seen.has(letter) {
            return Err(format!("the stk value {value:?} names {} twice", letter.as_char()));
        }
        seen = seen.with(letter);
    }
    Ok(())
}

/// What the letters of every account, every claim group and every group link were at one moment: the
/// before and after of an admin write, compared by [`Transition::check`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holdings {
    /// The letters each user holds (users holding none are absent).
    pub users: BTreeMap<i64, Letters>,
    /// The letters each claim group grants its members (groups granting none are absent).
    pub groups: BTreeMap<i64, Letters>,
    /// Every group link: id → (type, resource, claim group).
    pub links: BTreeMap<i64, (String, String, Option<i64>)>,
}

impl Holdings {
    /// From the `stk` values each user holds through its groups, the `stk` values of each group, and the links.
    pub fn build(
        user_values: impl IntoIterator<Item = (i64, String)>,
        group_values: impl IntoIterator<Item = (i64, String)>,
        links: impl IntoIterator<Item = (i64, String, String, Option<i64>)>,
    ) -> Holdings {
        let fold = |values: &mut dyn Iterator<Item = (i64, String)>| {
            let mut map: BTreeMap<i64, Letters> = BTreeMap::new();
            for (id, value) in values {
                let letters = Letters::granted_by(&value);
                let entry = map.entry(id).or_default();
                *entry = entry.union(letters);
            }
            map.retain(|_, l| !l.is_empty());
            map
        };
        Holdings {
            users: fold(&mut user_values.into_iter()),
            groups: fold(&mut group_values.into_iter()),
            links: links.into_iter().map(|(id, t, r, g)| (id, (t, r, g))).collect(),
        }
    }

    pub fn user(&self, id: i64) -> Letters {
        self.users.get(&id).copied().unwrap_or_default()
    }

    pub fn group(&self, id: i64) -> Letters {
        self.groups.get(&id).copied().unwrap_or_default()
    }

    /// The users holding `S`.
    pub fn superusers(&self) -> BTreeSet<i64> {
        self.users
            .iter()
            .filter(|(_, l)| l.is_superuser())
            .map(|(id, _)| *id)
            .collect()
    }
}

/// Why a change is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The caller lacks letters the change gives or takes.
    Denied(Denied),
    /// The change would leave nobody holding `S`.
    LastSuperuser,
}

/// One write's before and after.
pub struct Transition<'a> {
    pub before: &'a Holdings,
    pub after: &'a Holdings,
}

impl Transition<'_> {
    /// The letters this change gives or takes, from anyone: letters users gained or lost, letters groups
    /// grant that changed (whether or not they have members: a directory login may add some later), and the
    /// letters of the groups on both ends of every created, deleted or re-targeted group link (a link decides
    /// who a directory login puts into a group).
    pub fn changed_letters(&self) -> Letters {
        let (b, a) = (self.before, self.after);
        let mut changed = Letters::NONE;
        for id in b.users.keys().chain(a.users.keys()) {
            changed = changed.union(b.user(*id).difference(a.user(*id)));
        }
        for id in b.groups.keys().chain(a.groups.keys()) {
            changed = changed.union(b.group(*id).difference(a.group(*id)));
        }
        for id in b.links.keys().chain(a.links.keys()) {
            let (old, new) = (b.links.get(id), a.links.get(id));
            if old == new {
                continue;
            }
            for (link, side) in [(old, b), (new, a)] {
                if let Some((_, _, Some(group))) = link {
                    changed = changed.union(side.group(*group));
                }
            }
        }
        changed
    }

    /// Whether a caller holding `caller` may make this change.
    pub fn check(&self, caller: Letters) -> Result<(), Refusal> {
        if !self.before.superusers().is_empty() && self.after.superusers().is_empty() {
            return Err(Refusal::LastSuperuser);
        }
        caller.may_change(self.changed_letters()).map_err(Refusal::Denied)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn l(text: &str) -> Letters {
        Letters::granted_by(text)
    }

    #[test]
    fn values_grant_what_the_token_parser_reads() {
        assert_eq!(l("S").to_string(), "S");
        assert_eq!(l("S,C").to_string(), "S,C");
        assert_eq!(l(" S").to_string(), "S");
        assert_eq!(l("C,S,C").to_string(), "S,C");
        assert_eq!(l("u, G ,m").to_string(), "u,G,m");
        // Pieces that are not one letter grant nothing.
        assert!(l("SC").is_empty() && l("x").is_empty() && l("").is_empty() && l("Ś").is_empty());
        assert_eq!(l("SC,U").to_string(), "U");
    }

    #[test]
    fn stored_values_are_canonical_letter_lists() {
        for ok in ["S", "U,G", "s,u,U,g,G,c,C,m"] {
            assert!(check_stk_value(ok).is_ok(), "{ok}");
        }
        for bad in ["", " S", "S ", "S,", ",S", "SC", "S,,C", "x", "S,S", "s;u", "S\n"] {
            assert!(check_stk_value(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn covering_and_denials() {
        assert!(l("S").covers(l("S,C,m")));
        assert!(l("U,G").covers(l("G")));
        assert!(!l("U,G").covers(l("G,C")));
        let denied = l("G").may_change(l("S,C")).unwrap_err();
        assert_eq!(denied.missing, l("S,C"));
        assert_eq!(denied.code(), "superuser_required");
        assert_eq!(l("G").may_change(l("C")).unwrap_err().code(), "letter_required");
        assert!(may_manage(l("U"), Letters::NONE).is_ok());
        assert!(may_manage(l("U"), l("S")).is_err());
    }

    fn holdings(users: &[(i64, &str)], groups: &[(i64, &str)], links: &[(i64, &str, Option<i64>)]) -> Holdings {
        Holdings::build(
            users.iter().map(|(i, v)| (*i, v.to_string())),
            groups.iter().map(|(i, v)| (*i, v.to_string())),
            links
                .iter()
                .map(|(i, r, g)| (*i, "LDAP:".to_string(), r.to_string(), *g)),
        )
    }

    #[test]
    fn transitions_name_every_letter_they_touch() {
        let before = holdings(&[(1, "S"), (2, "G")], &[(10, "S"), (20, "G"), (30, "")], &[]);
        // A new claim on an empty group, a link to the superuser group, a user joining a group.
        let cases: [(Holdings, &str); 4] = [
            (
                holdings(&[(1, "S"), (2, "G")], &[(10, "S"), (20, "G"), (30, "C")], &[]),
                "C",
            ),
            (
                holdings(
                    &[(1, "S"), (2, "G")],
                    &[(10, "S"), (20, "G")],
                    &[(5, "admins", Some(10))],
                ),
                "S",
            ),
            (holdings(&[(1, "S"), (2, "G,S")], &[(10, "S"), (20, "G")], &[]), "S"),
            (holdings(&[(1, "S")], &[(10, "S"), (20, "G")], &[]), "G"),
        ];
        for (after, changed) in cases {
            let t = Transition {
                before: &before,
                after: &after,
            };
            assert_eq!(t.changed_letters(), l(changed));
            assert!(t.check(l("S")).is_ok());
        }
        let nobody = holdings(&[(2, "G")], &[(10, "S"), (20, "G")], &[]);
        let t = Transition {
            before: &before,
            after: &nobody,
        };
        assert_eq!(t.check(l("S")), Err(Refusal::LastSuperuser));
        // Re-targeting a link between two letterless groups changes no letter.
        let a = holdings(&[], &[], &[(5, "x", Some(30))]);
        let b = holdings(&[], &[], &[(5, "y", Some(31))]);
        assert!(Transition { before: &a, after: &b }.changed_letters().is_empty());
    }
}
