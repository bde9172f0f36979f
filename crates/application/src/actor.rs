//! Who is calling: the API key behind a request, its role, and so the links it may
//! see and change.

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything, on every link.
    Admin,
    /// Creates links, and reads and manages only the links it created.
    Creator,
}

impl Role {
    /// The name used in the API, the CLI and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Creator => "creator",
        }
    }

    /// The role named `name` (`admin` or `creator`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "admin" => Some(Self::Admin),
            "creator" => Some(Self::Creator),
            _ => None,
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The key's name, as written to the audit log.
    pub name: String,
    /// The stored key's id; `None` for keys configured in `OFFNDAT_API_KEYS`.
    pub key_id: Option<i64>,
    pub role: Role,
}

impl Actor {
    /// A key from `OFFNDAT_API_KEYS` (numbered from 1): an admin, as before keys
    /// were stored.
    pub fn configured(number: usize) -> Self {
        Self { name: format!("OFFNDAT_API_KEYS#{number}"), key_id: None, role: Role::Admin }
    }

    /// The owner every link query of this caller is limited to: `None` means all
    /// links (admins); `Some(id)` only the links key `id` created.
    pub fn owner_scope(&self) -> Option<i64> {
        match self.role {
            Role::Admin => None,
            // A creator without a stored key cannot exist; scoping to an id no link
            // has keeps such a caller away from every link rather than from none.
            Role::Creator => Some(self.key_id.unwrap_or(-1)),
        }
    }

    /// The id recorded as a new link's owner.
    pub fn owner_of_new_links(&self) -> Option<i64> {
        self.key_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admins_see_every_link_and_creators_their_own() {
        assert_eq!(Actor::configured(1).owner_scope(), None);
        let creator = Actor { name: "ci".into(), key_id: Some(7), role: Role::Creator };
        assert_eq!(creator.owner_scope(), Some(7));
        assert_eq!(creator.owner_of_new_links(), Some(7));
        let orphan = Actor { name: "x".into(), key_id: None, role: Role::Creator };
        assert_eq!(orphan.owner_scope(), Some(-1));
    }
}
