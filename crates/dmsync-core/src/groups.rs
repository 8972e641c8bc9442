//! Entra ID groups (`groups`, v1.0 and beta) and their members. A group is assigned (its members
//! are added and removed through `members/$ref`) or dynamic (`groupTypes` holds
//! `DynamicMembership`): then its `membershipRule` alone decides its members, which the
//! membership evaluation writes some time after a rule or a device changed, as Entra does.
//! Members are Entra device objects; dmsync has no users.

use time::OffsetDateTime;

use crate::TenantId;
use crate::ids::{EntraDeviceId, GroupId};
use crate::membership_rule::{Rule, RuleError, parse_rule};
use crate::query::ListQuery;

/// The `groupTypes` entry of a group whose members a rule decides.
pub const DYNAMIC_MEMBERSHIP: &str = "DynamicMembership";

/// `membershipRuleProcessingState`: whether a dynamic group's rule is being applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessingState {
    On,
    /// The members stay as they are until the state is `On` again.
    Paused,
}

impl ProcessingState {
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessingState::On => "On",
            ProcessingState::Paused => "Paused",
        }
    }

    /// Graph's spelling, ignoring case as Entra does.
    pub fn parse(s: &str) -> Option<ProcessingState> {
        if s.eq_ignore_ascii_case("On") {
            Some(ProcessingState::On)
        } else if s.eq_ignore_ascii_case("Paused") {
            Some(ProcessingState::Paused)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub tenant_id: TenantId,
    pub id: GroupId,
    pub display_name: String,
    pub description: Option<String>,
    pub mail_nickname: String,
    pub mail_enabled: bool,
    pub security_enabled: bool,
    pub group_types: Vec<String>,
    /// Set exactly when the group is dynamic.
    pub membership_rule: Option<String>,
    /// Set exactly when the group is dynamic.
    pub processing_state: Option<ProcessingState>,
    pub created_at: OffsetDateTime,
}

/// Why a group's properties cannot be stored as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupInvalid {
    /// A required property is missing or empty (its Graph name).
    Required(&'static str),
    /// A dynamic group without a rule.
    DynamicWithoutRule,
    /// A rule on a group that is not dynamic.
    RuleWithoutDynamic,
    /// A rule the evaluator cannot evaluate.
    Rule(RuleError),
}

impl Group {
    pub fn is_dynamic(&self) -> bool {
        self.group_types.iter().any(|t| t.eq_ignore_ascii_case(DYNAMIC_MEMBERSHIP))
    }

    /// Whether the evaluation applies its rule now.
    pub fn is_evaluated(&self) -> bool {
        self.is_dynamic() && self.processing_state == Some(ProcessingState::On)
    }

    /// Checks what Entra checks of a group before storing it, and parses its rule. A dynamic
    /// group without a processing state gets `On`, Entra's default.
    pub fn validate(&mut self) -> Result<Option<Rule>, GroupInvalid> {
        if self.display_name.trim().is_empty() {
            return Err(GroupInvalid::Required("displayName"));
        }
        if self.mail_nickname.trim().is_empty() {
            return Err(GroupInvalid::Required("mailNickname"));
        }
        if !self.is_dynamic() {
            if self.membership_rule.as_deref().is_some_and(|rule| !rule.is_empty()) {
                return Err(GroupInvalid::RuleWithoutDynamic);
            }
            self.membership_rule = None;
            self.processing_state = None;
            return Ok(None);
        }
        let Some(rule) = self.membership_rule.as_deref().filter(|rule| !rule.trim().is_empty()) else {
            return Err(GroupInvalid::DynamicWithoutRule);
        };
        let parsed = parse_rule(rule).map_err(GroupInvalid::Rule)?;
        self.processing_state.get_or_insert(ProcessingState::On);
        Ok(Some(parsed))
    }
}

/// The group properties a list can be filtered and ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupField {
    Id,
    DisplayName,
    MailNickname,
}

pub type GroupQuery = ListQuery<GroupField>;

/// What a write of a group's members did (`members/$ref`, `members@odata.bind`); a write that
/// is not `Done` changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    Done,
    GroupNotFound,
    /// This object to add does not exist in the tenant (or, for a removal, is not a member).
    MemberNotFound(EntraDeviceId),
    /// An object to add is a member already, or named twice.
    AlreadyMember,
    /// A dynamic group's members are its rule's.
    DynamicGroup,
}

/// What a membership evaluation changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvaluationStats {
    pub groups: u64,
    pub added: u64,
    pub removed: u64,
}

impl EvaluationStats {
    pub fn changed(&self) -> bool {
        self.added + self.removed > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(types: &[&str], rule: Option<&str>) -> Group {
        Group {
            tenant_id: TenantId::new(),
            id: GroupId::new(),
            display_name: "Autopilot Devices".into(),
            description: None,
            mail_nickname: "autopilot".into(),
            mail_enabled: false,
            security_enabled: true,
            group_types: types.iter().map(|t| t.to_string()).collect(),
            membership_rule: rule.map(str::to_owned),
            processing_state: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn validation_follows_the_group_kind() {
        let mut assigned = group(&[], None);
        assert_eq!(assigned.validate(), Ok(None));
        assert_eq!(group(&[], Some("device.displayName -eq \"a\"")).validate(), Err(GroupInvalid::RuleWithoutDynamic));
        assert_eq!(group(&["dynamicmembership"], None).validate(), Err(GroupInvalid::DynamicWithoutRule));
        let mut dynamic = group(&[DYNAMIC_MEMBERSHIP], Some("device.displayName -eq \"a\""));
        assert!(dynamic.validate().unwrap().is_some());
        assert_eq!(dynamic.processing_state, Some(ProcessingState::On));
        assert!(dynamic.is_evaluated());
        let mut nameless = group(&[], None);
        nameless.display_name = " ".into();
        assert_eq!(nameless.validate(), Err(GroupInvalid::Required("displayName")));
        assert!(matches!(
            group(&[DYNAMIC_MEMBERSHIP], Some("user.x -eq \"a\"")).validate(),
            Err(GroupInvalid::Rule(_))
        ));
    }
}
